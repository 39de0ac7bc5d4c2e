"""Which node an unscheduled pod goes to: pure logic of the lab scheduler.

Filters like kube-scheduler's basic plugins (node Ready, not cordoned, nodeSelector, taints with
effect NoSchedule/NoExecute unless tolerated) and scores by spreading only: the node with the
fewest active pods wins, ties broken by node name, so placement is predictable.
"""
from __future__ import annotations

from lab.cluster._model import Obj, labels, node_is_ready, pod_is_finished, pod_is_terminating


def _tolerates(pod: Obj, taint: Obj) -> bool:
    for tol in pod["spec"].get("tolerations") or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_fits(pod: Obj, node: Obj) -> bool:
    spec = node.get("spec") or {}
    if not node_is_ready(node) or spec.get("unschedulable"):
        return False
    node_labels = labels(node)
    if any(node_labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
        return False
    return all(
        _tolerates(pod, taint)
        for taint in spec.get("taints") or []
        if taint.get("effect") in ("NoSchedule", "NoExecute")
    )


def needs_scheduling(pod: Obj) -> bool:
    return not pod["spec"].get("nodeName") and not pod_is_terminating(pod) and not pod_is_finished(pod)


def plan_bindings(pods: list[Obj], nodes: list[Obj]) -> list[tuple[Obj, str]]:
    """(pod, node name) for every pod that can be placed now, oldest pod first."""
    load = {n["metadata"]["name"]: 0 for n in nodes}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node in load and not pod_is_terminating(pod) and not pod_is_finished(pod):
            load[node] += 1
    pending = sorted(
        (p for p in pods if needs_scheduling(p)),
        key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"].get("namespace", ""), p["metadata"]["name"]),
    )
    bindings = []
    for pod in pending:
        fits = [n["metadata"]["name"] for n in nodes if node_fits(pod, n)]
        if not fits:
            continue
        chosen = min(fits, key=lambda name: (load[name], name))
        load[chosen] += 1
        bindings.append((pod, chosen))
    return bindings
