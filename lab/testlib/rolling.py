"""A rolling update behind the edge under load (bench/rolling_update.py, tests/lab/test_readiness_gates.py).

A pod-mode Deployment of 4 replicas (maxSurge 1, maxUnavailable 0, each Pod serving on for 5 s
after SIGTERM, as a preStop sleep lets it) behind a Service of its own (host <name>.pctest),
optionally with the readiness gate lb.k8sedge.io/edge-ready; bin/k8sedge-watch running with the
options given; one request every 50 ms through the pool's VIP on a new connection each (a request
fails without a 200 within 1 s); `kubectl rollout restart`, timed until `kubectl rollout status`
says it finished; the load goes on 15 s more, while the last old Pods drain. Every wait is bounded.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import REPO, host

VIP = "10.213.0.200"
GATE = "lb.k8sedge.io/edge-ready"
REPLICAS = 4
EVERY = 0.05  # seconds between requests
ROLLOUT_SECONDS = 180.0  # one rollout, at most
TAIL_SECONDS = 15.0  # load after the rollout finished: longer than a Pod's drain and grace


def manifest(name: str, gated: bool) -> str:
    """The Deployment and the Service."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 10,
        "containers": [{"name": "echo", "image": "k8sedge.lab/echo:1",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "ECHO_DRAIN_SECONDS", "value": "5"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}}],
    }
    if gated:
        spec["readinessGates"] = [{"conditionType": GATE}]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
                  "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                           "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                           "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default", "annotations": {
                   "lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": f"{name}.pctest", "lb.k8sedge.io/backend": "pod"}},
               "spec": {"type": "ClusterIP", "selector": {"app": name},
                        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}]}}
    return f"{json.dumps(deployment)}\n---\n{json.dumps(service)}\n"


def wait_for(check, seconds: float, what: str) -> None:
    until = time.monotonic() + seconds
    while not check():
        if time.monotonic() > until:
            raise steps.LabError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.5)


def containers_ready(app: str) -> int:
    items = json.loads(c.kubectl("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]
    return sum(1 for pod in items if not pod["metadata"].get("deletionTimestamp") and any(
        cond.get("type") == "ContainersReady" and cond.get("status") == "True" for cond in pod["status"].get("conditions") or []))


def ready_replicas(name: str) -> int:
    status = json.loads(c.kubectl("get", "deployment", name, "-o", "json")).get("status") or {}
    return int(status.get("readyReplicas") or 0)


def client(host_header: str, start: float, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", host("client").netns, sys.executable, "-m", "lab.testlib.vip_client",
                             "--address", VIP, "--host-header", host_header, "--start", f"{start:.6f}", "--seconds", str(seconds),
                             "--every", str(EVERY)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def restart_under_load(name: str, watch_args: tuple[str, ...], workdir: Path, deadline: float) -> dict[str, Any]:
    """One `kubectl rollout restart` of the Deployment under load, with the watcher running."""
    watch = c.Watch.start(workdir, *watch_args)
    load = None
    try:
        watch.wait_log("first generation", seconds=120)  # --skip-first: watching, the edges as they are
        seconds = min(ROLLOUT_SECONDS, steps.left(deadline) - 60)
        start = time.monotonic() + 1.0
        load = client(f"{name}.pctest", start, seconds)
        time.sleep(max(0.0, start + 2.0 - time.monotonic()))  # two seconds of steady traffic first
        began = time.monotonic()
        c.kubectl("rollout", "restart", f"deployment/{name}")
        c.kubectl("rollout", "status", f"deployment/{name}", f"--timeout={int(seconds)}s", timeout=seconds + 10)
        finished = time.monotonic()
        # The last old Pods drain, then go: what fails meanwhile counts too.
        time.sleep(TAIL_SECONDS)
        load.terminate()
        out, err = load.communicate(timeout=30)
        if load.returncode != 0:
            raise steps.LabError(f"the VIP client failed: {err[-1000:]}")
        results = json.loads(out)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        watch.stop()
    failed = [sent for sent, ok, _ in results if not ok]
    return {"rollout_s": round(finished - began, 2), "requests": len(results), "failed": len(failed),
            "first_failed_s": round(min(failed) - began, 2) if failed else None,
            "last_failed_s": round(max(failed) - began, 2) if failed else None}
