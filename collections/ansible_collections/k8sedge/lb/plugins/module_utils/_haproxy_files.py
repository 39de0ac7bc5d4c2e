# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A haproxy configuration tree (haproxy.cfg, maps/*.map, certs/*.pem) written into staging,
then compared and copied from one directory to another: staging to live, live to
last-known-good, last-good to live.

`compare()`, `structure()` and `digest_of()` are pure; `read_tree()`,
`stage()` and `install()` do the I/O. Each file is replaced atomically (a temporary file in the
same directory, then rename), haproxy.cfg last, so a reload never reads a config whose maps are
not there yet.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError
from ansible_collections.k8sedge.lb.plugins.module_utils._files import TreeError, check_relative, pem_pair, write_atomically

__all__ = ["CONFIG", "Difference", "StageError", "compare", "digest_of", "install", "listing", "read_tree", "stage", "structure",
           "tree_files"]

CONFIG = "haproxy.cfg"
_DIRS = {"maps": (".map", 0o755), "certs": (".pem", 0o700)}
_SERVER = re.compile(r"^\s*server\s+(\S+)")
_STRUCTURE = re.compile(r"^\s*set-var proc\.k8sedge_structure str\(([0-9a-f]*)\)", re.MULTILINE)
_FILE_MODE = {"maps": 0o644, "certs": 0o600}
_TREE_DIR_MODE = 0o750


class StageError(ApplyError):
    """A file to stage that is not part of a haproxy tree."""


@dataclass(frozen=True)
class Difference:
    changed: list[str] = field(default_factory=list)  # relative paths to copy
    removed: list[str] = field(default_factory=list)  # relative paths to delete
    change: str = "none"  # none, servers (only server lines of haproxy.cfg), structural


def read_tree(root: str) -> dict[str, bytes]:
    """The managed files under root, by relative path; a missing root or file is absent."""
    files = {}
    path = os.path.join(root, CONFIG)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            files[CONFIG] = f.read()
    for name, (suffix, _mode) in _DIRS.items():
        directory = os.path.join(root, name)
        if not os.path.isdir(directory):
            continue
        for entry in sorted(os.listdir(directory)):
            full = os.path.join(directory, entry)
            if entry.endswith(suffix) and os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    files[f"{name}/{entry}"] = f.read()
    return files


def structure(config: str) -> list[str]:
    """What a reload would change: the config without comments and blank lines, each server
    line reduced to its name (its address, weight and `disabled` change at runtime)."""
    lines = []
    for line in config.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        server = _SERVER.match(line)
        lines.append(f"server {server.group(1)}" if server else text)
    return lines


def compare(src: dict[str, bytes], dest: dict[str, bytes]) -> Difference:
    changed = sorted(p for p, content in src.items() if dest.get(p) != content)
    removed = sorted(p for p in dest if p not in src)
    if not changed and not removed:
        return Difference()
    if changed == [CONFIG] and not removed and CONFIG in dest:
        old, new = dest[CONFIG].decode(errors="replace"), src[CONFIG].decode(errors="replace")
        if structure(old) == structure(new):
            return Difference(changed, removed, "servers")
    return Difference(changed, removed, "structural")


def digest_of(config: bytes | None) -> str:
    """The structure digest the config hands its worker (proc.k8sedge_structure; '' if none)."""
    match = _STRUCTURE.search(config.decode(errors="replace")) if config else None
    return match.group(1) if match else ""


def _check_staged_path(relative: str) -> None:
    """haproxy.cfg, maps/<name>.map or certs/<name>.pem, nothing else."""
    directory = relative.partition("/")[0]
    try:
        check_relative(relative, tuple(_DIRS))
        known = relative == CONFIG or ("/" in relative and relative.endswith(_DIRS[directory][0]))
    except TreeError:
        known = False
    if not known:
        raise StageError(f"{relative!r}: expected {CONFIG}, maps/<name>.map or certs/<name>.pem (name: letters, digits, '.', '_', '-')")


def tree_files(config: str, maps: list[dict[str, Any]], certificates: dict[str, Any]) -> dict[str, str]:
    """The tree a config, its map files (the view's {path, lines}) and its certificates
    (name -> {cert, key}) make, by relative path."""
    files = {CONFIG: config}
    for entry in maps:
        files[entry["path"]] = "".join(f"{line}\n" for line in entry["lines"])
    for name, pair in certificates.items():
        pem = pem_pair(pair)
        if pem is None:
            raise StageError(f"certificates[{name}]: expected {{cert, key}} as PEM text")
        files[f"certs/{name}.pem"] = f"{pem[0].strip()}\n{pem[1].strip()}\n"
    return files


def listing(files: dict[str, str]) -> list[str]:
    """The tree as `sha256sum haproxy.cfg maps/*.map certs/*.pem` prints it in the C locale: a
    host compares its live tree with a rendered one in one read, without the files travelling."""
    order = sorted(files, key=lambda relative: (relative != CONFIG, not relative.startswith("maps/"), relative))
    return [f"{hashlib.sha256(files[relative].encode()).hexdigest()}  {relative}" for relative in order]


def stage(root: str, files: dict[str, str]) -> None:
    """Make root hold exactly these managed files (relative path -> text): written where they
    differ, the other managed files removed. Certificates are 0600 in a 0700 directory."""
    for relative in files:
        _check_staged_path(relative)
    if CONFIG not in files:
        raise StageError(f"expected {CONFIG} among the files to stage")
    os.makedirs(root, mode=_TREE_DIR_MODE, exist_ok=True)
    for name, (_suffix, mode) in _DIRS.items():
        os.makedirs(os.path.join(root, name), mode=min(mode, _TREE_DIR_MODE), exist_ok=True)
    wanted = {relative: text.encode() for relative, text in files.items()}
    present = read_tree(root)
    for relative, content in wanted.items():
        if present.get(relative) != content:
            mode = _FILE_MODE.get(relative.partition("/")[0], 0o644)
            write_atomically(os.path.join(root, relative), content, mode)
    for relative in present:
        if relative not in wanted:
            os.unlink(os.path.join(root, relative))


def install(src_root: str, dest_root: str, difference: Difference) -> None:
    """Copy the changed files (mode and owner of the source), haproxy.cfg last; remove the rest."""
    os.makedirs(dest_root, mode=_TREE_DIR_MODE, exist_ok=True)
    for name, (_suffix, mode) in _DIRS.items():
        if any(p.startswith(name + "/") for p in difference.changed):
            os.makedirs(os.path.join(dest_root, name), mode=mode, exist_ok=True)
    for relative in sorted(difference.changed, key=lambda p: (p == CONFIG, p)):
        source = os.path.join(src_root, relative)
        target = os.path.join(dest_root, relative)
        info = os.stat(source)
        with open(source, "rb") as f:
            content = f.read()
        write_atomically(target, content, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    for relative in difference.removed:
        os.unlink(os.path.join(dest_root, relative))
