# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch what the edge model reads and say when the model changes, and how.

One implementation for every front end (the ansible-rulebook event source
`k8sedge.lb.k8s_model` and the project's `bin/k8sedge-watch`). Each collection the model reads is
listed, then watched from the list's resourceVersion with bookmarks; a 410 Gone re-lists it, a lost
connection reconnects with capped exponential backoff and re-lists (an API that came back may be a
new one, whose versions mean nothing to us). Changes are coalesced: the model is built once the API
has been quiet for `debounce` seconds, or `max_delay` after the first change not yet built,
whichever comes first; one Change is emitted per new generation. While the API is unreachable
nothing is built and nothing is emitted: the edges keep serving what they have.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC, Stream, TransportError, auth_options
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import MODEL_ARGUMENT_SPEC, model_of, read_options
from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, lists_the_gate

log = logging.getLogger("k8sedge.watch")

STRUCTURAL = "structural"
ENDPOINTS = "endpoints"
Raw = dict[str, Any]


@dataclass(frozen=True)
class WatchOptions:
    debounce: float = 0.1  # quiet time before a build
    max_delay: float = 1.0  # a build at the latest this long after the first change not yet built
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    watch_seconds: int = 300  # timeoutSeconds of one watch request; it is then resumed
    # No byte for this long, not even a bookmark (kube-apiserver sends one about every minute):
    # the connection is dead.
    idle_timeout: float = 150.0
    connect_timeout: float = 10.0
    pool: str | None = None

    def __post_init__(self) -> None:
        for name in ("debounce", "max_delay", "backoff_initial", "backoff_max", "idle_timeout", "connect_timeout"):
            value = getattr(self, name)
            if math.isnan(value) or value <= 0:
                raise ValueError(f"option {name}: expected a number of seconds above 0, got {value!r}")
        if self.max_delay < self.debounce:
            raise ValueError(f"option max_delay: expected at least debounce ({self.debounce:g} s), got {self.max_delay:g}")
        if self.watch_seconds < 1:
            raise ValueError(f"option watch_seconds: expected a whole number of seconds, at least 1, got {self.watch_seconds!r}")


# --- what changed -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """A new model generation, and whether only targets moved (endpoints) or more (structural)."""

    generation: str
    previous: str | None  # the generation emitted before; None for the first one
    kind: str  # STRUCTURAL or ENDPOINTS
    parts: tuple[str, ...]  # what differs beyond targets: frontends, backends, routes
    backends: tuple[str, ...]  # backends whose targets changed
    first_event: float  # epoch seconds of the first API change this generation reflects
    built: float  # epoch seconds the model was built
    model: dict[str, Any] = field(repr=False, compare=False)

    @property
    def summary(self) -> str:
        if self.previous is None:
            return f"generation {self.generation[:12]}: first model since the watcher started"
        what = f"{', '.join(self.parts)} changed" if self.kind == STRUCTURAL else f"targets of {', '.join(self.backends)} changed"
        return f"generation {self.previous[:12]} -> {self.generation[:12]}: {self.kind}, {what}"

    def event(self) -> dict[str, Any]:
        """The change as JSON-safe data (what EDA's rules and the playbooks see), without the model."""
        return {
            "generation": self.generation, "previous": self.previous, "change": self.kind,
            "parts": list(self.parts), "backends": list(self.backends), "summary": self.summary,
            "first_event": round(self.first_event, 3), "built": round(self.built, 3),
            "counts": {"frontends": len(self.model["frontends"]), "backends": len(self.model["backends"]),
                       "targets": sum(len(b["targets"]) for b in self.model["backends"])},
        }


def _targets(model: dict[str, Any]) -> dict[str, Any]:
    return {b["name"]: b["targets"] for b in model["backends"]}


def _shape(model: dict[str, Any]) -> dict[str, Any]:
    """What needs more than new targets to change: everything but the backends' targets."""
    return {
        "frontends": model["frontends"],
        "backends": [{k: v for k, v in b.items() if k != "targets"} for b in model["backends"]],
        "routes": model["routes"],
    }


def classify(previous: dict[str, Any] | None, model: dict[str, Any]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(kind, parts that differ beyond targets, backends whose targets differ)."""
    old_targets, new_targets = _targets(previous or {"backends": []}), _targets(model)
    moved = tuple(sorted(name for name in new_targets.keys() | old_targets.keys() if old_targets.get(name) != new_targets.get(name)))
    if previous is None:
        return STRUCTURAL, ("frontends", "backends", "routes"), moved
    old, new = _shape(previous), _shape(model)
    parts = tuple(part for part in ("frontends", "backends", "routes") if old[part] != new[part])
    return (STRUCTURAL if parts else ENDPOINTS), parts, moved


def merge(pending: Change | None, change: Change) -> Change:
    """One change standing for `pending` (not acted on yet) and the newer `change`: structural if
    either is, since the playbook run for it must cover both."""
    if pending is None:
        return change
    kind = STRUCTURAL if STRUCTURAL in (pending.kind, change.kind) else ENDPOINTS
    return replace(change, previous=pending.previous, kind=kind, first_event=pending.first_event,
                   parts=tuple(sorted(set(pending.parts) | set(change.parts))),
                   backends=tuple(sorted(set(pending.backends) | set(change.backends))))


def certificates_changed(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What differs between two readings of the certificates each edge is given (edge ->
    certificate name -> SHA-256), as the part of a change that names it; "" when nothing does."""
    found = []
    for edge in sorted(set(before) | set(after)):
        old, new = before.get(edge) or {}, after.get(edge) or {}
        names = sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))
        if names:
            found.append(f"{edge} ({', '.join(names)})")
    return f"certificates of {', '.join(found)}" if found else ""


