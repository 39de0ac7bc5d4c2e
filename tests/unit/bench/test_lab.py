"""bench/_lab.py: the reload benchmarks stop near the deadline."""
from __future__ import annotations

import time

from bench import _lab
from lab.testlib.steps import CLEANUP_RESERVE, Run


def test_no_sample_is_started_that_would_eat_the_cleanup_reserve():
    runs: list[Run] = []
    deadline = time.monotonic() + CLEANUP_RESERVE + 10
    assert _lab.samples(3, "10.213.0.11", 10, 5, lambda: True, deadline, runs) == []
    assert runs == []
