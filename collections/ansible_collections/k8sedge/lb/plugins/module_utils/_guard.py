# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fail-static guard: compare a new model with what each edge serves now.

A backend that has targets on an edge now and none in the new model is held back: the guarded
model keeps the targets it has now, says so in its warnings (on the Service), and every other
change goes through. It may have been scaled to zero on purpose, hit by a Recreate deploy, or read
wrong; one backend never stops the run for everybody, and the operator's override applies the
emptying. A change that removes more than a share of all of a host's targets (held backends
counted as kept) stops the run: that is what a partial read of the cluster looks like.

An edge that loses its view of the cluster must keep serving what it has (the opposite of a
controller that empties its pools when its API read fails).
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError
from ansible_collections.k8sedge.lb.plugins.module_utils._model import generation


class GuardError(ApplyError):
    """A model or an option the guard cannot compare."""


def serving_document(host: str, value: Any) -> Any:
    """What a host serves (its state record's `serving`), from the record's part or its JSON text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value else None
    except ValueError as exc:
        raise GuardError(f"{host}: live model: expected the JSON text of the state record's serving: {exc}") from None


def _targets(model: Mapping[str, Any], where: str) -> dict[str, set[tuple[str, int]]]:
    backends = model.get("backends")
    if not isinstance(backends, list):
        raise GuardError(f"{where}: backends: expected a list")
    out: dict[str, set[tuple[str, int]]] = {}
    for backend in backends:
        if not isinstance(backend, Mapping) or not isinstance(backend.get("name"), str):
            raise GuardError(f"{where}: backends: expected objects with a name")
        targets = backend.get("targets") or []
        if not isinstance(targets, list) or not all(
                isinstance(t, Mapping) and isinstance(t.get("port", 0), int) and not isinstance(t.get("port", 0), bool) for t in targets):
            raise GuardError(f"{where}: backend {backend['name']}: targets: expected a list of {{address, port}} with integer ports")
        out[backend["name"]] = {(str(t.get("address")), t.get("port", 0)) for t in targets}
    return out


def _held(new: Mapping[str, Any], live: Mapping[str, Any], wanted: dict[str, set[tuple[str, int]]]) -> dict[str, list[Any]]:
    """Backend -> the targets it has now on the first host (sorted) that serves it with targets,
    for every backend the new model empties."""
    held: dict[str, list[Any]] = {}
    for host in sorted(live):
        for backend in (live[host] or {}).get("backends") or []:
            name = backend.get("name")
            if backend.get("targets") and name in wanted and not wanted[name] and name not in held:
                held[name] = copy.deepcopy(backend["targets"])
    return held


def _guarded(new: Mapping[str, Any], held: dict[str, list[Any]]) -> dict[str, Any]:
    """`new` with the held backends' targets put back, its generation for what is now served, and
    a warning on each held backend's Service."""
    model = dict(new)
    # `held` tells the probes: what these targets answer is not this change's doing.
    model["backends"] = [{**b, "targets": held[b["name"]], "held": True} if b.get("name") in held else b for b in new["backends"]]
    model["warnings"] = list(new.get("warnings") or []) + [
        {"kind": "Service", "namespace": str(b.get("namespace", "")), "name": str(b.get("service", "")), "field": "targets",
         "message": f"fail-static: backend {b['name']} has no targets in the cluster now; held at its last {len(held[b['name']])}"
                    " targets until it has targets again (the guard's override applies the emptying)"}
        for b in new["backends"] if b.get("name") in held]
    model["generation"] = generation({key: model.get(key) or [] for key in ("backends", "frontends", "routes")})
    return model


def check(new: Mapping[str, Any], live: Mapping[str, Any], max_removed_share: float = 0.3) -> dict[str, Any]:
    """Compare `new` with the model each host serves (`live`: host -> model, or None/{} for a host
    that serves nothing yet). Returns {ok, reasons, held, model, generation, new_generation,
    refused, warnings, hosts: {host: {total, removed, emptied, generation}}}: `model` is `new` with the
    emptied backends held (`new` itself when none is), `generation` its generation and
    `new_generation` the one of `new`, `refused` what `new` refused (its `errors`), `warnings` what
    `new` warns of (e.g. an unknown annotation; held backends are in `held`), `ok` false
    only when a host would lose more than `max_removed_share` of its targets."""
    if not 0 <= max_removed_share <= 1:
        raise GuardError(f"max_removed_share: expected a share from 0 to 1, got {max_removed_share}")
    if not isinstance(new, Mapping):
        raise GuardError("new model: expected the model edge_info returns")
    wanted = _targets(new, "new model")
    serving = {host: _targets(model, f"{host}: live model") for host, model in live.items() if model}
    held = _held(new, live, wanted)
    kept = {**wanted, **{name: set().union(*(s.get(name, set()) for s in serving.values())) for name in held}}
    reasons: list[str] = []
    hosts: dict[str, dict[str, Any]] = {}
    for host in sorted(live):
        if host not in serving:
            hosts[host] = {"total": 0, "removed": 0, "emptied": [], "generation": ""}
            continue
        total = sum(len(t) for t in serving[host].values())
        removed = sum(len(t - kept.get(name, set())) for name, t in serving[host].items())
        emptied = sorted(name for name, t in serving[host].items() if t and name in held)
        hosts[host] = {"total": total, "removed": removed, "emptied": emptied, "generation": live[host].get("generation", "")}
        if total and removed / total > max_removed_share:
            reasons.append(f"{host}: {removed} of {total} targets ({removed / total:.0%}) would be removed, more than"
                           f" the {max_removed_share:.0%} allowed")
    model = _guarded(new, held) if held else new
    return {"ok": not reasons, "reasons": reasons, "hosts": hosts, "max_removed_share": max_removed_share,
            "held": [f"backend {name} would lose all its targets: held at its last {len(targets)}" for name, targets in sorted(held.items())],
            "model": model, "generation": model.get("generation", ""), "new_generation": new.get("generation", ""),
            "refused": list(new.get("errors") or []), "warnings": list(new.get("warnings") or [])}
