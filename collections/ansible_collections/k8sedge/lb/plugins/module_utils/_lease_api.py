# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's Lease in the API: read it, write what _lease decides with the resourceVersion
read (a 409 means someone wrote in between: read again), and wait, bounded, while another holder
has it. Keeper holds it for a process whose threads roll out (k8sedge-watch)."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import Connection, TransportError
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_read import _status_message
from ansible_collections.k8sedge.lb.plugins.module_utils._lease import (
    Decision, Holding, LeaseError, acquire, micro_time, release)

POLL_SECONDS = 2.0
RACES = 10  # writes lost to another writer before we give up; two writers settle in one or two


class LeaseHeld(LeaseError):
    """Someone else holds the Lease, and the wait for it is over."""

    def __init__(self, message: str, current: Holding) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True)
class Taken:
    """How the Lease was taken: `create`, `renew` (the holder had it already) or `take`; from whom
    (`previous`: empty when free) and after how many seconds of waiting."""

    action: str
    previous: Holding
    waited: float


class Lease:
    """One Lease object: namespace/name."""

    def __init__(self, connection: Connection, namespace: str, name: str, timeout: float = 30.0) -> None:
        self.connection, self.namespace, self.name, self.timeout = connection, namespace, name, timeout
        self.where = f"Lease {namespace}/{name}"
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    def read(self) -> dict[str, Any] | None:
        code, body = self._request("GET", f"{self._collection}/{self.name}")
        if code == 404:
            return None
        if code != 200:
            raise self._refused("GET", code, body)
        try:
            lease = json.loads(body)
        except ValueError:
            raise LeaseError(f"{self.where}: GET: the API server's answer is not JSON: {body[:200]!r}") from None
        if not isinstance(lease, dict):
            raise LeaseError(f"{self.where}: GET: expected a Lease, got {type(lease).__name__}")
        return lease

    def write(self, decision: Decision) -> bool:
        """Whether the write went in; False when another writer was first (read again)."""
        method, path = ("POST", self._collection) if decision.action == "create" else ("PUT", f"{self._collection}/{self.name}")
        code, body = self._request(method, path, json.dumps(decision.body).encode())
        if code == 409:
            return False
        if code not in (200, 201):
            raise self._refused(method, code, body)
        return True

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        try:
            return self.connection.request(method, path, body=body, timeout=self.timeout,
                                           headers={"Content-Type": "application/json"} if body else None)
        except TransportError as err:
            raise LeaseError(f"{self.where}: {method}: {err}") from None

    def _refused(self, method: str, code: int, body: bytes) -> LeaseError:
        hint = ""
        if code == 403:
            hint = " (the credential needs get, create and update on leases there: docs/rbac.yaml's Role k8sedge:rollout-lease)"
        elif code == 404:
            hint = f" (does namespace {self.namespace} exist? docs/rbac.yaml creates it)"
        return LeaseError(f"{self.where}: {method}: {_status_message(code, body)}{hint}")


def _held_message(lease: Lease, current: Holding, now: float, waited: float) -> str:
    return (f"{lease.where} is held by {current.holder!r} until {micro_time(current.until)} "
            f"({current.until - now:.0f} s from now); waited {waited:.0f} s for it. Another rollout runs, or one that "
            f"stopped left it to run out: `kubectl -n {lease.namespace} get lease {lease.name}` shows it, and deleting it "
            "frees it at once")


def take(lease: Lease, holder: str, duration: int, wait: float,
         clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> Taken:
    """Hold the Lease for `duration` seconds, waiting up to `wait` seconds while another holder has
    it; LeaseHeld once the wait is over."""
    started = clock()
    races = 0
    while True:
        now = clock()
        decision = acquire(lease.read(), holder, duration, now, lease.namespace, lease.name)
        if decision.action == "wait":
            left = started + wait - now
            if left <= 0:
                raise LeaseHeld(_held_message(lease, decision.current, now, now - started), decision.current)
            sleep(max(0.05, min(POLL_SECONDS, left, decision.current.until - now)))
            continue
        if lease.write(decision):
            return Taken(decision.action, decision.current, clock() - started)
        races += 1
        if races >= RACES:
            raise LeaseError(f"{lease.where}: another writer changed it {races} times while we wrote it; try again")


def give_up(lease: Lease, holder: str, clock: Callable[[], float] = time.time) -> bool:
    """Release the Lease if `holder` holds it; whether it did."""
    for _attempt in range(RACES):
        body = release(lease.read(), holder, clock(), lease.namespace, lease.name)
        if body is None:
            return False
        if lease.write(Decision("update", Holding(holder, 0.0, 0), body)):
            return True
    raise LeaseError(f"{lease.where}: another writer changed it {RACES} times while we released it; it runs out by itself")


def peek(lease: Lease, holder: str, duration: int, clock: Callable[[], float] = time.time) -> Decision:
    """What take() would do now, writing nothing (check mode)."""
    return acquire(lease.read(), holder, duration, clock(), lease.namespace, lease.name)


class Keeper:
    """A process's hold on the Lease while any of its threads needs it: the first to enter takes it
    (waiting up to its wait), the last to leave gives it up, and meanwhile a thread renews it every
    third of its duration, so a long run never lets it run out. The API calls are made outside any
    wait of another thread: a thread that may not wait (wait=0) is never held up by one that does."""

    def __init__(self, lease: Lease, holder: str, duration: int, log: Callable[[str], None],
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.lease, self.holder, self.duration, self.log = lease, holder, duration, log
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._users = 0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def held(self, wait: float) -> Iterator[None]:
        """Hold the Lease for the block; LeaseHeld when another holder keeps it past `wait` seconds."""
        self.enter(wait)
        try:
            yield
        finally:
            self.leave()

    def enter(self, wait: float) -> None:
        """Hold it (one more user); LeaseHeld when another holder keeps it past `wait` seconds."""
        deadline = self._clock() + wait
        while True:
            with self._lock:
                if self._users:
                    self._users += 1
                    return
                try:
                    taken = take(self.lease, self.holder, self.duration, 0, self._clock, self._sleep)
                except LeaseHeld as held:
                    if self._clock() >= deadline:
                        raise LeaseHeld(_held_message(self.lease, held.current, self._clock(), wait), held.current) from None
                else:
                    if taken.action == "take":
                        self.log(f"{self.lease.where}: taken over from {taken.previous.holder!r}, whose time had run out")
                    self._users = 1
                    self._stop.clear()
                    self._renewer = threading.Thread(target=self._renew, name="k8sedge lease", daemon=True)
                    self._renewer.start()
                    return
            self._sleep(POLL_SECONDS)

    def leave(self) -> None:
        """One user fewer; the last one gives it up."""
        with self._lock:
            self._users -= 1
            if self._users:
                return
            self._stop.set()
            renewer, self._renewer = self._renewer, None
            try:
                give_up(self.lease, self.holder, self._clock)
            except LeaseError as err:
                self.log(f"{err}; it runs out by itself")
        if renewer:
            renewer.join(timeout=self.lease.timeout + 5)

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    take(self.lease, self.holder, self.duration, 0, self._clock, self._sleep)
                except LeaseError as err:  # the API is away, or another holder took it after it ran out
                    self.log(f"{self.lease.where}: not renewed: {err}")
