"""lab/testlib/steps.py: what the reload tests and benchmarks count as failed, and how a step stops
near the deadline."""
from __future__ import annotations

import time

import pytest

from lab.testlib import steps


@pytest.mark.parametrize("output, expected", [
    ("  20118 requests in 10.03s, 12.75MB read\n", (20118, 0, 0)),
    ("  16826 requests in 10.06s, 10.66MB read\n  Socket errors: connect 0, read 1, write 2, timeout 3\n"
     "  Non-2xx or 3xx responses: 4\n", (16826, 6, 4)),
])
def test_wrk_counts_every_kind_of_failure(output, expected):
    assert steps.wrk_counts(output) == expected


def test_wrk_without_a_summary_is_an_error_not_zero_failures():
    with pytest.raises(steps.LabError, match="no summary"):
        steps.wrk_counts("unable to connect to 10.213.0.11:80 Connection refused\n")


def test_a_run_fails_by_socket_errors_and_bad_responses():
    assert steps.Run(requests=100, socket_errors=2, non_2xx=3, reloads=5, confirmed=5).failed == 5


def test_left_refuses_a_step_past_the_deadline():
    with pytest.raises(steps.LabError, match="time bound"):
        steps.left(time.monotonic() + steps.CLEANUP_RESERVE - 1)


def test_wait_for_takes_zero_as_an_answer_and_none_as_not_yet():
    answers = iter([None, None, 0])
    assert steps.wait_for(lambda: next(answers), seconds=1) == 0
    assert steps.wait_for(lambda: False, seconds=0.1) is None
