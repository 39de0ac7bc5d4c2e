# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one state record an edge host keeps (`/var/lib/k8sedge/state.json`), written by the
`k8sedge.lb.edge_state` module only and read once at the start of a run:

    {"version": 1,
     "serving":   {"generation", "routes", "backends"[, "checks", "settings"][, "release"]},
     "last_good": {"generation", "routes", "backends"[, "checks", "settings"][, "release"]},
     "rollout":   {"status", "since"[, "generation"][, "failed_generation"]}[,
     "maintenance": {"since", "reason"}]}

- `serving` is what the proxy runs now: the model generation, the pod-network routes its config
  needs, the model's backends by name with their targets (what the next run's fail-static guard
  compares with, and holds), the digests
  of the model's probe checks under the engine's settings (`_probe_plan.check_digests`), that
  settings digest and, for nginx, the release directory it runs. The proxy roles write it once the engine runs it.
- `last_good` is the `serving` that last passed its probes on this host (absent before the
  first); a rollback puts it back, routes included. Its `checks` are what the host proved: the
  next rollout probes in full only the checks that changed since.
- `rollout` is where the host stands, for keepalived's check (roles/edge_keepalived vrrp-check):
  `applying` (the rollout is putting `generation` in place, not yet probed; a record of what it
  serves moves `generation` along), `passed` (what it serves passed its probes, or is an
  endpoint-only change of what did), `failed` (`failed_generation` failed its probes and could
  not be rolled back: it gives its VIPs up), `rolled-back` (`failed_generation` failed, the host
  serves its last-known-good again and keeps its VIPs). `since` is when the status began.
- `maintenance` is there while an operator has the host drained (playbooks/drain.yml until
  playbooks/undrain.yml): keepalived's check then keeps every VIP off it, whatever the rollout
  says. `reason` is the operator's words.

Pure: `parse()` reads and checks a record, `update()` says what to write.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError

__all__ = ["STATUSES", "VERSION", "StateError", "parse", "update", "without_bulk"]

VERSION = 1
STATUSES = ("applying", "passed", "failed", "rolled-back")
_GENERATION = re.compile(r"[0-9a-f]{1,64}")
_RELEASE = re.compile(r"[0-9a-f]{1,64}")
# The operator's words on a drain: printable, one line, short enough for a log line.
_REASON = re.compile(r"[ -~]{0,200}")


class StateError(ApplyError):
    """A state record, or an update to one, that breaks the schema; says where and what."""


