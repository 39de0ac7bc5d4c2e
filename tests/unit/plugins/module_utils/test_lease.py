"""The rollout's Lease, decided without the API: create, renew, take over, wait, release."""
from __future__ import annotations

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._lease import LeaseError, acquire, holding, micro_time, release

NOW = 1_796_000_000.0  # 2026-11-29T...Z


def lease(holder: str | None, renewed: float = NOW, duration: int = 60, transitions: int = 2) -> dict:
    spec = {"leaseDurationSeconds": duration, "acquireTime": micro_time(renewed - 100), "renewTime": micro_time(renewed),
            "leaseTransitions": transitions}
    if holder is not None:
        spec["holderIdentity"] = holder
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "k8sedge-rollout", "namespace": "k8sedge", "resourceVersion": "7"}, "spec": spec}


def test_micro_time_is_the_apis_format() -> None:
    assert micro_time(0.25) == "1970-01-01T00:00:00.250000Z"


def test_no_lease_is_created_and_held() -> None:
    decision = acquire(None, "awx/site", 900, NOW, "k8sedge", "k8sedge-rollout")
    assert decision.action == "create"
    assert decision.body["metadata"] == {"name": "k8sedge-rollout", "namespace": "k8sedge"}
    assert decision.body["spec"] == {"holderIdentity": "awx/site", "leaseDurationSeconds": 900, "acquireTime": micro_time(NOW),
                                     "renewTime": micro_time(NOW), "leaseTransitions": 0}


def test_its_holder_renews_it_and_keeps_the_resource_version() -> None:
    decision = acquire(lease("awx/site", NOW - 10), "awx/site", 900, NOW, "k8sedge", "k8sedge-rollout")
    assert decision.action == "renew"
    spec = decision.body["spec"]
    assert (spec["renewTime"], spec["acquireTime"], spec["leaseTransitions"]) == (micro_time(NOW), micro_time(NOW - 110), 2)
    assert spec["leaseDurationSeconds"] == 900
    assert decision.body["metadata"]["resourceVersion"] == "7"  # a stale write is refused (409)


def test_another_holder_in_its_time_is_waited_for() -> None:
    decision = acquire(lease("k8sedge-watch@ctl", NOW - 10, duration=60), "awx/site", 900, NOW, "k8sedge", "k8sedge-rollout")
    assert (decision.action, decision.body) == ("wait", None)
    assert decision.current.holder == "k8sedge-watch@ctl"
    assert decision.current.until == NOW + 50


@pytest.mark.parametrize("current", [lease("k8sedge-watch@ctl", NOW - 61, duration=60), lease(None), lease("")])
def test_a_lease_run_out_or_released_is_taken_and_counted(current: dict) -> None:
    decision = acquire(current, "awx/site", 900, NOW, "k8sedge", "k8sedge-rollout")
    assert decision.action == "take"
    spec = decision.body["spec"]
    assert (spec["holderIdentity"], spec["acquireTime"], spec["leaseTransitions"]) == ("awx/site", micro_time(NOW), 3)


def test_release_leaves_no_holder_and_one_second() -> None:
    body = release(lease("awx/site"), "awx/site", NOW, "k8sedge", "k8sedge-rollout")
    assert "holderIdentity" not in body["spec"]
    assert body["spec"]["leaseDurationSeconds"] == 1
    assert body["spec"]["leaseTransitions"] == 2
    assert holding(body, "x").holder == ""


def test_only_its_holder_releases_it() -> None:
    assert release(lease("k8sedge-watch@ctl"), "awx/site", NOW, "k8sedge", "k8sedge-rollout") is None
    assert release(None, "awx/site", NOW, "k8sedge", "k8sedge-rollout") is None


def test_an_empty_holder_is_refused() -> None:
    with pytest.raises(LeaseError, match="holder's identity must not be empty"):
        acquire(None, "", 900, NOW, "k8sedge", "k8sedge-rollout")


@pytest.mark.parametrize("spec, field", [
    ("text", "spec: expected a Lease spec"),
    ({"holderIdentity": 5}, "spec.holderIdentity: expected a string, got 5"),
    ({"holderIdentity": "a", "leaseDurationSeconds": 0, "renewTime": micro_time(NOW)},
     "spec.leaseDurationSeconds: expected seconds above 0, got 0"),
    ({"holderIdentity": "a", "leaseDurationSeconds": True, "renewTime": micro_time(NOW)},
     "spec.leaseDurationSeconds: expected seconds above 0, got True"),
    ({"holderIdentity": "a", "leaseDurationSeconds": 5, "renewTime": "yesterday"},
     "spec.renewTime: expected an RFC 3339 time, got 'yesterday'"),
    ({"holderIdentity": "a", "leaseDurationSeconds": 5, "renewTime": "2026-12-07T10:00:00"},
     "spec.renewTime: expected a time with its zone"),
    ({"holderIdentity": "a", "leaseDurationSeconds": 5}, "spec.renewTime: expected an RFC 3339 time, got None"),
    ({"leaseTransitions": -1}, "spec.leaseTransitions: expected a count, got -1"),
])
def test_a_lease_we_cannot_read_is_an_error_naming_the_field(spec: object, field: str) -> None:
    broken = {"metadata": {"name": "k8sedge-rollout"}, "spec": spec}
    with pytest.raises(LeaseError, match=r"^Lease k8sedge/k8sedge-rollout: " + field.replace("(", r"\(")):
        acquire(broken, "awx/site", 900, NOW, "k8sedge", "k8sedge-rollout")
