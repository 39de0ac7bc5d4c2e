"""Drive change-to-traffic measurements in the lab (bench/convergence.py, tests/lab/test_on_change.py,
test_vips.py, test_faults.py).

Endpoint-only changes move the pods of the lab's `default/s2` Deployment, which the pod-mode
Service `default/direct` (host direct.pctest) exposes: the edges send to the pods' own addresses,
so a pod change is a change of the edges' targets. Structural changes add pod-mode Services of
their own (`default/conv-<n>`, host conv-<n>.pctest, the s2 pods). bin/k8sedge-watch runs in the
background; pod_probe.py, in the lab's client namespace, asks both edges which pod answers,
request after request, and the time at which every edge shows the change is read from its lines.
Every wait is bounded.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.drive import LABCTL
from lab.topology import KUBECONFIG, KUBECONFIG_ADMIN, KUBECTL, MODEL_OPTIONS, REPO, host

DEPLOYMENT = "s2"
HOST = "direct.pctest"
EDGES = ("edge1", "edge2")
REPLICAS = 2  # lab/manifests/10-s2.yaml
STRUCTURAL_PREFIX = "conv"
SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  labels: {{app: {prefix}}}
  annotations: {{lb.k8sedge.io/expose: "true", lb.k8sedge.io/hosts: {name}.pctest, lb.k8sedge.io/backend: pod}}
spec:
  type: ClusterIP
  selector: {{app: s2}}
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


def pods() -> tuple[set[str], set[str]]:
    """(ready pods, terminating pods) of the Deployment."""
    items = json.loads(kubectl("get", "pods", "-l", f"app={DEPLOYMENT}", "-o", "json"))["items"]
    ready, terminating = set(), set()
    for pod in items:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            terminating.add(name)
        elif any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", [])):
            ready.add(name)
    return ready, terminating


def wait_pods(count: int, seconds: float = 60) -> set[str]:
    """The ready pods once there are exactly `count` and none terminating."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        ready, terminating = pods()
        if len(ready) == count and not terminating:
            return ready
        time.sleep(0.3)
    raise ConvergeError(f"{DEPLOYMENT}: {count} ready pods and none terminating expected within {seconds:.0f} s, got {pods()}")


def model_json() -> str:
    """The cluster's model now as JSON text, as edge_info and the watcher build it."""
    if str(REPO / "collections") not in sys.path:
        sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import model_json_of, read_state
    from ansible_collections.k8sedge.lb.plugins.module_utils._watch import params_with_defaults

    params = params_with_defaults({"kubeconfig": str(KUBECONFIG), **MODEL_OPTIONS}, {})
    state, read = read_state(params)
    return model_json_of(state, params, None, read).text


def model_generation() -> str:
    """The generation of the cluster's model now, as edge_info and the watcher build it."""
    return json.loads(model_json())["generation"]


def replicas() -> int:
    return int(kubectl("get", "deployment", DEPLOYMENT, "-o", "jsonpath={.spec.replicas}"))


def scale(replicas: int) -> None:
    kubectl("scale", "deployment", DEPLOYMENT, f"--replicas={replicas}")


# --- what the client sees -------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    sent: float  # epoch
    edge: str
    pod: str  # "" when the request failed or was not a 200


def parse_answers(lines: list[str]) -> list[Answer]:
    answers = []
    for line in lines:
        fields = line.split()
        if len(fields) == 4:
            answers.append(Answer(float(fields[0]), fields[1], "" if fields[2] == "-" else fields[2]))
    return answers


def first_seen(answers: list[Answer], edges: list[str], old: set[str], after: float = 0.0) -> float | None:
    """When a pod not in `old` had answered through every edge (each edge's first such answer,
    the latest of them), counting requests sent after `after`; None until then."""
    times = {}
    for answer in answers:
        if answer.sent >= after and answer.pod and answer.pod not in old and answer.edge not in times:
            times[answer.edge] = answer.sent
    return max(times.values()) if len(times) == len(edges) else None


def last_of(answers: list[Answer], edges: list[str], pod: str, quiet: float) -> float | None:
    """When every edge had stopped sending to `pod`: per edge, the first request after the last
    one that `pod` answered or that failed, followed by `quiet` seconds of other pods' answers;
    the latest of them. None until every edge shows that."""
    times = []
    for edge in edges:
        mine = [a for a in answers if a.edge == edge]
        last = max((i for i, a in enumerate(mine) if not a.pod or a.pod == pod), default=-1)
        rest = mine[last + 1:]
        if not rest or rest[-1].sent - rest[0].sent < quiet:
            return None
        times.append(rest[0].sent)
    return max(times)


