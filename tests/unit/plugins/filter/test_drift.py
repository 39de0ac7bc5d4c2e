"""The drift report: generations on disk and haproxy's running servers against the model."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.certificate_probes import certificate_probes
from ansible_collections.k8sedge.lb.plugins.filter.drift import drift

MODEL = {
    "generation": "a" * 64,
    "frontends": [{"name": "default-http-80", "pool": "default", "protocol": "http", "port": 80, "backend": "",
                   "routes": [{"host": "web.test", "backend": "web"}]},
                  {"name": "default-udp-53", "pool": "default", "protocol": "udp", "port": 53, "backend": "dns"},
                  {"name": "other-tcp-9", "pool": "other", "protocol": "tcp", "port": 9, "backend": "other", "sni": []}],
    "backends": [{"name": "web", "targets": [{"address": "10.244.1.5", "port": 8080, "state": "ready"},
                                             {"address": "10.244.1.6", "port": 8080, "state": "draining"}]},
                 {"name": "dns", "targets": [{"address": "10.244.1.7", "port": 53, "state": "ready"}]},
                 {"name": "other", "targets": [{"address": "10.244.1.8", "port": 9, "state": "ready"}]}],
}
RUNNING = {"web": {"s1": {"address": "10.244.1.5", "port": 8080, "state": "ready"},
                   "s2": {"address": "10.244.1.6", "port": 8080, "state": "drain"}}}


def test_hosts_on_the_model_do_not_drift():
    result = drift(MODEL, {"edge1": {"engine": "haproxy", "generation": "a" * 64, "servers": RUNNING},
                           "edge2": {"engine": "nginx", "generation": "a" * 64}})
    assert result["ok"] is True
    assert result["lines"] == [f"model generation {'a' * 12}", "edge1 (haproxy): current", "edge2 (nginx): current"]


@pytest.mark.parametrize("edge1, line", [
    ({"generation": "b" * 64, "servers": RUNNING}, f"edge1 (haproxy): DRIFT: applied {'b' * 12}"),
    ({"generation": "", "servers": {}}, "edge1 (haproxy): DRIFT: applied nothing; runtime web: missing 10.244.1.5:8080 ready,"
                                        " 10.244.1.6:8080 drain; not in the model none"),
    ({"generation": "a" * 64, "servers": {"web": {"s1": {"address": "10.244.1.9", "port": 8080, "state": "ready"}}}},
     "edge1 (haproxy): current; runtime web: missing 10.244.1.5:8080 ready, 10.244.1.6:8080 drain;"
     " not in the model 10.244.1.9:8080 ready"),
])
def test_drift_says_what_differs(edge1, line):
    result = drift(MODEL, {"edge1": {"engine": "haproxy", **edge1}, "edge2": {"engine": "haproxy", "generation": "a" * 64}})
    assert result["ok"] is False
    assert line in result["lines"]


def test_hosts_that_differ_from_each_other_are_named():
    result = drift(MODEL, {"edge1": {"engine": "nginx", "generation": "b" * 64}, "edge2": {"engine": "nginx", "generation": "a" * 64}})
    assert result["lines"][-1] == "hosts differ: 2 generations among 2 hosts"


@pytest.mark.parametrize(("model", "hosts", "message"), [
    (MODEL, ["edge1"], "hosts: expected host -> "),
    (MODEL, {"edge1": "haproxy"}, "host edge1: hosts: expected an object"),
    (MODEL, {"edge1": {"servers": {"web": {"s1": {"address": "10.244.1.5", "port": "80", "state": "ready"}}}}},
     r"host edge1: servers.web.s1.port: expected an integer"),
    (MODEL, {"edge1": {"pools": "default"}}, "host edge1: pools: expected a list"),
    ({**MODEL, "backends": [{"name": "web", "targets": [{"address": "10.244.1.5", "port": 8080}]}]}, {},
     r"model: backends\[0\]\.targets\[0\]\.state: expected one of ready, draining"),
    ({"generation": "a" * 64}, {}, "model: frontends: expected a list"),
    ("model", {}, "model: expected the model edge_info returns"),
])
def test_bad_input_is_refused_naming_the_field(model, hosts, message):
    with pytest.raises(AnsibleFilterError, match=f"^k8sedge.lb.drift: {message}"):
        drift(model, hosts)


def records(**states: str) -> list[str]:
    return [f"/run/k8sedge-keepalived/k8sedge_default_{vip}.state:{state} 1796546595" for vip, state in states.items()]


def test_a_vip_held_by_both_edges_is_split_brain_and_one_held_by_none_is_named():
    current = {"engine": "nginx", "generation": "a" * 64}
    fine = drift(MODEL, {"edge1": {**current, "vrrp": records(a="MASTER", b="BACKUP")},
                         "edge2": {**current, "vrrp": records(a="BACKUP", b="MASTER")}})
    assert fine["ok"] and fine["vrrp"] == []
    split = drift(MODEL, {"edge1": {**current, "vrrp": records(a="MASTER", b="MASTER")},
                          "edge2": {**current, "vrrp": records(a="BACKUP", b="MASTER")}})
    assert not split["ok"]
    assert split["vrrp"] == ["VRRP k8sedge_default_b: MASTER on edge1, edge2 (split brain: the edges do not hear each other's"
                             " advertisements; the VIP answers from whichever edge the network last learned)"]
    none = drift(MODEL, {"edge1": {**current, "vrrp": records(a="FAULT")}, "edge2": {**current, "vrrp": records(a="BACKUP")}})
    assert none["vrrp"] == ["VRRP k8sedge_default_a: no edge holds the VIP (edge1 FAULT, edge2 BACKUP)"] and not none["ok"]


TLS_MODEL = {**MODEL, "frontends": MODEL["frontends"] + [
    {"name": "default-http-443", "pool": "default", "protocol": "http", "port": 443, "tls": True, "backend": "",
     "routes": [{"host": "*.shop.test", "backend": "web", "certificate": "shop"},
                {"host": "web.test", "backend": "web", "certificate": "web"}]}]}


def served(host: str, certificate: str, sha256: str = "", error: str = "") -> dict:
    """A result of k8sedge.lb.probe for one of certificate_probes()'s probes."""
    return {"name": f"certificate {certificate} on {host}", "ok": not error, "error": error,
            "tls": {"certificate_sha256": sha256, "not_after": "2027-01-06T00:00:00+00:00"} if sha256 else {}}


