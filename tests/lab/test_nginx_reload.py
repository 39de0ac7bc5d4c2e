"""Reloads under load: wrk with keep-alive from the lab's client through an nginx edge while nginx
reloads five times in ten seconds, and the requests that failed.

The role is applied with its defaults (molecule/edge_nginx/converge.yml) on one edge
(K8SEDGE_NGINX_EDGE, edge2 by default) and purged afterwards unless nginx was already running
there. What was measured, and why the bound is what it is: roles/edge_nginx/README.md.
"""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from lab.topology import REPO, host
from tests.lab.conftest import LABCTL, in_host

pytestmark = pytest.mark.usefixtures("lab")

EDGE = os.environ.get("K8SEDGE_NGINX_EDGE", "edge2")
DURATION_S = 10
RELOADS = 5
CONNECTIONS = 50
# Measured with the role's defaults (keepalive_timeout 0): 0 failed requests in every run
# (6 runs of 10 s with 5 reloads, 10 and 50 connections). With keep-alive on (65 s) the same
# load lost 5 to 29 requests a run at 50 connections. 2 leaves room for a stray error that
# is not the reload's doing and still fails the keep-alive configuration.
MAX_FAILED = 2
MIN_REQUESTS = 2000  # the lab's echo pods answer about 800 requests/s through one edge


def _playbook(name: str) -> None:
    result = subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), f"molecule/edge_nginx/{name}"], cwd=REPO, capture_output=True,
        text=True, timeout=600, env={**os.environ, "K8SEDGE_EDGES": EDGE, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"})
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def nginx_edge():
    was_running = in_host(EDGE, "systemctl", "is-active", "--quiet", "nginx", check=False).returncode == 0
    _playbook("converge.yml")
    yield host(EDGE).ip
    if not was_running:
        _playbook("cleanup.yml")


def _workers() -> set[str]:
    master = in_host(EDGE, "cat", "/run/nginx.pid").stdout.strip()
    return set(in_host(EDGE, "ps", "-o", "pid=", "--ppid", master).stdout.split())


def _wrk_counts(output: str) -> dict[str, int]:
    requests = re.search(r"(\d+) requests in", output)
    assert requests, output
    counts = {"requests": int(requests.group(1)), "connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx": 0}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:
        counts.update(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        counts["non_2xx"] = int(non_2xx.group(1))
    return counts


def test_reloads_under_keepalive_load_lose_no_requests(nginx_edge):
    wrk = subprocess.Popen(
        [LABCTL, "exec", "client", "--", "wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-H", "Host: s2.pctest",
         f"http://{nginx_edge}/"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        reloaded = 0
        for _ in range(RELOADS):
            before = _workers()
            in_host(EDGE, "systemctl", "reload", "nginx")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not _workers() - before:
                time.sleep(0.05)
            reloaded += bool(_workers() - before)
            time.sleep((DURATION_S - 3) / RELOADS)
        output, _ = wrk.communicate(timeout=DURATION_S + 30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    counts = _wrk_counts(output)
    failed = counts["connect"] + counts["read"] + counts["write"] + counts["timeout"] + counts["non_2xx"]
    print(f"nginx reload under load on {EDGE}: {counts}, reloads={reloaded}, failed={failed}")
    assert reloaded == RELOADS, f"nginx started new workers for {reloaded} of {RELOADS} reloads"
    assert counts["requests"] >= MIN_REQUESTS, output
    assert failed <= MAX_FAILED, f"{failed} failed requests during {RELOADS} reloads: {counts}\n{output}"
