"""Benchmark 4: convergence, from an API change to traffic through the edge that shows it.

A pod-mode Service of its own (default/conv, 4 echo pods, host conv.pctest: the edge targets the
pods) is created and served first. Then bin/k8sedge-watch runs while pods change through the API
(scale up by one, replace a pod; alternating), and curl from the lab's client through edge1
waits for the new pod to answer. Ours: the watcher's fast path, playbooks/endpoints.yml on an
endpoint-only change (haproxy: config on disk, servers through the runtime API, no reload). The
baseline: the same watcher running playbooks/site.yml for every change (the full rollout: guard,
canary host by host, probes, promote). A sample is the time from the API change the watcher saw
(the EndpointSlice update that made the new pod a target) to the new pod's first answer through
the edge; the parameters also break it down (API to event, the playbook run) and give the time
from the kubectl request. At the end the Service is deleted and the edges converged without it.
"""
from __future__ import annotations

import time
from pathlib import Path

from bench import _converge as c
from bench import _lab
from bench.harness import Goal, Measurement, Sample

TITLE = "Convergence: API change to traffic through the edge"
GOAL = Goal("endpoint-only change through the runtime path under 1 s median", max_ours=1.0)
TIME_BOUND = {"full": 1800, "quick": 480}

EDGE = "edge1"
REPLICAS = 4  # replacing one of four removes 25 %: within the fail-static guard's 30 %
INVENTORY = "inventory/lab/hosts.yml"  # the edges and their variables, without a second model read


def _samples(watch: c.Watch, count: int, replicas: int, deadline: float, details: list[dict]) -> tuple[list[Sample], int]:
    samples = []
    for index in range(count):
        if _lab.left(deadline) < 120:
            break
        change = ("scale up", "pod replaced")[index % 2]
        try:
            sample, replicas = c.endpoint_change(watch, EDGE, change, replicas, seconds=min(240.0, _lab.left(deadline)))
        except c.ConvergeError as err:
            samples.append(Sample(None, error=str(err)[-2000:]))
            continue
        details.append(sample.figures())
        error = "" if sample.rc == 0 else f"{sample.playbook} exited {sample.rc}"
        samples.append(Sample(round(sample.traffic - sample.api, 3), error=error))
    return samples, replicas


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    count = 1 if quick else 20
    measurement = Measurement(
        parameters={"edge": EDGE, "service": f"default/{c.NAME} (pod mode, {REPLICAS} replicas to start)", "samples": count,
                    "changes": "scale up by one and replace a pod, alternating",
                    "measured": "API change seen by the watcher (EndpointSlice) -> first answer of the new pod through the edge",
                    "ours_method": "bin/k8sedge-watch -> playbooks/endpoints.yml (haproxy runtime API, no reload)",
                    "baseline_method": "bin/k8sedge-watch --endpoints playbooks/site.yml (full rollout for every change)"},
        ours=[], baseline=[], ours_label="endpoints.yml (runtime path)", baseline_label="site.yml (full rollout)",
    )
    ours_details: list[dict] = []
    baseline_details: list[dict] = []
    with _lab.lab(deadline):
        try:
            c.create(REPLICAS)
            c.converge("playbooks/endpoints.yml", _lab.left(deadline), "-i", INVENTORY)
            replicas = REPLICAS
            for side, extra, details in (("ours", (), ours_details),
                                         ("baseline", ("--endpoints", "playbooks/site.yml"), baseline_details)):
                watch = c.Watch.start(workdir, "-i", INVENTORY, *extra)
                try:
                    watch.wait_first_generation()
                    samples, replicas = _samples(watch, count, replicas, deadline, details)
                finally:
                    watch.stop()
                    (workdir / f"watch-{side}.log").write_text(watch.log.read_text())
                setattr(measurement, side, samples)
        finally:
            c.delete()
            time.sleep(1)
            c.converge("playbooks/endpoints.yml", _lab.left(deadline, reserve=0) + _lab.CLEANUP_RESERVE, "-i", INVENTORY,
                       "-e", "k8sedge_fail_static_override=true")
    measurement.parameters.update({"ours_breakdown": ours_details, "baseline_breakdown": baseline_details})
    if len(measurement.ours) < count or len(measurement.baseline) < count:
        measurement.parameters["stopped_early"] = "time bound reached"
    return measurement
