"""Benchmark 7 (TCP): p99 latency through the edge's TCP frontend (port 9999, the design note's
tcp-services entry) against straight to the backend; see bench/_dataplane.py."""
from __future__ import annotations

from pathlib import Path

from bench import _dataplane
from bench.harness import Measurement

TITLE = "Data-plane overhead, TCP"
GOAL = _dataplane.GOAL
TIME_BOUND = _dataplane.TIME_BOUND


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    return _dataplane.measure(quick, deadline, edge_port=9999, mode="TCP")
