"""Benchmark 5 (nginx): failed requests while nginx reloads under keep-alive load.

wrk -t2 -c20 from the lab's client through edge2 (`Host: s2.pctest`) for 10 s (quick: 5 s) while
nginx is reloaded 5 times (quick: 3). Ours: the edge_nginx role with its defaults
(`keepalive_timeout 0`), reloaded as its handler does (`systemctl reload nginx`). The baseline:
the same role's config with nginx's usual keep-alive (`edge_nginx_keepalive_timeout: 65`),
reloaded by hand (`nginx -s reload`), what a hand-made setup gets. Both configs are applied by
molecule/edge_nginx/converge.yml, after its prepare.yml removed haproxy if another run left it on the
edge's ports. At the end nginx is purged (cleanup.yml) if it was not running
before (unless the lab goes down with the run), else the role's defaults are applied again. The lab is brought up and taken down again
if it was down. Samples: all of ours, then all of the baseline.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import _lab
from bench.harness import Goal, Measurement
from lab.topology import host

TITLE = "Reloads under load, nginx"
GOAL = Goal("ours 0 failed requests", max_ours=0)
TIME_BOUND = {"full": 600, "quick": 150}

EDGE = "edge2"
PREPARE, CONVERGE, CLEANUP = (f"molecule/edge_nginx/{name}.yml" for name in ("prepare", "converge", "cleanup"))
BASELINE_KEEPALIVE = 65


def _workers(deadline: float, edge: str = EDGE) -> set[str]:
    master = _lab.on_host(edge, "cat", "/run/nginx.pid", deadline=deadline).stdout.strip()
    return set(_lab.on_host(edge, "ps", "-o", "pid=", "--ppid", master, deadline=deadline, check=False).stdout.split())


def _keepalive(deadline: float) -> str:
    """The keepalive_timeout lines of the live config, as nginx -T prints them."""
    out = _lab.on_host(EDGE, "nginx", "-T", deadline=deadline, check=False).stdout
    return "; ".join(sorted({line.strip() for line in out.splitlines() if line.strip().startswith("keepalive_timeout")}))


def reloader(command: tuple[str, ...], deadline: float, edge: str = EDGE) -> Callable[[], bool]:
    """`command` on the edge, saying whether nginx started new workers (what
    tests/lab/test_nginx_reload.py reloads with too)."""
    def reload() -> bool:
        before = _workers(deadline, edge)
        _lab.on_host(edge, *command, deadline=deadline)
        return _lab.wait_for(lambda: bool(_workers(deadline, edge) - before)) is not None
    return reload


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    count, seconds, reloads = (1, 5, 3) if quick else (3, 10, 5)
    measurement = Measurement(
        parameters={"edge": EDGE, "load": "wrk -t2 -c20 (keep-alive), Host: s2.pctest", "seconds_per_run": seconds,
                    "reloads_per_run": reloads, "samples": count,
                    "ours_method": "edge_nginx role defaults (keepalive_timeout 0), systemctl reload nginx",
                    "baseline_method": f"edge_nginx_keepalive_timeout: {BASELINE_KEEPALIVE}, nginx -s reload",
                    "measured": "wrk socket errors + non-2xx/3xx responses per run"},
        ours=[], baseline=[], unit="failed requests",
        ours_label="role: keepalive_timeout 0, systemctl reload",
        baseline_label=f"keepalive_timeout {BASELINE_KEEPALIVE}s, nginx -s reload",
    )
    with _lab.lab(deadline):
        was_running = _lab.on_host(EDGE, "systemctl", "is-active", "--quiet", "nginx", deadline=deadline,
                                   check=False).returncode == 0
        try:
            address = host(EDGE).ip
            _lab.playbook(PREPARE, EDGE, deadline)
            _lab.playbook(CONVERGE, EDGE, deadline)
            measurement.parameters["ours_config"] = _keepalive(deadline)
            ours_runs: list[_lab.Run] = []
            measurement.ours = _lab.samples(count, address, seconds, reloads,
                                            reloader(("systemctl", "reload", "nginx"), deadline), deadline, ours_runs)

            _lab.playbook(CONVERGE, EDGE, deadline, {"edge_nginx_keepalive_timeout": BASELINE_KEEPALIVE})
            measurement.parameters["baseline_config"] = _keepalive(deadline)
            baseline_runs: list[_lab.Run] = []
            measurement.baseline = _lab.samples(count, address, seconds, reloads,
                                                reloader(("nginx", "-s", "reload"), deadline), deadline, baseline_runs)
        finally:
            # The cleanup may use the reserve the steps above left for it.
            if was_running or not _lab.discarded():
                _lab.playbook(CONVERGE if was_running else CLEANUP, EDGE, deadline + _lab.CLEANUP_RESERVE, reserve=0)
    measurement.parameters.update({"ours": _lab.totals(ours_runs), "baseline": _lab.totals(baseline_runs)})
    if len(measurement.ours) < count or len(measurement.baseline) < count:
        measurement.parameters["stopped_early"] = "time bound reached"
    return measurement
