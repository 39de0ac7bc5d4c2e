"""Benchmark 7, shared by dataplane_http and dataplane_tcp: what the edge costs on the data path.

wrk from the lab's client, the same settings for both sides: through edge1's haproxy (the
edge_haproxy role's config, applied by molecule/edge_haproxy/converge.yml; once for both benchmarks
of a run when the edge's haproxy files are still the ones it left) against straight to a
backend target the edge uses (node1's node port of default/s2, which the lab's kube-proxy
forwards to the s2 pods, as it does for the edge). The runs of the two sides alternate, so a
change in the machine's load falls on both. A sample is the run's p99 latency; requests per
second go in the parameters. haproxy is purged at the end if the run installed it on a lab it
did not bring up; the lab is brought up and taken down again if it was down.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from statistics import median

from bench import _lab
from bench.harness import Goal, Measurement, Sample
from lab import cli
from lab.testlib import steps
from lab.topology import host

EDGE, NODE = "edge1", "node1"
S2_NODE_PORT = 31780  # lab/manifests/10-s2.yaml
GOAL = Goal("ours p99 <= 2x straight to the backend", min_ratio=0.5)
TIME_BOUND = {"full": 420, "quick": 120}
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Side:
    """Where one side sends its requests."""

    label: str
    url: str


@dataclass(frozen=True)
class Figures:
    requests_per_second: float
    p99_ms: float
    failed: int


def wrk_figures(output: str) -> Figures:
    """Requests per second, p99 latency and failed requests from `wrk --latency` output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if not rate or not p99:
        raise steps.LabError(f"no rate or p99 in wrk's output:\n{output[-2000:]}")
    _requests, socket_errors, non_2xx = steps.wrk_counts(output)
    return Figures(float(rate.group(1)), float(p99.group(1)) * _UNITS_MS[p99.group(2)], socket_errors + non_2xx)


def _wrk(url: str, seconds: int, deadline: float) -> Figures:
    command = cli.in_host_argv("client", ["wrk", "-t2", "-c20", f"-d{seconds}s", "--latency", "-H", steps.HOST_HEADER, url])
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=min(seconds + 30, steps.left(deadline, reserve=0)))
    except subprocess.TimeoutExpired as exc:
        raise steps.LabError(f"wrk {url}: timed out after {exc.timeout:.0f} s") from exc
    if done.returncode != 0:
        raise steps.LabError(f"wrk {url} exited {done.returncode}: {done.stderr[-1000:]}")
    return wrk_figures(done.stdout)


# What the last converge of this process left on the edge: dataplane_tcp follows dataplane_http,
# and a converge that would change nothing costs as much as the measurement.
_converged: dict[str, str] = {}
LIVE_TREE = ("systemctl is-active --quiet haproxy && find /etc/haproxy -type f -print0 | sort -z"
             " | xargs -0 sha256sum | sha256sum")


def _live_tree(deadline: float) -> str | None:
    """A digest of haproxy's live files while haproxy runs; None when it does not."""
    done = steps.on_host(EDGE, "sh", "-c", LIVE_TREE, deadline=deadline, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _converge(deadline: float) -> bool:
    """The edge_haproxy role on the edge, unless the last converge here left exactly the live
    files there are now (nothing else has touched them since); whether it ran."""
    if _converged.get(EDGE) is not None and _converged[EDGE] == _live_tree(deadline):
        return False
    _converged.pop(EDGE, None)
    steps.converge(EDGE, "edge_haproxy", deadline)
    tree = _live_tree(deadline)
    if tree is not None:
        _converged[EDGE] = tree
    return True


def measure(quick: bool, deadline: float, edge_port: int, mode: str) -> Measurement:
    """Both sides on one edge frontend: `edge_port` of edge1 (HTTP or TCP mode) against the node port."""
    count, seconds = (1, 2) if quick else (5, 8)
    ours = Side(f"through {EDGE}'s haproxy ({mode} mode, port {edge_port})", f"http://{host(EDGE).ip}:{edge_port}/")
    baseline = Side(f"straight to {NODE}'s node port {S2_NODE_PORT}", f"http://{host(NODE).ip}:{S2_NODE_PORT}/")
    measurement = Measurement(
        parameters={"load": f"wrk -t2 -c20 -d{seconds}s --latency, {steps.HOST_HEADER}, from the lab's client",
                    "samples": count, "ours_path": ours.url, "baseline_path": baseline.url,
                    "measured": "p99 latency of each run; ratio = baseline p99 / ours p99 (below 1: the edge adds latency)"},
        ours=[], baseline=[], unit="ms", ours_label=ours.label, baseline_label=baseline.label)
    figures: dict[str, list[Figures]] = {"ours": [], "baseline": []}
    with _lab.lab(deadline):
        was_installed = steps.installed(EDGE, "haproxy", deadline)
        try:
            measurement.parameters["converged"] = "molecule/edge_haproxy/converge.yml" if _converge(deadline) else \
                "as the previous benchmark of this run converged it (the same live files)"
            for i in range(count):
                if steps.left(deadline) < 2 * (seconds + 10):
                    measurement.parameters["stopped_early"] = f"time bound reached in sample {i + 1} of {count}"
                    break
                for side, target, samples in (("ours", ours, measurement.ours), ("baseline", baseline, measurement.baseline)):
                    found = _wrk(target.url, seconds, deadline)
                    figures[side].append(found)
                    samples.append(Sample(found.p99_ms, error=f"{found.failed} failed requests" if found.failed else ""))
        finally:
            if not was_installed and not _lab.discarded():
                steps.playbook("molecule/edge_haproxy/cleanup.yml", EDGE, deadline + steps.CLEANUP_RESERVE, reserve=0)
    for side, found in figures.items():
        rates = sorted(f.requests_per_second for f in found)
        measurement.parameters[f"{side}_requests_per_second"] = rates
        measurement.parameters[f"{side}_failed_requests"] = sum(f.failed for f in found)
    if figures["ours"] and figures["baseline"]:
        measurement.parameters["requests_per_second_ratio"] = round(
            median([f.requests_per_second for f in figures["ours"]]) / median([f.requests_per_second for f in figures["baseline"]]), 3)
    return measurement

