"""Staged, live and last-known-good haproxy trees: what differs, what kind of change, the copy."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_files import (
    CONFIG, StageError, compare, digest_of, install, listing, read_tree, stage, structure, tree_files)

CFG = b"""# Model generation aa01; rendered
global
    set-var proc.k8sedge_structure str(beef)

backend b
    default-server check
    server s1 10.0.0.1:80
    server s2 0.0.0.0:0 disabled
"""


def cfg(**replace: str) -> bytes:
    text = CFG.decode()
    for old, new in replace.items():
        text = text.replace(old.replace("_", " "), new)
    return text.encode()


@pytest.mark.parametrize("src, dest, change, changed, removed", [
    ({CONFIG: CFG}, {CONFIG: CFG}, "none", [], []),
    ({CONFIG: cfg(**{"10.0.0.1:80": "10.0.0.9:81"})}, {CONFIG: CFG}, "servers", [CONFIG], []),
    ({CONFIG: cfg(**{"0.0.0.0:0_disabled": "10.0.0.2:80 weight 0"})}, {CONFIG: CFG}, "servers", [CONFIG], []),
    ({CONFIG: cfg(aa01="bb02")}, {CONFIG: CFG}, "servers", [CONFIG], []),  # comments only
    ({CONFIG: cfg(**{"default-server_check": "default-server check port 1"})}, {CONFIG: CFG}, "structural", [CONFIG], []),
    ({CONFIG: cfg(**{"server s2 0.0.0.0:0 disabled\n": ""})}, {CONFIG: CFG}, "structural", [CONFIG], []),  # a slot fewer
    ({CONFIG: cfg(**{"10.0.0.1:80": "10.0.0.9:81"}), "maps/a.map": b"x y\n"}, {CONFIG: CFG}, "structural", [CONFIG, "maps/a.map"], []),
    ({CONFIG: CFG}, {CONFIG: CFG, "certs/old.pem": b"k"}, "structural", [], ["certs/old.pem"]),
    ({CONFIG: CFG}, {}, "structural", [CONFIG], []),
])
def test_compare(src, dest, change, changed, removed):
    difference = compare(src, dest)
    assert (difference.change, difference.changed, difference.removed) == (change, changed, removed)


def test_structure_keeps_server_names_and_drops_comments():
    assert structure(CFG.decode()) == ["global", "set-var proc.k8sedge_structure str(beef)", "backend b", "default-server check", "server s1", "server s2"]


def test_the_structure_digest_is_read_from_the_config():
    assert (digest_of(CFG), digest_of(b"global\n"), digest_of(None)) == ("beef", "", "")


def test_install_copies_atomically_with_the_source_mode_and_removes_the_rest(tmp_path):
    src, dest = tmp_path / "staging", tmp_path / "live"
    (src / "certs").mkdir(parents=True)
    (src / "maps").mkdir()
    (src / CONFIG).write_bytes(CFG)
    (src / "maps" / "a.map").write_text("k v\n")
    (src / "maps" / "ignored.txt").write_text("not managed\n")
    (src / "certs" / "web.pem").write_text("pem\n")
    os.chmod(src / "certs" / "web.pem", 0o600)
    (dest / "maps").mkdir(parents=True)
    (dest / "maps" / "stale.map").write_text("old\n")
    difference = compare(read_tree(str(src)), read_tree(str(dest)))
    assert difference.removed == ["maps/stale.map"] and "maps/ignored.txt" not in difference.changed
    install(str(src), str(dest), difference)
    assert read_tree(str(dest)) == read_tree(str(src))
    assert stat.S_IMODE(os.stat(dest / "certs" / "web.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest / "certs").st_mode) == 0o700
    assert sorted(os.listdir(dest / "maps")) == ["a.map"]
    assert compare(read_tree(str(src)), read_tree(str(dest))).change == "none"


def test_stage_makes_the_directory_hold_exactly_the_tree(tmp_path):
    root = tmp_path / "staging"
    (root / "maps").mkdir(parents=True)
    (root / "maps" / "stale.map").write_text("old\n")
    (root / "maps" / "notes.txt").write_text("not managed: left alone\n")
    files = tree_files(CFG.decode(), [{"path": "maps/a.map", "lines": ["k1 v1", "k2 v2"]}],
                       {"web": {"cert": "CERT\n", "key": "  KEY"}})
    stage(str(root), files)
    assert read_tree(str(root)) == {CONFIG: CFG, "maps/a.map": b"k1 v1\nk2 v2\n", "certs/web.pem": b"CERT\nKEY\n"}
    assert (root / "maps" / "notes.txt").exists()
    assert stat.S_IMODE(os.stat(root / "certs").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "certs" / "web.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "maps" / "a.map").st_mode) == 0o644
    stage(str(root), {CONFIG: CFG.decode()})
    assert read_tree(str(root)) == {CONFIG: CFG}


def test_the_listing_is_what_sha256sum_prints_on_the_staged_tree(tmp_path):
    files = tree_files(CFG.decode(), [{"path": "maps/b.map", "lines": ["k v"]}, {"path": "maps/a-1.map", "lines": []},
                                      {"path": "maps/A.map", "lines": ["x y"]}], {"web": {"cert": "CERT", "key": "KEY"}})
    stage(str(tmp_path), files)
    printed = subprocess.run("LC_ALL=C sha256sum haproxy.cfg maps/*.map certs/*.pem", shell=True, cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert listing(files) == printed
    assert [line.split()[1] for line in printed] == [CONFIG, "maps/A.map", "maps/a-1.map", "maps/b.map", "certs/web.pem"]


@pytest.mark.parametrize("relative", ["../haproxy.cfg", "maps/../../etc/passwd", "maps/a.txt", "maps/sub/a.map", "certs/.pem",
                                      "certs/-x.pem", "other/a.map", "maps/a b.map", "maps/a\n.map"])
def test_stage_refuses_what_is_not_part_of_a_haproxy_tree(tmp_path, relative):
    with pytest.raises(StageError, match="expected haproxy.cfg, maps/<name>.map or certs/<name>.pem"):
        stage(str(tmp_path / "staging"), {CONFIG: "global\n", relative: "x\n"})
    assert not (tmp_path / "staging").exists()


def test_stage_needs_a_config_and_certificates_need_both_halves(tmp_path):
    with pytest.raises(StageError, match="expected haproxy.cfg"):
        stage(str(tmp_path), {"maps/a.map": "k v\n"})
    with pytest.raises(StageError, match=r"certificates\[web\]: expected \{cert, key\}"):
        tree_files("global\n", [], {"web": {"cert": "CERT"}})