def inventory_change(latest: Change, what: str, now: float) -> Change:
    """A structural change of the inventory, not of the cluster: the model the edges should serve
    is the latest one, and what changed is `what`."""
    return replace(latest, previous=latest.generation, kind=STRUCTURAL, parts=(what,), backends=(), first_event=now)


@dataclass
class Debounce:
    """When to build: `quiet` seconds after the last change, at most `max_delay` after the first."""

    quiet: float
    max_delay: float
    first: float | None = None  # monotonic
    last: float | None = None
    first_wall: float = 0.0

    def touch(self, now: float, wall: float) -> None:
        if self.first is None:
            self.first, self.first_wall = now, wall
        self.last = now

    def wait(self, now: float) -> float | None:
        """Seconds until the build is due (0: now); None when nothing changed."""
        if self.first is None or self.last is None:
            return None
        return max(0.0, min(self.last + self.quiet, self.first + self.max_delay) - now)

    def take(self) -> float:
        """Start over; the wall time of the first change of the batch."""
        first_wall, self.first, self.last = self.first_wall, None, None
        return first_wall


# --- what is watched --------------------------------------------------------------------------

@dataclass(frozen=True)
class Collection:
    """One list+watch: a collection path, its query, and the ClusterState field it fills."""

    name: str
    state_field: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    gated_only: bool = False  # Pods: keep only those that list the edge's readiness gate


def collections(has_slices: bool, options: k8s.ReadOptions) -> list[Collection]:
    """What the model reads (as k8s.read_cluster reads it), as watchable collections."""
    kinds = [("services", "services", "/api/v1/{}services")]
    if has_slices:
        kinds.append(("endpointslices", "endpoint_slices", "/apis/discovery.k8s.io/v1/{}endpointslices"))
    else:
        kinds.append(("endpoints", "endpoints", "/api/v1/{}endpoints"))
    if options.read_ingresses:
        kinds.append(("ingresses", "ingresses", "/apis/networking.k8s.io/v1/{}ingresses"))
    if options.read_pods:
        kinds.append(("pods", "pods", "/api/v1/{}pods"))
    found = []
    for name, state_field, template in kinds:
        query = (("labelSelector", options.label_selector),) if name == "services" and options.label_selector else ()
        for namespace in options.namespaces or ("",):
            scope = f"namespaces/{namespace}/" if namespace else ""
            found.append(Collection(f"{name}{' in ' + namespace if namespace else ''}", state_field, template.format(scope), query,
                                    gated_only=name == "pods"))
    found.append(Collection("nodes", "nodes", "/api/v1/nodes"))
    for ref in dict.fromkeys(filter(None, (options.tcp_services_configmap, options.udp_services_configmap))):
        namespace, name = ref.split("/", 1)
        found.append(Collection(f"configmap {ref}", "config_maps", f"/api/v1/namespaces/{namespace}/configmaps",
                                (("fieldSelector", f"metadata.name={name}"),)))
    return found


