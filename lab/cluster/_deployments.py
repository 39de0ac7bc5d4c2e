"""What the lab's Deployment controller does for one Deployment: pure logic.

Simplified from kube-controller-manager, and honest about it:

- No ReplicaSets. Pods are owned by the Deployment directly (ownerReference kind Deployment) and
  carry the ``pod-template-hash`` label a ReplicaSet would give them; names follow the real
  shape ``<deployment>-<template hash>-<5 random>`` (the API server fills the random part from
  generateName).
- Template changes roll out as the RollingUpdate strategy does: new pods up to replicas +
  maxSurge in all, old pods deleted while the Ready pods stay at replicas - maxUnavailable or more
  (25% each by default; a percentage of surge rounds up, of unavailable down, and both 0 means
  one unavailable). Not-ready old pods go first. Only Ready counts, so a pod held back by a
  readiness gate holds the rollout back. The Recreate strategy deletes every old pod and creates
  the new ones once the old are gone.
- Scale-down deletes, gracefully, the pods a ReplicaSet would pick first: unscheduled, then not
  Ready, then the newest.
- Terminating pods do not count as replicas (as in a ReplicaSet), so a scale-down or a deleted
  pod is replaced at once.
- minReadySeconds, paused and progressDeadlineSeconds are not implemented: Ready means available.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from lab.cluster._model import (
    SAFE_ALPHABET,
    Obj,
    controlled_by,
    owner_reference,
    parse_time,
    pod_is_finished,
    pod_is_ready,
    pod_is_terminating,
)

HASH_LABEL = "pod-template-hash"


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A short, stable hash of the pod template in the alphabet Kubernetes uses for it."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    digest = 0x811C9DC5  # FNV-1a, 32 bit, as the real controller
    for byte in data:
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in str(digest))


def pod_from_template(deploy: Obj, pod_hash: str) -> Obj:
    template = deploy["spec"]["template"]
    meta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": f"{deploy['metadata']['name']}-{pod_hash}-",
        "namespace": deploy["metadata"]["namespace"],
        "labels": {**(meta.get("labels") or {}), HASH_LABEL: pod_hash},
        "ownerReferences": [owner_reference(deploy, "Deployment", "apps/v1")],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": json.loads(json.dumps(template["spec"]))}


def _deletion_order(pod: Obj) -> tuple[bool, bool, float, str]:
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (
        bool(pod["spec"].get("nodeName")),
        pod_is_ready(pod),
        -(created.timestamp() if created else 0.0),
        pod["metadata"]["name"],
    )


def pick_for_deletion(pods: list[Obj], count: int) -> list[Obj]:
    return sorted(pods, key=_deletion_order)[:max(0, count)]


@dataclass(frozen=True)
class DeploymentPlan:
    create: int = 0
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def replicas_wanted(deploy: Obj) -> int:
    value = deploy["spec"].get("replicas")
    return 1 if value is None else int(value)


def _scaled(value: int | str | None, default: str, replicas: int, round_up: bool) -> int:
    """An intstr of the strategy (a count, or a percentage of replicas) as a count."""
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        share = replicas * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def rolling_limits(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as counts, as the real controller resolves them."""
    wanted = replicas_wanted(deploy)
    rolling = ((deploy["spec"].get("strategy") or {}).get("rollingUpdate")) or {}
    surge = _scaled(rolling.get("maxSurge"), "25%", wanted, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable"), "25%", wanted, round_up=False)
    return surge, (1 if surge == 0 and unavailable == 0 else unavailable)


def plan_deployment(deploy: Obj, pods: list[Obj], now_text: str) -> DeploymentPlan:
    """Pods to create and delete, and the status the Deployment should show."""
    wanted = replicas_wanted(deploy)
    pod_hash = template_hash(deploy["spec"]["template"], (deploy.get("status") or {}).get("collisionCount", 0))
    mine = [p for p in pods if controlled_by(p, deploy) and not pod_is_finished(p)]
    active = [p for p in mine if not pod_is_terminating(p)]
    new = [p for p in active if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == pod_hash]
    old = [p for p in active if p not in new]
    status = deployment_status(deploy, active, new, now_text)
    if (deploy["spec"].get("strategy") or {}).get("type") == "Recreate" and any(p not in new for p in mine):
        return DeploymentPlan(create=0, delete=old, status=status)  # the new pods wait for the old to be gone
    if not old:
        return DeploymentPlan(create=max(0, wanted - len(new)), delete=pick_for_deletion(new, len(new) - wanted),
                              status=status)
    surge, unavailable = rolling_limits(deploy)
    min_available = wanted - unavailable
    ready_new = sum(1 for p in new if pod_is_ready(p))
    ready_all = ready_new + sum(1 for p in old if pod_is_ready(p))
    # Old pods that are not Ready cost no availability: they go first, as far as the new pods that
    # are not Ready yet leave room.
    unready_old = sorted((p for p in old if not pod_is_ready(p)), key=_deletion_order)
    room = len(active) - min_available - (len(new) - ready_new)
    delete = unready_old[:max(0, min(room, len(unready_old)))]
    ready_old = [p for p in old if pod_is_ready(p)]
    delete += pick_for_deletion(ready_old, min(ready_all - min_available, len(ready_old)))
    return DeploymentPlan(
        create=max(0, min(wanted + surge - len(active), wanted - len(new))),
        delete=delete,
        status=status,
    )


def deployment_status(deploy: Obj, active: list[Obj], new: list[Obj], now_text: str) -> Obj:
    wanted = replicas_wanted(deploy)
    ready = sum(1 for p in active if pod_is_ready(p))
    new_ready = sum(1 for p in new if pod_is_ready(p))
    old_status = deploy.get("status") or {}
    available = ready >= wanted
    complete = len(new) == wanted and new_ready == wanted and len(active) == wanted
    conditions = [
        _condition(old_status, "Available", available,
                   "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                   "Deployment has minimum availability." if available
                   else "Deployment does not have minimum availability.", now_text),
        _condition(old_status, "Progressing", True,
                   "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                   f"Pods of template {deploy['metadata']['name']} have successfully progressed." if complete
                   else f"Pods of template {deploy['metadata']['name']} are progressing.", now_text),
    ]
    status: Obj = {
        "observedGeneration": deploy["metadata"].get("generation", 1),
        "replicas": len(active),
        "updatedReplicas": len(new),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(0, wanted - ready),
        "conditions": conditions,
    }
    if "collisionCount" in old_status:
        status["collisionCount"] = old_status["collisionCount"]
    return status


def _condition(old_status: Obj, kind: str, ok: bool, reason: str, message: str, now_text: str) -> Obj:
    value = "True" if ok else "False"
    old = next((c for c in old_status.get("conditions") or [] if c.get("type") == kind), None)
    if old and old.get("status") == value and old.get("reason") == reason and old.get("message") == message:
        return old
    transition = old["lastTransitionTime"] if old and old.get("status") == value and old.get("lastTransitionTime") else now_text
    return {
        "type": kind,
        "status": value,
        "lastUpdateTime": now_text,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def status_differs(deploy: Obj, status: Obj) -> bool:
    current = deploy.get("status") or {}
    # The API leaves zero counts out of what it returns.
    return any(
        (current.get(k) or 0) != v if isinstance(v, int) else current.get(k) != v
        for k, v in status.items()
    )
