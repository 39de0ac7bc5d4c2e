"""Benchmark 2 (haproxy): render edge_haproxy's tree at scale and `haproxy -c` it; see bench/_render.py."""
from __future__ import annotations

from bench import _render

TITLE = "Render and validate at scale, haproxy"
GOAL = _render.GOAL
TIME_BOUND = _render.TIME_BOUND
run = _render.module("haproxy")
