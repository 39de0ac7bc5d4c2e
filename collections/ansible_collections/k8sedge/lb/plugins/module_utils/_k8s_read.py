# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what the edge model needs from the Kubernetes API: all of it, or an error.

Lists are paginated and read as raw JSON (the client's typed models cost seconds at
scale). A failed page, a broken continue chain, a 410 mid-list or the deadline passing
raise ReadError: the caller must never build a model from a partial read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AuthOptions, Connection, TransportError
from ansible_collections.k8sedge.lb.plugins.module_utils import _errors
from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, lists_the_gate


# The read layer's error: the cluster could not be read completely.
ReadError = _errors.ReadError


@dataclass(frozen=True)
class ReadOptions:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    label_selector: str | None = None  # applies to Services
    tcp_services_configmap: str = ""  # "": none read (exposure is opt-in)
    udp_services_configmap: str = ""
    read_ingresses: bool = True
    read_pods: bool = False  # readiness gates: the Pods that list the edge's gate
    page_size: int = 500
    timeout: float = 30.0


def connect(auth: AuthOptions) -> Connection:
    """A connection to the API server the options name; ReadError without usable credentials."""
    try:
        return Connection(auth)
    except TransportError as err:
        raise ReadError(str(err)) from None


class Reader:
    """GETs against one API server within one deadline, counting what they cost."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        self._connection = connection
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        self.requests = 0
        self.seconds = 0.0

    def get(self, path: str, query: list[tuple[str, Any]] | None = None) -> dict[str, Any] | None:
        """The decoded JSON at path; None on 404 (absent is an answer, not a failure)."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise ReadError(f"GET {path}: gave up after the {self._timeout:g} s read timeout")
        started = time.monotonic()
        try:
            status, body = self._connection.request("GET", path, query, timeout=remaining)
        except TransportError as err:
            raise ReadError(f"GET {path}: {err}") from None
        finally:
            self.requests += 1
            self.seconds += time.monotonic() - started
        if status == 404:
            return None
        if status != 200:
            raise ReadError(f"GET {path}: {_status_message(status, body)}")
        try:
            return json.loads(body)
        except ValueError as err:
            raise ReadError(f"GET {path}: the response is not JSON ({err})") from None
        except RecursionError:
            # No API object nests this deep; which object of the page does cannot be told.
            raise ReadError(f"GET {path}: the response nests values too deeply to decode") from None

    def list(self, path: str, query: list[tuple[str, Any]], page_size: int,
             keep: Callable[[Any], bool] | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every item of a paginated list (only those `keep` accepts, page by page) and the list's
        resourceVersion."""
        items: list[dict[str, Any]] = []
        token = None
        version = ""
        while True:
            page_query = [*query, ("limit", page_size)] + ([("continue", token)] if token else [])
            page = self.get(path, page_query)
            if page is None:
                raise ReadError(f"GET {path}: 404, the API does not serve this resource")
            page_items = page.get("items")
            metadata = page.get("metadata") or {}
            if not isinstance(page_items, list) or not isinstance(metadata, dict):
                raise ReadError(f"GET {path}: expected a list with items and metadata")
            items.extend(page_items if keep is None else filter(keep, page_items))
            version = version or str(metadata.get("resourceVersion", ""))
            token = metadata.get("continue")
            if not token:
                return items, version


def _status_message(code: int, body: bytes) -> str:
    try:
        status = json.loads(body)
        return f"{code} {status.get('reason', '')}: {status.get('message', '')}".strip()
    except (ValueError, RecursionError):
        return f"{code}: {body[:200]!r}"


def read_nodes(reader: Reader, options: ReadOptions) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cluster's Nodes only, and metadata about the read, as read_cluster gives it."""
    nodes, version = reader.list("/api/v1/nodes", [], options.page_size)
    return nodes, {"counts": {"nodes": len(nodes)}, "resource_versions": {"nodes": version},
                   "requests": reader.requests, "api_seconds": round(reader.seconds, 3)}


def read_cluster(reader: Reader, options: ReadOptions) -> tuple[ClusterState, dict[str, Any]]:
    """Everything the model reads, and metadata about the read (counts, versions, time)."""
    has_slices = reader.get("/apis/discovery.k8s.io/v1") is not None
    namespaced = {"services": "/api/v1/{}services"}
    if has_slices:
        namespaced["endpoint_slices"] = "/apis/discovery.k8s.io/v1/{}endpointslices"
    else:
        namespaced["endpoints"] = "/api/v1/{}endpoints"
    if options.read_ingresses:
        namespaced["ingresses"] = "/apis/networking.k8s.io/v1/{}ingresses"
    if options.read_pods:
        namespaced["pods"] = "/api/v1/{}pods"

    lists: dict[str, list[dict[str, Any]]] = {}
    versions: dict[str, str] = {}
    scopes = [f"namespaces/{ns}/" for ns in options.namespaces] or [""]
    for kind, template in namespaced.items():
        query = [("labelSelector", options.label_selector)] if kind == "services" and options.label_selector else []
        lists[kind] = []
        # Of the Pods, only those that list the edge's gate are kept: a cluster's Pods outnumber its Services.
        keep = lists_the_gate if kind == "pods" else None
        for scope in scopes:
            items, version = reader.list(template.format(scope), query, options.page_size, keep)
            lists[kind].extend(items)
            versions[f"{kind}{'@' + scope if scope else ''}"] = version
    lists["nodes"], versions["nodes"] = reader.list("/api/v1/nodes", [], options.page_size)

    config_maps = []
    for ref in filter(None, (options.tcp_services_configmap, options.udp_services_configmap)):
        namespace, name = ref.split("/", 1)
        found = reader.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        if found is not None:
            config_maps.append(found)

    state = ClusterState(
        services=lists["services"],
        endpoint_slices=lists.get("endpoint_slices") if has_slices else None,
        endpoints=lists.get("endpoints", []),
        nodes=lists["nodes"],
        ingresses=lists.get("ingresses", []),
        config_maps=config_maps,
        pods=lists["pods"] if options.read_pods else None,
    )
    meta = {
        "api_version_endpoint_slices": "discovery.k8s.io/v1" if has_slices else None,
        "counts": {kind: len(items) for kind, items in sorted(lists.items())} | {"config_maps": len(config_maps)},
        "resource_versions": dict(sorted(versions.items())),
        "requests": reader.requests,
        "api_seconds": round(reader.seconds, 3),
    }
    return state, meta
