"""The keepalived view: pre-flight refusals (interface, subnet, router ids), the active/active
split, unicast peers and the track script command lines."""
from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._keepalived_view import (
    CheckOptions, Member, ViewError, ViewOptions, domain_conflicts, keepalived_view)

FACTS = {
    "interfaces": ["lo", "eth0", "br-lan"],
    "eth0": {"ipv4": {"address": "10.213.0.11", "netmask": "255.255.255.0"}},
    "br_lan": {"ipv4": {"address": "192.168.7.2", "netmask": "255.255.255.0"}},
    "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
}
MEMBERS = (Member("edge1", ("default",)), Member("edge2", ("default",), "10.213.0.12"))


def options(**changes) -> ViewOptions:
    base = ViewOptions(host="edge1", interface="eth0", pool_vips={"default": ["10.213.0.200", "10.213.0.201"]},
                       members=MEMBERS)
    return dataclasses.replace(base, **changes)


def view(facts=None, **changes) -> dict:
    return keepalived_view(FACTS if facts is None else facts, options(**changes))


def by_vip(result: dict) -> dict:
    return {i["vip"]: i for i in result["instances"]}


def test_two_vips_two_hosts_are_active_active():
    one = by_vip(view())
    two = by_vip(keepalived_view({**FACTS, "eth0": {"ipv4": {"address": "10.213.0.12", "netmask": "255.255.255.0"}}},
                                 options(host="edge2", members=(Member("edge1", ("default",), "10.213.0.11"),
                                                                Member("edge2", ("default",))))))
    assert (one["10.213.0.200"]["priority"], two["10.213.0.200"]["priority"]) == (250, 240)
    assert (one["10.213.0.201"]["priority"], two["10.213.0.201"]["priority"]) == (240, 250)
    assert one["10.213.0.200"]["primary"] == two["10.213.0.200"]["primary"] == "edge1"
    assert one["10.213.0.201"]["primary"] == two["10.213.0.201"]["primary"] == "edge2"
    # Both hosts agree on the ids and the names, whatever host renders them.
    assert [(i["name"], i["router_id"]) for i in one.values()] == [(i["name"], i["router_id"]) for i in two.values()] == [
        ("k8sedge_default_10.213.0.200", 50), ("k8sedge_default_10.213.0.201", 51)]


def test_three_hosts_take_turns():
    members = (Member("a", ("default",)), Member("b", ("default",), "10.213.0.12"), Member("c", ("default",), "10.213.0.13"))
    vips = [f"10.213.0.{n}" for n in range(200, 204)]
    result = by_vip(view(host="a", members=members, pool_vips={"default": vips}))
    assert [result[v]["primary"] for v in vips] == ["a", "b", "c", "a"]
    assert [result[v]["priority"] for v in vips] == [250, 230, 240, 250]


def test_what_an_instance_says():
    result = view()
    instance = result["instances"][0]
    assert (result["interface"], instance["router_id"], instance["priority"], result["advert_int"]) == ("eth0", 50, 250, "0.2")
    assert instance["prefix"] == 24 and instance["unicast"] == []
    assert result["preempt"] is True and view(preempt=False)["preempt"] is False
    assert view(version=2, advert_int=1)["advert_int"] == "1"


def test_unicast_peers_and_source():
    assert view(unicast=True)["instances"][0]["unicast"] == [{"source": "10.213.0.11", "peers": ["10.213.0.12"]}]
    assert view(unicast=True, address="10.213.0.50")["instances"][0]["unicast"][0]["source"] == "10.213.0.50"
    with pytest.raises(ViewError, match=r"pool default: unicast needs the VRRP address of edge2"):
        view(unicast=True, members=(Member("edge1", ("default",)), Member("edge2", ("default",))))


def test_hosts_only_hold_the_vips_of_their_pools():
    members = (Member("edge1", ("default",)), Member("edge2", ("web",), "10.213.0.12"))
    result = view(members=members, pool_vips={"default": ["10.213.0.200"], "web": ["10.213.0.210"]})
    assert [i["vip"] for i in result["instances"]] == ["10.213.0.200"]
    assert result["instances"][0]["priority"] == 250
    # Router ids count across every pool, so both hosts give the same VIP the same id.
    assert result["domain"]["router_ids"] == [{"router_id": 50, "vip": "10.213.0.200"}]
    assert view(members=(Member("edge1", ("web",)),), pool_vips={"default": ["10.213.0.200"], "web": ["10.213.0.210"]})[
        "domain"]["router_ids"] == [{"router_id": 51, "vip": "10.213.0.210"}]
    assert [(f["where"], f["field"]) for f in view(members=(Member("edge1", ("api",)),))["findings"]] == [
        ("pool api", "pool_vips")]


