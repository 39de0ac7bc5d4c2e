"""Readiness gates against the lab, with the real kubectl: a Pod that lists lb.k8sedge.io/edge-ready
is Ready only once site.yml has served it on both edges and probed it from each; its Deployment's
rollout waits for that. A Pod behind two Services is acknowledged once both serve it, a Pod behind a
node port Service at once, and the gates' writer can do nothing else. A rolling restart under load
through the VIP, with the watcher's fast path setting the gates, loses no request.

The lab's kubelet holds a gated Pod at ContainersReady=True, Ready=False (ReadinessGatesNotReady),
its EndpointSlice endpoint at ready: false, and its Deployment's rollout unfinished, as Kubernetes
does; the edge serves it anyway, proves it, then sets the condition through pods/status.
"""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from lab.testlib import rolling
from lab.topology import KUBECONFIG_ADMIN, KUBECONFIG_GATES, KUBECTL, REPO
from tests.lab.conftest import ansible_playbook, in_host, kubectl, succeeded

pytestmark = pytest.mark.usefixtures("lab")

GATE = "lb.k8sedge.io/edge-ready"
VIPS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]["default"]
WAIT_SECONDS = 90  # for the lab's kubelets and controllers: past it is an error, never a pass


def _deployment(name: str, replicas: int) -> dict:
    container = {"name": "echo", "image": "k8sedge.lab/echo:1",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"readinessGates": [{"conditionType": GATE}], "terminationGracePeriodSeconds": 5,
                                           "containers": [container]}}}}


def _service(name: str, app: str, backend: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default", "annotations": {
                "lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": f"{name}.pctest", "lb.k8sedge.io/backend": backend}},
            "spec": {"type": "NodePort", "selector": {"app": app},
                     "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}]}}


# gated: two Pods behind two Services in pod mode; gated-np: one Pod behind a node port Service.
OBJECTS = [_deployment("gated", 2), _service("gated", "gated", "pod"), _service("gated-api", "gated", "pod"),
           _deployment("gated-np", 1), _service("gated-np", "gated-np", "nodeport")]


def pods(app: str) -> list[dict]:
    found = json.loads(kubectl("get", "pods", "-l", f"app={app}", "-o", "json").stdout)["items"]
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def condition(pod: dict, kind: str) -> dict:
    return next((c for c in pod["status"].get("conditions") or [] if c["type"] == kind), {})


def wait_for(what: str, check) -> object:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {WAIT_SECONDS} s: {what}")


def containers_ready(app: str, count: int) -> list[dict]:
    """The app's Pods once `count` of them run with ready containers."""
    def check() -> list[dict] | None:
        found = pods(app)
        ready = [p for p in found if condition(p, "ContainersReady").get("status") == "True"]
        return found if len(found) == count and len(ready) == count else None
    return wait_for(f"{count} pods of {app} with ready containers", check)


def all_ready(app: str) -> list[dict] | None:
    """The app's Pods once every one of them is Ready (the kubelet's doing, once the gate is True)."""
    found = pods(app)
    return found if found and all(condition(p, "Ready").get("status") == "True" for p in found) else None


def site(*extra: str) -> str:
    return succeeded(ansible_playbook("site.yml", "-e", "k8sedge_readiness_gates=true", *extra))


@pytest.fixture(scope="module")
def gated(lab) -> Iterator[None]:
    manifest = "\n---\n".join(json.dumps(o) for o in OBJECTS)
    subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", "apply", "-f", "-"], input=manifest, text=True,
                   capture_output=True, check=True, timeout=60)
    yield
    subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", "delete", "--wait=false", "--ignore-not-found", "-f", "-"],
                   input=manifest, text=True, capture_output=True, check=True, timeout=60)
    # Back to the lab's own Services for the tests after this one (three backends going at once
    # is more than the fail-static guard lets through unasked).
    succeeded(ansible_playbook("site.yml", "-e", "k8sedge_fail_static_override=true"))


