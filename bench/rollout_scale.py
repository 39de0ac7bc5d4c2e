"""Benchmark: the whole rollout at scale, from `site.yml` starting to a new Service answering.

The lab's Services plus N more that share s2's pods, each with its own host (`scale-<i>.pctest`):
half NodePort Services (node port backends), half `backend: pod`. Per size:
- the first run that serves them all (not judged; reported);
- a no-change `site.yml` (must report changed=0 on both edges);
- a structural change: one new pod-mode Service, then `site.yml` while a client in the lab asks
  for its host through the pool's VIP and through each edge, a request every 5 ms on a new
  connection. A sample is the time from `site.yml` starting to the first 200 through the VIP;
  the time to the last edge answering is reported beside it.
Wall times of the whole ansible-playbook process. Each run's task durations (callback
bench_timer) are summed per phase, its probe report says how many probes it sent, its process
tree's peak RSS is the controller's memory; haproxy's RSS on edge1 is read after the runs.
A full run also times a no-change run that probes every check (`k8sedge_probe_sweep`, what the
scheduled job runs). The goal is haproxy's (the default engine). A full run then switches the
edges to nginx and records the same figures beside them (`<size>.nginx`); the run after the
size's Services are deleted switches them back.

The scale Services check their targets with `lb.k8sedge.io/health-check: none`: with haproxy's
active checks every 2 s, 5,000 Services are about 10,000 check connections a second into the
lab's userspace node-port proxies and echo pods, which two shared cores cannot carry. A real
cluster's kube-proxy does. The new Service of each sample keeps the default TCP check.

The baseline is what a user would run instead at the same size, without probes: the model-build
baseline (kubernetes.core.k8s_info and Jinja, bench/playbooks/model_build_baseline.yml) followed
by the no-change baseline (template + haproxy -c + reload, site_noop_baseline.yml), their wall
times summed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench import _lab, _process
from bench.harness import BENCH, Goal, Measurement, Sample
from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import KUBECONFIG, MODEL_OPTIONS, REPO

TITLE = "The whole rollout at scale: a structural change through the VIP"
GOAL = Goal("at 5,000 exposed Services: a new Service through the VIP under 10 s after site.yml starts (both edges under"
            " 20 s), a no-change run under 15 s with changed=0, controller peak under 1 GB; at 1,000 under 6 s",
            max_ours=10.0)
TIME_BOUND = {"full": 5400, "quick": 900}
SIZES = {"full": (100, 1000, 5000), "quick": (100,)}  # quick: a smoke of every step, at the smallest size
LIMITS = {5000: {"vip_s": 10.0, "edges_s": 20.0, "noop_s": 15.0, "peak_mb": 1024.0}, 1000: {"vip_s": 6.0}}
SAMPLES = {"full": 3, "quick": 1}
# The goal is haproxy's; nginx's figures are recorded beside it in a full run (make test's quick
# run has no time for a second engine).
OTHER_ENGINES = {"full": ("nginx",), "quick": ()}
# The full sweep (k8sedge_probe_sweep, what the scheduled job runs) has its own figure in a full run.
SWEEP = {"full": True, "quick": False}
PREFIX = "scale"
VIP = "10.213.0.200"  # the default pool's first VIP (inventory/lab)
RUN_SECONDS = 900.0  # one site.yml at most
SAMPLE_RESERVE = 180.0  # a structural sample starts only with this much time left
BASELINE_VENV = REPO / ".venv-bench"

SERVICE = """---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  labels: {{app: {prefix}}}
  annotations: {{lb.k8sedge.io/expose: "true", lb.k8sedge.io/hosts: {name}.pctest, lb.k8sedge.io/backend: {backend},
                lb.k8sedge.io/health-check: {check}}}
spec:
  type: {kind}
  selector: {{app: s2}}
  ports: [{{name: http, protocol: TCP, port: 80, targetPort: http}}]
"""

# Task name prefixes -> the phase a task belongs to (the first match wins); a role's tasks carry
# its name ("edge_probe : ..."). The rest is the rollout itself (records, the proxy role's apply).
PHASES = (
    ("read and guard", ("Read the edge model", "Take the model", "Read the model's", "Report what the model", "Read each edge",
                        "Take what each edge proved", "Compare the new model", "Stop before", "Hold back", "Take the generation",
                        "Report the backends", "Say that the guard", "Read whether the other engine", "Take whether the other engine")),
    ("probes", ("edge_probe : ", "Probe ")),
    ("keepalived", ("edge_keepalived : ", "Configure keepalived")),
)


def services(names: list[str], node_ports: int, check: str = "none") -> str:
    """Manifests of the Services: the first `node_ports` NodePort, the rest pod mode."""
    return "".join(SERVICE.format(name=name, prefix=PREFIX, check=check,
                                  kind="NodePort" if i < node_ports else "ClusterIP",
                                  backend="nodeport" if i < node_ports else "pod")
                   for i, name in enumerate(names))


def _served(prefix: str) -> int:
    """How many Services named `prefix...` the cluster's model serves with targets now."""
    backends = json.loads(c.model_json())["backends"]
    return sum(1 for backend in backends if str(backend.get("service", "")).startswith(prefix) and backend.get("targets"))


