"""The lab around a benchmark run (brought up and taken down again only if it was down), and the
reload benchmarks' samples. The steps on the lab themselves are lab/testlib/steps.py's, which the
tests use too."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench.harness import Sample
from lab import cli
from lab.drive import labctl
from lab.testlib.steps import CLEANUP_RESERVE, LabError, Run, left, wrk_during_reloads

_brought_up = 0  # how many lab() contexts of this process brought the lab up and will take it down
_discard = False  # the caller takes the lab down after this process


@contextmanager
def lab(deadline: float) -> Iterator[bool]:
    """The lab, up; yields whether it already was (then it is left up)."""
    global _brought_up
    was_up = cli.is_up()
    if not was_up:
        result = labctl("up", check=False, timeout=left(deadline))
        if result.returncode != 0:
            labctl("down", check=False)
            raise LabError(f"labctl up failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        _brought_up += 1
    try:
        yield was_up
    finally:
        if not was_up:
            _brought_up -= 1
            labctl("down", check=False)


def discard_after_run() -> None:
    """The caller takes the lab down after this run (make test), as if this process had brought it up."""
    global _discard
    _discard = True


def discarded() -> bool:
    """Whether the lab goes down after this process, VMs and all: then what a benchmark installed
    on an edge need not be removed (a lab someone else started is left as found)."""
    return _brought_up > 0 or _discard


def samples(count: int, address: str, seconds: int, reloads: int, reload: Callable[[], bool], deadline: float,
            runs: list[Run]) -> list[Sample]:
    """`count` runs of wrk_during_reloads, each a sample of its failed requests (an error when the
    proxy did not confirm every reload); stops early when the deadline comes near."""
    out = []
    for _ in range(count):
        if deadline - time.monotonic() < CLEANUP_RESERVE + seconds + 15:
            break
        run = wrk_during_reloads(address, seconds, reloads, reload)
        runs.append(run)
        error = "" if run.confirmed == run.reloads else f"only {run.confirmed} of {run.reloads} reloads confirmed"
        out.append(Sample(float(run.failed), error=error))
    return out


def totals(runs: list[Run]) -> dict[str, object]:
    """What the runs of one side served and lost, for the result's parameters."""
    return {"requests_per_run": [r.requests for r in runs], "failed_per_run": [r.failed for r in runs],
            "socket_errors": sum(r.socket_errors for r in runs), "non_2xx": sum(r.non_2xx for r in runs),
            "reloads_confirmed": sum(r.confirmed for r in runs), "reloads_done": sum(r.reloads for r in runs)}
