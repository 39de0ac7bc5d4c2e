"""Benchmark 2 (nginx): render edge_nginx's release at scale and `nginx -t` it; see bench/_render.py."""
from __future__ import annotations

from bench import _render

TITLE = "Render and validate at scale, nginx"
GOAL = _render.GOAL
TIME_BOUND = _render.TIME_BOUND
run = _render.module("nginx")
