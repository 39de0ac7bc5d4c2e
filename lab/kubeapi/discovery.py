"""Discovery documents (/version, /api, /apis, ...) and a minimal OpenAPI v3.

The OpenAPI v3 documents list each served path and operation with its
x-kubernetes-group-version-kind and query parameters. That is what kubectl reads
to learn that the server validates fields itself (`fieldValidation`), so it does
not fall back to client-side schema validation. There are no schemas: this
server does not have them, and /openapi/v2 answers 404.
"""
from __future__ import annotations

import hashlib
import json
import platform
from typing import Any

from .resources import RESOURCES, Resource, group_versions

Obj = dict[str, Any]

VERSION_MAJOR = "1"
VERSION_MINOR = "37"
GIT_VERSION = f"v{VERSION_MAJOR}.{VERSION_MINOR}.0-k8sedge.lab"


def version() -> Obj:
    return {
        "major": VERSION_MAJOR, "minor": VERSION_MINOR,
        "emulationMajor": VERSION_MAJOR, "emulationMinor": VERSION_MINOR,
        "minCompatibilityMajor": VERSION_MAJOR, "minCompatibilityMinor": str(int(VERSION_MINOR) - 1),
        "gitVersion": GIT_VERSION, "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}", "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{platform.machine().replace('x86_64', 'amd64')}",
    }


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> Obj:
    groups = [_group(g, v) for g, v in group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> Obj | None:
    versions = group_versions().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _resource_entry(res: Resource) -> Obj:
    entry: Obj = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
                  "kind": res.kind, "verbs": list(res.verbs)}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    return entry


def _subresource_entry(res: Resource, sub: str) -> Obj:
    entry: Obj = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced}
    if sub == "scale":
        entry.update(group="autoscaling", version="v1", kind="Scale")
    else:
        entry["kind"] = res.kind
    entry["verbs"] = ["get", "patch", "update"]
    return entry


def api_resource_list(group: str, version: str) -> Obj | None:
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        return None
    entries = []
    for res in served:
        entries.append(_resource_entry(res))
        entries.extend(_subresource_entry(res, sub) for sub in res.subresources)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": entries}


# --- OpenAPI v3 -------------------------------------------------------------------------------

_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty")
_LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
                "pretty", "resourceVersion", "resourceVersionMatch", "sendInitialEvents",
                "timeoutSeconds", "watch")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "pretty", "propagationPolicy")


def _query(names: tuple[str, ...]) -> list[Obj]:
    return [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]


def _operation(res: Resource, action: str, params: tuple[str, ...], kind: Obj | None = None) -> Obj:
    return {
        "operationId": f"{action}{res.kind}",
        "parameters": _query(params),
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": kind or {"group": res.group, "version": res.version,
                                                    "kind": res.kind},
    }


def _paths(res: Resource) -> Obj:
    prefix = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    scope = f"{prefix}/namespaces/{{namespace}}" if res.namespaced else prefix
    collection, item = f"{scope}/{res.plural}", f"{scope}/{res.plural}/{{name}}"
    paths: Obj = {
        collection: {"get": _operation(res, "list", _LIST_PARAMS),
                     "post": _operation(res, "post", _WRITE_PARAMS),
                     "delete": _operation(res, "deletecollection", _DELETE_PARAMS + _LIST_PARAMS)},
        item: {"get": _operation(res, "get", ("pretty",)),
               "put": _operation(res, "put", _WRITE_PARAMS),
               "patch": _operation(res, "patch", _WRITE_PARAMS + ("force",)),
               "delete": _operation(res, "delete", _DELETE_PARAMS)},
    }
    for sub in res.subresources:
        kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"} if sub == "scale" else None
        paths[f"{item}/{sub}"] = {
            "get": _operation(res, "get", ("pretty",), kind),
            "put": _operation(res, "put", _WRITE_PARAMS, kind),
            "patch": _operation(res, "patch", _WRITE_PARAMS + ("force",), kind),
        }
    return paths


def openapi_v3_document(group: str, version: str) -> bytes | None:
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        return None
    paths: Obj = {}
    for res in served:
        paths.update(_paths(res))
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION},
           "paths": paths, "components": {"schemas": {}}}
    return json.dumps(doc, separators=(",", ":")).encode()


def openapi_v3_root() -> Obj:
    paths = {}
    for group, versions in group_versions().items():
        for version_name in versions:
            rel = f"apis/{group}/{version_name}" if group else f"api/{version_name}"
            doc = openapi_v3_document(group, version_name) or b""
            digest = hashlib.sha512(doc).hexdigest().upper()[:128]
            paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={digest}"}
    return {"paths": paths}