def test_interface_names_with_dashes_find_their_facts():
    result = view(interface="br-lan", pool_vips={"default": ["192.168.7.200"]})
    assert result["network"] == "192.168.7.0/24" and result["address"] == "192.168.7.2"


@pytest.mark.parametrize("changes, message", [
    ({"interface": "eth9"}, r"^host edge1: interface: eth9 does not exist on this host \(it has: br-lan, eth0, lo\)"),
    ({"interface": "eth0; rm"}, r"host edge1: interface: expected an interface name"),
    ({"pool_vips": {"default": ["10.9.0.200"]}},
     r"^host edge1: pool_vips.default: VIP 10.9.0.200 is outside 10.213.0.0/24, the subnet of eth0$"),
    ({"pool_vips": {"default": ["10.213.0.255"]}}, r"VIP 10.213.0.255 is outside 10.213.0.0/24"),
    ({"pool_vips": {"default": ["10.213.0.200/24"]}}, r"pool_vips.default: expected an IPv4 address \(no prefix\)"),
    ({"pool_vips": {"default": ["10.213.0.200"], "web": ["10.213.0.200"]}}, r"VIP 10.213.0.200 is listed twice"),
    ({"pool_vips": {"default": ["10.213.0.12"]}}, r"VIP 10.213.0.12 is the address of edge2"),
    ({"pool_vips": {"default": "10.213.0.200"}}, r"pool_vips.default: expected a list of VIPs"),
    ({"pool_vips": {"Bad Pool": []}}, r"expected pool names"),
    ({"router_ids": {"10.213.0.200": 60, "10.213.0.201": 60}},
     r"^host edge1: router_ids: duplicate virtual_router_id 60: VIPs 10.213.0.200 and 10.213.0.201 are in one"
     r" broadcast domain"),
    ({"router_ids": {"10.213.0.201": 50}}, r"duplicate virtual_router_id 50: VIPs 10.213.0.200 and 10.213.0.201"),
    ({"router_id_base": 255}, r"VIP 10.213.0.201 would get router id 256, past 255"),
    ({"router_ids": {"10.213.0.200": 0}}, r"router_ids.10.213.0.200: expected an integer from 1 to 255"),
    ({"version": 2, "advert_int": 0.2}, r"VRRPv2 advertises in whole seconds"),
    ({"advert_int": 0.005}, r"VRRPv3 advertises in hundredths of a second"),
    ({"advert_int": 41}, r"VRRPv3 advertises in hundredths"),
    ({"auth_file": "/etc/keepalived/auth.conf"}, r"VRRPv3 has no authentication"),
    ({"version": 4}, r"version: expected 2 or 3"),
    ({"priority": 255}, r"priority: expected an integer from 1 to 254"),
    ({"priority": 20, "priority_step": 30}, r"pool default: 2 hosts from priority 20 in steps of 30 go down to -10"),
    ({"host": "edge3"}, r"^host edge3: hosts: this host is not among the hosts that share the VIPs \(edge1, edge2\)"),
    ({"address": "10.9.9.9"}, r"address: 10.9.9.9 is outside 10.213.0.0/24"),
    ({"primaries": {"10.213.0.209": "edge1"}}, r"primaries.10.213.0.209: not one of the VIPs of pool_vips"),
    ({"primaries": {"10.213.0.200": "edge9"}}, r"primaries.10.213.0.200: \"edge9\" is not a host that serves pool default"),
])
def test_refusals_name_host_object_and_field(changes, message):
    with pytest.raises(ViewError, match=message):
        view(**changes)


def test_an_interface_without_ipv4_is_refused():
    with pytest.raises(ViewError, match=r"interface: eth0 has no IPv4 address"):
        view({**FACTS, "eth0": {"ipv6": [{"address": "fd00::1"}]}})


