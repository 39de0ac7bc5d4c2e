"""The kubelet's pod networking in its own network namespace, through iproute2.

host-gw style: pod addresses are /32s on a dummy interface ``pods0`` (a bridge without ports
where the kernel has no dummy driver: it holds local addresses just the same), and each other node's pod
CIDR is routed via that node's InternalIP. Our routes carry their own protocol number, so they can
be told apart from the lab's own routes and replaced or removed without touching anything else.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

POD_LINK = "pods0"
ROUTE_PROTO = "213"  # an unassigned rtnetlink protocol number: "ours"


class NetError(RuntimeError):
    """An ip(8) command failed."""


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def setup() -> None:
    """pods0 up, loopback up and IPv4 forwarding on, in this namespace."""
    links = {link["ifname"] for link in json.loads(_ip("-j", "link", "show") or "[]")}
    if POD_LINK not in links:
        try:
            _ip("link", "add", POD_LINK, "type", "dummy")
        except NetError:
            _ip("link", "add", POD_LINK, "type", "bridge")
    _ip("link", "set", POD_LINK, "up")
    _ip("link", "set", "lo", "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def pod_addresses() -> set[str]:
    out = json.loads(_ip("-j", "-4", "addr", "show", "dev", POD_LINK) or "[]")
    return {a["local"] for link in out for a in link.get("addr_info") or []}


def add_pod_address(ip: str) -> None:
    if ip not in pod_addresses():
        _ip("addr", "add", f"{ip}/32", "dev", POD_LINK)


def remove_pod_address(ip: str) -> None:
    if ip in pod_addresses():
        _ip("addr", "del", f"{ip}/32", "dev", POD_LINK)


def our_routes() -> dict[str, str]:
    out = json.loads(_ip("-j", "-4", "route", "show", "proto", ROUTE_PROTO) or "[]")
    return {r["dst"]: r.get("gateway", "") for r in out}


def sync_routes(desired: dict[str, str]) -> list[str]:
    """Make our routes exactly desired ({cidr: via}); returns what changed, for the log."""
    current = our_routes()
    changes = []
    for cidr in sorted(set(current) - set(desired)):
        _ip("route", "del", cidr, "proto", ROUTE_PROTO)
        changes.append(f"-{cidr}")
    for cidr, via in sorted(desired.items()):
        if current.get(cidr) != via:
            _ip("route", "replace", cidr, "via", via, "proto", ROUTE_PROTO)
            changes.append(f"+{cidr} via {via}")
    return changes
