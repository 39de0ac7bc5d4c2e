"""Patch application: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a
strategic merge patch that is a merge patch for maps.

Strategic merge patch simplification: the lists that the built-in types we serve merge by a
key (their patchMergeKey, `MERGE_KEYS`) merge item by item, and `$patch: delete` on such an item
removes it; every other list is replaced wholesale. Maps honour `$patch: delete|replace`; the
`$retainKeys`, `$setElementOrder/...` and `$deleteFromPrimitiveList/...` directives are dropped.
"""
from __future__ import annotations

import copy
from typing import Any

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class PatchError(ValueError):
    """A patch that cannot be applied; `bad_request` tells 400 from 422."""

    def __init__(self, message: str, bad_request: bool = False):
        super().__init__(message)
        self.bad_request = bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# (parent field, list field) -> the key its items merge by, from the API's Go types
# (`patchStrategy:"merge" patchMergeKey:...`). A pod's status conditions must merge by type: the
# kubelet and a readiness gate's controller each patch their own conditions of the same list.
MERGE_KEYS = {
    ("status", "conditions"): "type",
    ("spec", "containers"): "name",
    ("spec", "initContainers"): "name",
    ("spec", "volumes"): "name",
    ("containers", "env"): "name",
    ("containers", "ports"): "containerPort",
    ("containers", "volumeMounts"): "mountPath",
    ("spec", "ports"): "port",  # a Service's; a container's ports are ("containers", "ports")
    ("metadata", "ownerReferences"): "uid",
}


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """Merge patch for maps with the `$patch` map directives; lists with a merge key merge by it,
    other lists replace."""
    if isinstance(patch, list):
        merge_key = MERGE_KEYS.get(path[-2:])
        if merge_key and isinstance(target, list):
            return _merge_list(target, patch, merge_key, path)
        return copy.deepcopy(patch)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return copy.deepcopy(body)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value, path + (key,))
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def _merge_list(target: list[Any], patch: list[Any], merge_key: str, path: tuple[str, ...]) -> list[Any]:
    """Items of patch merge into the target's item with the same merge key, or are appended;
    `$patch: delete` removes that item. Target items the patch does not name stay, in order."""
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"{'.'.join(path)}: every item of a strategic merge patch needs its merge key "
                             f"{merge_key!r}, got {item!r}", bad_request=True)
        found = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if found is not None:
                del result[found]
            continue
        if found is None:
            result.append(strategic_merge_patch({}, item, path))
        else:
            result[found] = strategic_merge_patch(result[found], item, path)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}": must start with "/"', bad_request=True)
    return [_unescape(t) for t in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f'invalid array index "{token}" in path "{path}"')
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f'array index {index} out of bounds in path "{path}"')
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f'path "{path}": key "{token}" not found')
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path, allow_end=False)]
        else:
            raise PatchError(f'path "{path}": cannot descend into a scalar')
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'path "{path}" not found')
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, allow_end=False)]
    raise PatchError(f'path "{path}" not found')


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f'path "{path}": parent is not a container')
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the document root")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'unable to remove nonexistent key "{last}" in path "{path}"')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f'path "{path}" not found')


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a deep copy of target; raises PatchError on a failed op."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", bad_request=True)
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid json patch operation {op!r}", bad_request=True)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f'operation "{kind}" on "{path}" needs a value', bad_request=True)
        if kind in ("move", "copy") and "from" not in op:
            raise PatchError(f'operation "{kind}" on "{path}" needs "from"', bad_request=True)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # replace requires the target to exist
            doc, _ = _remove(doc, path) if path else (doc, None)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            if path.startswith(op["from"] + "/"):
                raise PatchError(f'cannot move "{op["from"]}" into its own child "{path}"')
            doc, value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f'testing value {path} failed: test failed')
        else:
            raise PatchError(f'unsupported json patch operation "{kind}"', bad_request=True)
    return doc


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> Any:
    """Dispatch on the PATCH request's Content-Type (parameters ignored)."""
    media = content_type.split(";")[0].strip().lower()
    if media == MERGE:
        return merge_patch(target, patch)
    if media == STRATEGIC:
        return strategic_merge_patch(target, patch)
    if media == JSON_PATCH:
        return json_patch(target, patch)
    raise PatchError(f"unsupported patch type {media!r}")
