"""Kubelet logic (node object, pod status, IPs, routes) and the NodePort proxy's rules."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from lab.cluster import _kubelet_model as km
from lab.cluster import _proxy_rules as pr
from lab.cluster import controllers
from lab.cluster._model import format_time, now

CFG = km.NodeConfig("node1", "10.213.0.21", "10.244.1.0/24", "lab-a")


def test_new_node():
    node = km.new_node(CFG)
    assert node["spec"] == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node1"
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "lab-a"


@pytest.mark.parametrize("existing, expected", [
    ({"metadata": {"labels": km.node_labels(CFG)}, "spec": {"podCIDR": "10.244.1.0/24"}}, None),
    ({"metadata": {"labels": {**km.node_labels(CFG), "extra": "kept"}}, "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": True}}, None),
    ({"metadata": {}, "spec": {}}, {"metadata": {"labels": km.node_labels(CFG)},
                                    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}}),
    ({"metadata": {"labels": {**km.node_labels(CFG), "topology.kubernetes.io/zone": "old"}}, "spec": {"podCIDR": "10.244.1.0/24"}},
     {"metadata": {"labels": {"topology.kubernetes.io/zone": "lab-a"}}}),
])
def test_node_patch(existing, expected):
    assert km.node_patch(CFG, existing) == expected


def test_node_patch_refuses_another_pod_cidr():
    with pytest.raises(ValueError, match="podCIDR is 10.244.9.0/24"):
        km.node_patch(CFG, {"metadata": {}, "spec": {"podCIDR": "10.244.9.0/24"}})


def test_node_status_keeps_transition_times():
    info = km.node_info(CFG, "6.1.0", "Debian GNU/Linux 12 (bookworm)", "boot")
    first = km.node_status(CFG, None, "T1", info, 1024)
    ready = next(c for c in first["conditions"] if c["type"] == "Ready")
    assert ready == {"type": "Ready", "status": "True", "lastHeartbeatTime": "T1", "lastTransitionTime": "T1",
                     "reason": "KubeletReady", "message": "kubelet is posting ready status"}
    assert first["addresses"] == [{"type": "InternalIP", "address": "10.213.0.21"}, {"type": "Hostname", "address": "node1"}]
    assert first["nodeInfo"]["kubeletVersion"].startswith("v1.")
    second = km.node_status(CFG, {"status": first}, "T2", info, 1024)
    ready = next(c for c in second["conditions"] if c["type"] == "Ready")
    assert (ready["lastHeartbeatTime"], ready["lastTransitionTime"]) == ("T2", "T1")
    unknown = {"status": {"conditions": [{**c, "status": "Unknown"} for c in first["conditions"]]}}
    third = km.node_status(CFG, unknown, "T3", info, 1024)
    assert next(c for c in third["conditions"] if c["type"] == "Ready")["lastTransitionTime"] == "T3"


def _node(name: str, ip: str, cidr: str | None, ready: bool = True) -> dict:
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def test_desired_routes():
    nodes = [
        _node("node1", "10.213.0.21", "10.244.1.0/24"),
        _node("node2", "10.213.0.22", "10.244.2.0/24"),
        _node("node3", "10.213.0.23", "10.244.3.0/24", ready=False),
        _node("node4", "10.213.0.24", None),
    ]
    assert km.desired_routes(nodes, "node1") == {"10.244.2.0/24": "10.213.0.22"}


@pytest.mark.parametrize("used, last, expected", [
    (set(), None, "10.244.1.2"),
    ({"10.244.1.2"}, None, "10.244.1.3"),
    (set(), "10.244.1.2", "10.244.1.3"),  # a freed address is not reused at once
    ({"10.244.1.3"}, "10.244.1.254", "10.244.1.2"),  # wraps around
])
def test_allocate_ip(used, last, expected):
    assert km.allocate_ip("10.244.1.0/24", used, last) == expected


def test_allocate_ip_full():
    used = {f"10.244.1.{i}" for i in range(2, 255)}
    with pytest.raises(RuntimeError, match="full"):
        km.allocate_ip("10.244.1.0/24", used, None)


POD = yaml.safe_load("""
metadata: {name: s2-abc-xyz12, namespace: default, uid: u1}
spec:
  serviceAccountName: default
  containers:
    - name: echo
      image: k8sedge.lab/echo:1
      ports:
        - {name: http, containerPort: 8080}
        - {name: tcp-echo, containerPort: 9000}
        - {name: udp-echo, containerPort: 9001, protocol: UDP}
      env:
        - {name: ECHO_DRAIN_SECONDS, value: "2"}
        - name: MY_POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: MY_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
      readinessProbe:
        httpGet: {path: /healthz, port: http}
