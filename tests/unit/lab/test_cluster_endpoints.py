"""EndpointSlice and Endpoints controller logic: Service + Pods + Nodes -> desired objects."""
from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.cluster import _endpoints as ep

SERVICE = yaml.safe_load("""
apiVersion: v1
kind: Service
metadata:
  name: s2
  namespace: default
  uid: svc-uid-1
  labels: {app: s2}
spec:
  type: NodePort
  clusterIP: 10.96.0.20
  selector: {app: s2}
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: http
      nodePort: 31780
""")

NODES = {
    "node1": {"metadata": {"name": "node1", "labels": {"topology.kubernetes.io/zone": "lab-a"}}},
    "node2": {"metadata": {"name": "node2", "labels": {}}},
}


def make_pod(name: str, ip: str | None = "10.244.1.5", node: str = "node1", ready: bool = True,
             terminating: bool = False, phase: str = "Running", port_name: str = "http", app: str = "s2") -> dict:
    pod = yaml.safe_load(f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  uid: uid-{name}
  labels: {{app: {app}}}
spec:
  nodeName: {node}
  containers:
    - name: echo
      ports:
        - {{name: {port_name}, containerPort: 8080, protocol: TCP}}
        - {{name: udp-echo, containerPort: 9001, protocol: UDP}}
status:
  phase: {phase}
  conditions:
    - {{type: Ready, status: "{'True' if ready else 'False'}"}}
""")
    if ip:
        pod["status"]["podIP"] = ip
    if terminating:
        pod["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return pod


def conditions_of(slices_actions: list[ep.SliceAction]) -> dict[str, dict]:
    return {e["targetRef"]["name"]: e["conditions"] for a in slices_actions for e in a.body.get("endpoints", [])}


@pytest.mark.parametrize("ready, terminating, publish, expected", [
    (True, False, False, {"ready": True, "serving": True, "terminating": False}),
    (False, False, False, {"ready": False, "serving": False, "terminating": False}),
    (True, True, False, {"ready": False, "serving": True, "terminating": True}),
    (False, True, False, {"ready": False, "serving": False, "terminating": True}),
    (False, False, True, {"ready": True, "serving": False, "terminating": False}),
])
def test_endpoint_conditions(ready, terminating, publish, expected):
    svc = copy.deepcopy(SERVICE)
    svc["spec"]["publishNotReadyAddresses"] = publish
    endpoint = ep.pod_endpoint(svc, make_pod("p", ready=ready, terminating=terminating), NODES)
    assert endpoint["conditions"] == expected


def test_endpoint_shape():
    endpoint = ep.pod_endpoint(SERVICE, make_pod("s2-abc-xyz12"), NODES)
    assert endpoint == {
        "addresses": ["10.244.1.5"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "node1",
        "zone": "lab-a",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "s2-abc-xyz12", "uid": "uid-s2-abc-xyz12"},
    }
    assert "zone" not in ep.pod_endpoint(SERVICE, make_pod("p", node="node2"), NODES)


@pytest.mark.parametrize("target, protocol, expected", [
    ("http", "TCP", 8080),
    ("udp-echo", "UDP", 9001),
    ("udp-echo", "TCP", None),  # the name exists but with another protocol
    ("nope", "TCP", None),
    (8081, "TCP", 8081),
    ("8082", "TCP", 8082),
])
def test_resolve_target_port(target, protocol, expected):
    sp = {"name": "x", "port": 80, "protocol": protocol, "targetPort": target}
    assert ep.resolve_target_port(sp, make_pod("p")) == expected


def test_target_port_defaults_to_port():
    assert ep.resolve_target_port({"port": 80}, make_pod("p")) == 80


@pytest.mark.parametrize("pod, included", [
    (make_pod("a"), True),
    (make_pod("b", ip=None), False),
    (make_pod("c", phase="Succeeded"), False),
    (make_pod("d", phase="Failed"), False),
    (make_pod("e", app="other"), False),
    (make_pod("f", terminating=True), True),
])
def test_selected_pods(pod, included):
    assert (ep.selected_pods(SERVICE, [pod]) == [pod]) is included


def test_new_service_gets_one_slice():
    pods = [make_pod("a", "10.244.1.5"), make_pod("b", "10.244.2.7", node="node2", ready=False)]
    actions = ep.plan_slices(SERVICE, pods, NODES, [])
    assert [a.verb for a in actions] == ["create"]
    body = actions[0].body
    assert body["metadata"]["generateName"] == "s2-"
    assert "name" not in body["metadata"]
    assert body["metadata"]["labels"] == {
        "app": "s2",
        "kubernetes.io/service-name": "s2",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    assert body["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Service", "name": "s2", "uid": "svc-uid-1",
        "controller": True, "blockOwnerDeletion": True,
    }]
    assert body["addressType"] == "IPv4"
    assert body["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert [e["addresses"] for e in body["endpoints"]] == [["10.244.1.5"], ["10.244.2.7"]]


def _existing(action: ep.SliceAction, name: str) -> dict:
    body = copy.deepcopy(action.body)
    meta = body["metadata"]
    meta.pop("generateName", None)
    meta.update(name=name, resourceVersion="7")
    return body


def test_no_write_when_in_sync():
    pods = [make_pod("a", "10.244.1.5"), make_pod("b", "10.244.2.7", node="node2")]
    created = ep.plan_slices(SERVICE, pods, NODES, [])[0]
    assert ep.plan_slices(SERVICE, list(reversed(pods)), NODES, [_existing(created, "s2-abcde")]) == []


def test_readiness_change_updates_slice_in_place():
    pods = [make_pod("a", "10.244.1.5")]
    existing = _existing(ep.plan_slices(SERVICE, pods, NODES, [])[0], "s2-abcde")
    actions = ep.plan_slices(SERVICE, [make_pod("a", "10.244.1.5", terminating=True)], NODES, [existing])
    assert [(a.verb, a.name) for a in actions] == [("update", "s2-abcde")]
    assert conditions_of(actions)["a"] == {"ready": False, "serving": True, "terminating": True}


def test_no_endpoints_keeps_a_placeholder():
    actions = ep.plan_slices(SERVICE, [], NODES, [])
    assert [a.verb for a in actions] == ["create"]
    assert actions[0].body["endpoints"] == [] and actions[0].body["ports"] == []
    placeholder = _existing(actions[0], "s2-empty")
    assert ep.plan_slices(SERVICE, [], NODES, [placeholder]) == []
    # Pods arrive: the placeholder becomes the first real slice.
    actions = ep.plan_slices(SERVICE, [make_pod("a")], NODES, [placeholder])
    assert [(a.verb, a.name, len(a.body["endpoints"])) for a in actions] == [("update", "s2-empty", 1)]


def test_last_pod_gone_replaces_slice_by_placeholder():
    existing = _existing(ep.plan_slices(SERVICE, [make_pod("a")], NODES, [])[0], "s2-abcde")
    actions = ep.plan_slices(SERVICE, [], NODES, [existing])
    assert [(a.verb, a.name, a.body["endpoints"], a.body["ports"]) for a in actions] == [("update", "s2-abcde", [], [])]


def test_port_set_change_reuses_the_old_slice():
    existing = _existing(ep.plan_slices(SERVICE, [make_pod("a")], NODES, [])[0], "s2-abcde")
    actions = ep.plan_slices(SERVICE, [make_pod("a", port_name="web"), make_pod("b", "10.244.1.6")], NODES, [existing])
    # "a" no longer resolves "http"; "b" does: same port set, same slice, updated in place.
    assert [(a.verb, a.name, [e["targetRef"]["name"] for e in a.body["endpoints"]]) for a in actions] == [
        ("update", "s2-abcde", ["b"])]


@pytest.mark.parametrize("count, sizes", [(1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
def test_slices_split_at_100(count, sizes):
    pods = [make_pod(f"p{i:03d}", f"10.244.{1 + i // 200}.{1 + i % 200}") for i in range(count)]
    actions = ep.plan_slices(SERVICE, pods, NODES, [])
    assert [len(a.body["endpoints"]) for a in actions] == sizes


def test_new_endpoint_fills_existing_slice_before_creating():
    pods = [make_pod(f"p{i:03d}", f"10.244.1.{i + 1}") for i in range(150)]
    first, second = ep.plan_slices(SERVICE, pods, NODES, [])
    existing = [_existing(first, "s2-aaaaa"), _existing(second, "s2-bbbbb")]
    actions = ep.plan_slices(SERVICE, pods + [make_pod("q", "10.244.2.1")], NODES, existing)
    assert [(a.verb, a.name, len(a.body["endpoints"])) for a in actions] == [("update", "s2-bbbbb", 51)]


def test_named_ports_split_slices_by_port_set():
    pods = [make_pod("a", "10.244.1.5"), make_pod("b", "10.244.1.6", port_name="web")]
    svc = copy.deepcopy(SERVICE)
    svc["spec"]["ports"].append({"name": "web", "protocol": "TCP", "port": 81, "targetPort": "web"})
    actions = ep.plan_slices(svc, pods, NODES, [])
    got = sorted((tuple(p["name"] for p in a.body["ports"]), tuple(e["targetRef"]["name"] for e in a.body["endpoints"]))
                 for a in actions)
    assert got == [(("http",), ("a",)), (("web",), ("b",))]


def test_pod_without_resolvable_port_is_left_out():
    actions = ep.plan_slices(SERVICE, [make_pod("a", port_name="web")], NODES, [])
    assert actions[0].body["endpoints"] == []


def test_managed_slices_are_the_controllers_own_by_service():
    mine = {"metadata": {"name": "s2-x", "namespace": "default", "labels": {
        "kubernetes.io/service-name": "s2", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}}
    other = copy.deepcopy(mine)
    other["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = "someone-else"
    elsewhere = copy.deepcopy(mine)
    elsewhere["metadata"]["namespace"] = "kube-system"
    assert ep.managed_slices([mine, other, elsewhere]) == {("default", "s2"): [mine], ("kube-system", "s2"): [elsewhere]}


@pytest.mark.parametrize("service_patch, managed", [
    ({}, True),
    ({"selector": None}, False),
    ({"selector": {}}, False),
    ({"type": "ExternalName"}, False),
])
def test_service_is_managed(service_patch, managed):
    svc = copy.deepcopy(SERVICE)
    svc["spec"].update(service_patch)
    assert ep.service_is_managed(svc) is managed


def test_legacy_endpoints():
    pods = [
        make_pod("b", "10.244.2.7", node="node2"),
        make_pod("a", "10.244.1.10"),
        make_pod("c", "10.244.1.9", ready=False),
        make_pod("d", "10.244.1.8", terminating=True),
    ]
    assert ep.desired_legacy_endpoints(SERVICE, pods) == {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "s2", "namespace": "default", "labels": {"app": "s2"}},
        "subsets": [{
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
            "addresses": [
                {"ip": "10.244.1.10", "nodeName": "node1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
                {"ip": "10.244.2.7", "nodeName": "node2",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}},
            ],
            "notReadyAddresses": [
                {"ip": "10.244.1.9", "nodeName": "node1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}},
            ],
        }],
    }


def test_legacy_endpoints_empty_and_in_sync():
    desired = ep.desired_legacy_endpoints(SERVICE, [])
    assert desired["subsets"] == []
    assert ep.same_legacy_endpoints({"metadata": {"labels": {"app": "s2"}}}, desired)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.booleans(), st.booleans()), unique_by=lambda t: t[0], max_size=250))
def test_plan_converges_and_is_stable(specs):
    """Applying a plan to the slices it was made from leaves nothing to do; every pod is placed once."""
    pods = [make_pod(f"p{n}", f"10.244.{n // 200 + 1}.{n % 200 + 1}", ready=r, terminating=t) for n, r, t in specs]
    slices: dict[str, dict] = {}
    for round_ in range(2):
        for i, action in enumerate(ep.plan_slices(SERVICE, pods, NODES, list(slices.values()))):
            if action.verb == "delete":
                del slices[action.name]
            else:
                name = action.name or f"s2-r{round_}n{i}"
                slices[name] = _existing(action, name)
    assert ep.plan_slices(SERVICE, pods, NODES, list(slices.values())) == []
    placed = [e["targetRef"]["name"] for s in slices.values() for e in s["endpoints"]]
    assert sorted(placed) == sorted(p["metadata"]["name"] for p in pods)
    assert all(len(s["endpoints"]) <= 100 for s in slices.values())
