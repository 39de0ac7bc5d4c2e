"""Readiness gates (module_utils/_gates.py): what each edge host answers, what is acknowledged, what is written."""
from __future__ import annotations

import json
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _gates as gates
from ansible_collections.k8sedge.lb.plugins.module_utils._gate_writes import patch_pods
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import Server

WEB = {"backend": "shop_web_80", "pools": ["default"], "address": "10.244.1.6", "port": 8080, "protocol": "TCP",
       "check": {"type": "http", "path": "/healthz"}}
BLUE = {"backend": "shop_api_80_tcp", "pools": ["blue"], "address": "10.244.1.6", "port": 9000, "protocol": "TCP",
        "check": {"type": "tcp"}}
NEW = {"namespace": "shop", "name": "new", "uid": "uid-new", "targets": [WEB], "nodeport_backends": []}


def row(target: dict[str, Any], ok: bool = True, why: str = "", uid: str = "uid-new") -> dict[str, Any]:
    return {"namespace": "shop", "name": "new", "uid": uid, "backend": target["backend"], "address": target["address"],
            "port": target["port"], "ok": ok, "why": why}


def server(address: str = "10.244.1.6", port: int = 8080, admin: int = 0, operational: int = 2, check_status: int = 6,
           check_state: int = 6) -> Server:
    return Server("shop_web_80", "srv1", address, port, admin, 1, operational, check_status, check_state)


def test_a_host_looks_only_at_the_targets_of_its_pools():
    both = {**NEW, "targets": [WEB, BLUE]}
    assert [t["backend"] for t in gates.host_targets([both], ["default"])] == ["shop_web_80"]
    assert [t["backend"] for t in gates.host_targets([both], ["default", "blue"])] == ["shop_web_80", "shop_api_80_tcp"]
    assert gates.host_targets([both], ["other"]) == []


def test_probes_are_shaped_as_the_backends_check():
    web, blue = gates.host_targets([{**NEW, "targets": [WEB, BLUE]}], ["default", "blue"])
    http = gates.probe_spec(web, 2.0)
    assert (http["type"], http["path"], http["address"], http["port"]) == ("http", "/healthz", "10.244.1.6", 8080)
    assert http["name"] == "gate shop/new shop_web_80 10.244.1.6:8080"
    assert gates.probe_spec(blue, 2.0)["type"] == "tcp"
    assert gates.probe_spec({**blue, "protocol": "UDP"}, 2.0)["type"] == "udp"


def test_haproxy_serves_a_target_only_when_it_is_up_in_its_own_view():
    servers = {("shop_web_80", "srv1"): server()}
    assert gates.haproxy_serves(WEB, servers) == ""
    assert "no server 10.244.1.6:8080" in gates.haproxy_serves(WEB, {("shop_web_80", "srv1"): server(port=9999)})
    assert "in maint" in gates.haproxy_serves(WEB, {("shop_web_80", "srv1"): server(admin=1)})
    assert "first check" in gates.haproxy_serves(WEB, {("shop_web_80", "srv1"): server(check_status=1)})
    assert "down" in gates.haproxy_serves(WEB, {("shop_web_80", "srv1"): server(operational=0)})


def test_evidence_needs_both_the_engine_and_an_answer():
    target = gates.host_targets([NEW], ["default"])
    name = gates.probe_name(target[0])
    [ok] = gates.evidence(target, lambda t: "", {name: ""})
    assert ok["ok"] and ok["why"] == ""
    [silent] = gates.evidence(target, lambda t: "", {name: "connection refused"})
    assert not silent["ok"] and silent["why"] == "no answer from 10.244.1.6:8080: connection refused"
    [unserved] = gates.evidence(target, lambda t: "haproxy counts it down", {name: ""})
    assert unserved["why"] == "haproxy counts it down"


HOSTS = [{"name": "edge1", "pools": ["default"], "evidence": [row(WEB)]},
         {"name": "edge2", "pools": ["default"], "evidence": [row(WEB)]}]


def test_a_pod_is_acknowledged_once_every_host_of_its_pools_proved_it():
    [verdict] = gates.verdicts([NEW], HOSTS, "ab" * 32)
    assert (verdict.acknowledge, verdict.reason) == (True, "ServedByEdge")
    assert verdict.message == "in service and answering on edge1, edge2 (shop_web_80); model generation abababababab"


