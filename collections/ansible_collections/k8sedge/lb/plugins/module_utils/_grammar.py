# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Strict grammars for every value that travels from the cluster into the model, and from the
model into a rendered config.

The cluster is untrusted: a value reaches a rendered config only after one of these functions
accepted it, and each grammar is narrow enough that no accepted value can end a line, open a
block or quote anything in haproxy or nginx syntax. Patterns are ASCII-only and matched whole
(`re.fullmatch`), so neither a trailing newline nor a Unicode digit or letter slips through.
The edge views (`_haproxy_view`, `_nginx_view`) check the model again with the same grammars
before rendering, plus the model's own names (`model_name`) and the spelling a config line
needs (`canonical_ip`), and the certificates the operator gives (`pem`).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ModelError

MAX_PATH_LENGTH = 256
MAX_DURATION_MS = 24 * 3600 * 1000
_SHOW_LENGTH = 64

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
# Frontend and backend names: DNS labels and ports joined by '-', '_' and '.'.
_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,252}")
_PEM_BOUNDARY = re.compile(r"-----(BEGIN|END) ([A-Z0-9]+( [A-Z0-9]+)*)-----")
_PEM_LINE = re.compile(r"[A-Za-z0-9+/=]+|[A-Za-z0-9-]+: [ -~]+")  # base64, or an RFC 1421 header
_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_PORT_TEXT = re.compile(r"[1-9][0-9]{0,4}")
_DURATION = re.compile(r"([1-9][0-9]{0,7})(ms|s|m|h)")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})")
_UID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
# An IPv4 address in the one spelling str(ipaddress) gives back: no leading zeros.
_IPV4_CANONICAL = re.compile(r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")
_UNSAFE_TO_SHOW = re.compile(r"[^A-Za-z0-9._:/@=+,*-]")
_DURATION_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
# Addresses that are never a node or a pod the edge should reach, by class (docs/annotations.md,
# "Grammars"): targets in them are refused, and so are pod networks that overlap them. An
# IPv4-mapped target is read as its IPv4 address first; only a pod network can be mapped.
REFUSED_NETWORKS = tuple((ipaddress.ip_network(network), name) for network, name in (
    ("0.0.0.0/8", "unspecified"), ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"), ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"),
    ("::ffff:0:0/96", "IPv4-mapped"),
))
_REFUSED_BY_VERSION = {version: [(n, name) for n, name in REFUSED_NETWORKS if n.version == version] for version in (4, 6)}
# First octets of the IPv4 networks above: any other canonical IPv4 address is accepted at once.
_REFUSED_FIRST_OCTETS = frozenset(octet for network, _name in REFUSED_NETWORKS if network.version == 4
                                  for octet in range(int(network.network_address) >> 24, (int(network.broadcast_address) >> 24) + 1))
# The widest pod network one node is given: a /16 holds 65,536 pods, the size of a usual whole
# cluster's pod network; a /48 is a whole IPv6 site.
MIN_POD_PREFIX = {4: 16, 6: 48}


class InvalidValue(ModelError):
    """A value outside its grammar; the message says what was expected and shows what came.

    `field` names where the value was found, once the caller knows it."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def show(value: Any) -> str:
    """A cluster value made safe to quote in a message: any character outside a small safe set
    becomes `?` and long values are cut, so a message can never carry a hostile string."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    text = _UNSAFE_TO_SHOW.sub("?", value[:_SHOW_LENGTH])
    return f'"{text}..."' if len(value) > _SHOW_LENGTH else f'"{text}"'


def expected(what: str, value: Any) -> InvalidValue:
    return InvalidValue(f"expected {what}, got {show(value)}")


def text(value: Any, what: str = "a string") -> str:
    """The value when it is a string; None reads as the empty string (an absent field)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise expected(what, value)
    return value


def dns_label(value: Any) -> str:
    """An RFC 1123 label: namespaces, Service names, port names, pools, certificate names."""
    if not isinstance(value, str) or not _DNS_LABEL.fullmatch(value):
        raise expected("a DNS label (RFC 1123: lowercase letters, digits and '-', at most 63)", value)
    return value


def dns_subdomain(value: Any) -> str:
    """An RFC 1123 subdomain: node names."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise expected("a DNS subdomain (RFC 1123, at most 253 characters)", value)
    return value


def hostname(value: Any) -> str:
    """A lowercased RFC 1123 host name, optionally with a leading `*.` wildcard label.

    The ASCII check comes before lowercasing: str.lower() maps some non-ASCII letters (the Kelvin
    sign) onto ASCII ones, which would let a look-alike through."""
    if not isinstance(value, str) or not value.isascii():
        raise expected("a host name (RFC 1123, optional leading '*.')", value)
    name = value.lower()
    rest = name[2:] if name.startswith("*.") else name
    try:
        dns_subdomain(rest)
    except InvalidValue:
        raise expected("a host name (RFC 1123, optional leading '*.')", value) from None
    return name


def model_name(value: Any) -> str:
    """A frontend or backend name of the model (`default-http-80`, `default_s2_80_tcp_proxy-v1`)."""
    if not isinstance(value, str) or not _MODEL_NAME.fullmatch(value):
        raise expected("a name of lowercase letters, digits, '_', '.' and '-' (at most 253)", value)
    return value