class Probe:
    """pod_probe.py in the client namespace, its lines read as they come."""

    def __init__(self, host_header: str = HOST, edges: tuple[str, ...] = EDGES, seconds: float = 60, vips: tuple[str, ...] = (),
                 every: float = 0.005) -> None:
        self.edges = [host(e).ip for e in edges]
        self.vips = list(vips)  # asked too, in turn with the edges; a change is judged through the edges
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [LABCTL, "exec", "client", "--", str(REPO / ".venv/bin/python"), "-m", "lab.testlib.pod_probe", "--edges", ",".join(self.edges + self.vips),
             "--host", host_header, "--seconds", str(seconds),
             "--every", str(every)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if self.wait(lambda answers: answers, 10) is None:
            self.stop()
            raise ConvergeError(f"the probe sent nothing through {self.edges} within 10 s")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def answers(self) -> list[Answer]:
        return parse_answers(list(self.lines))

    def wait(self, done, seconds: float):  # done(answers) -> a value, or None/False to go on
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            value = done(self.answers())
            if value:
                return value
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        return done(self.answers()) or None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)


# --- the watcher -----------------------------------------------------------------------------------

@dataclass
class Watch:
    """bin/k8sedge-watch in the background; its playbook runs and fast-path applies as JSON lines."""

    process: subprocess.Popen[str]
    events: Path
    log: Path

    @classmethod
    def start(cls, workdir: Path, *args: str, skip_first: bool = True, kubeconfig: Path = KUBECONFIG) -> Watch:
        events, log = workdir / "watch-events.jsonl", workdir / "watch.log"
        events.write_text("")
        env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}
        with log.open("w") as out:
            options = [f"--{key.replace('_', '-')}={value}" for key, value in MODEL_OPTIONS.items()]
            process = subprocess.Popen([str(REPO / ".venv/bin/python"), str(REPO / "bin/k8sedge-watch"), "--kubeconfig",
                                        str(kubeconfig), *options, *(["--skip-first"] if skip_first else []), "--events", str(events), *args],
                                       cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        return cls(process, events, log)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]

    def wait_log(self, text: str, seconds: float = 60) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if text in self.log.read_text():
                return
            if self.process.poll() is not None:
                raise ConvergeError(f"k8sedge-watch exited {self.process.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        raise ConvergeError(f"k8sedge-watch did not log {text!r} within {seconds:.0f} s:\n{self.tail()}")

    def carrier(self, requested: float, traffic: float, seconds: float) -> dict:
        """What made the change live: the last fast-path apply that every host took, started
        between the request and the traffic; else the playbook run that was under way when the
        traffic showed (written when it ends: waited for)."""
        until = time.monotonic() + seconds
        while True:
            lines = self.lines()
            runtime = [line for line in lines if line["path"] == "runtime" and line["ok"] and requested <= line["started"] <= traffic]
            if runtime:
                return runtime[-1]
            runs = [line for line in lines if line["path"] == "playbook" and line["started"] <= traffic]
            if runs and (runs[-1]["finished"] >= traffic or time.monotonic() > until):
                return runs[-1]
            if time.monotonic() > until:
                raise ConvergeError(f"no fast-path apply or playbook run carried the change:\n{self.tail()}")
            if self.process.poll() is not None:
                raise ConvergeError(f"k8sedge-watch exited {self.process.returncode}:\n{self.tail()}")
            time.sleep(0.2)

    def wait_idle(self, seconds: float, quiet: float = 3.0) -> None:
        """Until no playbook has run for `quiet` seconds (the log's last run ended; changes that
        come in meanwhile start another one)."""
        until = time.monotonic() + seconds
        since = None
        while time.monotonic() < until:
            text = self.log.read_text()
            idle = text.rfind("running ") < max(text.rfind(" finished in "), text.rfind(" FAILED (exit "))
            since = (since or time.monotonic()) if idle or "running " not in text else None
            if since is not None and time.monotonic() - since >= quiet:
                return
            time.sleep(0.5)
        raise ConvergeError(f"k8sedge-watch still running a playbook after {seconds:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=300)  # a playbook in progress is let finish
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def playbook(path: str, seconds: float, *extra: str) -> None:
    """A playbook of the repo on the lab's edges (ansible.cfg's inventory)."""
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), path, *extra], cwd=REPO, capture_output=True,
                            text=True, timeout=seconds)
    if result.returncode != 0:
        raise ConvergeError(f"{path} failed:\n{result.stdout[-3000:]}\n{result.stderr[-1000:]}")