class _Lost(Exception):
    """The API could not be read or watched: reconnect after a backoff, then re-list."""


class _Stream:
    """One collection's objects, kept current by list, then watch from the list's version."""

    def __init__(self, watcher: Watcher, collection: Collection) -> None:
        self.watcher = watcher
        self.collection = collection
        self.items: dict[tuple[str, str], Raw] = {}
        self.version = ""
        self.synced = False
        self.stream: Stream | None = None

    def run(self) -> None:
        options, stop = self.watcher.options, self.watcher.stopping
        backoff = options.backoff_initial
        relist = True
        while not stop.is_set():
            try:
                if relist:
                    self._list()
                    relist = False
                relist, streamed = self._watch()
                if streamed:
                    backoff = options.backoff_initial
            except _Lost as err:
                if stop.is_set():
                    return
                delay = random.uniform(backoff / 2, backoff)  # jitter: streams do not retry in step
                self.watcher.lost(self, str(err), delay)
                relist = True
                stop.wait(delay)
                backoff = min(backoff * 2, options.backoff_max)

    def _list(self) -> None:
        reader = k8s.Reader(self.watcher.client, self.watcher.read.timeout)
        try:
            items, version = reader.list(self.collection.path, list(self.collection.query), self.watcher.read.page_size,
                                         lists_the_gate if self.collection.gated_only else None)
        except k8s.ReadError as err:
            raise _Lost(str(err)) from None
        by_key = {}
        for item in items:
            by_key[_key(item)] = item
        with self.watcher.changes:
            self.items, self.version, self.synced = by_key, version, True
            self.watcher.stats["lists"] += 1
            self.watcher.touch()
        self.watcher.reached(self)

    def _watch(self) -> tuple[bool, bool]:
        """One watch request until it ends: (re-list needed, any line received)."""
        options = self.watcher.options
        query = [*self.collection.query, ("watch", "true"), ("allowWatchBookmarks", "true"),
                 ("resourceVersion", self.version), ("timeoutSeconds", str(options.watch_seconds))]
        where = f"watch {self.collection.path}"
        try:
            stream = self.watcher.client.stream(self.collection.path, query, options.connect_timeout, options.idle_timeout)
        except TransportError as err:
            raise _Lost(f"{where}: {err}") from None
        self.stream = stream
        streamed = False
        try:
            if stream.status == 410:
                self.watcher.count("expired")
                return True, False
            if stream.status != 200:
                raise _Lost(f"{where}: HTTP {stream.status}: {stream.body(200)!r}")
            self.watcher.count("watches")
            for line in stream:
                if self.watcher.stopping.is_set():
                    return False, streamed
                if not line.strip():
                    continue
                streamed = True
                if self._event(line, where):
                    self.watcher.count("expired")
                    return True, streamed
            return False, streamed
        except _Lost:
            raise
        except Exception as err:  # a connection lost mid-stream, a read timeout
            raise _Lost(f"{where}: {err}") from None
        finally:
            self.stream = None
            stream.close()

    def _event(self, line: bytes, where: str) -> bool:
        """Apply one watch event; True when it says the version is too old (410: re-list)."""
        try:
            event = json.loads(line)
        except ValueError as err:
            raise _Lost(f"{where}: expected a watch event, got {line[:200]!r} ({err})") from None
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(kind, str) or not isinstance(obj, dict):
            raise _Lost(f"{where}: expected a watch event {{type, object}}, got {line[:200]!r}")
        if kind == "ERROR":  # a Status, without a resourceVersion
            if obj.get("code") == 410:
                return True
            raise _Lost(f"{where}: {obj.get('code')} {obj.get('reason', '')}: {obj.get('message', '')}")
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("resourceVersion"), str):
            raise _Lost(f"{where}: expected a watch event whose object has metadata.resourceVersion, got {line[:200]!r}")
        version = metadata["resourceVersion"]
        if kind == "BOOKMARK":
            self.version = version
            self.watcher.count("bookmarks")
            return False
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise _Lost(f"{where}: unexpected watch event type {kind!r}")
        with self.watcher.changes:
            if kind == "DELETED" or (self.collection.gated_only and not lists_the_gate(obj)):
                self.items.pop(_key(obj), None)
            else:
                self.items[_key(obj)] = obj
            self.version = version
            self.watcher.stats["events"] += 1
            self.watcher.touch()
        return False

    def interrupt(self) -> None:
        stream = self.stream
        if stream is not None:
            stream.interrupt()


