"""Runs last in tests/lab: `labctl down` must leave nothing of the lab behind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import network, procs
from tests.lab.conftest import labctl

pytestmark = pytest.mark.usefixtures("lab")


def _lab_processes() -> dict[int, str]:
    """PID -> start time of everything the lab runs: tracked daemons and all inside its namespaces."""
    pids = set(procs.running().values())
    for netns in network.lab_namespaces():
        pids.update(network.netns_pids(netns))
    return {pid: started for pid in pids if (started := procs.start_time(pid)) is not None}


def test_lab_down_leaves_no_namespace_mount_link_or_process():
    before = _lab_processes()
    assert len(network.lab_namespaces()) >= 5 and len(before) >= 10, before
    labctl("down")
    assert json.loads(labctl("leftovers").stdout) == {
        "namespaces": [], "links": [], "mounts": [], "processes": []}
    survivors = {pid for pid, started in before.items() if procs.is_alive(pid, started)}
    assert not survivors, {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in survivors}
    assert not list(Path("/etc/netns").glob("k8sedge-*"))
    labctl("down")  # twice is safe