def test_each_edge_is_asked_for_each_certificate_with_a_name_of_its_routes():
    probes = certificate_probes(TLS_MODEL, {"edge1": "10.213.0.11", "edge2": "10.213.0.12"})
    assert [(p["name"], p["address"], p["port"], p["sni"]) for p in probes] == [
        ("certificate shop on edge1", "10.213.0.11", 443, "k8sedge-drift.shop.test"),
        ("certificate web on edge1", "10.213.0.11", 443, "web.test"),
        ("certificate shop on edge2", "10.213.0.12", 443, "k8sedge-drift.shop.test"),
        ("certificate web on edge2", "10.213.0.12", 443, "web.test")]
    assert all(p["tls"] and not p["validate_certs"] and p["type"] == "tcp" for p in probes)


def test_certificates_that_differ_between_edges_or_from_the_inventory_drift_and_expiry_is_said():
    hosts = {name: {"engine": "haproxy", "generation": "a" * 64, "expected": {"shop": "1" * 64, "web": "3" * 64}}
             for name in ("edge1", "edge2")}
    same = drift(TLS_MODEL, hosts, served=[served("edge1", "shop", "1" * 64), served("edge2", "shop", "1" * 64),
                                          served("edge1", "web", "3" * 64), served("edge2", "web", "3" * 64)])
    assert same["ok"] and same["certificates"] == []
    assert [line for line in same["lines"] if line.startswith("certificate shop")][0].startswith(
        "certificate shop: 1111111111111111... on edge1, edge2; expires in")
    rotated_on_one = drift(TLS_MODEL, hosts, served=[served("edge1", "shop", "1" * 64), served("edge2", "shop", "2" * 64),
                                                    served("edge1", "web", error="connection refused"),
                                                    served("edge2", "web", "3" * 64)])
    assert not rotated_on_one["ok"]
    assert rotated_on_one["certificates"] == [
        "edge2: certificate shop: presents SHA-256 2222222222222222..., the inventory gives 1111111111111111...",
        "certificate shop differs between the edges: edge1 1111111111111111..., edge2 2222222222222222...",
        "edge1: certificate web: not presented (connection refused)"]


def test_a_drained_edge_is_said_and_is_no_drift():
    result = drift(MODEL, {"edge1": {"engine": "haproxy", "generation": "a" * 64,
                                     "maintenance": {"since": 1, "reason": "kernel update"}}})
    assert result["ok"] and "edge1 (haproxy): current; drained (kernel update)" in result["lines"]