def _generation(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _GENERATION.fullmatch(value):
        raise StateError(f"{where}: expected a model generation (hex digits), got {json.dumps(value)[:80]}")
    return value


def _served(value: Any, where: str) -> dict[str, Any]:
    """A `serving` or `last_good` entry, checked."""
    if not isinstance(value, dict):
        raise StateError(f"{where}: expected an object")
    unknown = sorted(set(value) - {"generation", "routes", "backends", "checks", "settings", "release"})
    if unknown:
        raise StateError(f"{where}: unknown field {unknown[0]}")
    _generation(value.get("generation"), f"{where}.generation")
    routes = value.get("routes")
    if not isinstance(routes, list) or not all(
            isinstance(r, dict) and set(r) == {"cidr", "via"} and all(isinstance(v, str) for v in r.values()) for r in routes):
        raise StateError(f"{where}.routes: expected a list of {{cidr, via}}")
    if not isinstance(value.get("backends"), list):
        raise StateError(f"{where}.backends: expected the model's backends (a list)")
    if "checks" in value and (not isinstance(value["checks"], list) or not all(isinstance(c, str) for c in value["checks"])):
        raise StateError(f"{where}.checks: expected a list of check digests")
    if "settings" in value and (not isinstance(value["settings"], str) or not _GENERATION.fullmatch(value["settings"])):
        raise StateError(f"{where}.settings: expected a settings digest (hex digits)")
    if "release" in value and (not isinstance(value["release"], str) or not _RELEASE.fullmatch(value["release"])):
        raise StateError(f"{where}.release: expected a release id (hex digits)")
    return value


def _rollout(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateError(f"{where}: expected an object")
    status = value.get("status")
    if status not in STATUSES:
        raise StateError(f"{where}.status: expected one of {', '.join(STATUSES)}, got {json.dumps(status)[:40]}")
    since = value.get("since")
    if isinstance(since, bool) or not isinstance(since, int):
        raise StateError(f"{where}.since: expected unix seconds")
    wanted = {"status", "since"} | ({"generation"} if status == "applying" else set()) \
        | ({"failed_generation"} if status in ("failed", "rolled-back") else set())
    if set(value) != wanted:
        raise StateError(f"{where}: status {status} goes with the fields {', '.join(sorted(wanted))}")
    for key in ("generation", "failed_generation"):
        if key in value:
            _generation(value[key], f"{where}.{key}")
    return value


def _maintenance(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != {"since", "reason"}:
        raise StateError(f"{where}: expected an object with the fields reason, since")
    if isinstance(value["since"], bool) or not isinstance(value["since"], int):
        raise StateError(f"{where}.since: expected unix seconds")
    if not isinstance(value["reason"], str) or not _REASON.fullmatch(value["reason"]):
        raise StateError(f"{where}.reason: expected up to 200 printable ASCII characters")
    return value


def parse(text: str | bytes | None, where: str) -> dict[str, Any]:
    """The record `text` holds, checked; {} when there is none yet (a host before its first run).

    A record that cannot be read is an error, not a fresh start: it holds the last-known-good."""
    if text is None or not text.strip():
        return {}
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{where}: not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise StateError(f"{where}: expected a k8sedge state record of version {VERSION}")
    unknown = sorted(set(record) - {"version", "serving", "last_good", "rollout", "maintenance"})
    if unknown:
        raise StateError(f"{where}: unknown field {unknown[0]}")
    for key, check in (("serving", _served), ("last_good", _served), ("rollout", _rollout),
                       ("maintenance", _maintenance)):
        if key in record:
            check(record[key], f"{where}: {key}")
    return record


def update(previous: dict[str, Any], now: int, serving: dict[str, Any] | None = None, restore: bool = False,
           promote: bool = False, status: str | None = None, generation: str = "",
           failed_generation: str = "", maintenance: bool | None = None, reason: str = "") -> dict[str, Any] | None:
    """The record to write after `previous`, or None when it already says this.

    In this order: `serving` replaces what the host serves, or `restore` says it serves its
    last-known-good again (while `applying`, the rollout's generation follows either); `promote`
    makes what it serves last-known-good; `status` starts a rollout status (`generation` with
    `applying`, `failed_generation` with `failed` and `rolled-back`), keeping `since` when the
    status and its fields do not change; `maintenance` True starts a drain (with `reason`, keeping
    `since` when the reason is the same), False ends it. Nothing asked is a read: None, even with
    no record yet."""
    if serving is None and not restore and not promote and status is None and maintenance is None:
        return None
    record = {"version": VERSION, **{k: v for k, v in previous.items() if k != "version"}}
    if restore:
        if serving is not None:
            raise StateError("restore: goes without serving (it serves last_good)")
        if "last_good" not in record:
            raise StateError("restore: the host has no last-known-good recorded")
        serving = record["last_good"]
    if serving is not None:
        record["serving"] = _served(serving, "serving")
        rollout = record.get("rollout", {})
        if rollout.get("status") == "applying":
            record["rollout"] = {**rollout, "generation": serving["generation"]}
    if promote:
        if "serving" not in record:
            raise StateError("promote: the host serves nothing recorded yet, so there is nothing to promote")
        record["last_good"] = record["serving"]
    if status is not None:
        if status not in STATUSES:
            raise StateError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        rollout = {"status": status, "since": now}
        if status == "applying":
            rollout["generation"] = _generation(generation, "generation")
        elif generation:
            raise StateError(f"generation: goes with status applying only, not {status}")
        if status in ("failed", "rolled-back"):
            rollout["failed_generation"] = _generation(failed_generation, "failed_generation")
        elif failed_generation:
            raise StateError(f"failed_generation: goes with status failed or rolled-back only, not {status}")
        old = record.get("rollout", {})
        if {k: v for k, v in old.items() if k != "since"} == {k: v for k, v in rollout.items() if k != "since"}:
            rollout["since"] = old["since"]
        record["rollout"] = rollout
    if maintenance:
        old = record.get("maintenance", {})
        record["maintenance"] = _maintenance({"since": old["since"] if old.get("reason") == reason else now,
                                              "reason": reason}, "maintenance")
    elif maintenance is not None:
        record.pop("maintenance", None)
    elif reason:
        raise StateError("reason: goes with maintenance true only")
    return None if record == previous else record


def without_bulk(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its backends and check digests left out: what a run needs back from a
    write (on a large cluster the backends are megabytes, and Ansible walks each of the thousands
    of digests every time a task takes the record)."""
    return {key: ({k: v for k, v in value.items() if k not in ("backends", "checks")} if key in ("serving", "last_good") else value)
            for key, value in record.items()}
