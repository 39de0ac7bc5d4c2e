# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The annotation contract (docs/annotations.md) and the tcp/udp-services ConfigMap format.

Each function reads the untrusted text of one object and returns settings made of validated
values only, plus findings (field, message, error or warning) for the model to report against
that object. Keys outside the contract are never passed on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g

PREFIX = "lb.k8sedge.io/"
EXPOSE = PREFIX + "expose"
POOL = PREFIX + "pool"
HOSTS = PREFIX + "hosts"
HTTP_PORT = PREFIX + "http-port"
PATH = PREFIX + "path"
TCP_PORTS = PREFIX + "tcp-ports"
UDP_PORTS = PREFIX + "udp-ports"
BACKEND = PREFIX + "backend"
BALANCE = PREFIX + "balance"
HEALTH_CHECK = PREFIX + "health-check"
HEALTH_CHECK_PATH = PREFIX + "health-check-path"
TIMEOUT_CONNECT = PREFIX + "timeout-connect"
TIMEOUT_SERVER = PREFIX + "timeout-server"
PROXY_PROTOCOL = PREFIX + "proxy-protocol"
TLS = PREFIX + "tls"
TLS_CERTIFICATE = PREFIX + "tls-certificate"
# A Pod readiness gate's condition type: the edge sets it True once it serves the Pod.
READINESS_GATE = PREFIX + "edge-ready"
SERVICE_KEYS = frozenset({
    EXPOSE, POOL, HOSTS, HTTP_PORT, PATH, TCP_PORTS, UDP_PORTS, BACKEND, BALANCE, HEALTH_CHECK,
    HEALTH_CHECK_PATH, TIMEOUT_CONNECT, TIMEOUT_SERVER, PROXY_PROTOCOL, TLS, TLS_CERTIFICATE,
})
INGRESS_KEYS = frozenset({POOL, TLS_CERTIFICATE})

DEFAULT_POOL = "default"
MODES = ("nodeport", "pod")
BALANCES = ("roundrobin", "leastconn", "source")
HEALTH_CHECKS = ("tcp", "http", "none")
PROXY_PROTOCOLS = ("none", "v1", "v2")
TLS_MODES = ("none", "terminate", "passthrough")
DEFAULT_CONNECT_MS = 5_000
DEFAULT_SERVER_MS = 60_000

_ANNOTATION_KEY = re.compile(r"[a-z0-9.-]{1,253}/[A-Za-z0-9._-]{1,63}")
# ingress-nginx: "<namespace>/<service>:<port>[:[PROXY][:[PROXY]]]".
_SERVICE_ENTRY = re.compile(r"([^/:]*)/([^/:]*):([^/:]*)(?::(PROXY)?(?::(PROXY)?)?)?")


def field_of(key: str) -> str:
    """The error field for an annotation key; the key itself may be hostile."""
    return f"metadata.annotations[{key if _ANNOTATION_KEY.fullmatch(key) else g.show(key)}]"


@dataclass(frozen=True)
class Finding:
    """A problem in one field of the object being read."""

    field: str
    message: str
    error: bool = True


@dataclass(frozen=True)
class PortMapping:
    edge_port: int
    service_port: int | str


@dataclass(frozen=True)
class BackendSettings:
    """How the edge talks to a Service's targets: the same for every port of the Service."""

    mode: str = "nodeport"
    balance: str = "roundrobin"
    health_check: str = "tcp"
    health_check_path: str = ""
    connect_ms: int = DEFAULT_CONNECT_MS
    server_ms: int = DEFAULT_SERVER_MS
    proxy_protocol: str = "none"


@dataclass(frozen=True)
class ServiceAnnotations:
    expose: bool | None = None  # None: the key is absent
    pool: str = DEFAULT_POOL
    hosts: tuple[str, ...] = ()
    http_port: int | str | None = None  # None: the Service's first port
    path: str = "/"
    tcp_ports: tuple[PortMapping, ...] = ()
    udp_ports: tuple[PortMapping, ...] = ()
    tls: str = "none"
    tls_certificate: str = ""
    backend: BackendSettings = field(default_factory=BackendSettings)


@dataclass(frozen=True)
class IngressAnnotations:
    pool: str = DEFAULT_POOL
    tls_certificate: str = ""


@dataclass(frozen=True)
class ServiceEntry:
    """One entry of a tcp-services or udp-services ConfigMap."""

    edge_port: int
    namespace: str
    service: str
    service_port: int | str
    accept_proxy: bool
    send_proxy: bool


def _comma_list(value: str) -> list[str]:
    items = [item.strip(" ") for item in value.split(",")]
    if not all(items):
        raise g.expected("a comma-separated list without empty items", value)
    return items


def _hosts(value: str) -> tuple[str, ...]:
    return tuple(sorted({g.hostname(item) for item in _comma_list(value)}))


def _port_mappings(value: str) -> tuple[PortMapping, ...]:
    mappings = []
    for item in _comma_list(value):
        edge, sep, service = item.partition(":")
        if not sep:
            raise g.expected("edgePort:servicePort items such as 9999:80", item)
        mappings.append(PortMapping(g.port(edge), g.port_ref(service)))
    edge_ports = [m.edge_port for m in mappings]
    if len(set(edge_ports)) != len(edge_ports):
        raise g.expected("each edge port once", value)
    return tuple(sorted(mappings, key=lambda m: m.edge_port))


def _expose(value: str) -> bool:
    return g.choice(value, ("true", "false")) == "true"


