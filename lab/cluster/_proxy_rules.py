"""What the kubelet's NodePort proxy should do, from Services and EndpointSlices: pure logic.

Endpoint choice follows kube-proxy: ready endpoints; when there are none, endpoints that are
serving and terminating (so connections keep working while the last pods drain); with
``externalTrafficPolicy: Local`` only endpoints on this node are considered at all.
The health check node port counts this node's ready endpoints, as kube-proxy's does, so a node
whose pods are all terminating fails its check and load balancers drain it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from lab.cluster._endpoints import service_key, slices_by_service
from lab.cluster._model import Obj


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int
    node: str
    ready: bool
    serving: bool
    terminating: bool


@dataclass(frozen=True)
class NodePortRule:
    namespace: str
    service: str
    port_name: str
    protocol: str
    node_port: int
    local_only: bool
    backends: tuple[tuple[str, int], ...]  # the usable ones, sorted


@dataclass(frozen=True)
class HealthCheck:
    namespace: str
    service: str
    port: int
    local_endpoints: int

    @property
    def status(self) -> int:
        return 200 if self.local_endpoints > 0 else 503

    def body(self) -> bytes:
        doc = {
            "service": {"namespace": self.namespace, "name": self.service},
            "localEndpoints": self.local_endpoints,
            "serviceProxyHealthy": True,
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def backends_for(service_port: Obj, slices: list[Obj]) -> list[Backend]:
    """Every endpoint of one Service port, from all of the Service's slices (deduplicated)."""
    name, protocol = service_port.get("name") or "", service_port.get("protocol", "TCP")
    found: dict[tuple[str, int], Backend] = {}
    for eps in slices:
        if eps.get("addressType", "IPv4") != "IPv4":
            continue
        port = next(
            (p.get("port") for p in eps.get("ports") or []
             if (p.get("name") or "") == name and p.get("protocol", "TCP") == protocol),
            None,
        )
        if port is None:
            continue
        for endpoint in eps.get("endpoints") or []:
            cond = endpoint.get("conditions") or {}
            ready = cond.get("ready") is not False  # nil means ready, per the API
            backend = Backend(
                ip=endpoint["addresses"][0],
                port=int(port),
                node=endpoint.get("nodeName") or "",
                ready=ready,
                serving=cond.get("serving", ready) is not False,
                terminating=bool(cond.get("terminating")),
            )
            found.setdefault((backend.ip, backend.port), backend)
    return sorted(found.values(), key=lambda b: (b.ip, b.port))


def usable(backends: list[Backend], local_only: bool, node_name: str) -> tuple[tuple[str, int], ...]:
    pool = [b for b in backends if b.node == node_name] if local_only else backends
    chosen = [b for b in pool if b.ready] or [b for b in pool if b.serving and b.terminating]
    return tuple((b.ip, b.port) for b in chosen)


def local_only(service: Obj) -> bool:
    return service["spec"].get("externalTrafficPolicy") == "Local"


def node_port_rules(services: list[Obj], slices: list[Obj], node_name: str) -> dict[tuple[str, int], NodePortRule]:
    """{(protocol, nodePort): rule} for every Service port that has a nodePort."""
    rules: dict[tuple[str, int], NodePortRule] = {}
    by_service = slices_by_service(slices)
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        if svc["spec"].get("type") not in ("NodePort", "LoadBalancer"):
            continue
        mine = by_service.get(service_key(svc), [])
        for sp in svc["spec"].get("ports") or []:
            if not sp.get("nodePort"):
                continue
            protocol = sp.get("protocol", "TCP")
            rule = NodePortRule(
                namespace=svc["metadata"]["namespace"],
                service=svc["metadata"]["name"],
                port_name=sp.get("name") or "",
                protocol=protocol,
                node_port=int(sp["nodePort"]),
                local_only=local_only(svc),
                backends=usable(backends_for(sp, mine), local_only(svc), node_name),
            )
            rules.setdefault((protocol, rule.node_port), rule)
    return rules


def health_checks(services: list[Obj], slices: list[Obj], node_name: str) -> dict[int, HealthCheck]:
    """{healthCheckNodePort: check} for every Service with externalTrafficPolicy Local."""
    checks = {}
    by_service = slices_by_service(slices)
    for svc in services:
        port = svc["spec"].get("healthCheckNodePort")
        if not port or not local_only(svc):
            continue
        local_ready = {
            b.ip
            for sp in svc["spec"].get("ports") or []
            for b in backends_for(sp, by_service.get(service_key(svc), []))
            if b.node == node_name and b.ready
        }
        checks[int(port)] = HealthCheck(svc["metadata"]["namespace"], svc["metadata"]["name"], int(port), len(local_ready))
    return checks
