# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fail-static guard: compare a new model with what each edge serves now and refuse a change
that empties a backend which has targets, or removes more than a share of all targets.

An edge that loses its view of the cluster must keep serving what it has (the opposite of a
controller that empties its pools when its API read fails); a change of that size needs an
operator's explicit override.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GuardError(ValueError):
    """A model or an option the guard cannot compare."""


def _targets(model: Mapping[str, Any], where: str) -> dict[str, set[tuple[str, int]]]:
    backends = model.get("backends")
    if not isinstance(backends, list):
        raise GuardError(f"{where}: backends: expected a list")
    out: dict[str, set[tuple[str, int]]] = {}
    for backend in backends:
        if not isinstance(backend, Mapping) or not isinstance(backend.get("name"), str):
            raise GuardError(f"{where}: backends: expected objects with a name")
        out[backend["name"]] = {(str(t.get("address")), int(t.get("port", 0))) for t in backend.get("targets") or []
                                if isinstance(t, Mapping)}
    return out


def check(new: Mapping[str, Any], live: Mapping[str, Any], max_removed_share: float = 0.3) -> dict[str, Any]:
    """Compare `new` with the model each host serves (`live`: host -> model, or None/{} for a host
    that serves nothing yet). Returns {ok, reasons, hosts: {host: {total, removed, emptied}}}."""
    if not 0 <= max_removed_share <= 1:
        raise GuardError(f"max_removed_share: expected a share from 0 to 1, got {max_removed_share}")
    if not isinstance(new, Mapping):
        raise GuardError("new model: expected the model edge_info returns")
    wanted = _targets(new, "new model")
    reasons: list[str] = []
    hosts: dict[str, dict[str, Any]] = {}
    for host in sorted(live):
        model = live[host]
        if not model:
            hosts[host] = {"total": 0, "removed": 0, "emptied": [], "generation": ""}
            continue
        serving = _targets(model, f"{host}: live model")
        total = sum(len(t) for t in serving.values())
        removed = sum(len(t - wanted.get(name, set())) for name, t in serving.items())
        emptied = sorted(name for name, t in serving.items() if t and name in wanted and not wanted[name])
        hosts[host] = {"total": total, "removed": removed, "emptied": emptied, "generation": model.get("generation", "")}
        for name in emptied:
            reasons.append(f"{host}: backend {name} would lose all {len(serving[name])} of its targets")
        if total and removed / total > max_removed_share:
            reasons.append(f"{host}: {removed} of {total} targets ({removed / total:.0%}) would be removed, more than"
                           f" the {max_removed_share:.0%} allowed")
    return {"ok": not reasons, "reasons": reasons, "hosts": hosts, "max_removed_share": max_removed_share}