def test_one_host_that_has_not_proved_it_keeps_the_pod_waiting():
    hosts = [HOSTS[0], {"name": "edge2", "pools": ["default"], "evidence": [row(WEB, ok=False, why="haproxy counts it down")]}]
    [verdict] = gates.verdicts([NEW], hosts, "ab" * 32)
    assert not verdict.acknowledge and verdict.message == "edge2: haproxy counts it down"
    [verdict] = gates.verdicts([NEW], [HOSTS[0], {"name": "edge2", "pools": ["default"], "evidence": None}], "ab" * 32)
    assert verdict.message == "edge2: gave no answer in this run"
    [verdict] = gates.verdicts([NEW], [HOSTS[0], {"name": "edge2", "pools": ["default"], "evidence": [row(WEB, uid="other")]}], "ab" * 32)
    assert verdict.message == "edge2: did not look at shop_web_80 10.244.1.6:8080"


def test_hosts_of_other_pools_are_not_asked_and_pools_without_hosts_are_another_groups():
    hosts = HOSTS + [{"name": "edge3", "pools": ["blue"], "evidence": None}]
    assert gates.verdicts([NEW], hosts, "ab" * 32)[0].acknowledge
    assert gates.verdicts([{**NEW, "targets": [BLUE]}], HOSTS, "ab" * 32) == []


def test_a_pod_behind_two_services_needs_both_proven():
    second = {**WEB, "backend": "shop_api_80"}
    two = {**NEW, "targets": [WEB, second]}
    hosts = [{"name": "edge1", "pools": ["default"], "evidence": [row(WEB)]}]
    [verdict] = gates.verdicts([two], hosts, "ab" * 32)
    assert not verdict.acknowledge and "did not look at shop_api_80" in verdict.message
    hosts = [{"name": "edge1", "pools": ["default"], "evidence": [row(WEB), row(second)]}]
    assert gates.verdicts([two], hosts, "ab" * 32)[0].acknowledge


def test_node_port_backends_acknowledge_at_once():
    [verdict] = gates.verdicts([{**NEW, "targets": [], "nodeport_backends": ["shop_web_80"]}], [], "ab" * 32)
    assert (verdict.acknowledge, verdict.reason) == (True, "NodePortBackend")
    assert "node ports (shop_web_80)" in verdict.message


def test_the_patch_sets_one_condition_with_the_uid_as_precondition():
    [verdict] = gates.verdicts([NEW], HOSTS, "ab" * 32)
    body = gates.condition_patch(verdict, "2026-12-07T09:00:00Z")
    assert body["metadata"] == {"uid": "uid-new"}
    assert body["status"]["conditions"] == [{"type": "lb.k8sedge.io/edge-ready", "status": "True", "reason": "ServedByEdge",
                                             "message": verdict.message, "lastProbeTime": None,
                                             "lastTransitionTime": "2026-12-07T09:00:00Z"}]


class FakeApi:
    def __init__(self, answers: dict[str, tuple[int, dict[str, Any]]]) -> None:
        self.answers, self.sent = answers, []

    def request(self, method, path, query=None, body=None, headers=None, timeout=30.0):
        self.sent.append((method, path, json.loads(body), headers["Content-Type"]))
        code, data = self.answers[path]
        return code, json.dumps(data).encode()


def test_writes_go_to_the_status_subresource_and_one_failure_stops_no_other():
    verdicts = [gates.Verdict("shop", name, f"uid-{name}", True, "ServedByEdge", "m") for name in ("a", "b", "c")]
    api = FakeApi({"/api/v1/namespaces/shop/pods/a/status": (200, {}),
                   "/api/v1/namespaces/shop/pods/b/status": (409, {"message": "Precondition failed: UID in precondition"}),
                   "/api/v1/namespaces/shop/pods/c/status": (403, {"message": "forbidden"})})
    rows = patch_pods(api, verdicts, "T", 5.0)
    assert [(r["name"], r["outcome"]) for r in rows] == [("a", "written"), ("b", "gone"), ("c", "failed")]
    assert rows[2]["error"] == "Pod shop/c: PATCH /api/v1/namespaces/shop/pods/c/status: 403 forbidden"
    assert {sent[3] for sent in api.sent} == {"application/strategic-merge-patch+json"}


def test_on_the_fast_path_haproxys_own_check_from_the_host_is_the_probe():
    assert gates.haproxy_checked(WEB, {("shop_web_80", "srv1"): server()}) == ""
    assert "has not passed" in gates.haproxy_checked(WEB, {("shop_web_80", "srv1"): server(check_status=1)})
    assert "has not passed" in gates.haproxy_checked(WEB, {("shop_web_80", "srv1"): server(operational=0)})
    assert "does not check" in gates.haproxy_checked(WEB, {("shop_web_80", "srv1"): server(check_state=0)})
