"""Service ClusterIP and NodePort allocation, with release on delete and type change."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .errors import FieldError

Obj = dict[str, Any]

SERVICE_CIDR = "10.96.0.0/16"
NODE_PORT_RANGE = (30000, 32767)
_NEEDS_NODE_PORTS = ("NodePort", "LoadBalancer")


@dataclass
class _Plan:
    ip: int | None = None
    ports: set[int] = field(default_factory=set)


class ServiceAllocator:
    """Tracks which service (by "ns/name" key) owns each ClusterIP and NodePort."""

    def __init__(self, cidr: str = SERVICE_CIDR, node_ports: tuple[int, int] = NODE_PORT_RANGE):
        self.network = ipaddress.IPv4Network(cidr)
        self.first = int(self.network.network_address) + 1
        self.last = int(self.network.broadcast_address) - 1
        self.node_ports = node_ports
        self.ips: dict[int, str] = {}
        self.ports: dict[int, str] = {}
        self.owned: dict[str, _Plan] = {}
        self._ip_cursor = self.first
        self._port_cursor = node_ports[0]

    def _free_ip(self) -> int | None:
        span = self.last - self.first + 1
        for step in range(span):
            candidate = self.first + (self._ip_cursor - self.first + step) % span
            if candidate not in self.ips:
                self._ip_cursor = candidate + 1 if candidate < self.last else self.first
                return candidate
        return None

    def _free_port(self, taken: set[int]) -> int | None:
        low, high = self.node_ports
        span = high - low + 1
        for step in range(span):
            candidate = low + (self._port_cursor - low + step) % span
            if candidate not in self.ports and candidate not in taken:
                self._port_cursor = candidate + 1 if candidate < high else low
                return candidate
        return None

    def _ip(self, key: str, spec: Obj, old_spec: Obj | None, plan: _Plan) -> list[FieldError]:
        kind = spec.get("type", "ClusterIP")
        requested = spec.get("clusterIP") or ""
        old_ip = (old_spec or {}).get("clusterIP") or ""
        if kind == "ExternalName":
            if requested:
                return [FieldError("Invalid", "spec.clusterIPs", [requested],
                                   "may not be set when `type` is 'ExternalName'")]
            return []
        if not requested and old_ip and old_spec and old_spec.get("type") != "ExternalName":
            requested = old_ip
        if old_spec is not None and old_ip and old_spec.get("type") != "ExternalName" and requested != old_ip:
            return [FieldError("Invalid", "spec.clusterIPs[0]", [requested], "may not change once set")]
        if requested == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        elif requested:
            try:
                address = int(ipaddress.IPv4Address(requested))
            except ValueError:
                return [FieldError("Invalid", "spec.clusterIPs[0]", requested,
                                   "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
            if not self.first <= address <= self.last:
                return [FieldError("Invalid", "spec.clusterIPs", [requested],
                                   f"failed to allocate IP {requested}: the provided IP ({requested}) "
                                   f"is not in the valid range. The range of valid IPs is {self.network}")]
            if self.ips.get(address, key) != key:
                return [FieldError("Invalid", "spec.clusterIPs", [requested],
                                   f"failed to allocate IP {requested}: provided IP is already allocated")]
            plan.ip = address
            spec["clusterIP"], spec["clusterIPs"] = requested, [requested]
        else:
            address = self._free_ip()
            if address is None:
                return [FieldError("Invalid", "spec.clusterIPs", [],
                                   "failed to allocate IP: range is full")]
            plan.ip = address
            text = str(ipaddress.IPv4Address(address))
            spec["clusterIP"], spec["clusterIPs"] = text, [text]
        spec["ipFamilies"] = ["IPv4"]
        spec["ipFamilyPolicy"] = "SingleStack"
        return []

    def _check_port(self, key: str, path: str, port: int, plan: _Plan) -> list[FieldError]:
        low, high = self.node_ports
        if not isinstance(port, int) or not low <= port <= high:
            return [FieldError("Invalid", path, port,
                               "provided port is not in the valid range. "
                               f"The range of valid ports is {low}-{high}")]
        if self.ports.get(port, key) != key:
            return [FieldError("Invalid", path, port, "provided port is already allocated")]
        plan.ports.add(port)
        return []

    def _node_ports(self, key: str, spec: Obj, old_spec: Obj | None, plan: _Plan) -> list[FieldError]:
        kind = spec.get("type", "ClusterIP")
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in (old_spec or {}).get("ports") or [] if p.get("nodePort")}
        ports = spec.get("ports") or []
        needs = kind in _NEEDS_NODE_PORTS
        if not needs:
            spec.pop("healthCheckNodePort", None)
            return []
        errors: list[FieldError] = []
        auto = kind == "NodePort" or spec.get("allocateLoadBalancerNodePorts", True)
        seen: set[tuple[int, str]] = set()
        for i, port in enumerate(ports):
            wanted = port.get("nodePort") or old_ports.get((port.get("port"), port.get("protocol")))
            if wanted:
                if (wanted, port.get("protocol")) in seen:
                    errors.append(FieldError("Duplicate", f"spec.ports[{i}].nodePort", wanted))
                    continue
                errors += self._check_port(key, f"spec.ports[{i}].nodePort", wanted, plan)
                port["nodePort"] = wanted
                seen.add((wanted, port.get("protocol")))
            elif auto:
                port["__allocate__"] = True
        for port in ports:
            if port.pop("__allocate__", False):
                free = self._free_port(plan.ports)
                if free is None:
                    errors.append(FieldError("Invalid", "spec.ports", None, "node port range is full"))
                    break
                plan.ports.add(free)
                port["nodePort"] = free
        if kind == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            wanted = spec.get("healthCheckNodePort") or (old_spec or {}).get("healthCheckNodePort")
            if wanted:
                errors += self._check_port(key, "spec.healthCheckNodePort", wanted, plan)
                spec["healthCheckNodePort"] = wanted
            else:
                free = self._free_port(plan.ports)
                if free is not None:
                    plan.ports.add(free)
                    spec["healthCheckNodePort"] = free
        else:
            spec.pop("healthCheckNodePort", None)
        return errors

    def assign(self, key: str, spec: Obj, old_spec: Obj | None, commit: bool) -> list[FieldError]:
        """Fill spec's IPs and ports; claim them (and release stale ones) only if commit."""
        plan = _Plan()
        errors = self._ip(key, spec, old_spec, plan) + self._node_ports(key, spec, old_spec, plan)
        if errors or not commit:
            return errors
        self.release(key)
        if plan.ip is not None:
            self.ips[plan.ip] = key
        for port in plan.ports:
            self.ports[port] = key
        self.owned[key] = plan
        return []

    def release(self, key: str) -> None:
        plan = self.owned.pop(key, None)
        if plan is None:
            return
        if plan.ip is not None:
            self.ips.pop(plan.ip, None)
        for port in plan.ports:
            self.ports.pop(port, None)
