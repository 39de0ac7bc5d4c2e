"""Reloads under load: wrk with keep-alive from the lab's client through an nginx edge while nginx
reloads five times in ten seconds, and the requests that failed.

Driven like the benchmark (bench/reloads_nginx.py, with lab/testlib/steps.py): the scenario's prepare.yml
removes haproxy if another run left it on the edge's ports, the role is applied with its defaults
(molecule/edge_nginx/converge.yml) on one edge (K8SEDGE_NGINX_EDGE, edge2 by default) and nginx is
purged afterwards unless it was already running there. What was measured, and why the
bound is what it is: roles/edge_nginx/README.md.
"""
from __future__ import annotations

import os
import time

import pytest

from lab.testlib import steps
from lab.topology import host
from tests.lab.conftest import in_host

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
TIME_BOUND_S = 900  # converge, the run and the cleanup


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + TIME_BOUND_S


@pytest.fixture(scope="module")
def nginx_edge(deadline):
    was_running = in_host(EDGE, "systemctl", "is-active", "--quiet", "nginx", check=False).returncode == 0
    with steps.role_on(EDGE, "edge_nginx", deadline, keep=was_running):
        yield host(EDGE).ip


def test_reloads_under_keepalive_load_lose_no_requests(nginx_edge, deadline):
    # The reload the benchmark measures (bench/reloads_nginx.py), on this test's edge.
    reload = steps.nginx_reloader(EDGE, ("systemctl", "reload", "nginx"), deadline)
    run = steps.wrk_during_reloads(nginx_edge, DURATION_S, RELOADS, reload, connections=CONNECTIONS)
    print(f"nginx reload under load on {EDGE}: {run}, failed={run.failed}")
    assert run.confirmed == RELOADS, f"nginx started new workers for {run.confirmed} of {RELOADS} reloads"
    assert run.requests >= MIN_REQUESTS, run
    assert run.failed <= MAX_FAILED, f"{run.failed} failed requests during {RELOADS} reloads: {run}"
