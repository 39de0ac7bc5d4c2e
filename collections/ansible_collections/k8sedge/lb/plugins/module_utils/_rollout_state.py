# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout state an edge host keeps for edge_keepalived:
{"generation", "status", "since"[, "failed_generation"]}.

`generation` is always what the proxy on the host should run now, so keepalived's check can
compare it with what the proxy records, whichever path changed the proxy:
- `applying`: the rollout is putting `generation` in place (not yet probed);
- `passed`: `generation` passed its probes on this host (or is an endpoint-only change of a
  generation that did: endpoints.yml and the fast path move targets, not structure);
- `failed`: `generation` failed its probes and could not be rolled back: the host serves a config
  nobody proved, so it gives its VIPs up;
- `rolled-back`: `failed_generation` failed its probes and the host went back to its
  last-known-good config, which is `generation`: it serves a proven config and keeps its VIPs.

Pure: what to write given what the file says. `since` is when the status began, so a run that
changes neither the generation nor the status leaves the file alone.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FOLLOW", "STATUSES", "next_state", "parse"]

STATUSES = ("applying", "passed", "failed", "rolled-back")
# Not a status: "the proxy now runs this generation, its status stays" (an endpoint-only change).
FOLLOW = "unchanged"


def parse(text: str | None) -> dict[str, Any]:
    """What the file says; {} for a missing, empty or unreadable one (a host before its first
    rollout, or a file cut short: both are rewritten)."""
    if not text:
        return {}
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def next_state(previous: dict[str, Any], generation: str, status: str, now: int,
               failed_generation: str = "") -> dict[str, Any] | None:
    """The state to write, or None when the file already says this.

    `status` FOLLOW keeps the previous status and its `since` and records the new generation; on
    a host that has no rollout state yet it writes nothing (keepalived treats that host as fresh)."""
    if not generation:
        raise ValueError("generation: expected the model generation, got an empty string")
    if status == FOLLOW:
        if previous.get("status") not in STATUSES or previous.get("generation") == generation:
            return None
        return {**previous, "generation": generation}
    if status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join((*STATUSES, FOLLOW))}, got {status!r}")
    if (status == "rolled-back") != bool(failed_generation):
        raise ValueError("failed_generation: expected the generation that failed with status rolled-back, and only then")
    state = {"generation": generation, "status": status, "since": now}
    if failed_generation:
        state["failed_generation"] = failed_generation
    if {k: v for k, v in previous.items() if k != "since"} == {k: v for k, v in state.items() if k != "since"}:
        return None
    return state
