# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edge model: raw Kubernetes API objects in, one normalized, sorted, deterministic dict out.

Pure: no I/O, no Kubernetes client, no Ansible. `build_model()` is the only entry point; the
contract it implements (annotations, conflicts, names, order) is docs/annotations.md.

Every string in the result was either produced here or accepted by a grammar in `_grammar`;
objects that fail are reported in `errors` (refused) or `warnings` (served, but degraded) and the
rest of the cluster goes on. The build is linear in the input: slices are indexed by namespace and
`kubernetes.io/service-name` once, each Service's endpoints are read once, inputs are never copied.
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
import json
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

from ansible_collections.k8sedge.lb.plugins.module_utils import _annotations as a
from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g
from ansible_collections.k8sedge.lb.plugins.module_utils._grammar import InvalidValue

__all__ = ["ClusterState", "InvalidValue", "ModelJson", "ModelOptions", "build_model", "build_model_json", "generation", "lists_the_gate",
           "model_document", "model_text", "paused_gc"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
ZONE_LABEL = "topology.kubernetes.io/zone"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
LOAD_BALANCER_CLASS = "lb.k8sedge.io/edge"
KUBE_PROXY_HEALTHZ = "/healthz"
ANY_HOST = "*"

_FAMILIES = {"IPv4": 4, "IPv6": 6}
_STATE_RANK = {"ready": 0, "draining": 1}
_NODEPORT_TYPES = ("NodePort", "LoadBalancer")

Raw = dict[str, Any]


@dataclass(frozen=True)
class ClusterState:
    """Raw API objects as the API returns them (dicts from JSON), in any order.

    `endpoint_slices` is None when the cluster lacks discovery.k8s.io/v1; then the legacy
    `endpoints` are read instead. `pods` is None unless readiness gates are on: only then are
    Pods read, for the ones that list the edge's gate."""

    services: list[Raw] = field(default_factory=list)
    endpoint_slices: list[Raw] | None = field(default_factory=list)
    endpoints: list[Raw] = field(default_factory=list)
    nodes: list[Raw] = field(default_factory=list)
    ingresses: list[Raw] = field(default_factory=list)
    config_maps: list[Raw] = field(default_factory=list)
    pods: list[Raw] | None = None


@dataclass(frozen=True)
class ModelOptions:
    """What the operator configured; checked on construction (InvalidValue)."""

    pool: str | None = None  # None: every pool
    ingress_class: str = "k8sedge"
    # Exposure is opt-in: a ConfigMap is read only when the operator names it ("": none).
    tcp_services_configmap: str = ""
    udp_services_configmap: str = ""
    http_port: int = 80
    https_port: int = 443
    nodeport_subset_size: int = 25  # 0: every eligible node
    # Ports the edge keeps for itself (the roles' admin listeners: haproxy 8404, nginx 8405): a
    # claim on one is refused on its object, never in the views, which would stop every update.
    reserved_ports: tuple[int, ...] = (8404, 8405)

    def __post_init__(self) -> None:
        checks: list[tuple[str, Callable[[Any], Any], Any]] = [
            ("ingress_class", g.dns_subdomain, self.ingress_class),
            ("tcp_services_configmap", _configmap_ref, self.tcp_services_configmap),
            ("udp_services_configmap", _configmap_ref, self.udp_services_configmap),
            ("http_port", g.port, self.http_port),
            ("https_port", g.port, self.https_port),
        ]
        if self.pool is not None:
            checks.append(("pool", g.dns_label, self.pool))
        for name, check, value in checks:
            try:
                check(value)
            except InvalidValue as exc:
                raise InvalidValue(f"option {name}: {exc}", name) from None
        if isinstance(self.nodeport_subset_size, bool) or not isinstance(self.nodeport_subset_size, int) \
                or self.nodeport_subset_size < 0:
            raise InvalidValue("option nodeport_subset_size: expected 0 (every node) or a positive number of nodes",
                               "nodeport_subset_size")
        if self.http_port == self.https_port:
            raise InvalidValue("option https_port: expected a port other than http_port", "https_port")
        if not isinstance(self.reserved_ports, (tuple, list)) or not all(
                isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in self.reserved_ports):
            raise InvalidValue("option reserved_ports: expected a list of ports 1-65535", "reserved_ports")
        clash = sorted({self.http_port, self.https_port} & set(self.reserved_ports))
        if clash:
            raise InvalidValue(f"option reserved_ports: {clash[0]} is also the http_port or https_port option", "reserved_ports")


def _configmap_ref(value: Any) -> tuple[str, str]:
    if value == "":
        return "", ""  # none read
    namespace, sep, name = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not sep:
        raise g.expected("<namespace>/<name>", value)
    return g.dns_label(namespace), g.dns_subdomain(name)


# --- reading untrusted objects ---------------------------------------------------------------

def _mapping(value: Any, where: str) -> Raw:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(f"expected an object, got {g.show(value)}", where)
    return value


def _sequence(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list, got {g.show(value)}", where)
    return value


def _at(where: str, parse: Callable[[Any], Any], value: Any) -> Any:
    """parse(value), with `where` as the field of any InvalidValue."""
    try:
        return parse(value)
    except InvalidValue as exc:
        raise InvalidValue(str(exc), exc.field or where) from None


def _optional(raw: Raw, key: str, default: Any) -> Any:
    """An optional field as the API reads it: null is the same as absent, both the default."""
    value = raw.get(key)
    return default if value is None else value


def _one_of(*allowed: str) -> Callable[[Any], str]:
    return lambda value: g.choice(value, allowed)


_PROTOCOL = _one_of("TCP", "UDP", "SCTP")
_SERVICE_TYPE = _one_of("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_IP_FAMILY = _one_of(*_FAMILIES)
_TRAFFIC_POLICY = _one_of("Cluster", "Local")
_ADDRESS_TYPE = _one_of("IPv4", "IPv6", "FQDN")
_PATH_TYPE = _one_of("Exact", "Prefix", "ImplementationSpecific")


def _display(value: Any) -> str:
    """A name to report an object by: itself when harmless, else shown safely."""
    if isinstance(value, str) and len(value) <= 253 and value.replace("-", "").replace(".", "").isalnum() and value.isascii():
        return value
    return g.show(value)


@dataclass(frozen=True)
class _Owner:
    """The object behind a claim or a finding."""

    kind: str
    namespace: str
    name: str
    created: float | None = None  # None: unknown, ranks as the newest

    @property
    def rank(self) -> tuple[bool, float, str, str, str]:
        """Conflict order: oldest creationTimestamp, then kind, namespace, name."""
        return (self.created is None, self.created or 0.0, self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def _identify(kind: str, raw: Any) -> _Owner:
    """Who to report an object as, before (or without) validating it."""
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    namespace = "" if kind == "Node" else _display(meta.get("namespace"))
    return _Owner(kind, namespace, _display(meta.get("name")))


def _owner(kind: str, raw: Any, name_grammar: Callable[[Any], str]) -> _Owner:
    raw = _mapping(raw, "")
    meta = _mapping(raw.get("metadata"), "metadata")
    namespace = "" if kind == "Node" else _at("metadata.namespace", g.dns_label, meta.get("namespace"))
    name = _at("metadata.name", name_grammar, meta.get("name"))
    created = meta.get("creationTimestamp")
    return _Owner(kind, namespace, name, None if created is None else _at("metadata.creationTimestamp", g.timestamp, created))


@dataclass
class _Report:
    """Findings, deduplicated: the same problem seen twice is reported once."""

    errors: set[tuple[str, str, str, str, str]] = field(default_factory=set)
    warnings: set[tuple[str, str, str, str, str]] = field(default_factory=set)

    def add(self, who: _Owner, where: str, message: str, error: bool = True) -> None:
        (self.errors if error else self.warnings).add((who.kind, who.namespace, who.name, where, message))

    def invalid(self, who: _Owner, exc: InvalidValue) -> None:
        self.add(who, exc.field, str(exc))

    @staticmethod
    def listed(findings: set[tuple[str, str, str, str, str]]) -> list[dict[str, str]]:
        keys = ("kind", "namespace", "name", "field", "message")
        return [dict(zip(keys, finding)) for finding in sorted(findings)]


def _unique(kind: str, objects: list[Raw], report: _Report) -> dict[tuple[str, str], Raw]:
    """Objects by (namespace, name); an identity seen twice is refused outright, since which copy
    is right cannot be told and keeping one would depend on the input order."""
    by_key: dict[tuple[str, str], Raw] = {}
    duplicates = set()
    for raw in objects:
        meta = raw.get("metadata") if isinstance(raw, dict) else None
        namespace = "" if kind == "Node" else meta.get("namespace") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(namespace, str):
            report.add(_identify(kind, raw), "metadata", "expected an object with a name and, unless a Node, a namespace")
            continue
        key = (namespace, meta["name"])
        if key in by_key:
            duplicates.add(key)
        by_key[key] = raw
    for key in duplicates:
        report.add(_identify(kind, by_key.pop(key)), "metadata.name", "expected one object of this name, got several: all refused")
    return by_key


# --- nodes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    owner: _Owner
    ready: bool
    excluded: bool
    addresses: dict[int, str]  # family -> first valid InternalIP of that family
    known_addresses: tuple[str, ...]  # every valid InternalIP and ExternalIP: no pod network may cover one
    zone: str
    pod_cidrs: tuple[tuple[str, Any], ...]  # (field, ip_network)


def _read_node(raw: Raw, report: _Report) -> _Node:
    owner = _owner("Node", raw, g.dns_subdomain)
    labels = _mapping(_mapping(raw.get("metadata"), "metadata").get("labels"), "metadata.labels")
    spec = _mapping(raw.get("spec"), "spec")
    status = _mapping(raw.get("status"), "status")
    ready = False
    for i, cond in enumerate(_sequence(status.get("conditions"), "status.conditions")):
        cond = _mapping(cond, f"status.conditions[{i}]")
        if cond.get("type") == "Ready":
            ready = cond.get("status") == "True"
    addresses: dict[int, str] = {}
    known = []
    for i, entry in enumerate(_sequence(status.get("addresses"), "status.addresses")):
        entry = _mapping(entry, f"status.addresses[{i}]")
        if entry.get("type") == "ExternalIP":
            try:
                known.append(g.ip(entry.get("address"))[1])
            except InvalidValue:
                pass  # the edge never sends to an ExternalIP: only a valid one needs keeping out of pod networks
            continue
        if entry.get("type") != "InternalIP":
            continue
        try:
            family, address = _at(f"status.addresses[{i}].address", g.ip, entry.get("address"))
        except InvalidValue as exc:
            report.invalid(owner, exc)
            continue
        addresses.setdefault(family, address)
        known.append(address)
    zone = ""
    if ZONE_LABEL in labels:
        try:
            zone = _at(f"metadata.labels[{ZONE_LABEL}]", g.label_value, labels[ZONE_LABEL])
        except InvalidValue as exc:
            report.invalid(owner, exc)
    cidrs = [(f"spec.podCIDRs[{i}]", c) for i, c in enumerate(_sequence(spec.get("podCIDRs"), "spec.podCIDRs"))]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [("spec.podCIDR", spec["podCIDR"])]
    networks = []
    for where, value in cidrs:
        try:
            networks.append((where, _at(where, g.pod_cidr, value)))
        except InvalidValue as exc:
            report.invalid(owner, exc)
    return _Node(owner, ready, EXCLUDE_LABEL in labels, addresses, tuple(known), zone, tuple(networks))


def _read_nodes(raws: list[Raw], report: _Report) -> dict[str, _Node]:
    nodes = {}
    for raw in _unique("Node", raws, report).values():
        try:
            node = _read_node(raw, report)
        except InvalidValue as exc:
            report.invalid(_identify("Node", raw), exc)
            continue
        nodes[node.owner.name] = node
    return nodes


def _pod_routes(nodes: dict[str, _Node], report: _Report) -> list[dict[str, str]]:
    """{cidr, via, node} for every pod network, oldest node first when two overlap. A network
    that covers an address of any node is refused before it can take a span, so it never wins an
    overlap against a good one (the grammar has refused default routes and wide ones already)."""
    known = sorted({(address.version, int(address), str(address), n.owner.name)
                    for n in nodes.values() for address in map(ipaddress.ip_address, n.known_addresses)})
    taken: list[tuple[int, int, int]] = []  # (version, first, last) of accepted networks, sorted
    routes: dict[tuple[int, int, int], dict[str, str]] = {}
    for node in sorted(nodes.values(), key=lambda n: n.owner.rank):
        for where, net in node.pod_cidrs:
            span = (net.version, int(net.network_address), int(net.broadcast_address))
            at = bisect_left(known, span[:2])
            if at < len(known) and known[at][0] == span[0] and known[at][1] <= span[2]:
                _version, _number, address, owner = known[at]
                report.add(node.owner, where, f"{net} covers {address}, an address of Node {owner}: not routed (the edge"
                           " would send that node's traffic through this one)")
                continue
            via = node.addresses.get(net.version)
            if via is None:
                report.add(node.owner, where, f"no IPv{net.version} InternalIP to route {net} through: not routed", error=False)
                continue
            at = bisect_right(taken, span)
            # Accepted networks are disjoint, so only the neighbours can overlap.
            clash = [t for t in taken[max(at - 1, 0):at + 1] if t[0] == span[0] and t[1] <= span[2] and span[1] <= t[2]]
            if clash:
                report.add(node.owner, where, f"{net} overlaps the pod network of Node {routes[clash[0]]['node']}, which wins"
                           " (oldest creationTimestamp, then name): not routed")
                continue
            taken.insert(at, span)
            routes[span] = {"cidr": str(net), "via": via, "node": node.owner.name}
    return [routes[span] for span in taken]


# --- services ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ServicePort:
    index: int
    name: str
    protocol: str
    port: int
    node_port: int  # 0: none


@dataclass(frozen=True)
class _Service:
    owner: _Owner
    ports: tuple[_ServicePort, ...]
    families: tuple[int, ...]
    local: bool  # externalTrafficPolicy: Local
    health_check_node_port: int  # 0: none
    edge_class: bool  # a LoadBalancer of our loadBalancerClass
    settings: a.ServiceAnnotations


def _read_ports(spec: Raw) -> tuple[_ServicePort, ...]:
    ports = []
    for i, raw in enumerate(_sequence(spec.get("ports"), "spec.ports")):
        try:
            raw = _mapping(raw, "")
            name = _at("name", g.text, raw.get("name"))
            node_port = raw.get("nodePort") or 0
            ports.append(_ServicePort(
                index=i,
                name=_at("name", g.dns_label, name) if name else "",
                protocol=_at("protocol", _PROTOCOL, _optional(raw, "protocol", "TCP")),
                port=_at("port", g.port, raw.get("port")),
                node_port=_at("nodePort", g.port, node_port) if node_port else 0,
            ))
        except InvalidValue as exc:
            raise _within(f"spec.ports[{i}]", exc) from None
    return tuple(ports)


def _read_service(raw: Raw, report: _Report) -> _Service | None:
    """The Service with its annotations, or None (errors reported) when it cannot be served."""
    try:
        owner = _owner("Service", raw, g.dns_label)
        annotations = _mapping(raw["metadata"].get("annotations"), "metadata.annotations")
        settings, findings = a.service_annotations(annotations)
        for finding in findings:
            report.add(owner, finding.field, finding.message, finding.error)
        spec = _mapping(raw.get("spec"), "spec")
        kind = _at("spec.type", _SERVICE_TYPE, _optional(spec, "type", "ClusterIP"))
        families = tuple(dict.fromkeys(
            _FAMILIES[_at(f"spec.ipFamilies[{i}]", _IP_FAMILY, f)] for i, f in enumerate(_sequence(spec.get("ipFamilies"), "spec.ipFamilies"))
        )) or (4,)
        policy = _at("spec.externalTrafficPolicy", _TRAFFIC_POLICY, spec.get("externalTrafficPolicy") or "Cluster")
        health_port = spec.get("healthCheckNodePort") or 0
        service = _Service(
            owner=owner,
            ports=_read_ports(spec),
            families=families,
            local=policy == "Local",
            health_check_node_port=_at("spec.healthCheckNodePort", g.port, health_port) if health_port else 0,
            edge_class=kind == "LoadBalancer" and spec.get("loadBalancerClass") == LOAD_BALANCER_CLASS,
            settings=settings,
        )
    except InvalidValue as exc:
        report.invalid(_identify("Service", raw), exc)
        return None
    if kind == "ExternalName":
        report.add(owner, "spec.type", "expected ClusterIP, NodePort or LoadBalancer: an ExternalName Service has no targets")
        return None
    if settings.backend.mode == "nodeport" and kind not in _NODEPORT_TYPES:
        report.add(owner, "spec.type", f"expected NodePort or LoadBalancer for {a.BACKEND}: nodeport (the default), got {kind};"
                   f" set {a.BACKEND}: pod to send traffic to the pods directly")
        return None
    if any(f.error for f in findings):
        return None
    return service


def _opted_in(raw: Raw) -> bool | None:
    """True when the Service asks to be exposed, False when it does not, None when it says what
    to serve without asking (worth a warning)."""
    meta = raw.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    annotations = annotations if isinstance(annotations, dict) else {}
    expose = annotations.get(a.EXPOSE)
    if expose is not None:
        return expose != "false"  # any other value is parsed, and refused, as an error
    spec = raw.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    if spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") == LOAD_BALANCER_CLASS:
        return True
    # Backend settings are fine on a Service that an Ingress or a ConfigMap exposes; these are not.
    return None if any(k in annotations for k in (a.HOSTS, a.TCP_PORTS, a.UDP_PORTS)) else False


def _raw_pool(raw: Raw) -> Any:
    meta = raw.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations.get(a.POOL, a.DEFAULT_POOL) if isinstance(annotations, dict) else a.DEFAULT_POOL


# --- readiness gates --------------------------------------------------------------------------

@dataclass(frozen=True)
class _GatedPod:
    """A Pod that lists the edge's readiness gate, and waits for it: its containers are ready, the
    gate is not True yet, and it is not terminating. Kubernetes calls it not ready, so its
    endpoints say ready: false; the edge serves it anyway, proves it, then sets the gate."""

    owner: _Owner
    uid: str


def lists_the_gate(raw: Any) -> bool:
    """Whether a raw Pod lists the edge's readiness gate (the reader keeps only those)."""
    spec = raw.get("spec") if isinstance(raw, dict) else None
    gates = spec.get("readinessGates") if isinstance(spec, dict) else None
    return isinstance(gates, list) and any(isinstance(g_, dict) and g_.get("conditionType") == a.READINESS_GATE for g_ in gates)


def _waiting_for_the_gate(raw: Raw) -> _GatedPod | None:
    owner = _owner("Pod", raw, g.dns_subdomain)
    meta = _mapping(raw.get("metadata"), "metadata")
    uid = _at("metadata.uid", g.uid, meta.get("uid"))
    found = {}
    for i, cond in enumerate(_sequence(_mapping(raw.get("status"), "status").get("conditions"), "status.conditions")):
        cond = _mapping(cond, f"status.conditions[{i}]")
        found[cond.get("type")] = cond.get("status")
    if meta.get("deletionTimestamp") is not None or found.get("ContainersReady") != "True" or found.get(a.READINESS_GATE) == "True":
        return None
    return _GatedPod(owner, uid)


def _read_gated_pods(raws: list[Raw] | None, report: _Report) -> dict[tuple[str, str], _GatedPod]:
    """(namespace, name) -> each Pod that waits for the edge's gate. Pods without the gate are
    not the edge's business and are not looked at."""
    waiting = {}
    for raw in _unique("Pod", [r for r in raws or [] if lists_the_gate(r)], report).values():
        try:
            pod = _waiting_for_the_gate(raw)
        except InvalidValue as exc:
            report.invalid(_identify("Pod", raw), exc)
            continue
        if pod is not None:
            waiting[(pod.owner.namespace, pod.owner.name)] = pod
    return waiting


# --- endpoints --------------------------------------------------------------------------------

# One endpoint address: (family, address, state, node, zone); state is ready, draining or out.
_Endpoint = tuple[int, str, str, str, str]


@dataclass(frozen=True)
class _Subset:
    """Endpoints that share port numbers: one EndpointSlice, or one legacy Endpoints subset."""

    ports: dict[tuple[str, str], int]  # (port name, protocol) -> number
    endpoints: tuple[_Endpoint, ...]


def _state(conditions: Raw) -> str:
    """ready, draining or out, from the conditions with the API's defaults: ready nil is true,
    serving nil follows ready, terminating nil is false."""
    ready = conditions.get("ready")
    if ready is None or ready is True:
        return "ready"
    serving, terminating = conditions.get("serving"), conditions.get("terminating")
    for name, value in (("ready", ready), ("serving", serving), ("terminating", terminating)):
        if value is not None and not isinstance(value, bool):
            raise InvalidValue(f"expected true, false or null, got {g.show(value)}", f"conditions.{name}")
    return "draining" if serving and terminating else "out"


def _port_entry(raw: Any) -> tuple[tuple[str, str], int] | None:
    """((name, protocol), number) of one EndpointSlice/Endpoints port; None for a nil port, which
    means "all ports": nothing the edge can use."""
    raw = _mapping(raw, "")
    if raw.get("port") is None:
        return None
    name = _at("name", g.text, raw.get("name"))
    key = (_at("name", g.dns_label, name) if name else "", _at("protocol", _PROTOCOL, _optional(raw, "protocol", "TCP")))
    return key, _at("port", g.port, raw["port"])


def _within(prefix: str, exc: InvalidValue) -> InvalidValue:
    """exc, its field made relative to the enclosing object (fields are built only on failure)."""
    inner = exc.field
    return InvalidValue(str(exc), f"{prefix}{'' if not inner or inner.startswith('[') else '.'}{inner}")


@dataclass
class _EndpointReader:
    """Reads endpoint addresses; node names and zones repeat, so each is checked once."""

    nodes: dict[str, _Node]
    gated: dict[tuple[str, str], _GatedPod] = field(default_factory=dict)
    gated_addresses: dict[str, _GatedPod] = field(default_factory=dict)  # address -> gated Pod served there
    names: dict[Any, str] = field(default_factory=dict)
    zones: dict[Any, str] = field(default_factory=dict)
    port_entries: dict[tuple[Any, ...], tuple[tuple[str, str], int] | None] = field(default_factory=dict)

    def ports(self, raws: list[Any]) -> dict[tuple[str, str], int]:
        """(name, protocol) -> number; slices repeat a few port lists, so each entry is checked once."""
        ports = {}
        for i, raw in enumerate(raws):
            # The type is part of the key: True == 1, but only the integer is a port.
            seen = (raw.get("name"), raw.get("protocol"), type(raw.get("port")), raw.get("port")) if isinstance(raw, dict) else None
            if seen is not None and not all(isinstance(v, (str, int, type(None))) for v in (seen[0], seen[1], seen[3])):
                seen = None  # a value that cannot be a key is refused by _port_entry anyway
            if seen in self.port_entries:
                entry = self.port_entries[seen]
            else:
                try:
                    entry = _port_entry(raw)
                except InvalidValue as exc:
                    raise _within(f"[{i}]", exc) from None
                if seen is not None:
                    self.port_entries[seen] = entry
            if entry is not None:
                ports[entry[0]] = entry[1]
        return ports

    def node(self, value: Any) -> str:
        if not value:
            return ""
        name = self.names.get(value) if isinstance(value, str) else None
        if name is None:
            name = self.names[value] = _at("nodeName", g.dns_subdomain, value)
        return name

    def zone(self, value: Any, node: str) -> str:
        if not value:
            return self.nodes[node].zone if node in self.nodes else ""
        zone = self.zones.get(value) if isinstance(value, str) else None
        if zone is None:
            zone = self.zones[value] = _at("zone", g.label_value, value)
        return zone

    def waiting_pod(self, target_ref: Any, namespace: str, terminating: Any = None) -> _GatedPod | None:
        """The gated Pod an endpoint that is not ready points to, when that Pod waits for the edge."""
        if not self.gated or not isinstance(target_ref, dict) or target_ref.get("kind") != "Pod" or terminating:
            return None
        pod = self.gated.get((target_ref.get("namespace") or namespace, target_ref.get("name")))
        if pod is None or target_ref.get("uid") not in (None, "", pod.uid):
            return None  # another Pod of the same name, or none waiting
        return pod

    def slice_endpoint(self, endpoint: Any, family: int, namespace: str) -> _Endpoint:
        """The hot loop of a build (50,000 endpoints): kept to plain lookups."""
        if not isinstance(endpoint, dict):
            raise InvalidValue(f"expected an object, got {g.show(endpoint)}")
        addresses = endpoint.get("addresses")
        try:
            # The API says every address of an endpoint is fungible: kube-proxy uses the first.
            version, address = g.ip(addresses[0] if isinstance(addresses, list) and addresses else None)
        except InvalidValue as exc:
            raise InvalidValue(str(exc), "addresses[0]") from None
        if version != family:
            raise InvalidValue(f"expected an IPv{family} address as the slice's addressType says, got {g.show(addresses[0])}", "addresses[0]")
        conditions = endpoint.get("conditions")
        state = "ready" if conditions is None else _state(_mapping(conditions, "conditions"))
        if state == "out" and self.gated:
            pod = self.waiting_pod(endpoint.get("targetRef"), namespace, conditions.get("terminating"))
            if pod is not None:
                state = "ready"
                self.gated_addresses[address] = pod
        name = endpoint.get("nodeName")
        node = self.names.get(name) if isinstance(name, str) else None  # inlined self.node(): the common case
        if node is None:
            node = self.node(name)
        return (family, address, state, node, self.zone(endpoint.get("zone"), node))

    def legacy_address(self, entry: Any) -> _Endpoint:
        entry = _mapping(entry, "")
        family, address = _at("ip", g.ip, entry.get("ip"))
        node = self.node(entry.get("nodeName"))
        return (family, address, "ready", node, self.zone(None, node))

    def legacy_waiting(self, entry: Any, namespace: str) -> _Endpoint | None:
        """A notReadyAddresses entry of a Pod that waits for the edge's gate, as a ready endpoint."""
        pod = self.waiting_pod(entry.get("targetRef") if isinstance(entry, dict) else None, namespace)
        if pod is None:
            return None
        endpoint = self.legacy_address(entry)
        self.gated_addresses[endpoint[1]] = pod
        return endpoint


def _read_slice(raw: Raw, reader: _EndpointReader, report: _Report) -> _Subset | None:
    try:
        address_type = raw.get("addressType")
        if not isinstance(address_type, str) or address_type not in _FAMILIES:
            if _at("addressType", _ADDRESS_TYPE, address_type) == "FQDN":
                return None
        try:
            ports = reader.ports(_sequence(raw.get("ports"), ""))
        except InvalidValue as exc:
            raise _within("ports", exc) from None
        raw_endpoints = _sequence(raw.get("endpoints"), "endpoints")
    except InvalidValue as exc:
        report.invalid(_identify("EndpointSlice", raw), exc)
        return None
    family = _FAMILIES[address_type]
    namespace = raw["metadata"]["namespace"]  # _index_by_service keeps only slices with one
    endpoints = []
    for i, endpoint in enumerate(raw_endpoints):
        try:
            endpoints.append(reader.slice_endpoint(endpoint, family, namespace))
        except InvalidValue as exc:
            report.invalid(_identify("EndpointSlice", raw), _within(f"endpoints[{i}]", exc))
    return _Subset(ports, tuple(endpoints))


def _read_endpoints(raw: Raw, reader: _EndpointReader, report: _Report) -> list[_Subset]:
    """Legacy Endpoints: addresses are ready, notReadyAddresses are out (and so left aside)."""
    who = _identify("Endpoints", raw)
    subsets = []
    try:
        raw_subsets = _sequence(raw.get("subsets"), "subsets")
    except InvalidValue as exc:
        report.invalid(who, exc)
        return []
    for i, subset in enumerate(raw_subsets):
        try:
            subset = _mapping(subset, "")
            try:
                ports = reader.ports(_sequence(subset.get("ports"), ""))
            except InvalidValue as exc:
                raise _within("ports", exc) from None
            raw_addresses = _sequence(subset.get("addresses"), "addresses")
            not_ready = _sequence(subset.get("notReadyAddresses"), "notReadyAddresses") if reader.gated else []
        except InvalidValue as exc:
            report.invalid(who, _within(f"subsets[{i}]", exc))
            continue
        endpoints = []
        for j, entry in enumerate(raw_addresses):
            try:
                endpoints.append(reader.legacy_address(entry))
            except InvalidValue as exc:
                report.invalid(who, _within(f"subsets[{i}].addresses[{j}]", exc))
        for j, entry in enumerate(not_ready):
            try:
                waiting = reader.legacy_waiting(entry, raw["metadata"]["namespace"])
            except InvalidValue as exc:
                report.invalid(who, _within(f"subsets[{i}].notReadyAddresses[{j}]", exc))
                continue
            if waiting is not None:
                endpoints.append(waiting)
        subsets.append(_Subset(ports, tuple(endpoints)))
    return subsets


def _index_by_service(objects: list[Raw], legacy: bool) -> dict[tuple[Any, Any], list[Raw]]:
    """Slices by (namespace, kubernetes.io/service-name label); legacy Endpoints by (namespace, name)."""
    index: dict[tuple[Any, Any], list[Raw]] = {}
    for raw in objects:
        meta = raw.get("metadata") if isinstance(raw, dict) else None
        if not isinstance(meta, dict):
            continue
        if legacy:
            service = meta.get("name")
        else:
            labels = meta.get("labels")
            service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
        if isinstance(service, str) and isinstance(meta.get("namespace"), str):
            index.setdefault((meta["namespace"], service), []).append(raw)
    return index


# --- claims -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _BackendRef:
    """A backend: one Service port, reached in one way. Two frontends that need different
    haproxy/nginx modes or PROXY settings cannot share a backend, so those are part of it."""

    namespace: str
    service: str
    port: int
    protocol: str  # TCP or UDP: the Service port's protocol
    layer: str  # http, tcp or udp: what the frontends that use it speak
    proxy_protocol: str

    @property
    def name(self) -> str:
        suffix = "" if self.layer == "http" else f"_{self.layer}"
        suffix += "" if self.proxy_protocol == "none" else f"_proxy-{self.proxy_protocol}"
        return f"{self.namespace}_{self.service}_{self.port}{suffix}"


@dataclass(frozen=True)
class _Claim:
    """One thing an object asks the edge to serve; claims with equal `key` conflict."""

    owner: _Owner
    field: str
    pool: str
    protocol: str  # http (a route), sni (TLS passthrough by host name), tcp, udp
    port: int
    backend: _BackendRef
    host: str = ""
    path: str = ""
    path_type: str = "prefix"
    certificate: str = ""
    accept_proxy: bool = False

    @property
    def key(self) -> tuple[Any, ...]:
        if self.protocol in ("http", "sni"):
            return (self.pool, self.protocol, self.host, self.path)
        return (self.pool, self.protocol, self.port)

    @property
    def rank(self) -> tuple[Any, ...]:
        return (self.owner.rank, self.field, self.host, self.path)

    def describe(self) -> str:
        if self.protocol == "http":
            return f"route {self.host}{self.path} in pool {self.pool}"
        if self.protocol == "sni":
            return f"TLS passthrough for {self.host} in pool {self.pool}"
        return f"{self.protocol} port {self.port} in pool {self.pool}"


def _route_path(path: str, path_type: str) -> str:
    """The one spelling of a route's path. Kubernetes matches a Prefix path element by element and
    ignores a trailing slash, so /api and /api/ are one route (and one conflict key): no slash."""
    return (path.rstrip("/") or "/") if path_type == "prefix" else path


def _service_port(service: _Service, ref: int | str, protocol: str) -> _ServicePort:
    for port in service.ports:
        if (port.port == ref if isinstance(ref, int) else port.name == ref) and port.protocol == protocol:
            return port
    what = f"port {ref}" if isinstance(ref, int) else f"port named {ref}"
    raise InvalidValue(f"expected a {protocol} port of {service.owner.ref}, got {what}, which it does not have")


def _backend_ref(service: _Service, ref: int | str, layer: str, send_proxy: bool = False) -> _BackendRef:
    protocol = "UDP" if layer == "udp" else "TCP"
    port = _service_port(service, ref, protocol)
    if service.settings.backend.mode == "nodeport" and not port.node_port:
        raise InvalidValue(f"expected a nodePort on port {port.port} of {service.owner.ref} (spec.ports[{port.index}].nodePort)"
                           f" for {a.BACKEND}: nodeport")
    proxy = service.settings.backend.proxy_protocol
    if send_proxy and proxy == "none":
        proxy = "v1"  # ingress-nginx's encode field speaks v1
    return _BackendRef(service.owner.namespace, service.owner.name, port.port, protocol, layer, "none" if layer == "udp" else proxy)


def _annotation_claims(service: _Service, report: _Report) -> list[_Claim]:
    settings = service.settings
    owner, pool = service.owner, settings.pool
    claims: list[_Claim] = []
    tcp_ports, udp_ports = settings.tcp_ports, settings.udp_ports
    streams_from = {"tcp": a.field_of(a.TCP_PORTS), "udp": a.field_of(a.UDP_PORTS)}
    if not (settings.hosts or tcp_ports or udp_ports):
        if not service.edge_class:
            report.add(owner, a.field_of(a.EXPOSE), f"exposed, but none of {a.HOSTS}, {a.TCP_PORTS}, {a.UDP_PORTS} says what to serve", error=False)
            return []
        # A LoadBalancer of our class: every port on the edge, as a cloud load balancer would.
        tcp_ports = tuple(a.PortMapping(p.port, p.port) for p in service.ports if p.protocol == "TCP")
        udp_ports = tuple(a.PortMapping(p.port, p.port) for p in service.ports if p.protocol == "UDP")
        streams_from = {"tcp": "spec.ports", "udp": "spec.ports"}
    try:
        if settings.hosts:
            where = a.field_of(a.HTTP_PORT if settings.http_port is not None else a.HOSTS)
            if settings.http_port is not None:
                ref = settings.http_port
            elif service.ports:
                ref = service.ports[0].port
            else:
                raise InvalidValue("expected a Service with ports", "spec.ports")
            layer = "tcp" if settings.tls == "passthrough" else "http"
            backend = _at(where, lambda r: _backend_ref(service, r, layer), ref)
            path = _route_path(settings.path, "prefix")
            for host in settings.hosts:
                if settings.tls == "passthrough":
                    claims.append(_Claim(owner, a.field_of(a.HOSTS), pool, "sni", 0, backend, host=host))
                else:
                    claims.append(_Claim(owner, a.field_of(a.HOSTS), pool, "http", 0, backend, host=host, path=path,
                                         certificate=settings.tls_certificate if settings.tls == "terminate" else ""))
    except InvalidValue as exc:
        report.invalid(owner, exc)
    for layer, mappings in (("tcp", tcp_ports), ("udp", udp_ports)):
        for mapping in mappings:
            try:
                backend = _at(streams_from[layer], lambda r, layer=layer: _backend_ref(service, r, layer), mapping.service_port)
            except InvalidValue as exc:
                report.invalid(owner, exc)
                continue
            claims.append(_Claim(owner, streams_from[layer], pool, layer, mapping.edge_port, backend))
    return claims


def _ingress_claims(raw: Raw, options: ModelOptions, service: Callable[[str, str], _Service | None], report: _Report) -> list[_Claim]:
    """HTTP routes of one Ingress of our class; a grammar error refuses the whole Ingress, a
    missing or unusable Service only its own path."""
    who = _identify("Ingress", raw)
    try:
        owner = _owner("Ingress", raw, g.dns_subdomain)
        meta = raw["metadata"]
        annotations = _mapping(meta.get("annotations"), "metadata.annotations")
        settings, findings = a.ingress_annotations(annotations)
        for finding in findings:
            report.add(owner, finding.field, finding.message, finding.error)
        if any(f.error for f in findings) or (options.pool is not None and settings.pool != options.pool):
            return []
        spec = _mapping(raw.get("spec"), "spec")
        if spec.get("defaultBackend") is not None:
            report.add(owner, "spec.defaultBackend", "not served: every route needs a host rule or a path", error=False)
        tls_hosts = set()
        for i, tls in enumerate(_sequence(spec.get("tls"), "spec.tls")):
            for j, host in enumerate(_sequence(_mapping(tls, f"spec.tls[{i}]").get("hosts"), f"spec.tls[{i}].hosts")):
                tls_hosts.add(_at(f"spec.tls[{i}].hosts[{j}]", g.hostname, host))
        if tls_hosts and not settings.tls_certificate:
            raise InvalidValue("required with spec.tls: the name of a certificate the edge holds (Secrets are never read)", a.field_of(a.TLS_CERTIFICATE))
        paths = []
        for i, rule in enumerate(_sequence(spec.get("rules"), "spec.rules")):
            rule = _mapping(rule, f"spec.rules[{i}]")
            host = _at(f"spec.rules[{i}].host", g.hostname, rule["host"]) if rule.get("host") else ANY_HOST
            http = _mapping(rule.get("http"), f"spec.rules[{i}].http")
            for j, entry in enumerate(_sequence(http.get("paths"), f"spec.rules[{i}].http.paths")):
                where = f"spec.rules[{i}].http.paths[{j}]"
                entry = _mapping(entry, where)
                path = _at(f"{where}.path", g.path, entry.get("path") or "/")
                path_type = _at(f"{where}.pathType", _PATH_TYPE, _optional(entry, "pathType", "ImplementationSpecific"))
                backend = _mapping(_mapping(entry.get("backend"), f"{where}.backend").get("service"), f"{where}.backend.service")
                if not backend:
                    raise InvalidValue("expected a service backend (resource backends are not served)", f"{where}.backend")
                name = _at(f"{where}.backend.service.name", g.dns_label, backend.get("name"))
                port = _mapping(backend.get("port"), f"{where}.backend.service.port")
                ref = _at(f"{where}.backend.service.port", g.port_ref, port.get("number") if "number" in port else port.get("name"))
                matching = "exact" if path_type == "Exact" else "prefix"
                paths.append((where, host, _route_path(path, matching), matching, name, ref))
    except InvalidValue as exc:
        report.invalid(who, exc)
        return []
    claims = []
    for where, host, path, path_type, name, ref in paths:
        target = service(owner.namespace, name)
        try:
            if target is None:
                raise InvalidValue(f"expected an existing, valid Service {owner.namespace}/{name}: missing or refused (see its errors)")
            backend = _backend_ref(target, ref, "http")
        except InvalidValue as exc:
            report.add(owner, f"{where}.backend", str(exc))
            continue
        certificate = settings.tls_certificate if host in tls_hosts else ""
        claims.append(_Claim(owner, where, settings.pool, "http", 0, backend, host=host, path=path, path_type=path_type, certificate=certificate))
    return claims


def _configmap_claims(raw: Raw, layer: str, service: Callable[[str, str], _Service | None], report: _Report) -> list[_Claim]:
    """Claims of a tcp-services/udp-services ConfigMap: the ConfigMap is the opt-in, its entries
    belong to the default pool."""
    who = _identify("ConfigMap", raw)
    try:
        owner = _owner("ConfigMap", raw, g.dns_subdomain)
        data = _mapping(raw.get("data"), "data")
    except InvalidValue as exc:
        report.invalid(who, exc)
        return []
    claims = []
    for key, value in data.items():
        where = f"data[{_display(key)}]"
        try:
            entry = _at(where, lambda v, k=key: a.service_entry(k, v, udp=layer == "udp"), value)
            target = service(entry.namespace, entry.service)
            if target is None:
                raise InvalidValue(f"expected an existing, valid Service {entry.namespace}/{entry.service}: missing or refused (see its errors)", where)
            backend = _at(where, lambda r, e=entry: _backend_ref(target, r, layer, send_proxy=e.send_proxy), entry.service_port)
        except InvalidValue as exc:
            report.invalid(owner, exc)
            continue
        claims.append(_Claim(owner, where, a.DEFAULT_POOL, layer, entry.edge_port, backend, accept_proxy=entry.accept_proxy))
    return claims


def _resolve(claims: list[_Claim], report: _Report) -> list[_Claim]:
    """The winner of each key: the oldest claim (then kind, namespace, name); losers reported."""
    winners: dict[tuple[Any, ...], _Claim] = {}
    for claim in sorted(claims, key=lambda c: c.rank):
        winner = winners.setdefault(claim.key, claim)
        if winner is not claim:
            report.add(claim.owner, claim.field, f"{claim.describe()} is also claimed by {winner.owner.ref}"
                       f" ({winner.field}), which wins: oldest creationTimestamp, then kind, namespace, name")
    return list(winners.values())


def _port_owners(claims: list[_Claim], options: ModelOptions, report: _Report) -> list[_Claim]:
    """Who serves each pool's http and https ports: HTTP routes own the http port; TLS terminate
    routes own the https port, else TLS passthrough does; a tcp claim takes what is left."""
    routes = _resolve([c for c in claims if c.protocol == "http"], report)
    http_pools = {c.pool for c in routes}
    terminate_pools = {c.pool for c in routes if c.certificate}
    sni = []
    for claim in _resolve([c for c in claims if c.protocol == "sni"], report):
        if claim.pool in terminate_pools:
            report.add(claim.owner, claim.field, f"{claim.describe()}: port {options.https_port} of pool {claim.pool} is served by its"
                       " TLS terminate routes")
        else:
            sni.append(claim)
    sni_pools = {c.pool for c in sni}
    streams = []
    for claim in claims:
        if claim.protocol not in ("tcp", "udp"):
            continue
        if claim.port in options.reserved_ports:
            report.add(claim.owner, claim.field, f"{claim.describe()}: port {claim.port} is kept by the edge for itself (its admin"
                       " listeners; option reserved_ports)")
        elif claim.protocol == "udp":
            streams.append(claim)
        elif (claim.port == options.http_port and claim.pool in http_pools) or (claim.port == options.https_port and claim.pool in terminate_pools | sni_pools):
            report.add(claim.owner, claim.field, f"{claim.describe()} is served by the pool's HTTP frontend, which owns it when the pool has host routes")
        else:
            streams.append(claim)
    return routes + sni + _resolve(streams, report)


# --- assembly ---------------------------------------------------------------------------------

def _host_order(host: str) -> tuple[int, int, str]:
    """Matching order: exact host names, then wildcards (most labels first), then any host."""
    if host == ANY_HOST:
        return (2, 0, host)
    if host.startswith("*."):
        return (1, -host.count("."), host)
    return (0, 0, host)


def _route_order(claim: _Claim) -> tuple[Any, ...]:
    """First match wins: per host, the longest path first."""
    return (_host_order(claim.host), -len(claim.path), claim.path)


def _frontends(claims: list[_Claim], options: ModelOptions) -> list[dict[str, Any]]:
    frontends = []
    by_pool: dict[tuple[str, str], list[_Claim]] = {}
    for claim in claims:
        by_pool.setdefault((claim.pool, claim.protocol), []).append(claim)
    for (pool, protocol), group in by_pool.items():
        if protocol == "http":
            group.sort(key=_route_order)
            frontends.append(_http_frontend(pool, options.http_port, group, tls=False))
            secure = [c for c in group if c.certificate]
            if secure:
                frontends.append(_http_frontend(pool, options.https_port, secure, tls=True))
        elif protocol == "sni":
            group.sort(key=lambda c: _host_order(c.host))
            frontends.append({
                "name": f"{pool}-tcp-{options.https_port}", "pool": pool, "protocol": "tcp", "port": options.https_port,
                "tls": False, "accept_proxy": False, "backend": "",
                "sni": [{"host": c.host, "backend": c.backend.name} for c in group],
            })
        else:
            for claim in group:
                frontend = {
                    "name": f"{pool}-{protocol}-{claim.port}", "pool": pool, "protocol": protocol, "port": claim.port,
                    "tls": False, "accept_proxy": claim.accept_proxy, "backend": claim.backend.name,
                }
                if protocol == "tcp":
                    frontend["sni"] = []
                frontends.append(frontend)
    return sorted(frontends, key=lambda f: (f["pool"], f["protocol"], f["port"]))


def _http_frontend(pool: str, port: int, routes: list[_Claim], tls: bool) -> dict[str, Any]:
    return {
        "name": f"{pool}-http-{port}", "pool": pool, "protocol": "http", "port": port, "tls": tls, "accept_proxy": False,
        "certificates": sorted({c.certificate for c in routes if c.certificate}) if tls else [],
        "routes": [{
            "host": c.host, "path": c.path, "path_type": c.path_type, "backend": c.backend.name,
            "certificate": c.certificate if tls else "",
            "redirect_https": bool(c.certificate) and not tls,
        } for c in routes],
    }


@dataclass
class _Targets:
    """Reads each Service's endpoints once, whatever number of backends use them."""

    index: dict[tuple[Any, Any], list[Raw]]
    legacy: bool
    nodes: dict[str, _Node]
    report: _Report
    subset_size: int
    cache: dict[tuple[str, str], list[_Subset]] = field(default_factory=dict)

    gated: dict[tuple[str, str], _GatedPod] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.eligible = [n for n in self.nodes.values() if n.ready and not n.excluded]
        self.reader = _EndpointReader(self.nodes, self.gated)
        # The eligible nodes on a hash ring, for the node port subsets (see node_subset).
        self.ring = sorted((_ring_position(n.owner.name), n.owner.name, n) for n in self.eligible)
        self.ring_positions = [position for position, _name, _node in self.ring]

    def node_subset(self, service: _Service) -> list[_Node]:
        """The nodes that carry a Service's node port traffic (externalTrafficPolicy: Cluster).

        kube-proxy forwards from any node to any endpoint, so beyond a few dozen nodes more node
        targets only add config and health checks (200 nodes x 5,000 Services would be a million
        servers, each checked). Each Service takes the `subset_size` nodes that follow its own
        position on a hash ring of node names: the same input gives the same subset in any order,
        Services spread evenly over the nodes, and a node joining or leaving changes at most one
        member of each subset (consistent hashing, as GKE's L4 subsetting does with 25 nodes)."""
        if not self.subset_size or len(self.ring) <= self.subset_size:
            return self.eligible
        start = bisect_right(self.ring_positions, _ring_position(f"{service.owner.namespace}/{service.owner.name}"))
        window = [self.ring[(start + i) % len(self.ring)] for i in range(self.subset_size)]
        return [node for _position, _name, node in window]

    def subsets(self, service: _Service) -> list[_Subset]:
        key = (service.owner.namespace, service.owner.name)
        if key not in self.cache:
            raws = self.index.get(key, [])
            if self.legacy:
                self.cache[key] = [s for raw in raws for s in _read_endpoints(raw, self.reader, self.report)]
            else:
                self.cache[key] = [s for s in (_read_slice(raw, self.reader, self.report) for raw in raws) if s is not None]
        return self.cache[key]

    def pods(self, service: _Service, port: _ServicePort) -> list[dict[str, Any]]:
        """Targets in (address, port) order."""
        best: dict[tuple[str, int], tuple[int, str, str]] = {}
        for subset in self.subsets(service):
            number = subset.ports.get((port.name, port.protocol))
            if number is None:
                continue
            for family, address, state, node, zone in subset.endpoints:
                if state == "out" or family not in service.families:
                    continue
                # An address in several slices counts once; the best state, then node, zone wins.
                candidate = (_STATE_RANK[state], node, zone)
                current = best.get((address, number))
                if current is None or candidate < current:
                    best[(address, number)] = candidate
        return [{"address": address, "port": number, "node": node, "zone": zone, "state": "draining" if rank else "ready"}
                for (address, number), (rank, node, zone) in sorted(best.items())]

    def node_ports(self, service: _Service, port: _ServicePort) -> list[dict[str, Any]]:
        """Targets in (address, port) order: the port is the same for all."""
        local: dict[str, str] = {}
        if service.local:
            # Only nodes with a local endpoint take traffic; a node with only terminating ones drains.
            for subset in self.subsets(service):
                for _family, _address, state, node, _zone in subset.endpoints:
                    if state != "out" and node and local.get(node) != "ready":
                        local[node] = state
        targets = []
        for node in self.eligible if service.local else self.node_subset(service):
            if service.local and node.owner.name not in local:
                continue
            for family in service.families:
                if family in node.addresses:
                    targets.append((node.addresses[family], node.owner.name, node.zone, local.get(node.owner.name, "ready")))
        return [{"address": address, "port": port.node_port, "node": name, "zone": zone, "state": state}
                for address, name, zone, state in sorted(targets)]


def _ring_position(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _health_check(service: _Service, ref: _BackendRef, report: _Report) -> dict[str, Any]:
    settings = service.settings.backend
    if settings.mode == "nodeport" and service.local:
        if service.health_check_node_port:
            # kube-proxy answers 200 on this port only while the node has a ready local endpoint.
            return {"type": "http", "path": KUBE_PROXY_HEALTHZ, "port": service.health_check_node_port}
        report.add(service.owner, "spec.externalTrafficPolicy", "Local without a healthCheckNodePort (only LoadBalancer Services have one):"
                   " nodes are checked on the node port, so a node losing its last endpoint is noticed late", error=False)
    if ref.layer == "udp":
        return {"type": "none"}
    if settings.health_check == "http":
        return {"type": "http", "path": settings.health_check_path or "/"}
    return {"type": settings.health_check}


def _backend(ref: _BackendRef, service: _Service, targets: _Targets, report: _Report) -> dict[str, Any]:
    port = _service_port(service, ref.port, ref.protocol)
    settings = service.settings.backend
    found = targets.pods(service, port) if settings.mode == "pod" else targets.node_ports(service, port)
    if not found:
        report.add(service.owner, f"spec.ports[{port.index}]", f"backend {ref.name} has no targets: kept, the edge answers for it", error=False)
    return {
        "name": ref.name, "namespace": ref.namespace, "service": ref.service, "port": ref.port, "port_name": port.name,
        "protocol": ref.protocol, "frontend_protocol": ref.layer, "mode": settings.mode, "balance": settings.balance,
        "health_check": _health_check(service, ref, report),
        "timeouts": {"connect_ms": settings.connect_ms, "server_ms": settings.server_ms},
        "proxy_protocol": ref.proxy_protocol,
        "targets": found,
    }


def generation(model: dict[str, Any]) -> str:
    """sha256 of what is served (frontends, backends, routes): findings never force a reload."""
    return hashlib.sha256(_served_json(model).encode()).hexdigest()


def _served_json(model: dict[str, Any]) -> str:
    # A model is a tree (built here, or decoded from JSON): no cycle to look for, a third faster.
    return json.dumps({key: model[key] for key in ("backends", "frontends", "routes")}, sort_keys=True, separators=(",", ":"),
                      check_circular=False)


def model_text(model: dict[str, Any]) -> str:
    """A model as one compact JSON text (what edge_info returns as model_json)."""
    return json.dumps(model, sort_keys=True, separators=(",", ":"), check_circular=False)


def model_document(value: Any) -> dict[str, Any]:
    """The model from what edge_info returned: `model` (a dict) or `model_json` (its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidValue(f"model: expected the JSON text edge_info returns as model_json: {exc}", "model") from None
    if not isinstance(value, dict) or not isinstance(value.get("generation"), str):
        raise InvalidValue("model: expected the model edge_info returns (model or model_json), with its generation", "model")
    return value


def build_model(state: ClusterState, options: ModelOptions) -> dict[str, Any]:
    """The edge model of one cluster state; see docs/annotations.md for every rule."""
    with paused_gc():
        return _build(state, options)[0]


class ModelJson(NamedTuple):
    generation: str
    text: str  # the whole model
    gates: list[dict[str, Any]]  # its Pods that wait for the readiness gate, also in the text


def build_model_json(state: ClusterState, options: ModelOptions) -> ModelJson:
    """The model as one compact JSON text. A large model crosses Ansible far faster this way: the
    controller handles one string instead of a million small values. The served part is
    serialized once, for its hash and for the text."""
    with paused_gc():
        model, served = _build(state, options)
        findings = json.dumps({key: model[key] for key in ("errors", "gates", "generation", "warnings")}, sort_keys=True,
                              separators=(",", ":"))
        return ModelJson(model["generation"], f"{findings[:-1]},{served[1:]}", model["gates"])


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. Reading and building a large cluster allocate
    millions of acyclic objects: each full collection the GC would run meanwhile walks them all
    and frees nothing (measured: a third of a 5,000-Service read)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _build(state: ClusterState, options: ModelOptions) -> tuple[dict[str, Any], str]:
    """The model, and the JSON text of its served part (what its generation hashes)."""
    report = _Report()
    if not any((state.services, state.endpoint_slices, state.endpoints, state.nodes, state.ingresses, state.config_maps)):
        # Every read lists the nodes: an empty one is a wrong src or a broken read, not a quiet cluster.
        report.add(_Owner("", "", ""), "", "nothing was read (no Service, EndpointSlice, Endpoints, Node, Ingress or ConfigMap):"
                   " the model serves nothing; check the src option or the cluster read", error=False)
    nodes = _read_nodes(state.nodes, report)
    raw_services = _unique("Service", state.services, report)
    services: dict[tuple[Any, Any], _Service | None] = {}

    def service(namespace: str, name: str) -> _Service | None:
        key = (namespace, name)
        if key not in services:
            services[key] = _read_service(raw_services[key], report) if key in raw_services else None
        return services[key]

    claims: list[_Claim] = []
    for key, raw in raw_services.items():
        if options.pool is not None and _raw_pool(raw) != options.pool:
            continue
        opted_in = _opted_in(raw)
        if opted_in is None:
            report.add(_identify("Service", raw), "metadata.annotations", f"says what to serve ({a.HOSTS}, {a.TCP_PORTS} or {a.UDP_PORTS})"
                       f" but is not exposed: set {a.EXPOSE}: \"true\" to serve it", error=False)
        elif opted_in:
            parsed = service(*key)
            if parsed is not None:
                claims += _annotation_claims(parsed, report)
    for raw in _unique("Ingress", state.ingresses, report).values():
        spec = raw.get("spec") if isinstance(raw.get("spec"), dict) else {}
        meta = raw["metadata"]
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        ingress_class = spec.get("ingressClassName") or annotations.get(INGRESS_CLASS_ANNOTATION)
        if ingress_class == options.ingress_class:
            claims += _ingress_claims(raw, options, service, report)
    if options.pool in (None, a.DEFAULT_POOL):
        config_maps = _unique("ConfigMap", state.config_maps, report)
        for ref, layer in ((options.tcp_services_configmap, "tcp"), (options.udp_services_configmap, "udp")):
            raw = config_maps.get(tuple(ref.split("/", 1))) if ref else None
            if raw is not None:
                claims += _configmap_claims(raw, layer, service, report)

    served = _port_owners(claims, options, report)
    legacy = state.endpoint_slices is None
    targets = _Targets(_index_by_service(state.endpoints if legacy else state.endpoint_slices or [], legacy), legacy, nodes, report,
                       options.nodeport_subset_size, gated=_read_gated_pods(state.pods, report))
    refs = {c.backend for c in served}
    model: dict[str, Any] = {
        "frontends": _frontends(served, options),
        "backends": [_backend(ref, services[(ref.namespace, ref.service)], targets, report) for ref in sorted(refs, key=lambda r: r.name)],
        "routes": _pod_routes(nodes, report),
    }
    served_text = _served_json(model)
    model["generation"] = hashlib.sha256(served_text.encode()).hexdigest()
    model["gates"] = _gates(model["backends"], served, services, targets)
    model["errors"] = _Report.listed(report.errors)
    model["warnings"] = _Report.listed(report.warnings)
    return model, served_text


def _gates(backends: list[dict[str, Any]], claims: list[_Claim], services: dict[tuple[Any, Any], _Service | None],
           targets: _Targets) -> list[dict[str, Any]]:
    """The Pods that wait for the edge's readiness gate, and how the edge serves each: the pod
    targets that are its address, per backend and the pools that backend is served in (to be
    proven on every edge host of those pools), and the node port backends whose Service selects it
    (nothing to prove about the Pod there: the edge targets nodes). Not part of the generation:
    a gate that turns True changes nothing the edge serves."""
    if not targets.gated:
        return []
    pools: dict[str, set[str]] = {}
    for claim in claims:
        pools.setdefault(claim.backend.name, set()).add(claim.pool)
    waiting: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(pod: _GatedPod) -> dict[str, Any]:
        key = (pod.owner.namespace, pod.owner.name)
        if key not in waiting:
            waiting[key] = {"namespace": key[0], "name": key[1], "uid": pod.uid, "targets": [], "nodeport_backends": []}
        return waiting[key]

    for backend in backends:
        if backend["mode"] == "pod":
            for target in backend["targets"]:
                pod = targets.reader.gated_addresses.get(target["address"])
                if pod is not None:
                    entry(pod)["targets"].append({"backend": backend["name"], "pools": sorted(pools[backend["name"]]),
                                                  "address": target["address"], "port": target["port"],
                                                  "protocol": backend["protocol"], "check": backend["health_check"]})
            continue
        # A node port backend reads its Service's endpoints only for the Local policy: read them here.
        service = services[(backend["namespace"], backend["service"])]
        found = {targets.reader.gated_addresses.get(endpoint[1]) for subset in targets.subsets(service) for endpoint in subset.endpoints}
        for pod in sorted(filter(None, found), key=lambda p: (p.owner.namespace, p.owner.name)):
            entry(pod)["nodeport_backends"].append(backend["name"])
    return [waiting[key] for key in sorted(waiting)]
