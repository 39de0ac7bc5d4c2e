"""Benchmark 1: the edge model of a large cluster, read from the lab's API server.

Ours: one `k8sedge.lb.edge_info` task, as site.yml runs it at scale (the model as one JSON text,
node port backends on a subset of 25 nodes); measured again with every node behind each node
port (`ours_every_node`), which is exactly the baseline's job. The baseline: what a user
writes today, three `kubernetes.core.k8s_info` calls and set_fact templates
(playbooks/model_build_baseline.yml says what it does and why that way), run from PyPI's ansible
package in .venv-bench. Samples of the sides alternate, so a change in the machine's load falls
on all. The sides must find the same targets per Service (ours: a subset of the baseline's node
port targets, of the subset's size), or the result carries an error.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _cluster
from bench._ansible import REPO, playbook_env, run_playbook
from bench.harness import BENCH, Goal, Measurement, Sample, side_stats
from lab.testlib.apiserver import start_server, stop_server

TITLE = "Model build at scale"
GOAL = Goal("ours < 2 s, >= 10x faster", max_ours=2.0, min_ratio=10.0)
TIME_BOUND = {"full": 3600, "quick": 100}

OURS_VENV, BASELINE_VENV = REPO / ".venv", REPO / ".venv-bench"
OURS_PLAYBOOK = BENCH / "playbooks" / "model_build_ours.yml"
BASELINE_PLAYBOOK = BENCH / "playbooks" / "model_build_baseline.yml"
OURS_TASK = "Build the edge model"
BASELINE_TASK = "Build the backend list of every exposed Service"
# Below this many seconds left, another sample would only be cut short by the time bound.
MIN_SAMPLE_SECONDS = 20.0


@dataclass(frozen=True)
class Plan:
    shape: _cluster.Shape
    samples: int
    sample_timeout: float  # per sample and side


FULL = Plan(_cluster.Shape(services=5000, nodes=200, namespaces=10), samples=5, sample_timeout=600)
QUICK = Plan(_cluster.Shape(services=100, nodes=10, namespaces=2), samples=1, sample_timeout=40)

Targets = dict[str, set[str]]  # "namespace/service" -> {"address:port"}
SUBSET_SIZE = 25  # edge_info's default nodeport_subset_size


def ours_targets(model: dict[str, Any]) -> Targets:
    found: Targets = {}
    for backend in model["backends"]:
        found.setdefault(f"{backend['namespace']}/{backend['service']}", set()).update(
            f"{t['address']}:{t['port']}" for t in backend["targets"])
    return found


def baseline_targets(result: dict[str, Any]) -> Targets:
    return {service: set(targets) for service, targets in result["ansible_facts"]["bench_backends"].items()}


def compare(ours: Targets, baseline: Targets, subset_size: int) -> list[str]:
    """An error when the two sides did not do the same job. The baseline puts every node behind a
    node port; ours takes a subset of them (nodeport_subset_size), so a Service of ours has either
    the baseline's targets or subset_size of them."""
    wrong = sorted(service for service in ours.keys() | baseline.keys()
                   if ours.get(service) != baseline.get(service)
                   and not (ours.get(service, set()) < baseline.get(service, set()) and len(ours[service]) == subset_size))
    if not wrong:
        return []
    first = wrong[0]
    return [f"the two sides disagree on {len(wrong)} Services, e.g. {first}: ours {sorted(ours.get(first, ()))[:3]}, "
            f"baseline {sorted(baseline.get(first, ()))[:3]}"]


