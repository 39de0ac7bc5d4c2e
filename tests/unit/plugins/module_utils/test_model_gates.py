"""Readiness gates in the model: a Pod that waits for the edge is served, and listed to acknowledge."""
from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, ModelOptions, build_model

GATE = "lb.k8sedge.io/edge-ready"
NODE = {"metadata": {"name": "node1"}, "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.213.0.21"}]}}


def service(name: str, backend: str = "pod", ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop", "annotations": {
                "lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": f"{name}.example.test", "lb.k8sedge.io/backend": backend}},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                     "ports": ports or [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}]}}


def pod(name: str, containers_ready: bool = True, gate: str | None = None, gated: bool = True, uid: str = "",
        terminating: bool = False) -> dict[str, Any]:
    conditions = [{"type": "ContainersReady", "status": "True" if containers_ready else "False"},
                  {"type": "Ready", "status": "True" if containers_ready and gate == "True" else "False"}]
    if gate is not None:
        conditions.append({"type": GATE, "status": gate})
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "uid": uid or f"uid-{name}"}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"readinessGates": [{"conditionType": GATE}] if gated else []},
            "status": {"conditions": conditions}}


def endpoint(name: str, address: str, ready: bool = False, uid: str = "", terminating: bool = False) -> dict[str, Any]:
    return {"addresses": [address], "nodeName": "node1",
            "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": "shop", "name": name, "uid": uid or f"uid-{name}"}}


def slices(service_name: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": f"{service_name}-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": 8080}], "endpoints": list(endpoints)}


def build(services: list[dict[str, Any]], slice_list: list[dict[str, Any]], pods: list[dict[str, Any]] | None) -> dict[str, Any]:
    return build_model(ClusterState(services=services, endpoint_slices=slice_list, nodes=[NODE], pods=pods), ModelOptions())


def targets(model: dict[str, Any], backend: str) -> list[str]:
    return [t["address"] for t in next(b for b in model["backends"] if b["name"] == backend)["targets"]]


def test_a_pod_waiting_for_the_gate_is_served_and_listed():
    model = build([service("web")], [slices("web", endpoint("ready", "10.244.1.5", ready=True), endpoint("new", "10.244.1.6"))],
                  [pod("ready", gate="True"), pod("new")])
    assert targets(model, "shop_web_80") == ["10.244.1.5", "10.244.1.6"]
    assert model["gates"] == [{"namespace": "shop", "name": "new", "uid": "uid-new", "nodeport_backends": [],
                               "targets": [{"backend": "shop_web_80", "pools": ["default"], "address": "10.244.1.6", "port": 8080,
                                            "protocol": "TCP", "check": {"type": "tcp"}}]}]
    assert model["errors"] == []


def test_without_a_pod_read_nothing_changes():
    model = build([service("web")], [slices("web", endpoint("new", "10.244.1.6"))], None)
    assert targets(model, "shop_web_80") == []
    assert model["gates"] == []


@pytest.mark.parametrize("the_pod, the_endpoint", [
    (pod("new", containers_ready=False), endpoint("new", "10.244.1.6")),  # its containers are not ready
    (pod("new", gated=False), endpoint("new", "10.244.1.6")),  # no gate of ours: today's rules
    (pod("new", gate="True"), endpoint("new", "10.244.1.6")),  # acknowledged: not ready for another reason
    (pod("new", terminating=True), endpoint("new", "10.244.1.6", terminating=True)),
    (pod("new"), endpoint("new", "10.244.1.6", uid="uid-of-an-earlier-pod")),  # the slice names another Pod
])
def test_other_pods_that_are_not_ready_stay_out(the_pod, the_endpoint):
    model = build([service("web")], [slices("web", the_endpoint)], [the_pod])
    assert targets(model, "shop_web_80") == []
    assert model["gates"] == []


def test_a_pod_behind_two_services_is_listed_once_with_both():
    model = build([service("web"), service("api")],
                  [slices("web", endpoint("new", "10.244.1.6")), slices("api", endpoint("new", "10.244.1.6"))], [pod("new")])
    [gate] = model["gates"]
    assert [t["backend"] for t in gate["targets"]] == ["shop_api_80", "shop_web_80"]


def test_node_port_backends_need_nothing_proven_about_the_pod():
    model = build([service("web", backend="nodeport")], [slices("web", endpoint("new", "10.244.1.6"))], [pod("new")])
    assert model["gates"] == [{"namespace": "shop", "name": "new", "uid": "uid-new", "nodeport_backends": ["shop_web_80"], "targets": []}]


def test_gates_do_not_change_the_generation():
    waiting = build([service("web")], [slices("web", endpoint("new", "10.244.1.6"))], [pod("new")])
    acknowledged = build([service("web")], [slices("web", endpoint("new", "10.244.1.6", ready=True))], [pod("new", gate="True")])
    assert waiting["generation"] == acknowledged["generation"]
    assert acknowledged["gates"] == []


def test_a_hostile_gated_pod_is_refused_by_name_and_field():
    bad = pod("new", uid="x" * 100)
    model = build([service("web")], [slices("web", endpoint("new", "10.244.1.6", uid="x" * 100))], [bad])
    assert model["gates"] == [] and targets(model, "shop_web_80") == []
    assert [(e["kind"], e["name"], e["field"]) for e in model["errors"]] == [("Pod", "new", "metadata.uid")]


def test_legacy_endpoints_serve_a_waiting_pod_from_not_ready_addresses():
    legacy = {"metadata": {"name": "web", "namespace": "shop"}, "subsets": [{
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "notReadyAddresses": [{"ip": "10.244.1.6", "nodeName": "node1",
                               "targetRef": {"kind": "Pod", "namespace": "shop", "name": "new", "uid": "uid-new"}},
                              {"ip": "10.244.1.7", "targetRef": {"kind": "Pod", "namespace": "shop", "name": "other"}}]}]}
    model = build_model(ClusterState(services=[service("web")], endpoint_slices=None, endpoints=[legacy], nodes=[NODE],
                                     pods=[pod("new")]), ModelOptions())
    assert targets(model, "shop_web_80") == ["10.244.1.6"]
    assert [g["name"] for g in model["gates"]] == ["new"]
