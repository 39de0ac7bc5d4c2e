"""The state record's contract: one versioned record, what each update writes, and records that
break the schema refused by name."""
from __future__ import annotations

import json

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._edge_state import StateError, parse, update, without_bulk

ROUTES = [{"cidr": "10.244.1.0/24", "via": "10.213.0.21"}]
SERVING_A = {"generation": "aa", "routes": ROUTES, "backends": [{"name": "default_s1_80", "targets": []}]}
SERVING_B = {"generation": "bb", "routes": [], "backends": []}


def test_a_host_without_a_record_reads_as_none():
    assert parse(None, "state.json") == {} and parse(b"  \n", "state.json") == {}


def test_a_rollout_applies_serves_passes_and_promotes():
    applying = update({}, 100, status="applying", generation="aa")
    assert applying == {"version": 1, "rollout": {"status": "applying", "since": 100, "generation": "aa"}}
    served = update(applying, 110, serving=SERVING_A)
    assert served["serving"] == SERVING_A and served["rollout"]["since"] == 100
    passed = update(served, 120, promote=True, status="passed")
    assert passed["last_good"] == SERVING_A and passed["rollout"] == {"status": "passed", "since": 120}
    assert parse(json.dumps(passed), "state.json") == passed


def test_what_a_host_serves_moves_an_applying_rollout_along():
    # endpoints.yml after a rollout that died while applying: the check compares what it serves.
    applying = {"version": 1, "rollout": {"status": "applying", "since": 100, "generation": "aa"}}
    assert update(applying, 200, serving=SERVING_B)["rollout"] == {"status": "applying", "since": 100, "generation": "bb"}


def test_an_endpoint_only_change_keeps_the_status_and_its_start():
    passed = {"version": 1, "serving": SERVING_A, "last_good": SERVING_A, "rollout": {"status": "passed", "since": 120}}
    after = update(passed, 999, serving=SERVING_B)
    assert after["rollout"] == {"status": "passed", "since": 120}
    assert after["last_good"] == SERVING_A and after["serving"] == SERVING_B


def test_the_same_update_again_writes_nothing_and_keeps_since():
    passed = {"version": 1, "serving": SERVING_A, "last_good": SERVING_A, "rollout": {"status": "passed", "since": 120}}
    assert update(passed, 999, serving=SERVING_A, promote=True, status="passed") is None
    assert update(passed, 999) is None


def test_a_rollback_records_what_failed_and_a_later_pass_drops_it():
    served = {"version": 1, "serving": SERVING_A, "last_good": SERVING_A,
              "rollout": {"status": "applying", "since": 100, "generation": "bb"}}
    rolled_back = update(served, 130, status="rolled-back", failed_generation="bb")
    assert rolled_back["rollout"] == {"status": "rolled-back", "since": 130, "failed_generation": "bb"}
    assert parse(json.dumps(rolled_back), "state.json") == rolled_back
    assert update(rolled_back, 200, status="passed")["rollout"] == {"status": "passed", "since": 200}


def test_a_rollback_restores_the_last_good_as_what_the_host_serves():
    record = {"version": 1, "serving": SERVING_B, "last_good": SERVING_A,
              "rollout": {"status": "applying", "since": 100, "generation": "bb"}}
    restored = update(record, 130, restore=True, status="rolled-back", failed_generation="bb")
    assert restored["serving"] == SERVING_A and restored["last_good"] == SERVING_A


def test_a_drain_marks_the_host_and_an_undrain_removes_the_mark_and_nothing_else():
    passed = update({}, 100, serving=SERVING_A, promote=True, status="passed")
    drained = update(passed, 200, maintenance=True, reason="kernel update")
    assert drained == {**passed, "maintenance": {"since": 200, "reason": "kernel update"}}
    assert update(drained, 300, maintenance=True, reason="kernel update") is None  # keeps since
    assert update(drained, 300, maintenance=True, reason="haproxy 2.8")["maintenance"]["since"] == 300
    # A rollout while drained keeps the mark: the host stays out of service.
    rolled = update(drained, 400, serving=SERVING_B, promote=True, status="passed")
    assert rolled["maintenance"] == drained["maintenance"] and parse(json.dumps(rolled), "state.json") == rolled
    assert update(rolled, 500, maintenance=False) == {k: v for k, v in rolled.items() if k != "maintenance"}
    assert update(passed, 500, maintenance=False) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"maintenance": True, "reason": "tab\there"}, "maintenance.reason: expected up to 200 printable ASCII characters"),
    ({"maintenance": True, "reason": "x" * 201}, "maintenance.reason: expected up to 200"),
    ({"status": "passed", "reason": "why"}, "reason: goes with maintenance true only"),
    ({"restore": True}, "restore: the host has no last-known-good recorded"),
    ({"restore": True, "serving": SERVING_A}, "restore: goes without serving"),
    ({"status": "done"}, "status: expected one of applying, passed, failed, rolled-back, got 'done'"),
    ({"status": "applying"}, "generation: expected a model generation"),
    ({"status": "passed", "generation": "aa"}, "generation: goes with status applying only"),
    ({"status": "rolled-back"}, "failed_generation: expected a model generation"),
    ({"status": "passed", "failed_generation": "aa"}, "failed_generation: goes with status failed or rolled-back only"),
    ({"promote": True}, "promote: the host serves nothing recorded yet"),
    ({"serving": {**SERVING_A, "routes": [{"cidr": "10.0.0.0/8"}]}}, r"serving.routes: expected a list of \{cidr, via\}"),
    ({"serving": {**SERVING_A, "generation": "x; rm"}}, "serving.generation: expected a model generation"),
])
def test_an_update_that_breaks_the_schema_is_refused_by_name(kwargs, message):
    with pytest.raises(StateError, match=message):
        update({}, 1, **kwargs)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "state.json: not JSON"),
    ('{"generation": "aa", "status": "passed", "since": 1}', "expected a k8sedge state record of version 1"),
    ('{"version": 1, "rollout": {"status": "failed", "since": 1}}', "rollout: status failed goes with the fields failed_generation, since, status"),
    ('{"version": 1, "rollout": {"status": "passed", "since": true}}', r"rollout.since: expected unix seconds"),
    ('{"version": 1, "serving": {"generation": "aa", "routes": [], "backends": {}}}', "serving.backends: expected"),
    ('{"version": 1, "extra": 1}', "unknown field extra"),
    ('{"version": 1, "maintenance": {"since": 1}}', "maintenance: expected an object with the fields reason, since"),
    ('{"version": 1, "maintenance": {"since": "now", "reason": ""}}', "maintenance.since: expected unix seconds"),
])
def test_a_record_that_cannot_be_read_is_an_error_not_a_fresh_start(text, message):
    with pytest.raises(StateError, match=message):
        parse(text, "state.json")


def test_writes_answer_without_the_backends_and_the_checks():
    record = {"version": 1, "serving": {**SERVING_A, "checks": ["c1"]}, "last_good": SERVING_A, "rollout": {"status": "passed", "since": 1}}
    assert without_bulk(record) == {"version": 1, "serving": {"generation": "aa", "routes": ROUTES},
                                        "last_good": {"generation": "aa", "routes": ROUTES},
                                        "rollout": {"status": "passed", "since": 1}}
