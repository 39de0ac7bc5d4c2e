"""The rollout state file's contract: `generation` is what the proxy should run now, `since` is
when the status began; bad files are rewritten."""
from __future__ import annotations

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._rollout_state import next_state, parse


def test_a_new_generation_or_status_is_written_with_its_start():
    assert next_state({}, "aa", "applying", 100) == {"generation": "aa", "status": "applying", "since": 100}
    assert next_state({"generation": "aa", "status": "applying", "since": 100}, "aa", "passed", 160) == \
        {"generation": "aa", "status": "passed", "since": 160}
    assert next_state({"generation": "aa", "status": "passed", "since": 160}, "bb", "passed", 200)["since"] == 200


def test_the_same_generation_and_status_leave_the_file_alone():
    assert next_state({"generation": "aa", "status": "passed", "since": 160}, "aa", "passed", 999) is None


def test_an_endpoint_only_change_moves_the_generation_and_keeps_status_and_since():
    passed = {"generation": "aa", "status": "passed", "since": 160}
    assert next_state(passed, "bb", "unchanged", 999) == {"generation": "bb", "status": "passed", "since": 160}
    assert next_state(passed, "aa", "unchanged", 999) is None
    failed = {"generation": "aa", "status": "failed", "since": 160}
    assert next_state(failed, "bb", "unchanged", 999) == {"generation": "bb", "status": "failed", "since": 160}


def test_an_endpoint_only_change_on_a_host_without_a_rollout_writes_nothing():
    assert next_state({}, "bb", "unchanged", 999) is None


def test_a_rollback_records_what_runs_now_and_what_failed():
    failed = {"generation": "bb", "status": "failed", "since": 160}
    assert next_state(failed, "aa", "rolled-back", 170, failed_generation="bb") == {
        "generation": "aa", "status": "rolled-back", "since": 170, "failed_generation": "bb"}
    again = {"generation": "aa", "status": "rolled-back", "since": 170, "failed_generation": "bb"}
    assert next_state(again, "aa", "rolled-back", 999, failed_generation="bb") is None
    # A later rollout that passes drops the record of the failure.
    assert next_state(again, "cc", "passed", 999) == {"generation": "cc", "status": "passed", "since": 999}


@pytest.mark.parametrize("text", [None, "", "{not json", "[1, 2]", '"passed"'])
def test_a_missing_or_unreadable_file_counts_as_no_state(text):
    assert parse(text) == {}


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status: expected one of applying, passed, failed, rolled-back, unchanged, got 'done'"):
        next_state({}, "aa", "done", 1)


@pytest.mark.parametrize(("status", "failed"), [("rolled-back", ""), ("passed", "bb")])
def test_failed_generation_goes_with_rolled_back_only(status, failed):
    with pytest.raises(ValueError, match="failed_generation"):
        next_state({}, "aa", status, 1, failed_generation=failed)


def test_an_empty_generation_is_refused():
    with pytest.raises(ValueError, match="generation: expected"):
        next_state({}, "", "passed", 1)
