"""Benchmark 5 (nginx): failed requests while nginx reloads under keep-alive load.

wrk -t2 -c20 from the lab's client through edge2 (`Host: s2.pctest`) for 10 s (quick: 4 s) while
nginx is reloaded 5 times (quick: 3). Ours: the edge_nginx role with its defaults
(`keepalive_timeout 0`), reloaded as its handler does (`systemctl reload nginx`). The baseline:
the same config with nginx's usual keep-alive (`keepalive_timeout 65s`, what
`edge_nginx_keepalive_timeout: 65` renders), reloaded by hand (`nginx -s reload`), what a
hand-made setup gets. The role is applied by molecule/edge_nginx/converge.yml, after its
prepare.yml removed haproxy if another run left it on the edge's ports; the baseline edits the
live file in place. At the end nginx is purged (cleanup.yml) if it was not running before (unless
the lab goes down with the run), else the live file is put back and nginx reloaded. The lab is
brought up and taken down again if it was down. Samples: all of ours, then all of the baseline.
"""
from __future__ import annotations

from pathlib import Path

from bench import _lab
from bench.harness import Goal, Measurement
from lab.testlib import steps
from lab.topology import host

TITLE = "Reloads under load, nginx"
GOAL = Goal("ours 0 failed requests", max_ours=0)
TIME_BOUND = {"full": 600, "quick": 150}

EDGE = "edge2"
CLEANUP = "molecule/edge_nginx/cleanup.yml"
BASELINE_KEEPALIVE = 65
# The file of the live config that sets keepalive_timeout, as nginx -T names it.
KEEPALIVE_FILE = ("nginx -T 2>/dev/null | awk '/^# configuration file /{file = $4; sub(/:$/, \"\", file)}"
                  " /^keepalive_timeout /{print file; exit}'")


def _keepalive(deadline: float) -> str:
    """The keepalive_timeout lines of the live config, as nginx -T prints them."""
    out = steps.on_host(EDGE, "nginx", "-T", deadline=deadline, check=False).stdout
    return "; ".join(sorted({line.strip() for line in out.splitlines() if line.strip().startswith("keepalive_timeout")}))


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    count, seconds, reloads = (1, 4, 3) if quick else (3, 10, 5)
    measurement = Measurement(
        parameters={"edge": EDGE, "load": "wrk -t2 -c20 (keep-alive), Host: s2.pctest", "seconds_per_run": seconds,
                    "reloads_per_run": reloads, "samples": count,
                    "ours_method": "edge_nginx role defaults (keepalive_timeout 0), systemctl reload nginx",
                    "baseline_method": f"the role's config with keepalive_timeout {BASELINE_KEEPALIVE}s (edited in place), nginx -s reload",
                    "measured": "wrk socket errors + non-2xx/3xx responses per run"},
        ours=[], baseline=[], unit="failed requests",
        ours_label="role: keepalive_timeout 0, systemctl reload",
        baseline_label=f"keepalive_timeout {BASELINE_KEEPALIVE}s, nginx -s reload",
    )
    with _lab.lab(deadline):
        was_running = steps.on_host(EDGE, "systemctl", "is-active", "--quiet", "nginx", deadline=deadline,
                                    check=False).returncode == 0
        live = saved = ""
        try:
            address = host(EDGE).ip
            steps.converge(EDGE, "edge_nginx", deadline)
            measurement.parameters["ours_config"] = _keepalive(deadline)
            ours_runs: list[steps.Run] = []
            measurement.ours = _lab.samples(count, address, seconds, reloads,
                                            steps.nginx_reloader(EDGE, ("systemctl", "reload", "nginx"), deadline), deadline, ours_runs)

            live = steps.on_host(EDGE, "sh", "-c", KEEPALIVE_FILE, deadline=deadline).stdout.strip()
            if not live:
                raise steps.LabError("nginx -T shows no keepalive_timeout")
            saved = f"{live}.bench-saved"
            steps.on_host(EDGE, "cp", "-p", live, saved, deadline=deadline)
            steps.on_host(EDGE, "sed", "-i", f"s/^keepalive_timeout .*/keepalive_timeout {BASELINE_KEEPALIVE}s;/", live,
                          deadline=deadline)
            if not steps.nginx_reloader(EDGE, ("nginx", "-s", "reload"), deadline)():
                raise steps.LabError("nginx did not reload into the baseline config")
            measurement.parameters["baseline_config"] = _keepalive(deadline)
            baseline_runs: list[steps.Run] = []
            measurement.baseline = _lab.samples(count, address, seconds, reloads,
                                                steps.nginx_reloader(EDGE, ("nginx", "-s", "reload"), deadline), deadline, baseline_runs)
        finally:
            if was_running and saved:
                steps.on_host(EDGE, "sh", "-c", f"mv {saved} {live} && systemctl reload nginx",
                              deadline=deadline + steps.CLEANUP_RESERVE, check=False)
            elif not was_running and not _lab.discarded():
                # The cleanup may use the reserve the steps above left for it.
                steps.playbook(CLEANUP, EDGE, deadline + steps.CLEANUP_RESERVE, reserve=0)
    measurement.parameters.update({"ours": _lab.totals(ours_runs), "baseline": _lab.totals(baseline_runs)})
    if len(measurement.ours) < count or len(measurement.baseline) < count:
        measurement.parameters["stopped_early"] = "time bound reached"
    return measurement
