# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files of one edge_nginx release: the rendered tree and the certificates, checked, then
written into the release directory (only what differs, each file atomically)."""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._files import TreeError, check_relative, pem_pair, same_content, write_atomically

__all__ = ["CERTS", "contents", "pending", "relocated", "write"]

CERTS = "certs"


def contents(files: dict[str, Any], certificates: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
    """Relative path -> (content, mode) of the whole release; TreeError for what does not belong."""
    tree = {}
    for relative, text in files.items():
        check_relative(relative, (CERTS,))
        if not isinstance(text, str):
            raise TreeError(f"files[{relative}]: expected text, got {type(text).__name__}")
        tree[relative] = (text.encode(), 0o644)
    for name, pair in certificates.items():
        check_relative(name, ())
        pem = pem_pair(pair)
        if pem is None:
            raise TreeError(f"certificates[{name}]: expected {{cert, key}} as PEM text")
        tree[f"{CERTS}/{name}.crt"] = (pem[0].encode(), 0o644)
        tree[f"{CERTS}/{name}.key"] = (pem[1].encode(), 0o600)
    return tree


def relocated(tree: dict[str, tuple[bytes, int]], dest: str, elsewhere: str) -> dict[str, tuple[bytes, int]]:
    """The same tree for another directory: the files name their release directory (includes,
    certificate paths), so each mention of `dest` becomes `elsewhere`."""
    old, new = dest.rstrip("/").encode(), elsewhere.rstrip("/").encode()
    return {relative: (content.replace(old, new), mode) for relative, (content, mode) in tree.items()}


def pending(dest: str, tree: dict[str, tuple[bytes, int]]) -> list[str]:
    """The relative paths whose content on disk differs from the release's."""
    return sorted(relative for relative, (content, _mode) in tree.items() if not same_content(os.path.join(dest, relative), content))


def write(dest: str, tree: dict[str, tuple[bytes, int]], paths: list[str]) -> None:
    """Write those paths of the release, creating dest (0755) and its certs directory (0700)."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    if any(relative.startswith(f"{CERTS}/") for relative in tree):
        os.makedirs(os.path.join(dest, CERTS), mode=0o700, exist_ok=True)
    for relative in paths:
        content, mode = tree[relative]
        write_atomically(os.path.join(dest, relative), content, mode)
