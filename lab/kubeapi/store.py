"""The object store: one global resourceVersion counter, serialized bytes cached per
object, a bounded event history per resource for watches, and a few sorted list
snapshots so that paginated lists are consistent."""
from __future__ import annotations

import bisect
import collections
import json
import queue
import threading
from dataclasses import dataclass
from typing import Any

from .resources import RESOURCES, Resource

Obj = dict[str, Any]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Entry:
    """A stored object (never mutated) and its JSON as a list item (no kind/apiVersion)."""

    __slots__ = ("obj", "item", "rv")

    def __init__(self, obj: Obj, rv: int):
        self.obj = obj
        self.rv = rv
        self.item = dumps({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})

    def full(self, res: Resource) -> bytes:
        return res.type_prefix + self.item[1:]


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    entry: Entry
    old: Entry | None


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int):
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass
class Snapshot:
    """Every object of one resource, sorted by key, as of `changed` (its last change)."""
    changed: int
    keys: list[str]
    entries: list[Entry]


def object_key(res: Resource, namespace: str, name: str) -> str:
    # "ns/name" sorts like etcd's /registry/<resource>/<ns>/<name> keys.
    return f"{namespace}/{name}" if res.namespaced else name


class Store:
    def __init__(self, history_size: int = 10000, snapshot_count: int = 16):
        self.lock = threading.RLock()
        self.rv = 0
        self.history_size = history_size
        self.snapshot_count = snapshot_count
        self.objects: dict[str, dict[str, Entry]] = {r.plural: {} for r in RESOURCES}
        self.changed: dict[str, int] = {r.plural: 0 for r in RESOURCES}
        self.history: dict[str, collections.deque[Event]] = {
            r.plural: collections.deque() for r in RESOURCES}
        self.compacted: dict[str, int] = {r.plural: 0 for r in RESOURCES}
        self.watchers: dict[str, set[queue.SimpleQueue[Event | None]]] = {
            r.plural: set() for r in RESOURCES}
        self.snapshots: collections.OrderedDict[tuple[str, int], Snapshot] = collections.OrderedDict()

    # --- writes (callers hold self.lock) ---------------------------------------------------

    def _record(self, res: Resource, event: Event) -> None:
        history = self.history[res.plural]
        if len(history) >= self.history_size:
            self.compacted[res.plural] = history.popleft().rv
        history.append(event)
        self.changed[res.plural] = event.rv
        for watcher in self.watchers[res.plural]:
            watcher.put(event)

    def commit(self, res: Resource, key: str, obj: Obj) -> Entry:
        """Store obj (created or replaced) under a new resourceVersion."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        entry = Entry(obj, self.rv)
        table = self.objects[res.plural]
        old = table.get(key)
        table[key] = entry
        self._record(res, Event(self.rv, "MODIFIED" if old else "ADDED", entry, old))
        return entry

    def remove(self, res: Resource, key: str, final: Obj | None = None) -> Entry:
        """Delete the object; the DELETED event carries it (or `final`) at the deletion's version."""
        old = self.objects[res.plural].pop(key)
        self.rv += 1
        obj = dict(final if final is not None else old.obj)
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self.rv))
        entry = Entry(obj, self.rv)
        self._record(res, Event(self.rv, "DELETED", entry, old))
        return entry

    # --- reads -----------------------------------------------------------------------------

    def get(self, res: Resource, key: str) -> Entry | None:
        return self.objects[res.plural].get(key)

    def snapshot(self, res: Resource, changed: int | None = None) -> Snapshot | None:
        """The sorted snapshot as of `changed` (default: now), or None if it is gone."""
        with self.lock:
            current = self.changed[res.plural]
            wanted = current if changed is None else changed
            cache_key = (res.plural, wanted)
            snap = self.snapshots.get(cache_key)
            if snap is not None:
                self.snapshots.move_to_end(cache_key)
                return snap
            if wanted != current:
                return None
            items = sorted(self.objects[res.plural].items())
            snap = Snapshot(current, [k for k, _ in items], [e for _, e in items])
            self.snapshots[cache_key] = snap
            while len(self.snapshots) > self.snapshot_count:
                self.snapshots.popitem(last=False)
            return snap

    def watch(self, res: Resource, since: int | None
              ) -> tuple[queue.SimpleQueue[Event | None], list[Entry], list[Event], int]:
        """Register a watcher. since=None: current objects to replay as ADDED;
        otherwise the history events after `since`. Returns (queue, entries, events, rv)."""
        with self.lock:
            if since is not None and since < self.compacted[res.plural]:
                raise TooOld(since, self.compacted[res.plural])
            watcher: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
            self.watchers[res.plural].add(watcher)
            if since is None:
                return watcher, list(self.objects[res.plural].values()), [], self.rv
            history = self.history[res.plural]
            # History is ordered by rv: bisect over it without copying the deque.
            start = bisect.bisect_right(_RvView(history), since)
            events = [history[i] for i in range(start, len(history))]
            return watcher, [], events, self.rv

    def unwatch(self, res: Resource, watcher: queue.SimpleQueue[Event | None]) -> None:
        with self.lock:
            self.watchers[res.plural].discard(watcher)

    def close_watchers(self) -> None:
        with self.lock:
            for watchers in self.watchers.values():
                for watcher in watchers:
                    watcher.put(None)


class _RvView:
    """Sequence view of a deque's resourceVersions, for bisect."""

    def __init__(self, history: collections.deque[Event]):
        self.history = history

    def __len__(self) -> int:
        return len(self.history)

    def __getitem__(self, index: int) -> int:
        return self.history[index].rv