""")


def test_echo_ports_and_env():
    assert km.echo_ports(POD) == {"--http-port": 8080, "--tcp-port": 9000, "--udp-port": 9001, "--https-port": 0}
    assert km.echo_ports({"spec": {"containers": [{"name": "c", "ports": [
        {"name": "http", "containerPort": 80}, {"name": "https", "containerPort": 8443}]}]}}) == {
        "--http-port": 80, "--tcp-port": 0, "--udp-port": 0, "--https-port": 8443}
    assert km.container_env(POD, "node1", "10.213.0.21", "10.244.1.5") == {
        "ECHO_DRAIN_SECONDS": "2", "MY_POD": "s2-abc-xyz12", "MY_IP": "10.244.1.5"}


@pytest.mark.parametrize("container, expected", [
    ({"readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}, "ports": [{"name": "http", "containerPort": 8080}]},
     km.Probe(8080, "/healthz")),
    ({"readinessProbe": {"tcpSocket": {"port": 9000}}}, km.Probe(9000)),
    ({"ports": [{"containerPort": 9001, "protocol": "UDP"}, {"containerPort": 8080}]}, km.Probe(8080)),
    ({"ports": [{"containerPort": 9001, "protocol": "UDP"}]}, None),
    ({"readinessProbe": {"httpGet": {"port": "missing"}}}, None),
])
def test_readiness_probe(container, expected):
    assert km.readiness_probe({"spec": {"containers": [{"name": "c", **container}]}}) == expected


def test_pod_status_pending_running_and_stable():
    pending = km.pod_status(POD, km.Runtime("10.244.1.5"), "10.213.0.21", "T1")
    assert pending["phase"] == "Pending"
    assert pending["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    running = km.pod_status({**POD, "status": pending}, km.Runtime("10.244.1.5", started_at="T2", ready=True), "10.213.0.21", "T2")
    assert running["phase"] == "Running"
    assert (running["podIP"], running["podIPs"], running["hostIP"]) == ("10.244.1.5", [{"ip": "10.244.1.5"}], "10.213.0.21")
    conds = {c["type"]: (c["status"], c["lastTransitionTime"]) for c in running["conditions"]}
    assert conds == {"PodReadyToStartContainers": ("True", "T1"), "Initialized": ("True", "T1"),
                     "Ready": ("True", "T2"), "ContainersReady": ("True", "T2"), "PodScheduled": ("True", "T1")}
    assert running["startTime"] == "T1"
    same = km.pod_status({**POD, "status": running}, km.Runtime("10.244.1.5", started_at="T2", ready=True), "10.213.0.21", "T9")
    assert not km.status_differs({**POD, "status": running}, same)


GATE = "lb.k8sedge.io/edge-ready"


def _gated(gate_status: str | None) -> dict:
    conditions = [] if gate_status is None else [{"type": GATE, "status": gate_status}]
    return {**POD, "spec": {**POD["spec"], "readinessGates": [{"conditionType": GATE}]},
            "status": {"conditions": conditions}}


def test_a_gated_pod_is_ready_only_when_its_containers_are_and_its_gate_is_true():
    running = km.Runtime("10.244.1.5", started_at="T2", ready=True)
    conds = {c["type"]: c for c in km.pod_status(_gated(None), running, "10.213.0.21", "T2")["conditions"]}
    assert conds["ContainersReady"]["status"] == "True"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "ReadinessGatesNotReady")
    assert conds["Ready"]["message"] == f'corresponding condition of pod readiness gate "{GATE}" does not exist.'
    conds = {c["type"]: c for c in km.pod_status(_gated("False"), running, "10.213.0.21", "T2")["conditions"]}
    assert conds["Ready"]["message"] == f'the status of pod readiness gate "{GATE}" is not "True", but False'
    conds = {c["type"]: c for c in km.pod_status(_gated("True"), running, "10.213.0.21", "T2")["conditions"]}
    assert conds["Ready"]["status"] == "True" and GATE not in conds  # the gate is the other writer's
    starting = km.pod_status(_gated("True"), km.Runtime("10.244.1.5"), "10.213.0.21", "T2")
    ready = next(c for c in starting["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")


def test_the_kubelet_compares_only_its_own_conditions():
    running = km.Runtime("10.244.1.5", started_at="T2", ready=True)
    pod = _gated("True")
    posted = km.pod_status(pod, running, "10.213.0.21", "T2")
    shown = {**pod, "status": {**posted, "conditions": posted["conditions"] + [{"type": GATE, "status": "True"}]}}
    assert not km.status_differs(shown, km.pod_status(shown, running, "10.213.0.21", "T3"))


def test_pod_status_after_a_crash():
    rt = km.Runtime("10.244.1.5", restart_count=1, last_exit=(137, "T1", "T2"), waiting_reason="CrashLoopBackOff")
    status = km.pod_status(POD, rt, "10.213.0.21", "T3")
    cs = status["containerStatuses"][0]
    assert status["phase"] == "Running"
    assert (cs["ready"], cs["restartCount"], cs["state"]) == (False, 1, {"waiting": {"reason": "CrashLoopBackOff"}})
    assert cs["lastState"] == {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": "T1", "finishedAt": "T2"}}


# The NodePort proxy's rules.

SERVICES = yaml.safe_load("""
- metadata: {name: s2, namespace: default}
  spec:
    type: NodePort
    ports: [{name: http, protocol: TCP, port: 80, nodePort: 31780}]
