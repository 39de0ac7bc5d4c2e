"""Benchmark 3: a site.yml run that changes nothing, on the lab's two edges.

Ours: `ansible-playbook -i inventory/lab playbooks/site.yml` on edges that already serve the
cluster's model: one model read, the fail-static guard, edge1 then edge2 (apply with nothing to
change, probe every route, TCP frontend and target of that edge), keepalived, the probes through
the VIPs. Its run must report changed=0 on both edges. The baseline: a hand-written playbook as
confd-style scripts work (bench/playbooks/site_noop_baseline.yml): the model given as a file, one
template of haproxy.cfg validated by `haproxy -c`, a reload handler, no probes, into a directory
of its own. The ratio (baseline / ours) is what the rollout's safety costs in wall time against
rendering alone; it is reported, not judged. Wall time of the whole ansible-playbook process.
A run that is not a no-op (warm-up) is repeated; samples alternate ours, baseline. The quick
run takes one edge (`--limit edge1`): the same tasks, half the hosts.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from bench import _lab
from bench.harness import BENCH, Goal, Measurement, Sample
from lab.testlib import steps
from lab.topology import KUBECONFIG, MODEL_OPTIONS, REPO

TITLE = "No-change site.yml run, two edges"
GOAL = Goal("changed=0 on both edges; wall time reported against a template-and-reload playbook")
TIME_BOUND = {"full": 900, "quick": 240}

EDGES = ("edge1", "edge2")
# The lab tests leave the edges converged; the other benchmarks install configs of their own.
RUN_FIRST = True


def _playbook(args: list[str], deadline: float) -> tuple[float, subprocess.CompletedProcess[str]]:
    """ansible-playbook with args, against the lab's inventory: (wall time, result)."""
    env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}", "ANSIBLE_FORCE_COLOR": "0"}
    started = time.monotonic()
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", str(REPO / "inventory/lab"), *args], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=min(600.0, steps.left(deadline, reserve=0)))
    return round(time.monotonic() - started, 3), result


def _changed(output: str) -> dict[str, int]:
    return {name: int(changed) for name, changed in re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.MULTILINE)}


def _sample(args: list[str], edges: tuple[str, ...], deadline: float) -> tuple[Sample, dict[str, int]]:
    seconds, result = _playbook(args, deadline)
    changed = _changed(result.stdout)
    if result.returncode != 0:
        return Sample(None, error=f"exited {result.returncode}: {result.stdout[-1500:]}"), changed
    if any(changed.get(edge, 1) for edge in edges):
        return Sample(None, error=f"not a no-op: changed {changed}"), changed
    return Sample(seconds), changed


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    count = 1 if quick else 3
    edges = EDGES[:1] if quick else EDGES
    limit = ["--limit", ",".join(edges)]
    measurement = Measurement(
        parameters={"edges": list(edges), "samples": count, "measured": "wall time of ansible-playbook, start-up included",
                    "ours_method": "playbooks/site.yml on converged edges (guard, serial rollout with probes, keepalived, VIPs)",
                    "baseline_method": "bench/playbooks/site_noop_baseline.yml: template + haproxy -c + reload handler"},
        ours=[], baseline=[], ours_label="site.yml (no change)", baseline_label="template + reload playbook (no change)")
    model_file = workdir / "model.json"
    with _lab.lab(deadline):
        read = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-m", "k8sedge.lb.edge_info", "-a",
                               " ".join([f"kubeconfig={KUBECONFIG}", *(f"{k}={v}" for k, v in MODEL_OPTIONS.items())])], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
        if read.returncode != 0:
            raise steps.LabError(f"edge_info failed: {read.stdout[-1000:]}")
        model_file.write_text(json.dumps(json.loads(read.stdout[read.stdout.index("{"):])["model"]))
        baseline_args = [str(BENCH / "playbooks" / "site_noop_baseline.yml"), "-e", f"bench_model={model_file}", *limit]
        ours_args = [str(REPO / "playbooks" / "site.yml"), *limit]
        # A first run of each side makes the edges converge (not measured unless it already was a no-op).
        for args, side in ((ours_args, measurement.ours), (baseline_args, measurement.baseline)):
            sample, _ = _sample(args, edges, deadline)
            if sample.value is not None and quick:
                side.append(sample)
        while len(measurement.ours) < count or len(measurement.baseline) < count:
            if deadline - time.monotonic() < 120:
                measurement.parameters["stopped_early"] = "time bound reached"
                break
            for args, side in ((ours_args, measurement.ours), (baseline_args, measurement.baseline)):
                if len(side) < count:
                    side.append(_sample(args, edges, deadline)[0])
        for edge in edges:
            steps.on_host(edge, "rm", "-rf", "/etc/k8sedge-bench", deadline=deadline + steps.CLEANUP_RESERVE, check=False)
    return measurement