def create(names: list[str], node_ports: int, deadline: float, check: str = "none") -> None:
    """Create the Services (in batches, so no request grows too large) and wait until the model
    serves each with targets (the lab's controllers have filled their EndpointSlices)."""
    for start in range(0, len(names), 500):
        c.kubectl("create", "-f", "-", stdin=services(names[start:start + 500], max(0, node_ports - start), check),
                  timeout=steps.left(deadline))
    until = time.monotonic() + min(600.0, steps.left(deadline))
    prefix = os.path.commonprefix(names) if len(names) > 1 else names[0]
    while (served := _served(prefix)) < len(names):
        if time.monotonic() > until:
            raise steps.LabError(f"the model serves {served} of {len(names)} new Services with targets")
        time.sleep(2)
    # The controllers may still be filling slices in: wait until the model holds still.
    generation = c.model_generation()
    while time.monotonic() < until:
        time.sleep(3)
        generation, before = c.model_generation(), generation
        if generation == before:
            return
    raise steps.LabError(f"the model of {len(names)} new Services did not settle")


def delete(deadline: float) -> None:
    """Delete the scale Services, and wait until they are gone. Not with kubectl's own wait: it
    watches each deleted object in turn, and against the lab's API server that grows faster than the
    count (200 Services 38 s; after 1,000 it had not returned in 15 minutes)."""
    selector = ("-n", "default", "-l", f"app={PREFIX}")
    c.kubectl("delete", "service", *selector, "--ignore-not-found", "--wait=false", timeout=steps.left(deadline))
    while c.kubectl("get", "service", *selector, "-o", "name", timeout=steps.left(deadline)).strip():
        if time.monotonic() >= deadline:
            raise steps.LabError(f"the Services labelled app={PREFIX} were still there at the deadline")
        time.sleep(0.5)


def changed_tasks(output: str) -> list[str]:
    """The tasks of an ansible-playbook output that reported a change, with the hosts."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line[line.index("[") + 1:line.rindex("]")]
        elif line.startswith("changed: ["):
            found.append(f"{task} ({line[len('changed: ['):].split(']')[0]})")
    return found


def phases(timings: Path) -> dict[str, float]:
    """The run's task durations summed per phase; what is left is the proxy role's apply."""
    totals: dict[str, float] = {"read and guard": 0.0, "apply": 0.0, "probes": 0.0, "keepalived": 0.0}
    for task in json.loads(timings.read_text())["tasks"]:
        phase = next((name for name, prefixes in PHASES if task["name"].startswith(prefixes)), "apply")
        totals[phase] += task["seconds"] or 0.0  # None: a task that never returned a result (an include)
    return {name: round(seconds, 2) for name, seconds in totals.items()}


class Site:
    """site.yml against the lab, each run timed with its phases, probes and peak memory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.reports = workdir / "reports"  # the run's probe report (the VIP pass, with the edges' passes in it)
        self.runs = 0
        self.engine = "haproxy"  # k8sedge_engine of the runs

    def start(self, *extra: str) -> tuple[subprocess.Popen[str], Path, Path, float]:
        self.runs += 1
        label = f"site-{self.runs}"
        timings, rusage, log = (self.workdir / f"{label}.{suffix}" for suffix in ("timings.json", "rusage.json", "log"))
        env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}", "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback_plugins"), "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
               "BENCH_TIMINGS_FILE": str(timings)}
        # The files go, the directory stays: the probe role creating it would count as a change.
        self.reports.mkdir(exist_ok=True)
        for old in self.reports.glob("*.json"):
            old.unlink()
        # Where site.yml writes its reports, as it writes them: the VIP pass's, and an edge's own when it failed.
        reports = {"edge_probe_report_path": f"{self.reports}/{{{{ ansible_play_batch | join('-') }}}}.json"}
        command = [str(REPO / ".venv/bin/ansible-playbook"), str(REPO / "playbooks/site.yml"), "-e", json.dumps(reports),
                   "-e", f"k8sedge_engine={self.engine}", *extra]
        started = time.monotonic()
        handle = log.open("w")
        process = subprocess.Popen([str(REPO / ".venv/bin/python"), str(BENCH / "_process.py"), str(rusage), str(RUN_SECONDS),
                                    *command], cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
        handle.close()
        return process, timings, log, started

    def finish(self, running: tuple[subprocess.Popen[str], Path, Path, float]) -> dict[str, Any]:
        process, timings, log, started = running
        process.wait(timeout=RUN_SECONDS + _process.GRACE)
        seconds = round(time.monotonic() - started, 3)
        rusage = json.loads(log.with_name(log.name.replace(".log", ".rusage.json")).read_text())
        output = log.read_text(errors="replace")
        changed = {name: int(n) for name, n in re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.MULTILINE)}
        if rusage["returncode"] != 0:
            ended = f"timed out after {RUN_SECONDS:.0f} s" if rusage["returncode"] is None else f"exited {rusage['returncode']}"
            raise steps.LabError(f"site.yml {ended}:\n{output[-3000:]}")
        passes: dict[str, Any] = {}
        for path in sorted(self.reports.glob("*.json")):
            report = json.loads(path.read_text())
            passes.update(report.get("earlier_passes") or {})
            passes[path.stem] = report
        return {"seconds": seconds, "changed": changed, "changed_tasks": changed_tasks(output),
                "peak_rss_mb": round(rusage["peak_rss_mb"], 1),
                "phases": phases(timings) if timings.exists() else {},
                "probes": sum(report["summary"]["probes"] for report in passes.values()),
                "coverage": {name: report.get("coverage", {}) for name, report in passes.items()}}

    def run(self, *extra: str) -> dict[str, Any]:
        return self.finish(self.start(*extra))


