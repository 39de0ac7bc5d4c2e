"""Benchmark: a rolling update behind the edge under load, with and without readiness gates.

A pod-mode Deployment of 4 replicas (maxSurge 1, maxUnavailable 0, each Pod draining 5 s after
SIGTERM) behind its own Service (host rolling-<way>.pctest), one request every 50 ms through the
pool's VIP on a new connection each, and `kubectl rollout restart`, timed until `kubectl rollout
status` says it finished and the new Pods serve. Three ways, in the same run, each on a
Deployment of its own so one template serves one way:

- ours: the Pods list the readiness gate lb.k8sedge.io/edge-ready; bin/k8sedge-watch with
  --fast-path --readiness-gates --gates-kubeconfig: a new Pod is Ready only once both edges
  serve it, so the rollout removes an old Pod only then.
- baseline, fast path: no gate, the same watcher without --readiness-gates.
- baseline, playbook: no gate, the watcher without --fast-path: endpoints.yml carries each change.

A request is failed when it gets no 200 within 1 s. The goal: 0 failed requests with gates, in
every sample. The baselines show what the gate buys. Quick mode: one sample with gates only.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import _lab
from bench.harness import Goal, Measurement, Sample
from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import KUBECONFIG_GATES, REPO, host

TITLE = "Rolling update under load: failed requests through the VIP"
GOAL = Goal("0 failed requests through the VIP during a rolling update with readiness gates, in every sample", max_ours=0.0)
TIME_BOUND = {"full": 2400, "quick": 420}

VIP = "10.213.0.200"
GATE = "lb.k8sedge.io/edge-ready"
REPLICAS = 4
EVERY = 0.05  # seconds between requests
ROLLOUT_SECONDS = 180.0  # one rollout, at most
SAMPLES = {"full": 3, "quick": 1}
WAYS = {
    "gates": ("--fast-path", "--readiness-gates", f"--gates-kubeconfig={KUBECONFIG_GATES}"),
    "fast-path": ("--fast-path",),
    "playbook": (),
}


def manifest(way: str) -> str:
    """The Deployment and Service of one way (the gate only in the way that uses it)."""
    name = f"rolling-{way}"
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 10,
        "containers": [{"name": "echo", "image": "k8sedge.lab/echo:1",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        # What a real workload does with a preStop sleep: serve on while the edge lets go.
                        "env": [{"name": "ECHO_DRAIN_SECONDS", "value": "5"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}}],
    }
    if way == "gates":
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
    return subprocess.Popen(["ip", "netns", "exec", host("client").netns, sys.executable, "-m", "bench._vip_client",
                             "--address", VIP, "--host-header", host_header, "--start", f"{start:.6f}", "--seconds", str(seconds),
                             "--every", str(EVERY)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rollout(way: str, workdir: Path, deadline: float) -> dict[str, Any]:
    """One `kubectl rollout restart` of the way's Deployment under load, with its watcher running."""
    name = f"rolling-{way}"
    watch = c.Watch.start(workdir, *WAYS[way])
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
        # The load runs on to its end: what fails after the rollout counts too.
        out, err = load.communicate(timeout=seconds + 30)
        if load.returncode != 0:
            raise steps.LabError(f"the VIP client failed: {err[-1000:]}")
        results = json.loads(out)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait()
        watch.stop()
    failed = [sent for sent, ok, _ in results if not ok]
    return {"way": way, "rollout_s": round(finished - began, 2), "requests": len(results), "failed": len(failed),
            "first_failed_s": round(min(failed) - began, 2) if failed else None,
            "last_failed_s": round(max(failed) - began, 2) if failed else None}


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    mode = "quick" if quick else "full"
    ways = ("gates",) if quick else tuple(WAYS)
    measurement = Measurement(
        parameters={"replicas": REPLICAS, "strategy": "maxSurge 1, maxUnavailable 0", "drain": "5 s after SIGTERM",
                    "load": f"one request every {EVERY * 1000:.0f} ms through {VIP}, new connection each, failed without a 200 within 1 s",
                    "samples_per_way": SAMPLES[mode], "ways": list(ways), "runs": []},
        ours=[], baseline=[], unit="failed requests",
        ours_label="readiness gates, watcher fast path", baseline_label="no gates: watcher fast path; watcher with endpoints.yml")
    with _lab.lab(deadline):
        c.kubectl("apply", "-f", "-", stdin="".join(manifest(way) for way in ways))
        try:
            # The gated Pods are Ready only once site.yml below has served them: their containers first.
            for way in ways:
                wait_for(lambda way=way: containers_ready(f"rolling-{way}") == REPLICAS, 120,
                         f"rolling-{way}: {REPLICAS} Pods with ready containers")
            # The edges serve every way's Pods, and the gated ones are acknowledged, before the first sample.
            c.playbook("playbooks/site.yml", steps.left(deadline), "-e", "k8sedge_readiness_gates=true")
            for way in ways:
                wait_for(lambda way=way: ready_replicas(f"rolling-{way}") == REPLICAS, 60, f"rolling-{way}: {REPLICAS} ready replicas")
            for way in ways:
                for _ in range(SAMPLES[mode]):
                    if steps.left(deadline) < ROLLOUT_SECONDS + 120:
                        measurement.errors.append(f"time bound reached before a {way} sample")
                        break
                    sample = rollout(way, workdir, deadline)
                    measurement.parameters["runs"].append(sample)
                    (measurement.ours if way == "gates" else measurement.baseline).append(Sample(float(sample["failed"])))
        finally:
            c.kubectl("delete", "--wait=false", "-f", "-", stdin="".join(manifest(way) for way in ways))
            if not _lab.discarded():
                c.playbook("playbooks/site.yml", steps.left(deadline + steps.CLEANUP_RESERVE), "-e", "k8sedge_fail_static_override=true")
    gated = [r for r in measurement.parameters["runs"] if r["way"] == "gates"]
    if any(r["failed"] for r in gated):
        measurement.misses.append(f"{sum(1 for r in gated if r['failed'])} of {len(gated)} samples with gates failed requests")
    return measurement