# --- one sample --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One change, from the API to traffic through every edge."""

    change: str  # scale up, scale down, pod replaced, new Service
    requested: float  # epoch: kubectl returned
    api: float  # epoch: the first API change the watcher saw for the generation that carried it
    built: float  # epoch: the watcher built that generation
    applied: float  # epoch: the fast-path apply or the playbook run that carried it ended
    traffic: float  # epoch: the first request that showed the change, on the last edge to show it
    path: str  # runtime or playbook
    ok: bool  # the carrier succeeded on every host
    requests: int
    errors: int  # requests without a 200 during the sample
    vip_traffic: float | None = None  # epoch: the first request through the pool's VIP that showed it (structural only)

    @property
    def seconds(self) -> float:
        return round(self.traffic - self.api, 3)

    def figures(self) -> dict[str, float | str | int | bool]:
        vip = {"api_to_vip_traffic_s": round(self.vip_traffic - self.api, 3)} if self.vip_traffic is not None else {}
        return {"change": self.change, "path": self.path, "ok": self.ok, "api_to_traffic_s": self.seconds, **vip,
                "api_to_event_s": round(self.built - self.api, 3), "api_to_applied_s": round(self.applied - self.api, 3),
                "request_to_traffic_s": round(self.traffic - self.requested, 3), "requests": self.requests, "errors": self.errors}


def _sample(change: str, watch: Watch, probe: Probe, requested: float, traffic: float, seconds: float,
            vip_traffic: float | None = None) -> Sample:
    carrier = watch.carrier(requested, traffic, seconds)
    answers = [a for a in probe.answers() if a.sent >= requested and a.edge in probe.edges]
    ok = carrier["rc"] == 0 if carrier["path"] == "playbook" else carrier["ok"]
    return Sample(change, requested, carrier["event"]["first_event"], carrier["event"]["built"], carrier["finished"], traffic,
                  carrier["path"], ok, len(answers), sum(1 for a in answers if not a.pod), vip_traffic)


def endpoint_change(watch: Watch, change: str, replicas: int, seconds: float) -> tuple[Sample, int]:
    """scale up (by one), scale down (by one) or pod replaced (the oldest ready pod deleted), then
    the probe until every edge shows it: the new pod answers, or the removed one no longer does.
    Returns the sample and the replica count after it."""
    before = wait_pods(replicas)
    probe = Probe(seconds=min(120.0, seconds))
    try:
        if change == "scale up":
            replicas += 1
            scale(replicas)
        elif change == "scale down":
            replicas -= 1
            scale(replicas)
        else:
            kubectl("delete", "pod", sorted(before)[0], "--wait=false")
        requested = time.time()
        if change == "scale down":
            gone = _wait(lambda: pods()[1] & before, seconds, f"{change}: no pod terminating")
            victim = sorted(gone)[0]
            traffic = probe.wait(lambda answers: last_of([a for a in answers if a.sent >= requested], probe.edges, victim, 1.0), seconds)
        else:
            traffic = probe.wait(lambda answers: first_seen(answers, probe.edges, before, requested), seconds)
        if traffic is None:
            raise ConvergeError(f"{change}: the edges did not show it within {seconds:.0f} s:\n{watch.tail()}")
        return _sample(change, watch, probe, requested, traffic, seconds), replicas
    finally:
        probe.stop()


def new_service(watch: Watch, index: int, seconds: float, vip: str | None = None) -> Sample:
    """A new pod-mode Service (structural: site.yml), until its host answers through every edge
    (and, when given, when it first answered through the pool's VIP)."""
    name = f"{STRUCTURAL_PREFIX}-{index}"
    probe = Probe(host_header=f"{name}.pctest", seconds=min(120.0, seconds), vips=(vip,) if vip else ())
    try:
        kubectl("apply", "-f", "-", stdin=SERVICE.format(name=name, prefix=STRUCTURAL_PREFIX))
        requested = time.time()
        traffic = probe.wait(lambda answers: first_seen([a for a in answers if a.edge in probe.edges], probe.edges, set(), requested),
                             seconds)
        if traffic is None:
            raise ConvergeError(f"new Service {name}: no answer through every edge within {seconds:.0f} s:\n{watch.tail()}")
        vip_traffic = first_seen([a for a in probe.answers() if a.edge == vip], [vip], set(), requested) if vip else None
        return _sample("new Service", watch, probe, requested, traffic, seconds, vip_traffic)
    finally:
        probe.stop()


def delete_services() -> None:
    kubectl("delete", "service", "-l", f"app={STRUCTURAL_PREFIX}", "--ignore-not-found", "--wait=false")


def _wait(read, seconds: float, error: str):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        value = read()
        if value:
            return value
        time.sleep(0.1)
    raise ConvergeError(error)