def test_track_scripts():
    proxy, config = view()["scripts"]
    assert proxy == {"name": "k8sedge_proxy", "interval": 1, "timeout": 2, "fall": 1, "rise": 2, "weight": 0,
                     "command": "/usr/local/lib/k8sedge/vrrp-check proxy --socket /run/haproxy/admin.sock "
                                "--timeout 0.5 --watch 0.9 --poll 0.05 --status-dir /run/k8sedge-keepalived"}
    assert config["command"] == ("/usr/local/lib/k8sedge/vrrp-check config --state /var/lib/k8sedge/state.json --grace 120 "
                                 "--status-dir /run/k8sedge-keepalived")
    nginx = view(check=CheckOptions(proxy="nginx", admin_address="0.0.0.0", poll=0, interval=2))["scripts"]
    assert "--host 127.0.0.1 --port 8405 --path /stub_status --timeout 0.5 --watch 0 --poll 0 " in nginx[0]["command"]
    assert "config --state /var/lib/k8sedge/state.json --grace 120" in nginx[1]["command"]
    assert (nginx[0]["interval"], nginx[0]["timeout"]) == (2, 3)
    assert len(view(check=CheckOptions(track_config=False))["scripts"]) == 1
    assert view(check=CheckOptions(config_weight=-20))["scripts"][1]["weight"] == -20


@pytest.mark.parametrize("check, message", [
    (CheckOptions(proxy="envoy"), r"check.proxy: expected one of haproxy, nginx"),
    (CheckOptions(poll=0.95), r"check.poll: expected 0 \(one probe a run\) up to 0.9 s"),
    (CheckOptions(timeout=1), r"check.timeout: expected 0.01 to 0.9 s"),
    (CheckOptions(proxy="nginx", admin_address="localhost"), r"check.admin_address: expected an IP address"),
    (CheckOptions(proxy="nginx", admin_port=0), r"check.admin_port: expected a port number 1-65535"),
    (CheckOptions(socket="admin.sock"), r"check.socket: expected an absolute path"),
    (CheckOptions(state_file="/var/lib/k8sedge/st ate.json"), r"check.state_file: expected an absolute path"),
    (CheckOptions(state_file="relative"), r"check.state_file: expected an absolute path"),
    (CheckOptions(config_weight=-10), r"check.config_weight: -10 must outweigh the priority spread of 10"),
    (CheckOptions(config_weight=5), r"check.config_weight: expected an integer from -253 to 0"),
])
def test_check_refusals(check, message):
    with pytest.raises(ViewError, match=message):
        view(check=check)


def test_a_config_weight_needs_preempt():
    with pytest.raises(ViewError, match=r"moves no VIP with preempt false"):
        view(preempt=False, check=CheckOptions(config_weight=-100))


def domain(host: str, network: str, *pairs: tuple[int, str]) -> dict:
    return {"host": host, "network": network, "router_ids": [{"router_id": r, "vip": v} for r, v in pairs]}


def test_domain_conflicts():
    agreeing = [domain("edge1", "10.213.0.0/24", (50, "10.213.0.200"), (51, "10.213.0.201")),
                domain("edge2", "10.213.0.0/24", (50, "10.213.0.200"), (51, "10.213.0.201"))]
    assert domain_conflicts(agreeing) == []
    # The same id in another broadcast domain is another router.
    assert domain_conflicts(agreeing + [domain("far1", "10.9.0.0/24", (50, "10.9.0.200"))]) == []
    clash = domain_conflicts(agreeing + [domain("edge3", "10.213.0.0/24", (50, "10.213.0.210"))])
    assert clash == ["duplicate virtual_router_id 50 in broadcast domain 10.213.0.0/24: 10.213.0.200 on edge1, "
                     "10.213.0.200 on edge2, 10.213.0.210 on edge3; each VIP needs its own id "
                     "(router_ids, router_id_base)"]
    moved = domain_conflicts([domain("edge1", "10.213.0.0/24", (50, "10.213.0.200")),
                              domain("edge2", "10.213.0.0/24", (51, "10.213.0.200"))])
    assert moved == ["VIP 10.213.0.200 has different virtual_router_ids in 10.213.0.0/24: 50 on edge1, 51 on edge2; "
                     "every host must give a VIP the same id"]