def path(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_PATH_LENGTH or not _PATH.fullmatch(value):
        raise expected(f"a path: '/' then letters, digits and . _ ~ / - (at most {MAX_PATH_LENGTH})", value)
    return value


def port(value: Any) -> int:
    """A port number 1-65535, from a JSON integer or its decimal spelling."""
    if isinstance(value, str) and _PORT_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise expected("a port number 1-65535", value)
    return value


def port_ref(value: Any) -> int | str:
    """A Service port by number or by name."""
    try:
        return port(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else dns_label(value)
    except InvalidValue:
        raise expected("a port number 1-65535 or a port name (DNS label)", value) from None


def duration_ms(value: Any) -> int:
    """A duration such as `500ms`, `5s`, `2m` or `1h`, in milliseconds, at most 24h."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    milliseconds = int(match.group(1)) * _DURATION_UNIT_MS[match.group(2)] if match else 0
    if not match or milliseconds > MAX_DURATION_MS:
        raise expected("a duration from 1ms to 24h such as 500ms, 5s, 2m", value)
    return milliseconds


def choice(value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise expected(f"one of {', '.join(allowed)}", value)
    return value


def label_value(value: Any) -> str:
    """A Kubernetes label value (zones): may be empty."""
    if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
        raise expected("a label value (letters, digits, '-', '_', '.', at most 63)", value)
    return value


def ip(value: Any) -> tuple[int, str]:
    """(4 or 6, canonical spelling) of a unicast address; the classes of REFUSED_NETWORKS and
    scoped addresses are refused. An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is read as the
    IPv4 address it carries: every spelling of one address is classified, and counted, alike."""
    if isinstance(value, str) and _IPV4_CANONICAL.fullmatch(value) and int(value[:value.index(".")]) not in _REFUSED_FIRST_OCTETS:
        # The common case, without building an ipaddress object: 50,000 endpoints a build.
        return 4, value
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or getattr(address, "scope_id", None):
        raise expected("a unicast IP address", value)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, name in _REFUSED_BY_VERSION[address.version]:
        if address in network:
            raise InvalidValue(f"expected a unicast IP address, got the {name} address {show(value)}")
    return address.version, str(address)


def canonical_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Any IP address, in the one spelling str(ipaddress) gives and without a scope: an address a
    config line may carry as it is (targets, and listen addresses an operator chose, loopback and
    the unspecified address included)."""
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or getattr(address, "scope_id", None) or str(address) != value:
        raise expected("an IP address in canonical form", value)
    return address


def cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        network = ipaddress.ip_network(value, strict=True) if isinstance(value, str) and "%" not in value else None
    except ValueError:
        network = None
    if network is None:
        raise expected("a CIDR such as 10.244.1.0/24 (host bits zero)", value)
    return network


def pod_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A node's pod network: a CIDR no wider than MIN_POD_PREFIX that overlaps no class of
    REFUSED_NETWORKS. The edge routes it through the node, so a default route or a wide range
    would send the edge's other traffic to that node."""
    network = cidr(value)
    if network.prefixlen == 0:
        raise InvalidValue(f"expected a node's pod network, got {show(value)}: a default route")
    if network.prefixlen < MIN_POD_PREFIX[network.version]:
        raise InvalidValue(f"expected a node's pod network of /{MIN_POD_PREFIX[network.version]} or narrower, got {show(value)}")
    for refused, name in REFUSED_NETWORKS:
        if network.overlaps(refused):
            raise InvalidValue(f"expected a node's pod network, got {show(value)}, which overlaps the {name} addresses {refused}")
    return network


def uid(value: Any) -> str:
    """An object's metadata.uid (the API gives a UUID; anything of that shape is accepted)."""
    if not isinstance(value, str) or not _UID.fullmatch(value):
        raise expected("an object uid such as 0b2f6a62-3e0c-4c9b-9d51-2a3c7e9f6b10", value)
    return value


def timestamp(value: Any) -> float:
    """Seconds since the epoch of an RFC 3339 creationTimestamp."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise expected("an RFC 3339 timestamp such as 2024-01-31T12:00:00Z", value)
    # fromisoformat takes at most six fraction digits; the order only needs seconds.
    seconds = re.sub(r"\.[0-9]+", "", value).replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(seconds).timestamp()
    except ValueError:
        raise expected("an RFC 3339 timestamp such as 2024-01-31T12:00:00Z", value) from None


def pem(value: Any) -> str:
    """PEM text (RFC 7468): one or more BEGIN/END blocks of base64 lines, such as a certificate
    chain or a private key; whitespace around the blocks is allowed."""
    lines = value.strip().splitlines() if isinstance(value, str) else []
    label = None
    for line in lines:
        boundary = _PEM_BOUNDARY.fullmatch(line.strip())
        if boundary is None:
            if label is None or not _PEM_LINE.fullmatch(line.strip()):
                break
        elif (boundary.group(1) == "BEGIN") != (label is None) or (label is not None and boundary.group(2) != label):
            break
        else:
            label = boundary.group(2) if boundary.group(1) == "BEGIN" else None
    else:
        if lines and label is None:
            return value
    raise InvalidValue("expected PEM text (-----BEGIN ...----- base64 -----END ...-----)")