def _key(obj: Raw) -> tuple[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    # Keys only need to tell objects apart; the model validates names itself.
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


# --- the watcher ------------------------------------------------------------------------------

def params_with_defaults(params: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """edge_info's options validated, converted and with their defaults, and the connection
    options' K8S_AUTH_* variables from `environ`, as AnsibleModule would fill them. ValueError
    names each option that is unknown or not of its type."""
    spec = {**AUTH_ARGUMENT_SPEC, **MODEL_ARGUMENT_SPEC}
    given = {name: value for name, value in params.items() if value is not None}
    for name, option in spec.items():
        found = [environ[v] for v in option.get("fallback", (None, []))[1] if v in environ]
        if name not in given and found:
            given[name] = found[0]
    # Without the fallbacks: the validator would read this process's environment, not `environ`.
    result = ArgumentSpecValidator({name: {k: v for k, v in option.items() if k != "fallback"}
                                    for name, option in spec.items()}).validate(given)
    if result.error_messages:
        raise ValueError("; ".join(_option_error(message) for message in result.error_messages))
    return {name: result.validated_parameters.get(name) for name in spec}


def _option_error(message: str) -> str:
    """Ansible's wording, with the option named first."""
    unknown = re.match(r"^(.*)\. Supported parameters include: (.*?)(?: \(.*\))?\.$", message)
    if unknown:
        return f"unknown option(s) {unknown[1]}; expected some of {unknown[2]}"
    typed = re.match(r"^argument '(\w+)' is of type \w+ and we were unable to convert to (\w+): (.*)$", message)
    if typed:
        return f"option {typed[1]}: expected {typed[2]}, {typed[3]}"
    return message


class Watcher:
    """Keeps every collection the model reads current and calls emit(Change) per new generation."""

    def __init__(self, params: dict[str, Any], options: WatchOptions) -> None:
        self.params = params
        self.options = options
        self.read = read_options(params)
        self.client = k8s.connect(auth_options(params))
        self.stopping = threading.Event()
        self.changes = threading.Condition()
        self.debounce = Debounce(options.debounce, options.max_delay)
        self.stats = {"lists": 0, "watches": 0, "events": 0, "bookmarks": 0, "expired": 0, "lost": 0, "builds": 0, "emitted": 0}
        self.streams: list[_Stream] = []
        self.model: dict[str, Any] | None = None
        self._down: dict[str, str] = {}
        self._down_since = 0.0

    # Called by the streams, some with self.changes held.
    def touch(self) -> None:
        self.debounce.touch(time.monotonic(), time.time())
        self.changes.notify_all()

    def count(self, name: str) -> None:
        with self.changes:
            self.stats[name] += 1

    def lost(self, stream: _Stream | None, error: str, delay: float) -> None:
        name = stream.collection.name if stream else "discovery"
        with self.changes:
            first = not self._down
            if first:
                self._down_since = time.monotonic()
            self._down[name] = error
            self.stats["lost"] += 1
        if first:
            serving = self.model["generation"][:12] if self.model else "(none built yet)"
            log.warning("Kubernetes API unreachable (%s): the edges keep serving what they have, generation %s;"
                        " reconnecting with backoff, then re-listing to catch up", error, serving)
        log.debug("%s: %s; retrying in %.1f s", name, error, delay)

    def reached(self, stream: _Stream | None) -> None:
        name = stream.collection.name if stream else "discovery"
        with self.changes:
            was_down = bool(self._down)
            self._down.pop(name, None)
            back = was_down and not self._down
        if back:
            log.warning("Kubernetes API reachable again after %.1f s: re-listed, catching up", time.monotonic() - self._down_since)

    @property
    def reachable(self) -> bool:
        with self.changes:
            return not self._down

    def stop(self) -> None:
        self.stopping.set()
        with self.changes:
            self.changes.notify_all()
        for stream in self.streams:
            stream.interrupt()

    def _discover(self) -> bool | None:
        """Whether the API serves EndpointSlices; None once stopped. Retries until it answers."""
        backoff = self.options.backoff_initial
        while not self.stopping.is_set():
            try:
                found = k8s.Reader(self.client, self.read.timeout).get("/apis/discovery.k8s.io/v1") is not None
            except k8s.ReadError as err:
                delay = random.uniform(backoff / 2, backoff)
                self.lost(None, str(err), delay)
                self.stopping.wait(delay)
                backoff = min(backoff * 2, self.options.backoff_max)
                continue
            self.reached(None)
            return found
        return None

    def run(self, emit: Callable[[Change], None]) -> None:
        """Watch until stop(); emit(change) in this thread for every new generation."""
        has_slices = self._discover()
        if has_slices is None:
            return
        self.streams = [_Stream(self, c) for c in collections(has_slices, self.read)]
        log.info("watching %s", ", ".join(s.collection.name for s in self.streams))
        threads = [threading.Thread(target=s.run, name=f"k8sedge-watch {s.collection.name}", daemon=True) for s in self.streams]
        for thread in threads:
            thread.start()
        try:
            while not self.stopping.is_set():
                state, first_event = self._next_state()
                if state is not None:
                    self._build(state, first_event, emit)
        finally:
            self.stop()
            for thread in threads:
                thread.join(timeout=5)

    def build_wait(self, now: float) -> float | None:
        """Seconds until a build is due; None until an event makes one possible. Called with
        self.changes held. Every collection must be listed and none lost since: after an outage, a
        collection that re-listed first must not be mixed with stale ones still reconnecting."""
        if self._down or not all(s.synced for s in self.streams):
            return None
        return self.debounce.wait(now)

    def _next_state(self) -> tuple[ClusterState | None, float]:
        """The cluster state once a build is due (see build_wait)."""
        with self.changes:
            wait = self.build_wait(time.monotonic())
            if wait is None or wait > 0:
                self.changes.wait(timeout=wait)
                return None, 0.0
            first_event = self.debounce.take()
            lists: dict[str, list[Raw]] = {}
            for stream in self.streams:
                lists.setdefault(stream.collection.state_field, []).extend(stream.items.values())
        state = ClusterState(
            services=lists["services"],
            endpoint_slices=lists["endpoint_slices"] if "endpoint_slices" in lists else None,
            endpoints=lists.get("endpoints", []),
            nodes=lists["nodes"],
            ingresses=lists.get("ingresses", []),
            config_maps=lists.get("config_maps", []),  # none named: reading them is opt-in
            pods=lists.get("pods", []) if self.read.read_pods else None,
        )
        return state, first_event

    def _build(self, state: ClusterState, first_event: float, emit: Callable[[Change], None]) -> None:
        model = model_of(state, self.params, self.options.pool, {})
        self.count("builds")
        if self.model is not None and model["generation"] == self.model["generation"]:
            # Nothing to serve differently; but a Pod that newly waits for the readiness gate (one
            # behind node ports changes no target) is a change to act on, an endpoint-only one.
            waiting_before = {gate["uid"] for gate in self.model.get("gates") or []}
            if all(gate["uid"] in waiting_before for gate in model.get("gates") or []):
                self.model = model  # the same generation: only which Pods wait may differ
                return
        kind, parts, backends = classify(self.model, model)
        change = Change(model["generation"], self.model["generation"] if self.model else None, kind, parts, backends,
                        first_event, time.time(), model)
        self.model = model
        log.info("%s", change.summary)
        self.count("emitted")
        emit(change)