def test_a_gated_pod_is_ready_only_once_both_edges_serve_it_and_the_rollout_waits_for_that(gated):
    before = containers_ready("gated", 2)
    for pod in before:
        ready = condition(pod, "Ready")
        assert (ready.get("status"), ready.get("reason")) == ("False", "ReadinessGatesNotReady"), pod["status"]
    slices = json.loads(kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=gated", "-o", "json").stdout)["items"]
    endpoints = [e for s in slices for e in s.get("endpoints") or []]
    assert len(endpoints) == 2 and not any(e["conditions"]["ready"] for e in endpoints)
    waiting = kubectl("rollout", "status", "deployment/gated", "--timeout=2s", check=False)
    assert waiting.returncode != 0, waiting.stdout

    site()
    after = wait_for("both gated pods Ready", lambda: all_ready("gated"))
    assert {p["metadata"]["uid"] for p in after} == {p["metadata"]["uid"] for p in before}  # the same Pods, now Ready
    for pod in after:
        gate = condition(pod, GATE)
        assert (gate["status"], gate["reason"]) == ("True", "ServedByEdge")
        # Served by both edges, and through both Services: acknowledged once, naming both backends.
        assert gate["message"].startswith("in service and answering on edge1, edge2 (default_gated-api_80, default_gated_80)")
    assert kubectl("rollout", "status", "deployment/gated", "--timeout=60s").returncode == 0
    described = kubectl("describe", "pod", after[0]["metadata"]["name"]).stdout
    assert "Readiness Gates:" in described and GATE in described
    # And the edge serves them through the VIP.
    answer = in_host("client", "curl", "-sS", "-m", "5", "-H", "Host: gated.pctest", f"http://{VIPS[0]}/").stdout
    assert any(p["metadata"]["name"] in answer for p in after), answer


def test_a_pod_behind_a_node_port_service_is_acknowledged_at_once(gated):
    containers_ready("gated-np", 1)
    site()
    [pod] = wait_for("the gated-np pod Ready", lambda: all_ready("gated-np"))
    gate = condition(pod, GATE)
    assert (gate["status"], gate["reason"]) == ("True", "NodePortBackend")
    assert "node ports (default_gated-np_80)" in gate["message"]


def test_the_gates_writer_may_write_the_gate_and_nothing_else(gated):
    as_writer = [str(KUBECTL), f"--kubeconfig={KUBECONFIG_GATES}"]
    listing = subprocess.run([*as_writer, "get", "pods"], capture_output=True, text=True, timeout=60)
    assert listing.returncode != 0 and "forbidden" in listing.stderr.lower()
    name = pods("gated")[0]["metadata"]["name"]
    spec = subprocess.run([*as_writer, "annotate", "pod", name, "k8sedge-test=x"], capture_output=True, text=True, timeout=60)
    assert spec.returncode != 0 and "forbidden" in spec.stderr.lower()


def test_a_pod_that_no_edge_service_selects_is_left_alone(gated):
    """The gate of a Pod the edge does not serve stays unset: the edge never claims what it does not serve."""
    kubectl("delete", "service", "gated-np")
    kubectl("scale", "deployment/gated-np", "--replicas=2")
    waiting_before = {p["metadata"]["uid"] for p in containers_ready("gated-np", 2) if not condition(p, GATE)}
    assert waiting_before
    site()
    left = [p for p in pods("gated-np") if p["metadata"]["uid"] in waiting_before]
    assert len(left) == len(waiting_before)
    assert all(condition(p, GATE) == {} and condition(p, "Ready").get("status") == "False" for p in left)


def test_a_rolling_update_under_load_with_gates_loses_no_request(gated, tmp_path):
    subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", "apply", "-f", "-"], input=rolling.manifest("rolling", gated=True),
                   text=True, capture_output=True, check=True, timeout=60)
    try:
        containers_ready("rolling", rolling.REPLICAS)
        site()
        wait_for("the rolling Pods Ready", lambda: all_ready("rolling"))
        run = rolling.restart_under_load("rolling", ("--fast-path", "--readiness-gates", f"--gates-kubeconfig={KUBECONFIG_GATES}"),
                                         tmp_path, time.monotonic() + 400)
        assert run["failed"] == 0 and run["requests"] > 100, run
        replaced = pods("rolling")
        assert len(replaced) == rolling.REPLICAS and all(condition(p, GATE).get("status") == "True" for p in replaced)
    finally:
        subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", "delete", "--wait=false", "-f", "-"],
                       input=rolling.manifest("rolling", gated=True), text=True, capture_output=True, check=True, timeout=60)
