"""The watcher's fast path on its own, against the lab: bin/k8sedge-watch --fast-path puts an
endpoint-only change into both edges' haproxy over its SSH forwards, with no playbook behind it.

The watcher runs with --endpoints set to a playbook that does nothing, so whatever the edges'
runtime API shows comes from the fast path (module_utils/_fast_path.py, the haproxy_runtime
module's Cli through `ssh -L` to the stats socket):
- scale default/s2 up: each edge's running servers (read with k8sedge.lb.haproxy_runtime) have
  the new pod, ready, while its config on disk does not name it; the fast path's record says
  both hosts applied, within a second;
- scale back down: the running servers no longer have it.
The edges start from endpoints.yml and end with it, so runtime and disk agree afterwards.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab.testlib import converge as c
from lab.topology import REPO
from tests.lab.conftest import ansible_playbook, in_host, succeeded

pytestmark = pytest.mark.usefixtures("lab")

INVENTORY = "inventory/lab/hosts.yml"
NOTHING = """\
- name: Leave the change to the watcher's fast path (tests/lab/test_fast_path.py)
  hosts: localhost
  gather_facts: false
  tasks: []
"""


def running_addresses(edge: str) -> set[str]:
    """The addresses of the servers in service in the edge's running haproxy, as the module reads them."""
    result = subprocess.run([str(REPO / ".venv/bin/ansible"), edge, "-i", INVENTORY, "-m", "k8sedge.lb.haproxy_runtime"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                            env={"PATH": f"{REPO / '.venv/bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "ANSIBLE_FORCE_COLOR": "0"})
    assert result.returncode == 0 and " => " in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    servers: dict[str, dict[str, dict[str, Any]]] = json.loads(result.stdout.split(" => ", 1)[1])["servers"]
    return {slot["address"] for slots in servers.values() for slot in slots.values() if slot["state"] == "ready"}


def on_disk(edge: str, address: str) -> bool:
    return in_host(edge, "grep", "-c", f" {address}:", "/etc/haproxy/haproxy.cfg", check=False).stdout.strip() not in ("", "0")


def applied(watch: c.Watch, after: int) -> dict:
    """The first fast-path record past the first `after` that both edges took."""
    def found() -> list[dict]:
        return [line for line in watch.lines()[after:] if line["path"] == "runtime" and line["ok"]
                and all(h["status"] == "applied" for h in line["hosts"].values())]
    return c._wait(found, 60, f"no fast-path apply on both edges within 60 s:\n{watch.tail()}")[0]


def test_the_fast_path_alone_moves_haproxy_to_the_new_pod_and_back(tmp_path: Path):
    c.scale(c.REPLICAS)
    before = c.wait_pods(c.REPLICAS)
    succeeded(ansible_playbook("endpoints.yml"))  # runtime and disk on the lab's model
    nothing = tmp_path / "nothing.yml"
    nothing.write_text(NOTHING)
    watch = c.Watch.start(tmp_path, "-i", INVENTORY, "--fast-path", "--endpoints", str(nothing), "--exit-after", "600", skip_first=True)
    try:
        watch.wait_log("fast path: runtime API of edge1, edge2", 60)
        watch.wait_log("first generation", 60)

        seen = len(watch.lines())
        c.scale(c.REPLICAS + 1)
        new = sorted(c._wait(lambda: c.pods()[0] - before, 60, "no new s2 pod became ready"))[0]
        address = c.kubectl("get", "pod", new, "-o", "jsonpath={.status.podIP}").strip()
        record = applied(watch, seen)
        assert all(h["commands"] > 0 and h["seconds"] < 1.0 for h in record["hosts"].values()), record
        c._wait(lambda: all(address in running_addresses(edge) for edge in c.EDGES), 60,
                f"{address} not in service on both edges within 60 s:\n{watch.tail()}")
        for edge in c.EDGES:
            assert not on_disk(edge, address), f"{edge}: a playbook wrote {address} into haproxy.cfg; the fast path was to do it alone"

        seen = len(watch.lines())
        c.scale(c.REPLICAS)
        c.wait_pods(c.REPLICAS)
        applied(watch, seen)
        c._wait(lambda: not any(address in running_addresses(edge) for edge in c.EDGES), 60,
                f"{address} still in service on an edge 60 s after its pod went:\n{watch.tail()}")
        assert {line["playbook"] for line in watch.lines() if line["path"] == "playbook"} <= {"nothing.yml"}, watch.tail()
    finally:
        watch.stop()
        c.scale(c.REPLICAS)
        c.wait_pods(c.REPLICAS, 120)
        succeeded(ansible_playbook("endpoints.yml"))
