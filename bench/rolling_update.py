"""Benchmark: a rolling update behind the edge under load, with and without readiness gates.

lab/testlib/rolling.py's rolling restart (4 replicas, maxSurge 1, maxUnavailable 0, a 5 s drain
per Pod, one request every 50 ms through the pool's VIP), three ways in the same run, each on a
Deployment of its own so one template serves one way:

- ours: the Pods list the readiness gate lb.k8sedge.io/edge-ready; bin/k8sedge-watch with
  --fast-path --readiness-gates --gates-kubeconfig: a new Pod is Ready only once both edges
  serve it, so the rollout removes an old Pod only then.
- baseline, fast path: no gate, the same watcher without --readiness-gates.
- baseline, playbook: no gate, the watcher without --fast-path: endpoints.yml carries each change.
- beside them (full mode, no goal): the gate with the playbook path, an edge several seconds
  behind each change. The gate holds new Pods back until the edge serves them; an old Pod's
  removal is still the drain's to cover.

Reported per sample: failed requests and the rollout's duration. The goal: 0 failed requests with
gates, in every sample; the baselines show what the gate buys. Quick mode: one sample with gates.
"""
from __future__ import annotations

from pathlib import Path

from bench import _lab
from bench.harness import Goal, Measurement, Sample
from lab.testlib import converge as c
from lab.testlib import rolling, steps
from lab.topology import KUBECONFIG_GATES

TITLE = "Rolling update under load: failed requests through the VIP"
GOAL = Goal("0 failed requests through the VIP during a rolling update with readiness gates, in every sample", max_ours=0.0)
TIME_BOUND = {"full": 2400, "quick": 420}

SAMPLES = {"full": 3, "quick": 1}
WAYS = {  # way -> (the Pods list the gate, the watcher's options)
    "gates": (True, ("--fast-path", "--readiness-gates", f"--gates-kubeconfig={KUBECONFIG_GATES}")),
    "fast-path": (False, ("--fast-path",)),
    "playbook": (False, ()),
    # Reported beside the goal: the gate with an edge that lags (endpoints.yml, several seconds a change).
    "gates-playbook": (True, ("--readiness-gates", f"--gates-kubeconfig={KUBECONFIG_GATES}")),
}


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    mode = "quick" if quick else "full"
    ways = ("gates",) if quick else tuple(WAYS)
    manifests = "---\n".join(rolling.manifest(f"rolling-{way}", WAYS[way][0]) for way in ways)
    measurement = Measurement(
        parameters={"replicas": rolling.REPLICAS, "strategy": "maxSurge 1, maxUnavailable 0", "drain": "5 s after SIGTERM",
                    "load": f"one request every {rolling.EVERY * 1000:.0f} ms through {rolling.VIP}, new connection each,"
                            " failed without a 200 within 1 s",
                    "samples_per_way": SAMPLES[mode], "ways": list(ways), "runs": []},
        ours=[], baseline=[], unit="failed requests",
        ours_label="readiness gates, watcher fast path", baseline_label="no gates: watcher fast path; watcher with endpoints.yml")
    with _lab.lab(deadline):
        c.kubectl("apply", "-f", "-", stdin=manifests)
        try:
            # The gated Pods are Ready only once site.yml has served them: their containers first.
            for way in ways:
                rolling.wait_for(lambda way=way: rolling.containers_ready(f"rolling-{way}") == rolling.REPLICAS, 120,
                                 f"rolling-{way}: {rolling.REPLICAS} Pods with ready containers")
            c.playbook("playbooks/site.yml", steps.left(deadline), "-e", "k8sedge_readiness_gates=true")
            for way in ways:
                rolling.wait_for(lambda way=way: rolling.ready_replicas(f"rolling-{way}") == rolling.REPLICAS, 60,
                                 f"rolling-{way}: {rolling.REPLICAS} ready replicas")
            for way in ways:
                for _ in range(SAMPLES[mode]):
                    if steps.left(deadline) < rolling.ROLLOUT_SECONDS + 120:
                        measurement.errors.append(f"time bound reached before a {way} sample")
                        break
                    sample = {"way": way, **rolling.restart_under_load(f"rolling-{way}", WAYS[way][1], workdir, deadline)}
                    measurement.parameters["runs"].append(sample)
                    if way in ("fast-path", "playbook"):
                        measurement.baseline.append(Sample(float(sample["failed"])))
                    elif way == "gates":
                        measurement.ours.append(Sample(float(sample["failed"])))
        finally:
            c.kubectl("delete", "--wait=false", "-f", "-", stdin=manifests)
            if not _lab.discarded():
                c.playbook("playbooks/site.yml", steps.left(deadline + steps.CLEANUP_RESERVE), "-e", "k8sedge_fail_static_override=true")
    gated = [r for r in measurement.parameters["runs"] if r["way"] == "gates"]
    if any(r["failed"] for r in gated):
        measurement.misses.append(f"{sum(1 for r in gated if r['failed'])} of {len(gated)} samples with gates failed requests")
    return measurement
