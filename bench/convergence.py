"""Benchmark 4: convergence, from an API change to the first request through every edge that shows it.

bin/k8sedge-watch runs against the lab while pods and Services change through the API; a probe in
the lab's client namespace asks both edges, request after request (each on a new connection),
which pod answers (lab/testlib/pod_probe.py). A sample is the time from the API change the watcher saw
for the generation that carried the change (its first watch event) to the first request that
showed it on the last of the two edges: the new pod answering (scale up, pod replaced) or the
removed pod no longer answering, for 1 s of other answers (scale down). Endpoint-only changes move
the pods of default/s2, which default/direct (host direct.pctest) sends to straight (pod mode).

Ours: `bin/k8sedge-watch --fast-path`: an endpoint-only change goes into haproxy's runtime API
over the persistent SSH connections, then endpoints.yml follows in the background.
Baseline (full mode): the same watcher without --fast-path: endpoints.yml carries the change.
Structural (full mode, reported in the parameters): a new pod-mode Service per sample, which the
watcher rolls out with site.yml (canary, probes, keepalived, two edges). Judged, as the issue
measures it, by the first answer through the pool's VIP (the VRRP master's edge, the canary);
the time until the last of both edges answers is reported beside it.

Quick mode measures the fast path alone on one scale up and its scale down, with the playbooks
logged only (--dry-run): the edges end where they started (the scale-down removes the pod the
scale-up added), so nothing needs converging afterwards; the edges are converged first only if
they do not serve the cluster's model (endpoints.yml).
"""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from bench import _lab
from bench.harness import Goal, Measurement, Sample, percentile
from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import REPO

TITLE = "Convergence: API change to traffic through every edge"
GOAL = Goal("API change to traffic: endpoint-only under 1 s median through both edges; structural (full run) under 15 s"
            " median through the pool's VIP, as the issue measures it (both edges reported beside it)", max_ours=1.0)
STRUCTURAL_GOAL_S = 15.0
# Quick: about 20-25 s on a lab that is up with haproxy on the edges; a cold lab (make test's
# bench smoke) adds `labctl up`, endpoints.yml installing haproxy on both edges, and `labctl down`.
TIME_BOUND = {"full": 3600, "quick": 240}

INVENTORY = "inventory/lab/hosts.yml"  # the edges and their variables, without a second model read
CYCLE = ("scale up", "scale down", "pod replaced")
FULL = {"cycles": 20, "baseline_cycles": 3, "structural": 20}
SAMPLE_SECONDS = 120.0  # one change, API to traffic, at most


def _left(deadline: float, reserve: float) -> float:
    return deadline - time.monotonic() - reserve


def _serving(deadline: float) -> bool:
    """Whether both edges run haproxy on the cluster's current model."""
    generation = c.model_generation()
    for edge in c.EDGES:
        result = steps.on_host(edge, "sh", "-c", f"systemctl is-active --quiet haproxy && {steps.SERVED_GENERATION}", deadline=deadline, check=False)
        if result.returncode != 0 or result.stdout.strip() != generation:
            return False
    return True


def _samples(watch: c.Watch, changes: list[str], deadline: float, details: list[dict], reserve: float,
             one_at_a_time: bool = False) -> list[Sample]:
    """One sample per change; `one_at_a_time`: each change waits until the playbook runs of the
    one before have ended (so a playbook-carried change is not measured queued behind another)."""
    samples, replicas = [], c.REPLICAS
    try:
        for change in changes:
            seconds = min(SAMPLE_SECONDS, _left(deadline, reserve))
            if seconds < 15:
                break
            try:
                if one_at_a_time:
                    watch.wait_idle(seconds)
                sample, replicas = c.endpoint_change(watch, change, replicas, seconds)
            except c.ConvergeError as err:
                samples.append(Sample(None, error=str(err)[-2000:]))
                replicas = c.replicas()  # the change may have been made, or not
                continue
            details.append(sample.figures())
            error = "" if sample.ok else f"{sample.path} did not take it on every host"
            samples.append(Sample(sample.seconds, error=error))
    finally:
        c.scale(c.REPLICAS)
        c.wait_pods(c.REPLICAS)
    return samples


