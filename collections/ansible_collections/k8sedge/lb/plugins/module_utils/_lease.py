# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's lock: a coordination.k8s.io/v1 Lease, held as Kubernetes' own leader election
holds one. Pure: what to write, given the Lease as read and the time; _lease_api does the I/O.

Whoever changes the edges (site.yml, endpoints.yml, k8sedge-watch) holds it meanwhile, so a
scheduled AWX job and the watcher never roll out at the same time. A holder that dies leaves the
Lease to run out (renewTime + leaseDurationSeconds); after that anyone may take it over.
Every field read is the cluster's, so untrusted: a Lease we cannot read is an error naming it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError

API_VERSION = "coordination.k8s.io/v1"
_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeaseError(EdgeError):
    """The Lease cannot be read, written or taken."""


@dataclass(frozen=True)
class Holding:
    """Who holds the Lease (empty: nobody), until when (seconds since the epoch) and how many
    times it changed hands."""

    holder: str
    until: float
    transitions: int


@dataclass(frozen=True)
class Decision:
    """What a holder does with the Lease as read: `create`, `renew` (it holds it already), `take`
    (free or run out) or `wait` (someone else holds it until `current.until`)."""

    action: str
    current: Holding
    body: dict[str, Any] | None


def micro_time(moment: float) -> str:
    """A MicroTime as the API writes it (RFC 3339, microseconds, UTC)."""
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime(_MICRO_TIME)


def _seconds(value: Any, where: str) -> float:
    if not isinstance(value, str):
        raise LeaseError(f"{where}: expected an RFC 3339 time, got {value!r}")
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise LeaseError(f"{where}: expected an RFC 3339 time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise LeaseError(f"{where}: expected a time with its zone, got {value!r}")
    return parsed.timestamp()


def holding(lease: dict[str, Any], where: str) -> Holding:
    """Who holds `lease` and until when; LeaseError names a field we cannot take as the API's."""
    spec = lease.get("spec") if isinstance(lease, dict) else None
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise LeaseError(f"{where}: spec: expected a Lease spec, got {spec!r}")
    holder = spec.get("holderIdentity") or ""
    if not isinstance(holder, str):
        raise LeaseError(f"{where}: spec.holderIdentity: expected a string, got {holder!r}")
    transitions = spec.get("leaseTransitions") or 0
    if not isinstance(transitions, int) or isinstance(transitions, bool) or transitions < 0:
        raise LeaseError(f"{where}: spec.leaseTransitions: expected a count, got {transitions!r}")
    if not holder:
        return Holding("", 0.0, transitions)
    duration = spec.get("leaseDurationSeconds")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0:
        raise LeaseError(f"{where}: spec.leaseDurationSeconds: expected seconds above 0, got {duration!r}")
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    return Holding(holder, _seconds(renewed, f"{where}: spec.renewTime") + duration, transitions)


def acquire(lease: dict[str, Any] | None, holder: str, duration: int, now: float, namespace: str, name: str) -> Decision:
    """What `holder` writes to hold the Lease for `duration` seconds from `now` (`lease` as read,
    None when there is none yet)."""
    where = f"Lease {namespace}/{name}"
    if not holder:
        raise LeaseError(f"{where}: the holder's identity must not be empty (an empty holder means nobody)")
    stamp = micro_time(now)
    if lease is None:
        spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": stamp, "renewTime": stamp,
                "leaseTransitions": 0}
        body = {"apiVersion": API_VERSION, "kind": "Lease", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        return Decision("create", Holding("", 0.0, 0), body)
    current = holding(lease, where)
    spec = dict(lease.get("spec") or {}, holderIdentity=holder, leaseDurationSeconds=duration, renewTime=stamp)
    if current.holder == holder:
        return Decision("renew", current, dict(lease, spec=spec))
    if current.holder and current.until > now:
        return Decision("wait", current, None)
    spec.update(acquireTime=stamp, leaseTransitions=current.transitions + 1)
    return Decision("take", current, dict(lease, spec=spec))


def release(lease: dict[str, Any] | None, holder: str, now: float, namespace: str, name: str) -> dict[str, Any] | None:
    """What `holder` writes to give the Lease up at once (as client-go's leader election does:
    no holder, one second); None when it does not hold it, so there is nothing to give up."""
    if lease is None or holding(lease, f"Lease {namespace}/{name}").holder != holder:
        return None
    stamp = micro_time(now)
    spec = dict(lease.get("spec") or {}, leaseDurationSeconds=1, acquireTime=stamp, renewTime=stamp)
    spec.pop("holderIdentity", None)
    return dict(lease, spec=spec)
