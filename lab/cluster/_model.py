"""Small pure helpers over Kubernetes objects as the API returns them (plain dicts)."""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

Obj = dict[str, Any]

# The alphabet of Kubernetes' rand.String / SafeEncodeString: no vowels (no words), no
# characters that look alike.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

ZONE_LABEL = "topology.kubernetes.io/zone"


def key(obj: Obj) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def pod_is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def pod_is_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def node_is_ready(node: Obj) -> bool:
    cond = condition(node, "Ready")
    return cond is not None and cond.get("status") == "True"


def node_internal_ip(node: Obj) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address")
    return None


def labels(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def selector_matches(selector: dict[str, str] | None, obj_labels: dict[str, str]) -> bool:
    """A Service-style equality selector; an empty or missing one selects nothing."""
    if not selector:
        return False
    return all(obj_labels.get(k) == v for k, v in selector.items())


def label_selector_matches(selector: Obj | None, obj_labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); empty selects everything."""
    selector = selector or {}
    if any(obj_labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        op, values = expr["operator"], expr.get("values") or []
        present, value = expr["key"] in obj_labels, obj_labels.get(expr["key"])
        ok = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(op)
        if ok is None:
            raise ValueError(f"label selector operator {op!r} is not one of In, NotIn, Exists, DoesNotExist")
        if not ok:
            return False
    return True


def owner_reference(owner: Obj, kind: str, api_version: str) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def resource_version_newer(candidate: Obj, current: Obj | None) -> bool:
    """Whether candidate is not older than current (resourceVersions compared as integers).

    The API server's resourceVersions are opaque; like etcd's they are integers in the lab, and
    anything that does not parse counts as newer so a cache never gets stuck.
    """
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True