def _structural(watch: c.Watch, count: int, deadline: float, details: list[dict]) -> dict:
    """One new Service per sample; they are deleted together by the caller. Judged through the
    last of both edges; the time through the pool's VIP (the master's edge) is kept beside it."""
    vip = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]["default"][0]
    values, vip_values, errors = [], [], []
    for index in range(count):
        if _left(deadline, steps.CLEANUP_RESERVE) < 600:
            break
        try:
            watch.wait_idle(600)
            sample = c.new_service(watch, index, 600, vip)
        except c.ConvergeError as err:
            errors.append(str(err)[-1000:])
            continue
        details.append(sample.figures())
        values.append(sample.seconds)
        if sample.vip_traffic is not None:
            vip_values.append(sample.figures()["api_to_vip_traffic_s"])
    return {"n": len(values), "median_s": percentile(values, 0.5) if values else None,
            "p95_s": percentile(values, 0.95) if values else None,
            "through_vip": {"address": vip, "n": len(vip_values), "median_s": percentile(vip_values, 0.5) if vip_values else None,
                            "p95_s": percentile(vip_values, 0.95) if vip_values else None},
            "errors": errors}


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    measurement = Measurement(
        parameters={"edges": list(c.EDGES), "service": f"default/direct ({c.HOST}, pod mode) on the pods of default/{c.DEPLOYMENT}",
                    "measured": "first watch event of the generation that carried the change -> first request showing it through"
                                " the last of both edges (probe from the lab's client, one new connection per request)",
                    "ours_method": "bin/k8sedge-watch --fast-path (haproxy runtime API over persistent SSH; endpoints.yml follows)",
                    "baseline_method": "bin/k8sedge-watch (endpoints.yml carries the change)"},
        ours=[], baseline=[], ours_label="fast path (runtime API over SSH)", baseline_label="endpoints.yml",
    )
    details: dict[str, list[dict]] = {"ours": [], "baseline": [], "structural": []}
    reserve = 5.0 if quick else steps.CLEANUP_RESERVE
    with _lab.lab(deadline):
        if quick:
            if not _serving(deadline):
                c.playbook("playbooks/endpoints.yml", steps.left(deadline, reserve), "-i", INVENTORY, "-e", "k8sedge_fail_static_override=true")
                measurement.parameters["converged_first"] = "endpoints.yml (the edges did not serve the cluster's model)"
            watch = c.Watch.start(workdir, "-i", INVENTORY, "--fast-path", "--dry-run")
            try:
                watch.wait_log("fast path: runtime API of", 30)
                watch.wait_log("first generation", 30)
                measurement.ours = _samples(watch, ["scale up", "scale down"], deadline, details["ours"], reserve)
            finally:
                watch.stop()
                (workdir / "watch-ours.log").write_text(watch.log.read_text())
            measurement.parameters.update({"samples": "1 scale up, 1 scale down", "playbooks": "logged only (--dry-run)"})
        else:
            c.playbook("playbooks/site.yml", steps.left(deadline), "-i", "inventory/lab", "-e", "k8sedge_fail_static_override=true")
            watch = c.Watch.start(workdir, "-i", INVENTORY, "--fast-path")
            try:
                watch.wait_log("fast path: runtime API of", 60)
                watch.wait_log("first generation", 60)
                measurement.ours = _samples(watch, list(CYCLE) * FULL["cycles"], deadline, details["ours"], 600)
                structural = _structural(watch, FULL["structural"], deadline, details["structural"])
                watch.wait_idle(min(900.0, steps.left(deadline)))
            finally:
                watch.stop()
                (workdir / "watch-ours.log").write_text(watch.log.read_text())
                # All the new Services at once remove more targets than the fail-static guard lets
                # a run remove (it refuses them, as it should): the clean-up overrides it.
                c.delete_services()
                c.playbook("playbooks/site.yml", steps.left(deadline), "-i", "inventory/lab", "-e", "k8sedge_fail_static_override=true")
            watch = c.Watch.start(workdir, "-i", INVENTORY)
            try:
                watch.wait_log("first generation", 60)
                measurement.baseline = _samples(watch, list(CYCLE) * FULL["baseline_cycles"], deadline, details["baseline"], 0,
                                                one_at_a_time=True)
                watch.wait_idle(min(300.0, steps.left(deadline, 0)))
            finally:
                watch.stop()
                (workdir / "watch-baseline.log").write_text(watch.log.read_text())
            measurement.parameters.update({"samples": f"{FULL['cycles']} cycles of {', '.join(CYCLE)}; baseline {FULL['baseline_cycles']} cycles",
                                           "structural_new_service_site_yml": structural})
            through_vip = structural["through_vip"]["median_s"]
            if through_vip is None or through_vip > STRUCTURAL_GOAL_S:
                measurement.misses.append(f"structural {through_vip} s median through the VIP (goal {STRUCTURAL_GOAL_S:g} s)")
    for side in ("ours", "baseline"):
        by_change = {change: [d["api_to_traffic_s"] for d in details[side] if d["change"] == change] for change in CYCLE}
        measurement.parameters[f"{side}_by_change"] = {
            change: {"n": len(v), "median_s": percentile(v, 0.5), "p95_s": percentile(v, 0.95)} for change, v in by_change.items() if v}
        measurement.parameters[f"{side}_errors_during_samples"] = sum(d["errors"] for d in details[side])
    measurement.parameters.update({f"{side}_breakdown": rows for side, rows in details.items()})
    return measurement