- metadata: {name: local-web, namespace: default}
  spec:
    type: LoadBalancer
    externalTrafficPolicy: Local
    healthCheckNodePort: 31791
    ports: [{name: http, protocol: TCP, port: 80, nodePort: 31781}]
- metadata: {name: udp-echo, namespace: default}
  spec:
    type: NodePort
    ports: [{name: udp-echo, protocol: UDP, port: 9001, nodePort: 31784}]
- metadata: {name: internal, namespace: default}
  spec:
    type: ClusterIP
    ports: [{name: http, protocol: TCP, port: 80}]
""")


def _slice(service: str, port_name: str, port: int, endpoints: list[tuple], protocol: str = "TCP") -> dict:
    return {
        "metadata": {"name": f"{service}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "protocol": protocol, "port": port}],
        "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": r, "serving": s, "terminating": t}}
                      for ip, node, r, s, t in endpoints],
    }


@pytest.mark.parametrize("endpoints, local_only, expected", [
    ([("10.244.1.5", "node1", True, True, False), ("10.244.2.5", "node2", True, True, False)], False,
     (("10.244.1.5", 8080), ("10.244.2.5", 8080))),
    ([("10.244.1.5", "node1", True, True, False), ("10.244.2.5", "node2", True, True, False)], True, (("10.244.1.5", 8080),)),
    ([("10.244.2.5", "node2", True, True, False)], True, ()),
    # not ready and not serving: never used
    ([("10.244.1.5", "node1", False, False, False)], False, ()),
    # only terminating-but-serving ones left: they are used
    ([("10.244.1.5", "node1", False, True, True), ("10.244.1.6", "node1", False, False, True)], False, (("10.244.1.5", 8080),)),
    # a ready one exists: terminating ones are not used
    ([("10.244.1.5", "node1", False, True, True), ("10.244.2.5", "node2", True, True, False)], False, (("10.244.2.5", 8080),)),
    # Local: a ready endpoint elsewhere does not hide the local terminating one
    ([("10.244.1.5", "node1", False, True, True), ("10.244.2.5", "node2", True, True, False)], True, (("10.244.1.5", 8080),)),
])
def test_usable_backends(endpoints, local_only, expected):
    backends = pr.backends_for({"name": "http", "protocol": "TCP"}, [_slice("s2", "http", 8080, endpoints)])
    assert pr.usable(backends, local_only, "node1") == expected


def test_backends_ignore_other_ports_and_deduplicate():
    slices = [_slice("s2", "http", 8080, [("10.244.1.5", "node1", True, True, False)]),
              _slice("s2", "http", 8080, [("10.244.1.5", "node1", True, True, False)]),
              _slice("s2", "other", 9000, [("10.244.1.6", "node1", True, True, False)])]
    assert [(b.ip, b.port) for b in pr.backends_for({"name": "http"}, slices)] == [("10.244.1.5", 8080)]


def test_node_port_rules_and_health_checks():
    slices = [
        _slice("s2", "http", 8080, [("10.244.1.5", "node1", True, True, False), ("10.244.2.5", "node2", True, True, False)]),
        _slice("local-web", "http", 8080, [("10.244.2.9", "node2", True, True, False)]),
        _slice("udp-echo", "udp-echo", 9001, [("10.244.1.7", "node1", True, True, False)], protocol="UDP"),
    ]
    rules = pr.node_port_rules(SERVICES, slices, "node1")
    assert sorted(rules) == [("TCP", 31780), ("TCP", 31781), ("UDP", 31784)]
    assert rules[("TCP", 31781)].backends == () and rules[("TCP", 31781)].local_only
    assert rules[("UDP", 31784)].backends == (("10.244.1.7", 9001),)
    checks1 = pr.health_checks(SERVICES, slices, "node1")
    checks2 = pr.health_checks(SERVICES, slices, "node2")
    assert (checks1[31791].status, checks2[31791].status) == (503, 200)
    assert json.loads(checks2[31791].body()) == {"service": {"namespace": "default", "name": "local-web"},
                                                 "localEndpoints": 1, "serviceProxyHealthy": True}
    assert checks2[31791].body() == b'{"service":{"namespace":"default","name":"local-web"},"localEndpoints":1,"serviceProxyHealthy":true}'


# Node lifecycle and garbage collection helpers of the controller manager.

def _beat(age: float, status: str = "True") -> dict:
    stamp = format_time(now() - dt.timedelta(seconds=age))
    return {"metadata": {"name": f"n{age}"}, "status": {"conditions": [
        {"type": "Ready", "status": status, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}}


def test_stale_nodes():
    nodes = [_beat(5), _beat(60), _beat(60, "Unknown"), {"metadata": {"name": "new"}, "status": {}}]
    assert [n["metadata"]["name"] for n in controllers.stale_nodes(nodes, 40)] == ["n60"]


def test_node_unknown_and_pod_not_ready_conditions():
    node = _beat(60)
    [cond] = controllers.node_unknown_conditions(node, "T")
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == ("Unknown", "NodeStatusUnknown", "T")
    assert cond["lastHeartbeatTime"] == node["status"]["conditions"][0]["lastHeartbeatTime"]
    pod = {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}}
    assert controllers.pod_not_ready_conditions(pod, "T") == [
        {"type": "Ready", "status": "False", "reason": "NodeNotReady", "message": "", "lastTransitionTime": "T"}]


def test_orphaned():
    owner = {"metadata": {"uid": "alive"}}
    objs = [{"metadata": {"name": n, "ownerReferences": [{"kind": "Deployment", "uid": u, "controller": True}]}}
            for n, u in (("kept", "alive"), ("orphan", "gone"))]
    objs.append({"metadata": {"name": "unowned"}})
    assert [o["metadata"]["name"] for o in controllers.orphaned(objs, "Deployment", [owner])] == ["orphan"]
