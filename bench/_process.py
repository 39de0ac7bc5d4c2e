"""Run one command as one sample: bounded in time, its peak memory measured, nothing left behind.

`python bench/_process.py REPORT TIMEOUT CMD...` is the wrapper: a fresh process per sample,
because RUSAGE_CHILDREN's maxrss (the largest resident set of any waited-for descendant) only
ever grows within a process. The command runs in its own session, so a timeout kills its
whole process tree by the command's PID.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Time the wrapper gets on top of the command's own bound to kill it and report.
GRACE = 30.0


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: timed out
    seconds: float
    peak_rss_mb: float


def _kill_tree(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wrapper(report: Path, timeout: float, command: list[str]) -> int:
    started = time.monotonic()
    with subprocess.Popen(command, start_new_session=True) as proc:
        # The harness, interrupted, stops this wrapper with SIGTERM: the tree goes with it.
        signal.signal(signal.SIGTERM, lambda *_: (_kill_tree(proc.pid), os._exit(143)))
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
            returncode = None
        # Workers of the command that outlived it share its process group.
        _kill_tree(proc.pid)
    seconds = time.monotonic() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report.write_text(json.dumps({"returncode": returncode, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}))
    return 0


def run(command: list[str], timeout: float, report: Path, env: dict[str, str], cwd: Path, log: Path) -> Run:
    """Run command through the wrapper; its output goes to log."""
    with log.open("ab") as out, subprocess.Popen([sys.executable, __file__, str(report), str(timeout), *command],
                                                 env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT) as proc:
        try:
            returncode = proc.wait(timeout=timeout + GRACE)
        except BaseException:  # a timeout, or the harness itself being stopped
            proc.terminate()
            proc.wait()
            raise
    if returncode != 0:
        raise RuntimeError(f"the sample wrapper exited {returncode}; see {log}")
    data = json.loads(report.read_text())
    return Run(data["returncode"], data["seconds"], round(data["peak_rss_mb"], 1))


if __name__ == "__main__":
    sys.exit(wrapper(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]))
