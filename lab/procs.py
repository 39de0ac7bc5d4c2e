"""Background processes of the lab, tracked by PID file and stopped by PID.

A PID file holds the PID and the process start time (from /proc), so a stale
file can never make us signal an unrelated process that reused the PID.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab.topology import RUN_DIR

PID_DIR = RUN_DIR / "pids"
LOG_DIR = RUN_DIR / "logs"


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) follows the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start argv in its own session, log to logs/<name>.log, record its PID."""
    PID_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    (PID_DIR / f"{name}.pid").write_text(f"{proc.pid} {start_time(proc.pid)}\n")
    return proc.pid


def pid_of(name: str) -> int | None:
    """The PID of a running process we started under this name, else None."""
    try:
        pid_text, started = (PID_DIR / f"{name}.pid").read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if is_alive(pid, started) else None


def is_alive(pid: int, started: str | None) -> bool:
    """Whether the process that started at `started` still runs (a zombie has ended)."""
    return started is not None and start_time(pid) == started and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def running() -> dict[str, int]:
    if not PID_DIR.is_dir():
        return {}
    names = sorted(p.stem for p in PID_DIR.glob("*.pid"))
    return {name: pid for name in names if (pid := pid_of(name)) is not None}


def stop(name: str, grace: float = 10.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left after grace."""
    pid = pid_of(name)
    if pid is not None:
        kill_group(pid, grace)
    (PID_DIR / f"{name}.pid").unlink(missing_ok=True)


def kill_group(pid: int, grace: float) -> None:
    started = start_time(pid)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid, started):
            break
        time.sleep(0.1)
    else:
        _signal_group(pid, signal.SIGKILL)
    # Members of the group may outlive its leader; the group id stays the leader's PID.
    _signal_group(pid, signal.SIGKILL)
    _reap(pid)


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll predicate until it returns a truthy value; raise naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
