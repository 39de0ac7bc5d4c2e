# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout state an edge host keeps for edge_keepalived: {"generation", "status", "since"}.

Pure: what to write given what the file says. `since` is when the status began, so a run that
changes neither the generation nor the status leaves the file alone.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["STATUSES", "next_state", "parse"]

STATUSES = ("applying", "passed", "failed")


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


def next_state(previous: dict[str, Any], generation: str, status: str, now: int) -> dict[str, Any] | None:
    """The state to write, or None when the file already says this generation and status."""
    if status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
    if previous.get("generation") == generation and previous.get("status") == status:
        return None
    return {"generation": generation, "status": status, "since": now}
