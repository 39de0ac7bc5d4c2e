# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Status write-back: the pools' VIPs in `status.loadBalancer.ingress` of the Services of type
LoadBalancer with `loadBalancerClass: lb.k8sedge.io/edge`, so that `kubectl get svc` shows the
EXTERNAL-IP, as a cloud load balancer publishes its address.

A Service of the class in one of the pools this edge group serves gets its pool's VIPs when the
model serves it (a frontend sends to one of its backends); one the model does not serve (refused,
opted out with `lb.k8sedge.io/expose: "false"`, or its pool has no VIPs) gets an empty ingress,
since nothing answers for it. Services of other pools are another edge group's and left alone.

`desired()` is pure; `read_services()` and `patch()` talk to the API (services/status, the
status writer's own RBAC: docs/rbac-status.yaml).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._annotations import DEFAULT_POOL, EXPOSE, POOL
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import Connection, TransportError
from ansible_collections.k8sedge.lb.plugins.module_utils._model import LOAD_BALANCER_CLASS

__all__ = ["Status", "StatusError", "desired", "patch", "read_services"]


class StatusError(ApplyError):
    """Bad input, or the API refused a read or a write; names the object and the field."""


@dataclass(frozen=True)
class Status:
    """One Service of the class: its ingress now and what it should be."""

    namespace: str
    name: str
    pool: str
    before: tuple[dict[str, Any], ...]
    after: tuple[dict[str, str], ...]
    reason: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def result(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "pool": self.pool, "before": list(self.before),
                "after": list(self.after), "changed": self.changed, "reason": self.reason}


def _served(model: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(namespace, Service) -> the pools whose frontends send to one of its backends."""
    def objects(value: Any, where: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) and all(isinstance(v.get(k), str) for k in keys) for v in value):
            raise StatusError(f"model: {where}: expected a list of objects with {', '.join(keys)} (the model edge_info returns)")
        return value

    if not isinstance(model, dict):
        raise StatusError("model: expected the model edge_info returns")
    services = {b["name"]: (b["namespace"], b["service"]) for b in objects(model.get("backends"), "backends", ("name", "namespace", "service"))}
    served: dict[tuple[str, str], set[str]] = {}
    for frontend in objects(model.get("frontends"), "frontends", ("pool",)):
        names = {frontend.get("backend", "")}
        for key in ("routes", "sni"):
            names |= {r["backend"] for r in objects(frontend.get(key, []), f"frontends[].{key}", ("backend",))}
        for name in names & services.keys():
            served.setdefault(services[name], set()).add(frontend["pool"])
    return served


def _vips(pool_vips: Any, pools: list[str]) -> dict[str, tuple[str, ...]]:
    if not isinstance(pool_vips, dict):
        raise StatusError("pool_vips: expected pool -> list of VIP addresses")
    out = {}
    for pool in pools:
        vips = pool_vips.get(pool) or []
        if not isinstance(vips, list):
            raise StatusError(f"pool_vips[{pool}]: expected a list of VIP addresses, got {g.show(vips)}")
        try:
            out[pool] = tuple(str(g.canonical_ip(v)) for v in vips)
        except g.InvalidValue as exc:
            raise StatusError(f"pool_vips[{pool}]: {exc}") from None
    return out


def _ingress(raw: Any) -> tuple[dict[str, Any], ...]:
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    balancer = status.get("loadBalancer") if isinstance(status.get("loadBalancer"), dict) else {}
    ingress = balancer.get("ingress")
    return tuple(i for i in ingress if isinstance(i, dict)) if isinstance(ingress, list) else ()


def desired(services: list[dict[str, Any]], model: dict[str, Any], pool_vips: Any, pools: list[str]) -> list[Status]:
    """The Services of the class in `pools`, sorted, each with the ingress it should have."""
    vips = _vips(pool_vips, pools)
    served = _served(model)
    found = []
    for raw in services:
        spec = raw.get("spec") if isinstance(raw, dict) else None
        if not isinstance(spec, dict) or spec.get("type") != "LoadBalancer" or spec.get("loadBalancerClass") != LOAD_BALANCER_CLASS:
            continue
        meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
        try:  # values from the cluster: only names the API itself allows go into a request path
            namespace, name = g.dns_label(meta.get("namespace")), g.dns_label(meta.get("name"))
        except g.InvalidValue:
            continue
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        pool = annotations.get(POOL, DEFAULT_POOL)
        if pool not in pools:
            continue
        if annotations.get(EXPOSE) == "false":
            after, reason = (), f"opted out ({EXPOSE}: \"false\")"
        elif pool not in served.get((namespace, name), set()):
            after, reason = (), "not served by the model (see edge_info's errors)"
        elif not vips[pool]:
            after, reason = (), f"pool {pool} has no VIPs"
        else:
            after, reason = tuple({"ip": v} for v in vips[pool]), f"served by pool {pool}"
        found.append(Status(namespace, name, pool, _ingress(raw), after, reason))
    return sorted(found, key=lambda s: (s.namespace, s.name))


def read_services(connection: Connection, timeout: float, page_size: int = 500) -> list[dict[str, Any]]:
    try:
        return k8s.Reader(connection, timeout).list("/api/v1/services", [], page_size)[0]
    except k8s.ReadError as exc:
        raise StatusError(str(exc)) from None


def patch(connection: Connection, status: Status, timeout: float) -> None:
    """A merge patch of the Service's status subresource: the ingress list, replaced whole."""
    path = f"/api/v1/namespaces/{status.namespace}/services/{status.name}/status"
    body = json.dumps({"status": {"loadBalancer": {"ingress": list(status.after)}}}).encode()
    try:
        code, data = connection.request("PATCH", path, body=body, headers={"Content-Type": "application/merge-patch+json"}, timeout=timeout)
    except TransportError as exc:
        raise StatusError(f"PATCH {path}: {exc}") from None
    if code != 200:
        try:
            reason = json.loads(data).get("message", "")
        except ValueError:
            reason = data[:200].decode(errors="replace")
        raise StatusError(f"Service {status.namespace}/{status.name}: PATCH {path}: {code} {reason}")