# Each annotation key and the grammar its value must follow.
_SERVICE_PARSERS = {
    EXPOSE: _expose,
    POOL: g.dns_label,
    HOSTS: _hosts,
    HTTP_PORT: g.port_ref,
    PATH: g.path,
    TCP_PORTS: _port_mappings,
    UDP_PORTS: _port_mappings,
    BACKEND: lambda v: g.choice(v, MODES),
    BALANCE: lambda v: g.choice(v, BALANCES),
    HEALTH_CHECK: lambda v: g.choice(v, HEALTH_CHECKS),
    HEALTH_CHECK_PATH: g.path,
    TIMEOUT_CONNECT: g.duration_ms,
    TIMEOUT_SERVER: g.duration_ms,
    PROXY_PROTOCOL: lambda v: g.choice(v, PROXY_PROTOCOLS),
    TLS: lambda v: g.choice(v, TLS_MODES),
    TLS_CERTIFICATE: g.dns_label,
}


def _parse(annotations: dict[str, Any], keys: frozenset[str], findings: list[Finding]) -> dict[str, Any]:
    """The valid values of the contract's keys; findings for bad values and unknown keys."""
    values: dict[str, Any] = {}
    for key, raw in annotations.items():
        if not isinstance(key, str) or not key.startswith(PREFIX):
            continue
        if key not in keys:
            findings.append(Finding(field_of(key), "not an annotation of this object's contract, ignored", error=False))
            continue
        try:
            values[key] = _SERVICE_PARSERS[key](g.text(raw))
        except g.InvalidValue as exc:
            findings.append(Finding(field_of(key), str(exc)))
    return values


def service_annotations(annotations: dict[str, Any]) -> tuple[ServiceAnnotations, list[Finding]]:
    """The contract's settings for one Service; any error finding means the Service is skipped."""
    findings: list[Finding] = []
    v = _parse(annotations, SERVICE_KEYS, findings)
    check = v.get(HEALTH_CHECK, "http" if HEALTH_CHECK_PATH in v else "tcp")
    if HEALTH_CHECK_PATH in v and check != "http":
        findings.append(Finding(field_of(HEALTH_CHECK_PATH), f"only used with {HEALTH_CHECK}: http, not {check}"))
    tls = v.get(TLS, "none")
    if tls == "terminate" and TLS_CERTIFICATE not in v and field_of(TLS_CERTIFICATE) not in {f.field for f in findings}:
        findings.append(Finding(field_of(TLS_CERTIFICATE), f"required with {TLS}: terminate (the name of a certificate the edge holds)"))
    if tls != "terminate" and TLS_CERTIFICATE in v:
        findings.append(Finding(field_of(TLS_CERTIFICATE), f"only used with {TLS}: terminate, ignored", error=False))
    if tls != "none" and HOSTS not in v:
        findings.append(Finding(field_of(TLS), f"needs {HOSTS}: TLS is served by host name"))
    if tls == "passthrough" and PATH in v:
        findings.append(Finding(field_of(PATH), f"cannot be used with {TLS}: passthrough, which routes by host name only"))
    for key in (HTTP_PORT, PATH):
        if key in v and HOSTS not in v:
            findings.append(Finding(field_of(key), f"only used with {HOSTS}, ignored", error=False))
    backend = BackendSettings(
        mode=v.get(BACKEND, "nodeport"),
        balance=v.get(BALANCE, "roundrobin"),
        health_check=check,
        health_check_path=v.get(HEALTH_CHECK_PATH, ""),
        connect_ms=v.get(TIMEOUT_CONNECT, DEFAULT_CONNECT_MS),
        server_ms=v.get(TIMEOUT_SERVER, DEFAULT_SERVER_MS),
        proxy_protocol=v.get(PROXY_PROTOCOL, "none"),
    )
    settings = ServiceAnnotations(
        expose=v.get(EXPOSE),
        pool=v.get(POOL, DEFAULT_POOL),
        hosts=v.get(HOSTS, ()),
        http_port=v.get(HTTP_PORT),
        path=v.get(PATH, "/"),
        tcp_ports=v.get(TCP_PORTS, ()),
        udp_ports=v.get(UDP_PORTS, ()),
        tls=tls,
        tls_certificate=v.get(TLS_CERTIFICATE, ""),
        backend=backend,
    )
    return settings, findings


def ingress_annotations(annotations: dict[str, Any]) -> tuple[IngressAnnotations, list[Finding]]:
    findings: list[Finding] = []
    v = _parse(annotations, INGRESS_KEYS, findings)
    return IngressAnnotations(pool=v.get(POOL, DEFAULT_POOL), tls_certificate=v.get(TLS_CERTIFICATE, "")), findings


def service_entry(key: Any, value: Any, udp: bool) -> ServiceEntry:
    """One `"<edgePort>": "<namespace>/<service>:<port>[:[PROXY][:[PROXY]]]"` ConfigMap entry."""
    if not isinstance(key, str):
        # YAML reads an unquoted `9999:` as a number; the API's data keys are always strings.
        what = f"the integer {key}" if isinstance(key, int) and not isinstance(key, bool) else g.show(key)
        raise g.InvalidValue(f'expected the edge port as a string key such as "9999", got {what}; quote the key')
    edge_port = g.port(key)
    match = _SERVICE_ENTRY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise g.expected("<namespace>/<service>:<port>, optionally followed by :PROXY fields", value)
    namespace, service, port, accept_proxy, send_proxy = match.groups()
    if udp and (accept_proxy or send_proxy):
        raise g.expected("no PROXY fields: PROXY protocol is TCP only", value)
    return ServiceEntry(edge_port, g.dns_label(namespace), g.dns_label(service), g.port_ref(port), bool(accept_proxy), bool(send_proxy))
