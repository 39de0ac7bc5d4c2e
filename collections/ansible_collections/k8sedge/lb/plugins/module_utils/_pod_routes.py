# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pod routes on an edge host: the model's `routes` (pod CIDR via node IP) as kernel routes
tagged with one route protocol number, so that the routes this code installed, and only those,
are found again and removed when the model drops them. Pure: `plan()` over parsed `ip -j` output.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError

__all__ = ["RouteError", "desired", "installed", "plan"]


class RouteError(ApplyError):
    """A route the model asks for that cannot be a kernel route."""


def desired(routes: list[dict[str, Any]]) -> dict[str, str]:
    """cidr -> via, checked: a network with host bits zero, a gateway of the same family."""
    wanted: dict[str, str] = {}
    for i, route in enumerate(routes):
        cidr, gateway = (route.get("cidr"), route.get("via")) if isinstance(route, dict) else (None, None)
        try:
            network = ipaddress.ip_network(cidr, strict=True)
            via = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise RouteError(f"routes[{i}]: expected {{cidr, via}} with a CIDR and an IP address: {exc}") from None
        if via.version != network.version:
            raise RouteError(f"routes[{i}]: {network} cannot go via {via}, an IPv{via.version} address")
        if str(network) in wanted and wanted[str(network)] != str(via):
            raise RouteError(f"routes[{i}]: {network} is asked for twice, via {wanted[str(network)]} and via {via}")
        wanted[str(network)] = str(via)
    return wanted


def installed(ip_json: str) -> dict[str, str]:
    """cidr -> via of `ip -j route show proto N` (either family)."""
    routes = {}
    for entry in json.loads(ip_json or "[]"):
        dst = entry.get("dst", "")
        if dst and "/" not in dst:
            dst += "/128" if ":" in dst else "/32"
        routes[dst] = entry.get("gateway", "")
    return routes


def plan(wanted: dict[str, str], current: dict[str, str], prune: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """(routes to add or replace, cidrs to delete), sorted; nothing is deleted without prune."""
    replace = sorted((cidr, via) for cidr, via in wanted.items() if current.get(cidr) != via)
    delete = sorted(cidr for cidr in current if cidr not in wanted) if prune else []
    return replace, delete
