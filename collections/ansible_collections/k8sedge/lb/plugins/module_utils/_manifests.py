# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The same cluster state from manifests on disk instead of the API (air-gapped, GitOps).

Accepts YAML (multi-document) or JSON files, and the `List` that
`kubectl get svc,endpointslices,nodes -A -o yaml` writes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_read import ReadError
from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState

try:
    import yaml
except ImportError:
    HAS_YAML = False
else:
    HAS_YAML = True

SUFFIXES = (".yaml", ".yml", ".json")
# (apiVersion, kind) -> ClusterState field; anything else in the files is ignored.
_KINDS = {
    ("v1", "Service"): "services",
    ("discovery.k8s.io/v1", "EndpointSlice"): "endpoint_slices",
    ("v1", "Endpoints"): "endpoints",
    ("v1", "Node"): "nodes",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    ("v1", "ConfigMap"): "config_maps",
}


def files_under(src: str) -> list[str]:
    if os.path.isdir(src):
        found = [os.path.join(top, name) for top, _subdirs, names in os.walk(src) for name in names
                 if name.endswith(SUFFIXES)]
        return sorted(found)
    if os.path.isfile(src):
        return [src]
    raise ReadError(f"src {src}: no such file or directory")


def _documents(path: str) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if path.endswith(".json"):
            return [json.loads(text)]
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ReadError(f"src {path}: {err}") from None
    except RecursionError:
        # The YAML and JSON parsers recurse per level; no Kubernetes object nests this deep.
        raise ReadError(f"src {path}: a value nests too deeply to read") from None


def _objects(document: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise ReadError(f"src {where}: expected Kubernetes objects (mappings), got {type(document).__name__}")
    if str(document.get("kind", "")).endswith("List") and "items" in document:
        items = document["items"]
        if not isinstance(items, list):
            raise ReadError(f"src {where}: {document['kind']}.items must be a list")
        # Typed lists (ServiceList) leave kind out of their items; the list's kind names it.
        item_kind = document["kind"][:-4] if document["kind"] != "List" else None
        return [obj for item in items for obj in _objects(_with_kind(item, item_kind, document), where)]
    return [document]


def _with_kind(item: Any, kind: str | None, parent: dict[str, Any]) -> Any:
    if isinstance(item, dict) and kind and "kind" not in item:
        return {**item, "kind": kind, "apiVersion": parent.get("apiVersion", "v1")}
    return item


def load_state(src: str) -> tuple[ClusterState, dict[str, Any]]:
    if not HAS_YAML:
        raise ReadError("src: reading manifests needs PyYAML")
    fields: dict[str, list[dict[str, Any]]] = {name: [] for name in _KINDS.values()}
    refused: list[str] = []
    paths = files_under(src)
    for path in paths:
        objects = (obj for document in _documents(path) for obj in _objects(document, path))
        for index, obj in enumerate(objects):  # counted through the file, list items included
            kind = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind")}
            odd = [f"{key}: expected a string, got {type(value).__name__}" for key, value in kind.items()
                   if value is not None and not isinstance(value, str)]
            if odd:
                refused.append(f"src {path}: object {index}: {'; '.join(odd)}: left out, the rest is read")
                continue
            target = _KINDS.get((kind["apiVersion"], kind["kind"]))
            if target:
                fields[target].append(obj)
    has_slices = bool(fields["endpoint_slices"]) or not fields["endpoints"]
    state = ClusterState(
        services=fields["services"],
        endpoint_slices=fields["endpoint_slices"] if has_slices else None,
        endpoints=fields["endpoints"],
        nodes=fields["nodes"],
        ingresses=fields["ingresses"],
        config_maps=fields["config_maps"],
    )
    meta = {
        "source": src,
        "files": len(paths),
        "refused": refused,
        "counts": {name: len(items) for name, items in sorted(fields.items())},
    }
    return state, meta