def structural(site: "Site", name: str, deadline: float) -> dict[str, Any]:
    """A new pod-mode Service, then site.yml: seconds from its start to the first answer through the
    VIP, and to the last edge answering."""
    create([name], 0, deadline, check="tcp")
    probe = c.Probe(host_header=f"{name}.pctest", seconds=min(120.0, RUN_SECONDS), vips=(VIP,))
    try:
        running = site.start()
        epoch = time.time() - (time.monotonic() - running[3])
        run = site.finish(running)
        answers = probe.answers()
        vip = c.first_seen([a for a in answers if a.edge == VIP], [VIP], set(), epoch)
        edges = c.first_seen([a for a in answers if a.edge in probe.edges], probe.edges, set(), epoch)
    finally:
        probe.stop()
    return {**run, "name": name, "vip_s": round(vip - epoch, 3) if vip else None,
            "edges_s": round(edges - epoch, 3) if edges else None}


def baseline(workdir: Path, deadline: float) -> float | None:
    """k8s_info + Jinja (the model-build baseline), then template + reload (the no-change baseline), summed."""
    if not (BASELINE_VENV / "bin/ansible-playbook").exists():
        return None
    model = workdir / "model.json"
    options = " ".join(f"{k}={v}" for k, v in MODEL_OPTIONS.items())
    read = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-m", "k8sedge.lb.edge_info", "-a",
                           f"kubeconfig={KUBECONFIG} model_format=json {options}"], cwd=REPO, capture_output=True, text=True,
                          timeout=steps.left(deadline), env={**os.environ, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    model.write_text(json.loads(read.stdout[read.stdout.index("{"):])["model_json"])
    total = 0.0
    # kubernetes.core is in the baseline's venv; the template and reload run as site_noop runs them.
    for venv, playbook, extra in ((BASELINE_VENV, "model_build_baseline.yml", ["-i", "localhost,", "-e", f"bench_kubeconfig={KUBECONFIG}",
                                                                    "-e", f"ansible_python_interpreter={BASELINE_VENV / 'bin/python'}"]),
                                  (REPO / ".venv", "site_noop_baseline.yml", ["-i", str(REPO / "inventory/lab"), "-e", f"bench_model={model}"])):
        started = time.monotonic()
        done = subprocess.run([str(venv / "bin/ansible-playbook"), *extra, str(BENCH / "playbooks" / playbook)], cwd=REPO,
                              capture_output=True, text=True, timeout=steps.left(deadline),
                              env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"})
        if done.returncode != 0:
            raise steps.LabError(f"baseline {playbook} exited {done.returncode}:\n{done.stdout[-2000:]}")
        total += time.monotonic() - started
    for edge in c.EDGES:
        steps.on_host(edge, "rm", "-rf", "/etc/k8sedge-bench", deadline=deadline + steps.CLEANUP_RESERVE, check=False)
    return round(total, 3)


def proxy_rss_mb(engine: str, deadline: float) -> float:
    """The engine's processes on edge1 (master and workers), in MB."""
    ps = steps.on_host("edge1", "ps", "-o", "rss=", "-C", engine, deadline=deadline)
    return round(sum(int(kb) for kb in ps.stdout.split()) / 1024, 1)


def unchanged(run: dict[str, Any], what: str) -> dict[str, Any]:
    """The run, when it changed nothing on any edge; else LabError saying what it changed."""
    if any(run["changed"].get(edge, 1) for edge in c.EDGES):
        raise steps.LabError(f"{what} changed {run['changed']}: {run['changed_tasks']}")
    return run


def runs_at_size(site: Site, size: int, count: int, deadline: float) -> dict[str, Any]:
    """With the edges serving this size: the first run of the site's engine (not judged: it also
    switches the engine, and forgets what an interrupted run left, which the guard would stop), a
    no-change run (changed=0 or an error), then up to `count` structural samples."""
    figures: dict[str, Any] = {"first_run": site.run("-e", "k8sedge_fail_static_override=true")}
    figures["no_change"] = unchanged(site.run(), f"{size} Services, {site.engine}: the no-change run")
    figures["structural"] = []
    for i in range(count):
        if steps.left(deadline) < SAMPLE_RESERVE:
            figures["stopped_early"] = f"time bound reached in sample {i + 1} of {count}"
            break
        figures["structural"].append(structural(site, f"{PREFIX}{size}-{site.engine}-new-{i}", deadline))
    figures[f"{site.engine}_rss_mb_edge1"] = proxy_rss_mb(site.engine, deadline)
    return figures


def measure_size(site: Site, size: int, count: int, engines: tuple[str, ...], sweep: bool, workdir: Path,
                 deadline: float) -> tuple[list[Sample], list[Sample], dict[str, Any]]:
    """haproxy's figures at this size (the goal's), a no-change run that probes every check (with
    `sweep`), the baseline, then each other engine's figures beside them."""
    started = time.monotonic()
    # Names of their own per size: nothing left of the size before can be counted as this one's.
    create([f"{PREFIX}{size}-{i:05d}" for i in range(size)], size // 2, deadline)
    figures: dict[str, Any] = {"services": size, "node_port_services": size // 2, "seed_s": round(time.monotonic() - started, 1),
                               **runs_at_size(site, size, count, deadline)}
    ours = [Sample(run["vip_s"], peak_rss_mb=run["peak_rss_mb"]) if run["vip_s"] is not None
            else Sample(None, peak_rss_mb=run["peak_rss_mb"], error=f"{run['name']}: no answer through {VIP} during site.yml")
            for run in figures["structural"]]
    if sweep:
        figures["sweep"] = unchanged(site.run("-e", "k8sedge_probe_sweep=true"), f"{size} Services: the sweep")
    base = baseline(workdir, deadline)
    figures["baseline_s"] = base
    for engine in engines:
        site.engine = engine
        try:
            figures[engine] = runs_at_size(site, size, count, deadline)
        finally:
            site.engine = "haproxy"  # the run after the deletion switches the edges back
    return ours, [Sample(base)] if base is not None else [], figures


def misses(size: int, figures: dict[str, Any]) -> list[str]:
    limits = LIMITS.get(size, {})
    runs = figures["structural"]
    found = []
    for key in ("vip_s", "edges_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if key in limits and values and median(values) > limits[key]:
            found.append(f"{size} Services: {key} median {median(values)} s > {limits[key]} s")
    if "noop_s" in limits and figures["no_change"]["seconds"] > limits["noop_s"]:
        found.append(f"{size} Services: no-change run {figures['no_change']['seconds']} s > {limits['noop_s']} s")
    peaks = [r["peak_rss_mb"] for r in [figures["first_run"], figures["no_change"], *runs]]
    if "peak_mb" in limits and max(peaks) > limits["peak_mb"]:
        found.append(f"{size} Services: controller peak {max(peaks)} MB > {limits['peak_mb']} MB")
    return found


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    mode = "quick" if quick else "full"
    sizes, count, engines, sweep = SIZES[mode], SAMPLES[mode], OTHER_ENGINES[mode], SWEEP[mode]
    measurement = Measurement(
        parameters={"sizes": list(sizes), "samples_per_size": count, "other_engines": list(engines),
                    "measured": "wall time of ansible-playbook from its start to the first 200 through the VIP",
                    "scale_services": "half NodePort, half backend: pod, all on s2's pods, health-check: none (see the docstring)"},
        ours=[], baseline=[], ours_label="site.yml, one new Service", baseline_label="k8s_info + Jinja, then template + reload")
    site = Site(workdir)
    with _lab.lab(deadline):
        delete(deadline)  # what an interrupted run left
        try:
            for size in sizes:
                ours, base, figures = measure_size(site, size, count, engines, sweep, workdir, deadline)
                measurement.parameters[str(size)] = figures
                measurement.misses += misses(size, figures)
                # The largest size is what the goal judges.
                measurement.ours, measurement.baseline = ours, base
                # The edges forget the scale Services before the next size, or before the lab is left
                # to someone else: the guard would stop a run that removes them all, so this one overrides it.
                delete(deadline)
                if size != sizes[-1] or not _lab.discarded():
                    site.run("-e", "k8sedge_fail_static_override=true")
        finally:
            delete(deadline + steps.CLEANUP_RESERVE)
    return measurement
