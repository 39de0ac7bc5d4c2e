"""Hitless reloads: wrk with keep-alive from the lab's client through haproxy on edge1 while
haproxy is reloaded five times in ten seconds; not one request may fail.

Driven like the benchmark (bench/reloads_haproxy.py, with lab/testlib/steps.py): the scenario's
prepare.yml removes nginx if another run left it on the edge's ports, the role is applied by
molecule/edge_haproxy/converge.yml, and haproxy is purged again by its cleanup.yml if this test
installed it.
"""
from __future__ import annotations

import time

import pytest

from lab.testlib import steps
from lab.topology import host
from tests.lab.conftest import in_host

pytestmark = pytest.mark.usefixtures("lab")

EDGE = "edge1"
DURATION_S = 10
RELOADS = 5
TIME_BOUND_S = 600  # converge, the run and the cleanup


def _installed() -> bool:
    return in_host(EDGE, "dpkg-query", "-W", "-f=${Status}", "haproxy", check=False).stdout.startswith("install ok installed")


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + TIME_BOUND_S


@pytest.fixture(scope="module")
def haproxy_edge(deadline):
    with steps.role_on(EDGE, "edge_haproxy", deadline, keep=_installed()):
        yield host(EDGE).ip


def test_no_request_fails_during_five_reloads_under_keep_alive_load(haproxy_edge, deadline):
    run = steps.wrk_during_reloads(haproxy_edge, DURATION_S, RELOADS, steps.haproxy_reloader(EDGE, deadline))
    print(f"wrk through {EDGE} during {RELOADS} reloads: {run}")
    assert run.confirmed == RELOADS, f"the master counted {run.confirmed} of {RELOADS} reloads"
    assert run.requests > 1000, run
    assert (run.socket_errors, run.non_2xx) == (0, 0), run
