"""The k8sedge.lb.keepalived_view and keepalived_domains filters: peers read from hostvars, errors
as AnsibleFilterError, and the role's template fed by the view is a config the real keepalived
accepts (`keepalived -t`, when keepalived and a non-loopback interface are there)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import comment

from ansible_collections.k8sedge.lb.plugins.filter.keepalived_domains import FilterModule as DomainsModule
from ansible_collections.k8sedge.lb.plugins.filter.keepalived_view import FilterModule

REPO = Path(__file__).resolve().parents[4]
ROLE = REPO / "roles/edge_keepalived"
keepalived_view = FilterModule().filters()["keepalived_view"]
keepalived_domains = DomainsModule().filters()["keepalived_domains"]
FACTS = {"interfaces": ["lo", "eth0"], "eth0": {"ipv4": {"address": "10.213.0.11", "netmask": "255.255.255.0"}}}
VIPS = {"default": ["10.213.0.200", "10.213.0.201"]}
# The role names the variables a peer keeps its pools, VRRP address and interface in.
PEER_VARS = {"pools": "edge_keepalived_pools", "address": "edge_keepalived_address", "interface": "edge_keepalived_interface"}


def test_peers_come_from_their_variables_then_facts_then_ansible_host():
    hostvars = {
        "edge1": {},
        "edge2": {"edge_keepalived_address": "10.213.0.52", "ansible_host": "10.213.0.12"},
        "edge3": {"edge_keepalived_interface": "eth1", "ansible_host": "edge3.example",
                  "ansible_facts": {"eth1": {"ipv4": {"address": "10.213.0.53"}}}},
        "edge4": {"ansible_host": "10.213.0.14", "edge_keepalived_pools": ["default", "web"]},
        "edge5": {"ansible_host": "10.213.0.15", "edge_keepalived_pools": ["web"]},
    }
    view = keepalived_view(FACTS, host="edge1", hosts=list(hostvars), hostvars=hostvars, peer_vars=PEER_VARS, interface="eth0", pool_vips=VIPS,
                           unicast=True)
    assert view["instances"][0]["unicast"] == [{"source": "10.213.0.11", "peers": ["10.213.0.14", "10.213.0.52", "10.213.0.53"]}]
    # Four hosts serve the pool: two VIPs are primary on edge1 and edge2.
    assert [(i["primary"], i["priority"]) for i in view["instances"]] == [("edge1", 250), ("edge2", 220)]


def test_errors_are_ansible_filter_errors():
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.keepalived_view: host edge1: interface: eth1 does not exist"):
        keepalived_view(FACTS, host="edge1", hosts=["edge1"], hostvars={}, peer_vars=PEER_VARS, interface="eth1", pool_vips=VIPS)
    with pytest.raises(AnsibleFilterError, match=r"host edge1: pools: expected a list of pool names, got \"default\""):
        keepalived_view(FACTS, host="edge1", hosts=["edge1"], hostvars={}, peer_vars=PEER_VARS, interface="eth0", pool_vips=VIPS, pools="default")
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.keepalived_view: host edge1: check: expected track script settings .*got \"pol\""):
        keepalived_view(FACTS, host="edge1", hosts=["edge1"], hostvars={}, peer_vars=PEER_VARS, interface="eth0", pool_vips=VIPS, check={"pol": 1})
    with pytest.raises(AnsibleFilterError, match=r"host edge1: hostvars: expected the variables of every host .*got \"edge2\""):
        keepalived_view(FACTS, host="edge1", hosts=["edge1", "edge2"], hostvars={}, peer_vars=PEER_VARS, interface="eth0", pool_vips=VIPS)


def test_domains_filter():
    entries = [{"host": "edge1", "network": "10.213.0.0/24", "router_ids": [{"router_id": 50, "vip": "10.213.0.200"}]},
               {"host": "edge2", "network": "10.213.0.0/24", "router_ids": [{"router_id": 50, "vip": "10.213.0.201"}]}]
    assert keepalived_domains(entries[:1]) == entries[:1]
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.keepalived_domains: duplicate virtual_router_id 50 in broadcast "
                                                 r"domain 10.213.0.0/24: 10.213.0.200 on edge1, 10.213.0.201 on edge2"):
        keepalived_domains(entries)
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.keepalived_domains: domains: \[0\]\.network: expected text"):
        keepalived_domains([{"host": "edge1"}])
    # What `map` yields in a play is read once, and handed on.
    assert keepalived_domains(entry for entry in entries[:1]) == entries[:1]


def render(view: dict, libexec: Path) -> str:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    environment.filters["comment"] = comment
    return environment.from_string((ROLE / "templates/keepalived.conf.j2").read_text()).render(
        ansible_managed="Ansible managed", __edge_keepalived_view=view, __edge_keepalived_libexec=str(libexec),
        __edge_keepalived_notify_fifo=str(libexec.parent / "notify.fifo"))


def test_the_template_decides_nothing_the_view_did_not():
    """The template spells keepalived's syntax; every condition in it is a flag the view set."""
    text = (ROLE / "templates/keepalived.conf.j2").read_text()
    view = keepalived_view(FACTS, host="edge1", hosts=["edge1"], hostvars={}, peer_vars=PEER_VARS, interface="eth0", pool_vips=VIPS)
    conditions = re.findall(r"{%-?\s*(?:el)?if\s+(.*?)\s*-?%}", text)
    assert conditions
    for condition in conditions:
        flag = re.fullmatch(r"(?:not )?__edge_keepalived_view\.(\w+)", condition)
        assert flag and isinstance(view[flag.group(1)], bool), condition


