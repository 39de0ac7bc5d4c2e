"""Benchmark 7 (HTTP): p99 latency through the edge's HTTP frontend (port 80, Host: s2.pctest)
against straight to the backend; see bench/_dataplane.py."""
from __future__ import annotations

from pathlib import Path

from bench import _dataplane
from bench.harness import Measurement

TITLE = "Data-plane overhead, HTTP"
GOAL = _dataplane.GOAL
TIME_BOUND = _dataplane.TIME_BOUND


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    return _dataplane.measure(quick, deadline, edge_port=80, mode="HTTP")