def _venv_versions(venv: Path) -> dict[str, str]:
    """ansible, ansible-core and kubernetes.core as installed in the baseline's venv."""
    script = ("import importlib.metadata as m, json, pathlib, ansible_collections as c\n"
              "manifest = pathlib.Path(c.__path__[0], 'kubernetes', 'core', 'MANIFEST.json')\n"
              "print(json.dumps({'ansible': m.version('ansible'), 'ansible_core': m.version('ansible-core'),"
              " 'kubernetes_client': m.version('kubernetes'),"
              " 'kubernetes.core': json.loads(manifest.read_text())['collection_info']['version']}))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return {f"baseline_{k}": v for k, v in json.loads(done.stdout).items()}


def _collection_version() -> str:
    for line in (REPO / "collections/ansible_collections/k8sedge/lb/galaxy.yml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip()
    return ""


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    plan = QUICK if quick else FULL
    measurement = Measurement(
        parameters={**plan.shape.facts(), "samples": plan.samples, "sample_timeout_s": plan.sample_timeout,
                    "measured": "sum of the playbook's task durations (ansible-playbook start-up excluded); "
                                "peak RSS: the largest process of the ansible-playbook tree"},
        ours=[], baseline=[],
        ours_label="k8sedge.lb.edge_info", baseline_label="kubernetes.core.k8s_info x3 + set_fact/Jinja",
        versions={"k8sedge.lb": _collection_version()},
    )
    has_baseline = (BASELINE_VENV / "bin" / "ansible-playbook").exists()
    if has_baseline:
        measurement.versions.update(_venv_versions(BASELINE_VENV))
    else:
        measurement.errors.append(f"no baseline: {BASELINE_VENV.name} is missing (make bench-venv)")

    every_node: list[Sample] = []
    proc, api = start_server(workdir)
    try:
        started = time.monotonic()
        _cluster.seed(api, plan.shape)
        measurement.parameters["seed_seconds"] = round(time.monotonic() - started, 1)
        extra_vars = {"bench_kubeconfig": str(api.reader_kubeconfig)}
        # Ours once more with every node behind each node port: the baseline's job exactly.
        sides = [("ours", OURS_VENV, OURS_PLAYBOOK, REPO / "collections", OURS_TASK, measurement.ours, extra_vars),
                 ("ours-every-node", OURS_VENV, OURS_PLAYBOOK, REPO / "collections", OURS_TASK, every_node,
                  {**extra_vars, "bench_subset_size": "0"})]
        if has_baseline:
            sides.append(("baseline", BASELINE_VENV, BASELINE_PLAYBOOK, None, BASELINE_TASK, measurement.baseline, extra_vars))
        captured: dict[str, Path] = {}
        runs = [(i, *side) for i in range(plan.samples) for side in sides]
        for i, side, venv, playbook, collections, task, samples, variables in runs:
            remaining = deadline - time.monotonic()
            if remaining < MIN_SAMPLE_SECONDS:
                measurement.parameters["stopped_early"] = f"time bound reached in sample {i + 1} of {plan.samples}"
                break
            capture_file = workdir / f"{side}.result.json"
            samples.append(run_playbook(
                venv, playbook, variables, playbook_env(workdir, collections),
                min(plan.sample_timeout, remaining - MIN_SAMPLE_SECONDS / 2), workdir, f"{side}-{i + 1}",
                capture=None if side in captured else (task, capture_file)))
            # Only the first completed run of each side is captured: it costs time and memory.
            if side not in captured and samples[-1].value is not None and capture_file.exists():
                captured[side] = capture_file
    finally:
        stop_server(proc)

    every_node_stats = side_stats(every_node)
    measurement.parameters["ours_every_node"] = {key: every_node_stats[key] for key in ("median", "p95", "peak_rss_mb")}
    measurement.errors += [f"ours-every-node: {s.error}" for s in every_node if s.error]
    if "ours" in captured:
        result = json.loads(captured["ours"].read_text())
        model = json.loads(result["model_json"])
        if model["errors"]:
            measurement.errors.append(f"ours refused {len(model['errors'])} objects of a clean cluster, e.g. {model['errors'][0]}")
        measurement.parameters["model_warnings"] = len(model["warnings"])
        # Where ours spends its time inside the module (the rest is Ansible's handling of the result).
        measurement.parameters["ours_api_seconds"] = result["read"]["api_seconds"]
        measurement.parameters["ours_build_seconds"] = result["read"]["build_seconds"]
        ours = ours_targets(model)
        measurement.parameters["backend_targets"] = sum(len(t) for t in ours.values())
        if "baseline" in captured:
            measurement.errors += compare(ours, baseline_targets(json.loads(captured["baseline"].read_text())), SUBSET_SIZE)
        if "ours-every-node" in captured:
            every = ours_targets(json.loads(json.loads(captured["ours-every-node"].read_text())["model_json"]))
            measurement.parameters["backend_targets_every_node"] = sum(len(t) for t in every.values())
            if "baseline" in captured:
                measurement.errors += compare(every, baseline_targets(json.loads(captured["baseline"].read_text())), 0)
    return measurement
