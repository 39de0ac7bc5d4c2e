"""The rollout state file's contract: `since` is when the status began; bad files are rewritten."""
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


@pytest.mark.parametrize("text", [None, "", "{not json", "[1, 2]", '"passed"'])
def test_a_missing_or_unreadable_file_counts_as_no_state(text):
    assert parse(text) == {}


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status: expected one of applying, passed, failed, got 'done'"):
        next_state({}, "aa", "done", 1)
