# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The readiness gates' writes: `_gates.condition_patch()` of each acknowledged Pod, through the
pods/status subresource. The controller's side only (pod_gates, the watcher)."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._gates import Verdict, condition_patch
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import Connection, TransportError

__all__ = ["patch_pods"]


def patch_pods(connection: Connection, acknowledged: list[Verdict], now: str, timeout: float) -> list[dict[str, Any]]:
    """Write each acknowledgement; one row per Pod: written, gone (deleted or replaced since the
    read), or failed with the API's answer. One Pod's failure never stops the others."""
    rows = []
    for verdict in acknowledged:
        path = f"/api/v1/namespaces/{verdict.namespace}/pods/{verdict.name}/status"
        body = json.dumps(condition_patch(verdict, now)).encode()
        try:
            code, data = connection.request("PATCH", path, body=body, timeout=timeout,
                                            headers={"Content-Type": "application/strategic-merge-patch+json"})
        except TransportError as exc:
            rows.append({"namespace": verdict.namespace, "name": verdict.name, "outcome": "failed", "error": f"PATCH {path}: {exc}"})
            continue
        if code == 200:
            rows.append({"namespace": verdict.namespace, "name": verdict.name, "outcome": "written", "error": ""})
        elif code in (404, 409):
            rows.append({"namespace": verdict.namespace, "name": verdict.name, "outcome": "gone", "error": _message(code, data)})
        else:
            rows.append({"namespace": verdict.namespace, "name": verdict.name, "outcome": "failed",
                         "error": f"Pod {verdict.namespace}/{verdict.name}: PATCH {path}: {_message(code, data)}"})
    return rows


def _message(code: int, data: bytes) -> str:
    try:
        return f"{code} {json.loads(data).get('message', '')}".strip()
    except (ValueError, AttributeError):
        return f"{code} {data[:200].decode(errors='replace')}"
