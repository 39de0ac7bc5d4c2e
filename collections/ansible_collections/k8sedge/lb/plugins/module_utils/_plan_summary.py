# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The closing summary of a plan (site.yml in check mode): per edge host what would change, and
per VIP where it is now and where it would be."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._drift import vrrp_states
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError


class PlanSummaryError(EdgeError):
    """The hosts' answers are not what the roles answer."""


def summary(hosts: Mapping[str, Any]) -> dict[str, Any]:
    """hosts: name -> {engine, serving (the generation its record says it serves, "" if none),
    generation (this run's), converged (bool), changes (edge_haproxy_changes or edge_nginx_changes;
    {} for a converged host), keepalived (edge_keepalived_changes, {} without VIPs)}.
    Returns {lines, vips: [{instance, vip, now, after, moves}]}."""
    if not isinstance(hosts, Mapping) or not hosts:
        raise PlanSummaryError("hosts: expected a mapping of edge host to what its roles answered")
    lines = [_host_line(name, _mapping(f"hosts.{name}", facts)) for name, facts in sorted(hosts.items())]
    vips = _vips({name: _mapping(f"hosts.{name}.keepalived", facts.get("keepalived") or {})
                  for name, facts in hosts.items()})
    for vip in vips:
        lines.append(f"VIP {vip['vip']} ({vip['instance']}): " + _vip_line(vip))
    return {"lines": lines, "vips": vips}


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanSummaryError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _host_line(name: str, facts: Mapping[str, Any]) -> str:
    engine = str(facts.get("engine") or "haproxy")
    serving = str(facts.get("serving") or "")[:12] or "nothing"
    head = f"{name} ({engine}): serves {serving}"
    if facts.get("converged"):
        return f"{head}; nothing to change"
    changes = _mapping(f"hosts.{name}.changes", facts.get("changes") or {})
    parts = [f"would apply {str(facts.get('generation') or '')[:12]}"]
    if changes.get("install"):
        parts.append(f"install {engine}")
    if engine == "nginx":
        parts.append(f"release {changes.get('release', '?')}" + (", goes live after nginx -t" if changes.get("switch") else ", already live"))
        validator = " ".join(str(changes.get("validator") or "").split())
        if validator:
            parts.append(f"nginx -t: {validator}")
    else:
        config = str(changes.get("config") or "none")
        files = ", ".join(map(str, changes.get("files") or []))
        parts.append(f"config {config}" + (f" ({files})" if files else ""))
        validator = " ".join(str(changes.get("validator") or "").split())
        if validator:
            parts.append(f"haproxy -c: {validator}")
        if changes.get("servers"):
            parts.append("servers set through the runtime API")
    if changes.get("routes"):
        parts.append("pod routes change")
    keepalived = facts.get("keepalived") or {}
    if isinstance(keepalived, Mapping) and keepalived.get("changed"):
        parts.append("keepalived changes")
    return f"{head}; " + "; ".join(parts)


def _vips(keepalived: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Where each VIP is now (the hosts whose record says MASTER) and where it would be: with
    preempt, on its primary; without, where it is, else on its primary."""
    instances: dict[str, str] = {}
    primaries: dict[str, str] = {}
    preempt = True
    for facts in keepalived.values():
        instances.update(facts.get("instances") or {})
        primaries.update(facts.get("primaries") or {})
        preempt = preempt and bool(facts.get("preempt", True))
    masters: dict[str, list[str]] = {}
    for host, facts in sorted(keepalived.items()):
        for instance, state in vrrp_states([str(line) for line in facts.get("states") or []]).items():
            if state == "MASTER":
                masters.setdefault(instance, []).append(host)
    found = []
    for instance, vip in sorted(instances.items()):
        now = masters.get(instance, [])
        primary = primaries.get(instance, "")
        after = now[0] if not preempt and len(now) == 1 else primary
        found.append({"instance": instance, "vip": vip, "now": now, "after": after, "moves": now != [after]})
    return found


def _vip_line(vip: Mapping[str, Any]) -> str:
    now, after = vip["now"], vip["after"]
    if not vip["moves"]:
        return f"held by {after}, stays"
    if not now:
        return f"held by no edge now, {after} would take it"
    if len(now) > 1:
        return f"held by {', '.join(now)} (split brain), {after} would keep it once they hear each other"
    return f"held by {now[0]}, would move to {after}"
