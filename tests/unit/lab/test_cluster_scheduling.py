"""Scheduler choice and Deployment controller plans."""
from __future__ import annotations

import pytest

from lab.cluster import _deployments as dep
from lab.cluster import _scheduling as sched


def node(name: str, ready: bool = True, unschedulable: bool = False, labels: dict | None = None,
         taints: list | None = None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]},
    }


def pod(name: str, node_name: str = "", created: str = "2025-01-01T00:00:00Z", terminating: bool = False,
        ready: bool = False, labels: dict | None = None, owner_uid: str = "", **spec) -> dict:
    meta = {"name": name, "namespace": "default", "creationTimestamp": created, "labels": labels or {}}
    if terminating:
        meta["deletionTimestamp"] = "2025-01-01T00:01:00Z"
    if owner_uid:
        meta["ownerReferences"] = [{"kind": "Deployment", "uid": owner_uid, "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node_name, **spec},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize("nodes, pods, expected", [
    # fewest pods wins
    ([node("node1"), node("node2")], [pod("a", "node1"), pod("new")], [("new", "node2")]),
    # ties: by name
    ([node("node2"), node("node1")], [pod("new")], [("new", "node1")]),
    # spreading within one pass, oldest pod first
    ([node("node1"), node("node2")],
     [pod("b", created="2025-01-01T00:00:02Z"), pod("a", created="2025-01-01T00:00:01Z"), pod("c", created="2025-01-01T00:00:03Z")],
     [("a", "node1"), ("b", "node2"), ("c", "node1")]),
    # cordoned and not-ready nodes are skipped
    ([node("node1", unschedulable=True), node("node2", ready=False), node("node3")], [pod("new")], [("new", "node3")]),
    # nothing fits: the pod waits
    ([node("node1", ready=False)], [pod("new")], []),
    # terminating pods do not count as load, and are never scheduled
    ([node("node1"), node("node2")], [pod("t1", "node1", terminating=True), pod("t2", terminating=True), pod("new")],
     [("new", "node1")]),
    # nodeSelector
    ([node("node1"), node("node2", labels={"disk": "ssd"})], [pod("new", nodeSelector={"disk": "ssd"})], [("new", "node2")]),
    # taints, and a toleration for one
    ([node("node1", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]), node("node2", taints=[{"key": "x", "effect": "NoExecute"}])],
     [pod("new", tolerations=[{"key": "k", "operator": "Equal", "value": "v"}])], [("new", "node1")]),
])
def test_plan_bindings(nodes, pods, expected):
    got = [(p["metadata"]["name"], n) for p, n in sched.plan_bindings(pods, nodes)]
    assert got == expected


DEPLOY = {
    "metadata": {"name": "s2", "namespace": "default", "uid": "dep-uid", "generation": 3},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "s2"}},
        "template": {"metadata": {"labels": {"app": "s2"}}, "spec": {"containers": [{"name": "echo", "image": "x"}]}},
    },
}
HASH = dep.template_hash(DEPLOY["spec"]["template"])


def owned(name: str, pod_hash: str = HASH, **kw) -> dict:
    return pod(name, labels={"app": "s2", "pod-template-hash": pod_hash}, owner_uid="dep-uid", **kw)


def test_template_hash_is_stable_and_safe():
    assert HASH == dep.template_hash({"spec": DEPLOY["spec"]["template"]["spec"], "metadata": {"labels": {"app": "s2"}}})
    assert set(HASH) <= set(dep.SAFE_ALPHABET) and 6 <= len(HASH) <= 10
    assert dep.template_hash(DEPLOY["spec"]["template"], 1) != HASH


def test_pod_from_template():
    body = dep.pod_from_template(DEPLOY, HASH)
    assert body["metadata"]["generateName"] == f"s2-{HASH}-"
    assert body["metadata"]["labels"] == {"app": "s2", "pod-template-hash": HASH}
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "s2",
                                                     "uid": "dep-uid", "controller": True, "blockOwnerDeletion": True}]
    assert body["spec"] == DEPLOY["spec"]["template"]["spec"]
    assert body["spec"] is not DEPLOY["spec"]["template"]["spec"]


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


