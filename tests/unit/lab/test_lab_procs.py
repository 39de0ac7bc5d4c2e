"""The lab's process tracking: PID files that can't point at a stranger."""
from __future__ import annotations

import os
import sys

import pytest

from lab import procs


@pytest.fixture(autouse=True)
def private_run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(procs, "PID_DIR", tmp_path / "pids")
    monkeypatch.setattr(procs, "LOG_DIR", tmp_path / "logs")


def _sleeper(seconds: int = 30) -> list[str]:
    return [sys.executable, "-c", f"import time; print('started', flush=True); time.sleep({seconds})"]


def test_start_records_a_pid_that_stop_ends():
    pid = procs.start("sleeper", _sleeper())
    started = procs.start_time(pid)
    assert procs.pid_of("sleeper") == pid
    assert procs.running() == {"sleeper": pid}
    procs.stop("sleeper", grace=5)
    assert procs.pid_of("sleeper") is None
    assert not procs.is_alive(pid, started)
    assert procs.running() == {}


def test_stop_kills_the_whole_group_the_process_started():
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    pid = procs.start("parent", [sys.executable, "-c", script])
    procs.wait_until(lambda: _children(pid), 10, "the child to start")
    [child] = _children(pid)
    started = procs.start_time(child)
    procs.stop("parent", grace=5)
    procs.wait_until(lambda: not procs.is_alive(child, started), 5, "the child to end")


def test_a_pid_file_whose_start_time_differs_is_not_trusted(tmp_path):
    procs.PID_DIR.mkdir(parents=True)
    # Our own PID with a start time it never had: a recycled PID must never be signalled.
    (procs.PID_DIR / "stale.pid").write_text(f"{os.getpid()} 1\n")
    assert procs.pid_of("stale") is None
    procs.stop("stale")
    assert not (procs.PID_DIR / "stale.pid").exists()


def test_output_goes_to_the_named_log():
    procs.start("talker", [sys.executable, "-c", "print('hello from the lab')"])
    procs.wait_until(lambda: "hello from the lab" in (procs.LOG_DIR / "talker.log").read_text(), 10,
                     "the log line")


def test_wait_until_names_what_did_not_happen():
    with pytest.raises(TimeoutError, match="waiting for the moon"):
        procs.wait_until(lambda: False, 0.2, "the moon", interval=0.05)


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(p) for p in handle.read().split()]
    return found
