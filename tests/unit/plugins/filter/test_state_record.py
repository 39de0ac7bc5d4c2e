"""The rollout's read of an edge's state record: the file's text in, what the run takes out."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.state_record import _state_record as state_record

SERVED = {"generation": "a1", "routes": [], "backends": [{"name": "web", "targets": []}], "checks": ["c1", "c2"]}
RECORD = {"version": 1, "serving": SERVED, "last_good": {**SERVED, "checks": ["c1"]}, "rollout": {"status": "passed", "since": 1}}


def test_the_record_comes_without_its_bulk_and_with_the_guard_and_probe_inputs_as_text():
    # The file as raw's terminal hands it over: a trailing CRLF.
    taken = state_record(json.dumps(RECORD) + "\r\n")
    assert taken["record"] == {"version": 1, "serving": {"generation": "a1", "routes": []},
                               "last_good": {"generation": "a1", "routes": []}, "rollout": {"status": "passed", "since": 1}}
    assert json.loads(taken["serving_json"]) == SERVED
    assert taken["proven_checks"] == "c1"


def test_no_file_is_a_host_before_its_first_run():
    assert state_record("") == {"record": {}, "serving_json": "", "proven_checks": ""}


@pytest.mark.parametrize("text, message", [
    ("cat: /var/lib/k8sedge/state.json: Permission denied", r"/var/lib/k8sedge/state.json: not JSON"),
    ('{"version": 2}', "expected a k8sedge state record of version 1"),
    (None, "expected the file's text, got NoneType"),
])
def test_a_record_that_cannot_be_read_is_an_error_naming_the_file(text, message):
    with pytest.raises(AnsibleFilterError, match=f"k8sedge.lb.state_record: .*{message}"):
        state_record(text)