@pytest.mark.parametrize("pods, create, delete", [
    ([], 2, []),
    ([owned("a", node_name="n", ready=True)], 1, []),
    ([owned("a", node_name="n", ready=True), owned("b", node_name="n", ready=True)], 0, []),
    # terminating pods do not count: replaced at once
    ([owned("a", node_name="n", ready=True), owned("b", node_name="n", terminating=True)], 1, []),
    # not ours: ignored
    ([pod("x", labels={"app": "s2", "pod-template-hash": HASH}, owner_uid="other")], 2, []),
    # scale down: newest ready pod goes
    ([owned("old", node_name="n", ready=True, created="2025-01-01T00:00:01Z"),
      owned("mid", node_name="n", ready=True, created="2025-01-01T00:00:02Z"),
      owned("new", node_name="n", ready=True, created="2025-01-01T00:00:03Z")], 0, ["new"]),
    # scale down: not-ready and unscheduled go before ready ones
    ([owned("r1", node_name="n", ready=True, created="2025-01-01T00:00:05Z"),
      owned("r2", node_name="n", ready=True, created="2025-01-01T00:00:06Z"),
      owned("unready", node_name="n", created="2025-01-01T00:00:01Z"),
      owned("pending", created="2025-01-01T00:00:02Z")], 0, ["pending", "unready"]),
    # rollout (2 replicas, 25%: surge 1, unavailable 0): old pods stay until new ones are ready
    ([owned("o1", "oldhash", node_name="n", ready=True), owned("o2", "oldhash", node_name="n", ready=True)], 1, []),
    ([owned("o1", "oldhash", node_name="n", ready=True, created="2025-01-01T00:00:01Z"),
      owned("o2", "oldhash", node_name="n", ready=True, created="2025-01-01T00:00:02Z"),
      owned("n1", node_name="n", ready=True), owned("n2", node_name="n")], 0, ["o2"]),
    ([owned("o1", "oldhash", node_name="n", ready=True),
      owned("n1", node_name="n", ready=True), owned("n2", node_name="n", ready=True)], 0, ["o1"]),
])
def test_plan_deployment(pods, create, delete):
    plan = dep.plan_deployment(DEPLOY, pods, "2025-01-01T00:10:00Z")
    assert (plan.create, names(plan.delete)) == (create, delete)


def _rolling(replicas: int, strategy: dict | None) -> dict:
    spec = {**DEPLOY["spec"], "replicas": replicas}
    if strategy is not None:
        spec["strategy"] = strategy
    return {**DEPLOY, "spec": spec}


@pytest.mark.parametrize("replicas, rolling, expected", [
    (4, None, (1, 1)),  # 25% of 4 both ways
    (2, None, (1, 0)),  # surge rounds up, unavailable down
    (10, {"maxSurge": "30%", "maxUnavailable": "30%"}, (3, 3)),
    (3, {"maxSurge": 0, "maxUnavailable": "10%"}, (0, 1)),  # both 0: one may be unavailable
    (4, {"maxSurge": 2, "maxUnavailable": 0}, (2, 0)),
])
def test_rolling_limits(replicas, rolling, expected):
    strategy = None if rolling is None else {"type": "RollingUpdate", "rollingUpdate": rolling}
    assert dep.rolling_limits(_rolling(replicas, strategy)) == expected


def test_a_rolling_update_keeps_replicas_minus_max_unavailable_ready():
    deploy = _rolling(4, None)  # surge 1, unavailable 1
    old = [owned(f"o{i}", "oldhash", node_name="n", ready=True, created=f"2025-01-01T00:00:0{i}Z") for i in range(4)]
    plan = dep.plan_deployment(deploy, old, "T")
    assert (plan.create, names(plan.delete)) == (1, ["o3"])
    # A new pod that is not Ready (a readiness gate not yet True) holds every other old pod back.
    left = old[:3] + [owned("n1", node_name="n")]
    plan = dep.plan_deployment(deploy, left, "T")
    assert (plan.create, names(plan.delete)) == (1, [])
    plan = dep.plan_deployment(deploy, left + [owned("n2", node_name="n")], "T")
    assert (plan.create, names(plan.delete)) == (0, [])
    # Once one is Ready, one more old pod may go.
    plan = dep.plan_deployment(deploy, old[:3] + [owned("n1", node_name="n", ready=True), owned("n2", node_name="n")], "T")
    assert (plan.create, names(plan.delete)) == (0, ["o2"])


def test_a_rolling_update_deletes_old_pods_that_are_not_ready_first():
    deploy = _rolling(4, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    pods = [owned("o0", "oldhash", node_name="n", ready=True), owned("o1", "oldhash", node_name="n", ready=True),
            owned("o2", "oldhash", node_name="n", ready=True), owned("sick", "oldhash", node_name="n")]
    plan = dep.plan_deployment(deploy, pods, "T")
    assert (plan.create, names(plan.delete)) == (0, ["sick"])


def test_recreate_creates_the_new_pods_once_the_old_are_gone():
    deploy = _rolling(2, {"type": "Recreate"})
    old = [owned("o1", "oldhash", node_name="n", ready=True), owned("o2", "oldhash", node_name="n", ready=True)]
    plan = dep.plan_deployment(deploy, old, "T")
    assert (plan.create, names(plan.delete)) == (0, ["o1", "o2"])
    going = [owned("o1", "oldhash", node_name="n", terminating=True)]
    assert dep.plan_deployment(deploy, going, "T").create == 0
    assert dep.plan_deployment(deploy, [], "T").create == 2


def test_deployment_status_and_no_churn():
    pods = [owned("a", node_name="n", ready=True), owned("b", node_name="n"), owned("c", terminating=True, ready=True)]
    status = dep.plan_deployment(DEPLOY, pods, "2025-01-01T00:10:00Z").status
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                   "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1,
        "availableReplicas": 1, "unavailableReplicas": 1}
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("Available", "False"), ("Progressing", "True")]
    synced = {**DEPLOY, "status": status}
    later = dep.plan_deployment(synced, pods, "2025-01-01T00:20:00Z").status
    assert later == status and not dep.status_differs(synced, later)


def test_status_differs_treats_missing_counts_as_zero():
    assert not dep.status_differs({"status": {"replicas": 1}}, {"replicas": 1, "readyReplicas": 0})
    assert dep.status_differs({"status": {"replicas": 1}}, {"replicas": 2})
