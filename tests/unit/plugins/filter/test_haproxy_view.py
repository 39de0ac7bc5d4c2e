"""The k8sedge.lb.haproxy_view filter: errors as AnsibleFilterError, and what it feeds the role's
template (rendered as k8sedge.lb.haproxy_render renders it) is a config the real haproxy accepts
(`haproxy -c`, when haproxy is installed)."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.haproxy_view import FilterModule
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_files import stage, tree_files
from ansible_collections.k8sedge.lb.plugins.plugin_utils._haproxy_render import environment

REPO = Path(__file__).resolve().parents[4]
MODEL = yaml.safe_load((REPO / "tests/unit/plugins/module_utils/fixtures/haproxy_view_model.yaml").read_text())
TEMPLATE = REPO / "roles/edge_haproxy/templates/haproxy.cfg.j2"
haproxy_view = FilterModule().filters()["haproxy_view"]


@pytest.fixture(scope="module", name="certificate")
def fixture_certificate(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    where = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=shop.pctest",
                    "-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem")], check=True, capture_output=True)
    return {"cert": (where / "cert.pem").read_text(), "key": (where / "key.pem").read_text()}


def render(view: dict, root: Path, certificates: dict) -> Path:
    """What the role stages: the template's haproxy.cfg, the view's maps, the certificates it names."""
    config = environment().from_string(TEMPLATE.read_text()).render(
        ansible_managed="Ansible managed", view=view, edge_haproxy_chroot="/", edge_haproxy_hard_stop_after="5m",
        edge_haproxy_stats_socket=str(root / "admin.sock"))
    stage(str(root), tree_files(config, view["maps"], {entry["name"]: certificates[entry["name"]] for entry in view["certificates"]}))
    return root / "haproxy.cfg"


def test_the_json_text_of_the_model_gives_the_same_view():
    view = haproxy_view(copy.deepcopy(MODEL), pools=["blue"])
    assert view["frontends"] and haproxy_view(json.dumps(MODEL), pools=["blue"]) == view


def test_errors_are_ansible_filter_errors_naming_the_object():
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.haproxy_view: frontend default-udp-5353: protocol: UDP"):
        haproxy_view(copy.deepcopy(MODEL), udp_frontends="fail")
    with pytest.raises(AnsibleFilterError, match=r"options: pools: expected a non-empty list"):
        haproxy_view(copy.deepcopy(MODEL), pools="default")
    with pytest.raises(AnsibleFilterError, match=r"options: certificates: expected an object"):
        haproxy_view(copy.deepcopy(MODEL), certificates="web", udp_frontends="skip")


def test_rendering_twice_gives_the_same_bytes(tmp_path, certificate):
    view = haproxy_view(copy.deepcopy(MODEL), certificates={"web": certificate}, udp_frontends="skip")
    first = render(view, tmp_path / "a", {"web": certificate}).read_text()
    second = render(haproxy_view(copy.deepcopy(MODEL), certificates={"web": certificate}, udp_frontends="skip"), tmp_path / "b",
                    {"web": certificate}).read_text()
    assert first.replace(str(tmp_path / "a"), "") == second.replace(str(tmp_path / "b"), "")
    assert first.startswith("#\n# Ansible managed\n#\n")
    assert "    server s2 10.244.2.9:8080 weight 0\n" in first
    assert "    bind :443 ssl crt certs/web.pem alpn h2,http/1.1\n" in first
    assert "    bind :9999 accept-proxy\n" in first


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is not installed")
@pytest.mark.parametrize("pools", [["default"], ["blue"], ["default", "blue"]])
def test_the_real_haproxy_accepts_the_rendered_config(tmp_path, certificate, pools):
    view = haproxy_view(copy.deepcopy(MODEL), pools=pools, certificates={"web": certificate}, udp_frontends="skip")
    config = render(view, tmp_path, {"web": certificate})
    result = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is not installed")
def test_the_real_haproxy_refuses_a_bad_certificate_with_its_own_message(tmp_path, certificate):
    bad = {"web": {"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "key": certificate["key"]}}
    view = haproxy_view(copy.deepcopy(MODEL), certificates=bad, udp_frontends="skip")
    result = subprocess.run(["haproxy", "-c", "-f", str(render(view, tmp_path, bad))], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "certs/web.pem" in result.stdout + result.stderr
