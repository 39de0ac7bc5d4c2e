"""Drive change-to-traffic measurements in the lab (bench/convergence.py, tests/lab/test_on_change.py).

A pod-mode Service of its own (`default/conv`, host conv.pctest, the edge sends to the pods'
addresses) so that a pod change is a change of the edge's targets; bin/k8sedge-watch running the
playbooks; curl from the lab's client through an edge host until the new pod answers. Every wait
is bounded.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.drive import labctl
from lab.topology import KUBECONFIG, KUBECONFIG_ADMIN, KUBECTL, REPO, host

NAME = "conv"
HOST = "conv.pctest"
MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {NAME}, namespace: default, labels: {{app: {NAME}}}}}
spec:
  replicas: {{replicas}}
  selector: {{matchLabels: {{app: {NAME}}}}}
  template:
    metadata: {{labels: {{app: {NAME}}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: echo
          image: k8sedge.lab/echo:1
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
          readinessProbe: {{httpGet: {{path: /healthz, port: http}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata:
  name: {NAME}
  namespace: default
  annotations: {{lb.k8sedge.io/expose: "true", lb.k8sedge.io/hosts: {HOST}, lb.k8sedge.io/backend: pod}}
spec:
  type: ClusterIP
  selector: {{app: {NAME}}}
  ports: [{{name: http, protocol: TCP, port: 80, targetPort: http}}]
"""


class ConvergeError(Exception):
    """A step of the measurement failed: no sample."""


def kubectl(*args: str, stdin: str | None = None, timeout: float = 60) -> str:
    result = subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", *args], input=stdin, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise ConvergeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def ready_pods() -> set[str]:
    pods = json.loads(kubectl("get", "pods", "-l", f"app={NAME}", "-o", "json"))["items"]
    return {p["metadata"]["name"] for p in pods if p.get("metadata", {}).get("deletionTimestamp") is None
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions", []))}


def wait_pods(count: int, seconds: float = 60) -> set[str]:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pods = ready_pods()
        if len(pods) == count:
            return pods
        time.sleep(0.3)
    raise ConvergeError(f"{NAME}: {count} ready pods expected within {seconds:.0f} s, got {sorted(ready_pods())}")


def create(replicas: int) -> set[str]:
    kubectl("apply", "-f", "-", stdin=MANIFEST.replace("{replicas}", str(replicas)))
    return wait_pods(replicas)


def delete() -> None:
    kubectl("delete", "deployment,service", NAME, "--ignore-not-found", "--wait=false")


def answering(edge: str, requests: int = 8) -> list[str]:
    """The pods that answered `requests` requests from the client through the edge host."""
    loop = f"for i in $(seq {requests}); do curl -s -m 1 -H 'Host: {HOST}' http://{host(edge).ip}/ | head -n 1; echo; done"
    result = labctl("exec", "client", "--", "sh", "-c", loop, check=False, timeout=30)
    return re.findall(r"^Hostname: (\S+)", result.stdout, re.M)


def wait_answer(edge: str, wanted: set[str], seconds: float) -> float | None:
    """Epoch seconds at which one of `wanted` first answered through the edge; None past the bound."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if set(answering(edge)) & wanted:
            return time.time()
    return None


@dataclass
class Watch:
    """bin/k8sedge-watch in the background, its playbook runs as JSON lines."""

    process: subprocess.Popen[str]
    events: Path
    log: Path

    @classmethod
    def start(cls, workdir: Path, *args: str) -> Watch:
        events, log = workdir / "watch-events.jsonl", workdir / "watch.log"
        events.write_text("")
        env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}
        with log.open("w") as out:
            process = subprocess.Popen([str(REPO / ".venv/bin/python"), str(REPO / "bin/k8sedge-watch"), "--kubeconfig",
                                        str(KUBECONFIG), "--skip-first", "--events", str(events), *args],
                                       cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        return cls(process, events, log)

    def runs(self) -> list[dict]:
        return [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]

    def wait_run(self, after: int, seconds: float) -> dict:
        """The first playbook run past the first `after` ones, once it finished."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise ConvergeError(f"k8sedge-watch exited {self.process.returncode}:\n{self.tail()}")
            runs = self.runs()
            if len(runs) > after:
                return runs[after]
            time.sleep(0.2)
        raise ConvergeError(f"no playbook run within {seconds:.0f} s:\n{self.tail()}")

    def wait_first_generation(self, seconds: float = 30) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until and "first generation" not in self.log.read_text():
            time.sleep(0.2)
        if "first generation" not in self.log.read_text():
            raise ConvergeError(f"the watcher built no model within {seconds:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def converge(playbook: str, seconds: float, *extra: str) -> None:
    """A playbook of the repo on the lab's edges (ansible.cfg's inventory)."""
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), playbook, *extra], cwd=REPO, capture_output=True,
                            text=True, timeout=seconds)
    if result.returncode != 0:
        raise ConvergeError(f"{playbook} failed:\n{result.stdout[-3000:]}\n{result.stderr[-1000:]}")


@dataclass(frozen=True)
class Sample:
    """One change, from the API to traffic through the edge."""

    change: str  # scale up, pod replaced
    requested: float  # epoch: kubectl returned
    api: float  # epoch: the first API change the watcher saw (the EndpointSlice once the pod was ready)
    built: float  # epoch: the watcher built the new generation
    run_started: float
    run_finished: float
    traffic: float  # epoch: the new pod first answered through the edge
    playbook: str
    rc: int

    def figures(self) -> dict[str, float | str | int]:
        return {"change": self.change, "playbook": self.playbook, "rc": self.rc,
                "api_to_event_s": round(self.built - self.api, 3), "api_to_run_start_s": round(self.run_started - self.api, 3),
                "run_s": round(self.run_finished - self.run_started, 3), "api_to_traffic_s": round(self.traffic - self.api, 3),
                "request_to_traffic_s": round(self.traffic - self.requested, 3)}


def endpoint_change(watch: Watch, edge: str, change: str, replicas: int, seconds: float) -> tuple[Sample, int]:
    """Scale up by one, or replace one pod; measured until the new pod answers through `edge`.
    Returns the sample and the replica count after it."""
    before = ready_pods()
    runs = len(watch.runs())
    if change == "scale up":
        replicas += 1
        kubectl("scale", "deployment", NAME, f"--replicas={replicas}")
    else:
        kubectl("delete", "pod", sorted(before)[0], "--wait=false")
    requested = time.time()
    until = time.monotonic() + seconds
    new: set[str] = set()
    while not new and time.monotonic() < until:
        new = ready_pods() - before
        time.sleep(0.2)
    if not new:
        raise ConvergeError(f"{change}: no new ready pod within {seconds:.0f} s")
    traffic = wait_answer(edge, new, max(1.0, until - time.monotonic()))
    if traffic is None:
        raise ConvergeError(f"{change}: {sorted(new)} never answered through {edge}:\n{watch.tail()}")
    run = watch.wait_run(runs, max(1.0, until - time.monotonic()))
    # Changes coalesced into one run; the last run before traffic is the one that carried it.
    for later in watch.runs()[runs + 1:]:
        if later["started"] < traffic:
            run = later
    return Sample(change, requested, run["event"]["first_event"], run["event"]["built"], run["started"], run["finished"],
                  traffic, run["playbook"], run["rc"]), replicas
