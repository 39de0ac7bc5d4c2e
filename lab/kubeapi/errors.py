"""Status bodies and field errors worded like the real API server's."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .resources import Resource

_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
    415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError",
}


class ApiError(Exception):
    """An error the handler turns into a `kind: Status` response."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "")
        self.details = details
        self.metadata = metadata or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": self.metadata,
            "status": "Failure", "message": self.message, "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(res: Resource, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.plural
    return details


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, f'{res.qualified} "{name}" not found', details=_details(res, name))


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(404, f'namespaces "{namespace}" not found',
                    details={"name": namespace, "kind": "namespaces"})


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(409, f'{res.qualified} "{name}" already exists', "AlreadyExists",
                    _details(res, name))


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "Conflict", _details(res, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def forbidden(res_qualified: str, name: str, group: str, plural: str, why: str) -> ApiError:
    subject = f'{res_qualified} "{name}"' if name else res_qualified
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    if plural:
        details["kind"] = plural
    return ApiError(403, f"{subject} is forbidden: {why}", details=details)


def go_repr(value: Any) -> str:
    """Format a value as Go's %#v would inside a field error."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        pairs = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + pairs + "}"
    if value is None:
        return "null"
    return str(value)


@dataclass(frozen=True)
class FieldError:
    kind: str  # Required, Invalid, NotSupported, Duplicate, Forbidden
    field: str
    value: Any = None
    detail: str = ""

    @property
    def reason(self) -> str:
        return f"FieldValue{self.kind}"

    @property
    def body(self) -> str:
        if self.kind == "Required":
            head = "Required value"
        elif self.kind == "Forbidden":
            head = "Forbidden"
        elif self.kind == "Duplicate":
            head = f"Duplicate value: {go_repr(self.value)}"
        elif self.kind == "NotSupported":
            head = f"Unsupported value: {go_repr(self.value)}"
        else:
            head = f"Invalid value: {go_repr(self.value)}"
        return f"{head}: {self.detail}" if self.detail else head

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError("NotSupported", field, value,
                      "supported values: " + ", ".join(json.dumps(s) for s in supported))


def invalid(res: Resource, name: str, errors: list[FieldError]) -> ApiError:
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    details: dict[str, Any] = {"name": name}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.kind
    details["causes"] = [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors]
    qualified_kind = f"{res.kind}.{res.group}" if res.group else res.kind
    return ApiError(422, f'{qualified_kind} "{name}" is invalid: {text}', details=details)
