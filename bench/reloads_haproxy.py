"""Benchmark 5 (haproxy): failed requests while haproxy reloads under keep-alive load.

wrk -t2 -c20 from the lab's client through edge1 (`Host: s2.pctest`) for 10 s (quick: 4 s) while
haproxy is reloaded 5 times (quick: 3). Ours: the edge_haproxy role's config and reload
(master-worker, `systemctl reload`, `option idle-close-on-response`). The baseline: the same
config without `option idle-close-on-response`, reloaded the same way, what a hand-made setup
that renders the rest alike gets. The role is applied by molecule/edge_haproxy/converge.yml, after
its prepare.yml removed nginx if another run left it on the edge's ports; the baseline edits the
applied file in place. At the end haproxy is purged (cleanup.yml) if the run
installed it (unless the lab goes down with the run), else its config is put back and reloaded. The lab is brought up and taken down
again if it was down. Samples: all of ours, then all of the baseline.
"""
from __future__ import annotations

from pathlib import Path

from bench import _lab
from bench.harness import Goal, Measurement
from lab.testlib import steps
from lab.topology import host

TITLE = "Reloads under load, haproxy"
GOAL = Goal("ours 0 failed requests", max_ours=0)
TIME_BOUND = {"full": 600, "quick": 150}

EDGE = "edge1"
CLEANUP = "molecule/edge_haproxy/cleanup.yml"
CONFIG = "/etc/haproxy/haproxy.cfg"
SAVED = "/etc/haproxy/haproxy.cfg.bench-saved"
IDLE_CLOSE = "option idle-close-on-response"


def _idle_close_lines(deadline: float) -> int:
    return int(steps.on_host(EDGE, "grep", "-c", IDLE_CLOSE, CONFIG, deadline=deadline, check=False).stdout.strip() or 0)


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    count, seconds, reloads = (1, 4, 3) if quick else (3, 10, 5)
    measurement = Measurement(
        parameters={"edge": EDGE, "load": "wrk -t2 -c20 (keep-alive), Host: s2.pctest", "seconds_per_run": seconds,
                    "reloads_per_run": reloads, "samples": count,
                    "ours_method": "edge_haproxy role: master-worker, systemctl reload (SIGUSR2 to the master), "
                                   "option idle-close-on-response",
                    "baseline_method": "the role's config without option idle-close-on-response, systemctl reload",
                    "measured": "wrk socket errors + non-2xx/3xx responses per run"},
        ours=[], baseline=[], unit="failed requests",
        ours_label="role: master-worker reload + idle-close-on-response",
        baseline_label="same config without idle-close-on-response",
    )
    reload = steps.haproxy_reloader(EDGE, deadline)  # what tests/lab/test_haproxy_reload.py reloads with too
    with _lab.lab(deadline):
        was_installed = steps.installed(EDGE, "haproxy", deadline)
        try:
            steps.converge(EDGE, "edge_haproxy", deadline)
            address = host(EDGE).ip
            measurement.parameters["ours_idle_close_lines"] = _idle_close_lines(deadline)
            ours_runs: list[steps.Run] = []
            measurement.ours = _lab.samples(count, address, seconds, reloads, reload, deadline, ours_runs)

            steps.on_host(EDGE, "cp", "-p", CONFIG, SAVED, deadline=deadline)
            steps.on_host(EDGE, "sed", "-i", f"/{IDLE_CLOSE}/d", CONFIG, deadline=deadline)
            measurement.parameters["baseline_idle_close_lines"] = _idle_close_lines(deadline)
            if not reload():
                raise steps.LabError("haproxy did not reload into the baseline config")
            baseline_runs: list[steps.Run] = []
            measurement.baseline = _lab.samples(count, address, seconds, reloads, reload, deadline, baseline_runs)
        finally:
            if was_installed:
                steps.on_host(EDGE, "sh", "-c", f"test ! -e {SAVED} || {{ mv {SAVED} {CONFIG} && systemctl reload haproxy; }}",
                              deadline=deadline + steps.CLEANUP_RESERVE, check=False)
            elif not _lab.discarded():
                # The cleanup may use the reserve the steps above left for it.
                steps.playbook(CLEANUP, EDGE, deadline + steps.CLEANUP_RESERVE, reserve=0)
    measurement.parameters.update({"ours": _lab.totals(ours_runs), "baseline": _lab.totals(baseline_runs)})
    if len(measurement.ours) < count or len(measurement.baseline) < count:
        measurement.parameters["stopped_early"] = "time bound reached"
    return measurement