@pytest.mark.parametrize("preempt", [True, False])
def test_nopreempt_is_in_every_instance_exactly_when_the_view_says(tmp_path, preempt):
    view = keepalived_view(FACTS, host="edge1", hosts=["edge1"], hostvars={}, peer_vars=PEER_VARS, interface="eth0", pool_vips=VIPS, preempt=preempt)
    config = render(view, tmp_path)
    assert config.count("    nopreempt\n") == (0 if preempt else 2) and config.count("vrrp_instance ") == 2


def _interface() -> str | None:
    names = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    return names[0] if names else None


@pytest.mark.parametrize("settings", [
    {},
    {"unicast": True, "preempt": False},
    {"version": 2, "advert_int": 1, "auth": True},
])
def test_rendered_config_passes_keepalived_t(tmp_path, settings):
    interface = _interface()
    if not shutil.which("keepalived") or interface is None:
        pytest.skip("keepalived or a non-loopback interface is missing")
    libexec = tmp_path / "libexec"
    libexec.mkdir()
    for script in ("vrrp-check", "notify"):
        shutil.copy(ROLE / "files" / script, libexec / script)
    auth = tmp_path / "auth.conf"
    auth.write_text("authentication {\n    auth_type PASS\n    auth_pass secret1\n}\n")
    facts = {"interfaces": [interface], interface: {"ipv4": {"address": "10.213.0.11", "netmask": "255.255.255.0"}}}
    hostvars = {"edge2": {"ansible_host": "10.213.0.12"}}
    view = keepalived_view(facts, host="edge1", hosts=["edge1", "edge2"], hostvars=hostvars, peer_vars=PEER_VARS, interface=interface, pool_vips=VIPS,
                           version=settings.get("version", 3), advert_int=settings.get("advert_int", 0.2),
                           unicast=settings.get("unicast", False), preempt=settings.get("preempt", True),
                           auth_file=str(auth) if settings.get("auth") else "",
                           check={"program": str(libexec / "vrrp-check"), "status_dir": str(tmp_path / "status")})
    config = tmp_path / "keepalived.conf"
    config.write_text(render(view, libexec))
    result = subprocess.run(["keepalived", "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert config.read_text().count("vrrp_instance ") == 2
    # The same view with a broken line is refused by the same check: the test can fail.
    config.write_text(config.read_text().replace("virtual_router_id 50", "virtual_router_id 300"))
    assert subprocess.run(["keepalived", "-t", "-f", str(config)], capture_output=True, text=True, timeout=30).returncode != 0
