"""Talking to the API server: a list+watch cache (like client-go's reflector and store) and
thin write helpers. Objects stay plain dicts in the shape the API returns.

Uses the kubernetes client's typed API methods with ``_preload_content=False`` and parses JSON
itself, so nothing is lost to model classes and watches are read line by line as they arrive.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Iterator

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from lab.cluster._model import Obj, key, resource_version_newer

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
WATCH_SECONDS = 240  # server-side watch timeout; the watch is then resumed from the last resourceVersion


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class Cluster:
    """The typed API groups of one kubeconfig, and helpers that return plain dicts."""

    def __init__(self, kubeconfig: str) -> None:
        self.api_client = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.discovery = client.DiscoveryV1Api(self.api_client)

    def lister(self, resource: str) -> Callable[..., Any]:
        listers = {
            "pods": self.core.list_pod_for_all_namespaces,
            "nodes": self.core.list_node,
            "services": self.core.list_service_for_all_namespaces,
            "endpoints": self.core.list_endpoints_for_all_namespaces,
            "endpointslices": self.discovery.list_endpoint_slice_for_all_namespaces,
            "deployments": self.apps.list_deployment_for_all_namespaces,
        }
        return listers[resource]


def call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
    """Call a typed API method and return the response body as a dict."""
    resp = method(*args, _preload_content=False, _request_timeout=(5, 30), **kwargs)
    data = resp.data
    return json.loads(data) if data else {}


def merge_patch(method: Callable[..., Any], *args: Any) -> Obj:
    return call(method, *args, _content_type=MERGE_PATCH)


def strategic_patch(method: Callable[..., Any], *args: Any) -> Obj:
    """A strategic merge patch: a status patch of some conditions leaves the other writers' alone."""
    return call(method, *args, _content_type=STRATEGIC_PATCH)


def not_found(exc: Exception) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def conflict(exc: Exception) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


def _lines(resp: Any) -> Iterator[bytes]:
    """Lines of a streamed response as they arrive (read1 returns whatever is there)."""
    buffer = b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())


class Informer:
    """A cache of one resource kept by list, then watch from the list's resourceVersion.

    A watch that ends is resumed from the last resourceVersion seen (bookmarks included); HTTP 410
    means list again; any other failure reconnects with exponential backoff. on_change() is
    called, from the informer's thread, after every change to the cache.
    """

    def __init__(
        self,
        name: str,
        list_fn: Callable[..., Any],
        on_change: Callable[[], None],
        field_selector: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        self.name = name
        self._list_fn = list_fn
        self._on_change = on_change
        self._selectors = {
            k: v for k, v in (("field_selector", field_selector), ("label_selector", label_selector)) if v
        }
        self._items: dict[str, Obj] = {}
        self._deleted: dict[str, Obj] = {}  # last state of deleted keys, so stale events cannot revive them
        self._lock = threading.Lock()
        self.synced = threading.Event()
        # Counts the cache's changes: a loop that saw this version has nothing new to act on.
        self.version = 0

    def start(self) -> Informer:
        threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True).start()
        return self

    def list(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def get(self, obj_key: str) -> Obj | None:
        with self._lock:
            return self._items.get(obj_key)

    def observe(self, obj: Obj) -> None:
        """Put the result of our own write in the cache before its watch event arrives."""
        with self._lock:
            self._store(obj)

    def forget(self, obj: Obj) -> None:
        """Drop an object we deleted before its watch event arrives."""
        with self._lock:
            self._remove(obj)

    def _store(self, obj: Obj) -> bool:
        k = key(obj)
        if not resource_version_newer(obj, self._items.get(k)) or not resource_version_newer(obj, self._deleted.get(k)):
            return False
        if obj["metadata"].get("uid") != (self._deleted.get(k) or {}).get("metadata", {}).get("uid"):
            self._deleted.pop(k, None)
        self._items[k] = obj
        self.version += 1
        return True

    def _remove(self, obj: Obj) -> None:
        k = key(obj)
        current = self._items.get(k)
        if current is not None and current["metadata"].get("uid") not in (None, obj["metadata"].get("uid")):
            return  # a newer object of the same name
        self._items.pop(k, None)
        self._deleted[k] = obj
        self.version += 1

    def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                rv = self._relist()
                backoff = 0.5
                while True:
                    rv = self._watch(rv)
            except Gone:
                log.info("%s: resourceVersion expired, listing again", self.name)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect, like a reflector
                log.warning("%s: list/watch failed (%s); retrying in %.1f s", self.name, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _relist(self) -> str:
        body = call(self._list_fn, **self._selectors)
        with self._lock:
            self._items = {}
            for item in body.get("items") or []:
                self._items[key(item)] = item
            self._deleted = {}
            self.version += 1
        self.synced.set()
        self._on_change()
        return body["metadata"]["resourceVersion"]

    def _watch(self, rv: str) -> str:
        resp = self._list_fn(
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(5, WATCH_SECONDS + 30),
            **self._selectors,
        )
        try:
            for line in _lines(resp):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(f"watch error: {obj.get('reason')}: {obj.get('message')}")
                rv = obj.get("metadata", {}).get("resourceVersion") or rv
                if kind == "BOOKMARK":
                    continue
                with self._lock:
                    if kind == "DELETED":
                        self._remove(obj)
                        changed = True
                    else:
                        changed = self._store(obj)
                if changed:
                    self._on_change()
        finally:
            resp.release_conn()
        return rv
