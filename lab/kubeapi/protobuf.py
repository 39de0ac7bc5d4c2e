"""The one protobuf body the lab API server reads: a SelfSubjectAccessReview, which kubectl's typed
client (`kubectl auth can-i`) sends as application/vnd.kubernetes.protobuf. The wire format and
the `k8s\\0` envelope (runtime.Unknown) are read by hand; answers go back as JSON, which the client
also accepts."""
from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
# Field numbers of k8s.io/api/authorization/v1 (generated.proto).
RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


class ProtobufError(ValueError):
    """Not a body this server can read."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> dict[int, list[Any]]:
    """Field number -> its values (ints for varints, bytes for length-delimited); others refused."""
    out: dict[int, list[Any]] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ProtobufError("truncated field")
            value, at = data[at:at + size], at + size
        else:
            raise ProtobufError(f"wire type {wire} of field {number} is not used by this message")
        out.setdefault(number, []).append(value)
    return out


def _strings(data: bytes, names: dict[int, str]) -> dict[str, str]:
    found = fields(data)
    try:
        return {name: found[number][-1].decode() for number, name in names.items() if number in found}
    except (AttributeError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"not a string: {exc}") from None


def self_subject_access_review(body: bytes) -> dict[str, Any]:
    """The review as its JSON form: {apiVersion, kind, spec}."""
    if not body.startswith(MAGIC):
        raise ProtobufError("no k8s protobuf envelope")
    envelope = fields(body[len(MAGIC):])
    type_meta = _strings(envelope.get(1, [b""])[-1], {1: "apiVersion", 2: "kind"})
    if type_meta != {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}:
        raise ProtobufError(f"expected an authorization.k8s.io/v1 SelfSubjectAccessReview, got {type_meta}")
    review = fields(envelope.get(2, [b""])[-1])
    spec_fields = fields(review.get(2, [b""])[-1])
    spec: dict[str, Any] = {}
    if 1 in spec_fields:
        spec["resourceAttributes"] = _strings(spec_fields[1][-1], RESOURCE_ATTRIBUTES)
    if 2 in spec_fields:
        spec["nonResourceAttributes"] = _strings(spec_fields[2][-1], NON_RESOURCE_ATTRIBUTES)
    return {**type_meta, "spec": spec}
