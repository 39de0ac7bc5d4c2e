# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the three engine views (`_haproxy_view`, `_nginx_view`, `_keepalived_view`) share.

Each view is one pure function, `<engine>_view(source, options) -> dict`, behind the filter of the
same name: it makes every decision and hands the template data; the template spells the engine's
syntax. A view refuses with ViewError, raised through a Checker that names where the value was
found, the field and what was expected:

    frontend default-http-80: routes[0].path: expected a path ..., got "/a b"

What a view leaves out instead (one tenant's claim must not stop the edge for everybody) goes
into its result's `findings`, one `{where, field, message}` each, in the same terms.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError, ViewError

__all__ = ["ANY_HOST", "Checker", "Finding", "ViewError", "certificate_digest", "check_certificates", "endpoint", "json_digest",
           "named", "path_matches", "plain_certificates", "pod_routes"]

ANY_HOST = "*"
_NAME = "a name of lowercase letters, digits, '_', '.' and '-'"
_HOST = "a lowercase host name, '*.' wildcard or '*'"

Finding = dict[str, str]


class Checker:
    """Checks of one object's fields; a value that fails raises ViewError (or the `error` of
    another layer that checks what it is given the same way) naming the object (`where`), the
    field and what was expected, with the value made safe to show."""

    def __init__(self, where: str, error: type[EdgeError] = ViewError) -> None:
        self.where = where
        self.error = error

    def fail(self, what: str, expected: str, value: Any) -> EdgeError:
        return self.error(f"{self.where}: {what}: expected {expected}, got {g.show(value)}")

    def refuse(self, what: str, message: str) -> EdgeError:
        """A refusal that is not a grammar's: the message says what clashes and what to change."""
        return self.error(f"{self.where}: {what}: {message}")

    def finding(self, what: str, message: str) -> Finding:
        """Something left out rather than refused, for the result's `findings`."""
        return {"where": self.where, "field": what, "message": message}

    def grammar(self, what: str, value: Any, accept: Callable[[Any], Any], expected: str) -> Any:
        """What the grammar accept() of module_utils/_grammar makes of value."""
        try:
            return accept(value)
        except g.InvalidValue:
            raise self.fail(what, expected, value) from None

    def spelled(self, what: str, value: Any, accept: Callable[[Any], Any], expected: str) -> Any:
        """value, when the grammar takes it as it is spelled (no lowercasing, no reformatting)."""
        if self.grammar(what, value, accept, expected) != value:
            raise self.fail(what, expected, value)
        return value

    def secret(self, what: str, value: Any, accept: Callable[[Any], Any], expected: str) -> Any:
        """Like grammar(), for a value that must not appear in a message (a private key)."""
        try:
            return accept(value)
        except g.InvalidValue:
            raise self.error(f"{self.where}: {what}: expected {expected} (the value is not shown)") from None

    def matches(self, what: str, value: Any, pattern: re.Pattern[str], expected: str) -> str:
        """A string the whole of which pattern matches."""
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.fail(what, expected, value)
        return value

    def text(self, what: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(what, "text", value)
        return value

    def name(self, what: str, value: Any) -> str:
        return self.grammar(what, value, g.model_name, _NAME)

    def host(self, what: str, value: Any) -> str:
        """A host name as the model spells it (lowercase), a '*.' wildcard, or '*' (any host)."""
        return value if value == ANY_HOST else self.spelled(what, value, g.hostname, _HOST)

    def path(self, what: str, value: Any) -> str:
        return self.grammar(what, value, g.path, "a path of letters, digits and . _ ~ / -")

    def integer(self, what: str, value: Any, low: int, high: int, expected: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(what, expected or f"an integer from {low} to {high}", value)
        return value

    def port(self, what: str, value: Any) -> int:
        return self.integer(what, value, 1, 65535, "a port number 1-65535")

    def milliseconds(self, what: str, value: Any) -> int:
        return self.integer(what, value, 1, g.MAX_DURATION_MS, f"milliseconds 1-{g.MAX_DURATION_MS}")

    def number(self, what: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(what, "a number", value)
        return float(value)

    def choice(self, what: str, value: Any, allowed: tuple[str, ...]) -> str:
        return self.grammar(what, value, lambda v: g.choice(v, allowed), f"one of {', '.join(allowed)}")

    def flag(self, what: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(what, "true or false", value)
        return value

    def address(self, what: str, value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.grammar(what, value, g.canonical_ip, "an IP address in canonical form")

    def mapping(self, what: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(what, "an object", value)
        return value  # type: ignore[return-value]

    def sequence(self, what: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(what, "a list", value)
        return value


def named(kind: str, value: Any) -> tuple[str, Checker]:
    """The checked name of a frontend or backend and the checker of its fields."""
    name = Checker(f"{kind} {g.show(value)}").name("name", value)
    return name, Checker(f"{kind} {name}")


def path_matches(path: str, path_type: str) -> list[tuple[str, str]]:
    """Kubernetes path matching as (kind, path) pairs, kind `exact` or `prefix`: an Exact path is
    itself; a Prefix path matches whole path elements, so /foo is exactly `/foo` and every path
    under `/foo/` (never /foobar), and / is every path."""
    if path_type == "exact":
        return [("exact", path)]
    stem = path.rstrip("/")
    return ([("exact", stem)] if stem else []) + [("prefix", stem + "/")]


def endpoint(address: str, port: int) -> str:
    """address:port, an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def json_digest(value: Any) -> str:
    """sha256 of the canonical JSON of value: equal data, equal digest."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def certificate_digest(pair: Mapping[str, str]) -> str:
    """sha256 of a certificate and its key: a view names certificates by digest, never by content."""
    return hashlib.sha256((pair["cert"] + pair["key"]).encode()).hexdigest()


def plain_certificates(value: Any) -> Any:
    """name -> {cert, key} as plain strings, as a filter receives them: str() decrypts vaulted
    values. Other shapes are passed on for check_certificates() to refuse."""
    if not isinstance(value, Mapping) or not all(isinstance(pair, Mapping) for pair in value.values()):
        return value
    return {name: {part: str(pair[part]) if part in pair else None for part in ("cert", "key")} for name, pair in value.items()}


def check_certificates(certificates: Any, variable: str) -> dict[str, dict[str, str]]:
    """The operator's certificates, name -> {cert, key} PEM text."""
    Checker("options").mapping(variable, certificates)
    for name, pair in certificates.items():
        c = Checker(f"certificate {g.show(name)}")
        c.name("name", name)
        c.mapping("value", pair)
        for part in ("cert", "key"):
            c.secret(part, pair.get(part), g.pem, "PEM text (-----BEGIN ...----- to -----END ...-----)")
    return certificates


def pod_routes(model: Mapping[str, Any]) -> list[dict[str, str]]:
    """The model's pod-network routes, checked, sorted by family then network."""
    c = Checker("model")
    routes = []
    for i, route in enumerate(c.sequence("routes", model.get("routes", []))):
        route = c.mapping(f"routes[{i}]", route)
        cidr = c.grammar(f"routes[{i}].cidr", route.get("cidr"), g.cidr, "a CIDR with host bits zero")
        if str(cidr) != route.get("cidr"):
            raise c.fail(f"routes[{i}].cidr", "a CIDR with host bits zero", route.get("cidr"))
        via = c.address(f"routes[{i}].via", route.get("via"))
        if via.version != cidr.version:
            raise c.fail(f"routes[{i}].via", f"an IPv{cidr.version} address", route.get("via"))
        routes.append((cidr.version, cidr, {"cidr": str(cidr), "via": str(via)}))
    return [route for _version, _cidr, route in sorted(routes, key=lambda r: (r[0], r[1]))]
