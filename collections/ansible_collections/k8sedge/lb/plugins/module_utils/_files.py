# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the roles' modules write on an edge host: replaced atomically (a temporary file in the
same directory, fsync, rename), so a reader (haproxy, nginx, keepalived's track script) sees the
old file or the new one, never half of one; and written only when their content differs."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError

__all__ = ["TreeError", "check_relative", "pem_pair", "same_content", "write_atomically"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class TreeError(ApplyError):
    """A relative path that does not belong in the tree being written."""


def check_relative(relative: str, directories: tuple[str, ...]) -> None:
    """A file name, or <directory>/<name> for one of the given directories; names are letters,
    digits, '.', '_' and '-', never starting with '.' or '-' (no traversal, no hidden files)."""
    directory, _slash, name = relative.rpartition("/")
    if (directory and directory not in directories) or not _NAME.fullmatch(name):
        where = " or ".join(["<name>"] + [f"{d}/<name>" for d in directories])
        raise TreeError(f"{relative!r}: expected {where} (name: letters, digits, '.', '_', '-')")


def pem_pair(pair: Any) -> tuple[str, str] | None:
    """(cert, key) of a certificate given as {cert, key} PEM text; None for any other shape."""
    if isinstance(pair, dict) and all(isinstance(pair.get(part), str) for part in ("cert", "key")):
        return pair["cert"], pair["key"]
    return None


def same_content(path: str, content: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read() == content
    except FileNotFoundError:
        return False


def write_atomically(target: str, content: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Replace target with content; owner the module's user unless given."""
    fd, temporary = tempfile.mkstemp(prefix=".k8sedge-", dir=os.path.dirname(target))
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, os.getuid() if uid is None else uid, os.getgid() if gid is None else gid)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
