"""Label and field selectors: parsing and matching, with the API's grammar."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(==|!=|=|\(|\)|,|!|<|>|[^\s,()=!<>]+)")


class SelectorError(ValueError):
    """A selector string that the API would reject with 400."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number = int(value or "")
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}": '
                            "prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise SelectorError(
            f'unable to parse requirement: invalid label key "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(
            f'unable to parse requirement: invalid label value: "{value}": a valid label must '
            "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:  # pragma: no cover - the pattern accepts every character class
            raise SelectorError(f"unable to parse requirement: unexpected {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


_OPERATORS = {"=", "==", "!=", "in", "notin", "<", ">"}


def parse_labels(text: str) -> tuple[Requirement, ...]:
    """Parse a label selector (=, ==, !=, in, notin, exists, !exists, <, >)."""
    tokens = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_value(at: int, value: bool = False) -> str:
        # As the real lexer does: "in" and "notin" are keywords where a key is read, and plain
        # identifiers where a value is.
        refused = _OPERATORS - {"in", "notin"} if value else _OPERATORS
        if at >= len(tokens) or tokens[at] in refused | {",", "(", ")", "!"}:
            found = tokens[at] if at < len(tokens) else "end of string"
            raise SelectorError(f"found '{found}', expected: identifier")
        return tokens[at]

    while i < len(tokens):
        if tokens[i] == "!":
            key = expect_value(i + 1)
            _check_key(key)
            reqs.append(Requirement(key, "!"))
            i += 2
        else:
            key = expect_value(i)
            _check_key(key)
            op = tokens[i + 1] if i + 1 < len(tokens) else ","
            if op == ",":
                reqs.append(Requirement(key, "exists"))
                i += 1
            elif op in ("=", "==", "!="):
                # An empty value is legal ("a=") and shows up as the next separator.
                nxt = tokens[i + 2] if i + 2 < len(tokens) else ","
                value = "" if nxt == "," else expect_value(i + 2, value=True)
                _check_value(value)
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
                i += 2 if nxt == "," else 3
            elif op in ("in", "notin"):
                if i + 2 >= len(tokens) or tokens[i + 2] != "(":
                    raise SelectorError(f"found '{tokens[i + 2] if i + 2 < len(tokens) else 'end of string'}', expected: '('")
                j = i + 3
                values: list[str] = []
                while True:
                    if j >= len(tokens):
                        raise SelectorError("found 'end of string', expected: ')'")
                    if tokens[j] == ")":
                        break
                    if tokens[j] == ",":
                        j += 1
                        continue
                    value = expect_value(j, value=True)
                    _check_value(value)
                    values.append(value)
                    j += 1
                if not values:
                    raise SelectorError(
                        f"unable to parse requirement: for '{op}', 'notin' operators, values set can't be empty")
                reqs.append(Requirement(key, op, tuple(values)))
                i = j + 1
            elif op in ("<", ">"):
                value = expect_value(i + 2, value=True)
                if not value.isdigit():
                    raise SelectorError(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
                i += 3
            else:
                raise SelectorError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i == len(tokens):
                raise SelectorError("found 'end of string', expected: identifier")
    return tuple(reqs)


def labels_match(selector: tuple[Requirement, ...], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(req.matches(labels) for req in selector)


@dataclass(frozen=True)
class FieldTerm:
    field: str
    negate: bool
    value: str


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_fields(text: str, supported: tuple[str, ...]) -> tuple[FieldTerm, ...]:
    """Parse a field selector; fields outside `supported` fail like the real API."""
    terms: list[FieldTerm] = []
    if not text.strip():
        return ()
    for part in _split_unescaped(text, ","):
        match = re.match(r"^([^=!]+)(!=|==|=)(.*)$", part)
        if not match:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3))
        if field not in supported:
            raise SelectorError(f'field label not supported: {field}')
        terms.append(FieldTerm(field, op == "!=", value))
    return tuple(terms)


def field_value(obj: dict[str, Any], field: str) -> str:
    """The string form of a dotted field path, as field selectors compare it."""
    node: Any = obj
    for part in field.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


def fields_match(selector: tuple[FieldTerm, ...], obj: dict[str, Any]) -> bool:
    return all((field_value(obj, t.field) == t.value) != t.negate for t in selector)
