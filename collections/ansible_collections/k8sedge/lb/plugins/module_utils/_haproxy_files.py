# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A haproxy configuration tree (haproxy.cfg, maps/*.map, certs/*.pem) compared and copied
from one directory to another: staging to live, live to last-known-good, last-good to live.

`compare()` and `structure()` are pure; `read_tree()` and `install()` do the I/O. Each file is
replaced atomically (a temporary file in the same directory, then rename), haproxy.cfg last, so
a reload never reads a config whose maps are not there yet.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass, field

__all__ = ["CONFIG", "Difference", "compare", "digest_of", "generation_of", "install", "read_tree", "structure"]

CONFIG = "haproxy.cfg"
_DIRS = {"maps": (".map", 0o755), "certs": (".pem", 0o700)}
_SERVER = re.compile(r"^\s*server\s+(\S+)")
_GENERATION = re.compile(r"^# Model generation ([0-9a-f]*);", re.MULTILINE)
_STRUCTURE = re.compile(r"^\s*set-var proc\.k8sedge_structure str\(([0-9a-f]*)\)", re.MULTILINE)


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


def generation_of(config: bytes | None) -> str:
    """The model generation the config's header names ('' if none)."""
    match = _GENERATION.search(config.decode(errors="replace")) if config else None
    return match.group(1) if match else ""


def digest_of(config: bytes | None) -> str:
    """The structure digest the config hands its worker (proc.k8sedge_structure; '' if none)."""
    match = _STRUCTURE.search(config.decode(errors="replace")) if config else None
    return match.group(1) if match else ""


def install(src_root: str, dest_root: str, difference: Difference) -> None:
    """Copy the changed files (mode and owner of the source), haproxy.cfg last; remove the rest."""
    for name, (_suffix, mode) in _DIRS.items():
        if any(p.startswith(name + "/") for p in difference.changed):
            os.makedirs(os.path.join(dest_root, name), mode=mode, exist_ok=True)
    for relative in sorted(difference.changed, key=lambda p: (p == CONFIG, p)):
        source = os.path.join(src_root, relative)
        target = os.path.join(dest_root, relative)
        info = os.stat(source)
        with open(source, "rb") as f:
            content = f.read()
        fd, temporary = tempfile.mkstemp(prefix=".k8sedge-", dir=os.path.dirname(target))
        try:
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            os.fchown(fd, info.st_uid, info.st_gid)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    for relative in difference.removed:
        os.unlink(os.path.join(dest_root, relative))
