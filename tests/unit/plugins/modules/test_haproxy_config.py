"""The haproxy_config module as Ansible runs it (arguments on stdin), with the real haproxy:
stage, validate, install; check mode writes nothing; a refused tree leaves the live one
untouched; a copy to last-known-good is not validated again."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.topology import REPO

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed (make setup installs it)")


def config(generation: str, port: int = 8080) -> str:
    return (f"# Model generation {generation}; test\n"
            "global\n    default-path config\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
            f"    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:{port}\n"
            "    http-request set-var(txn.backend) req.hdr(host),lower,map_str(maps/f.map)\n"
            "    use_backend %[var(txn.backend)]\n\nbackend b\n    server s1 127.0.0.1:9\n")


def run(tmp_path: Path, check_mode: bool = False, **args: Any) -> dict[str, Any]:
    module_args = {"src": str(tmp_path / "staging"), "dest": str(tmp_path / "live"), "haproxy": HAPROXY,
                   "_ansible_check_mode": check_mode, "_ansible_diff": True, **args}
    result = subprocess.run([sys.executable, "-m", "ansible_collections.k8sedge.lb.plugins.modules.haproxy_config"],
                            input=json.dumps({"ANSIBLE_MODULE_ARGS": module_args}), capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": f"{REPO / 'collections'}"}, check=False)
    return json.loads(result.stdout)


def staged_args(generation: str, **kw: Any) -> dict[str, Any]:
    return {"config": config(generation, **kw), "maps": [{"path": "maps/f.map", "lines": ["a.example b"]}],
            "certificates": {"web": {"cert": "-----CERT-----", "key": "-----KEY-----"}}}


def test_stages_validates_and_installs(tmp_path):
    first = run(tmp_path, **staged_args("aa01"))
    assert not first.get("failed"), first
    assert (first["changed"], first["change"]) == (True, "structural")
    assert first["files"] == ["certs/web.pem", "haproxy.cfg", "maps/f.map"]
    assert (tmp_path / "live" / "maps" / "f.map").read_text() == "a.example b\n"
    assert "-----KEY-----" not in json.dumps(first)  # never in the result, nor in the diff
    again = run(tmp_path, **staged_args("aa01"))
    assert (again["changed"], again["change"]) == (False, "none")


def test_check_mode_validates_but_writes_nothing(tmp_path):
    run(tmp_path, **staged_args("aa01"))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    checked = run(tmp_path, check_mode=True, **staged_args("bb02", port=8081))
    assert (checked["changed"], checked["change"]) == (True, "structural") and "validator" in checked
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_check_mode_on_a_host_without_haproxy_says_the_tree_was_not_validated(tmp_path):
    """A plan for a fresh edge: the real run installs haproxy before it validates."""
    checked = run(tmp_path, check_mode=True, haproxy=str(tmp_path / "no-haproxy"), **staged_args("cc03"))
    assert not checked.get("failed"), checked
    assert (checked["changed"], checked["change"]) == (True, "structural")
    assert checked["validator"] == f"not validated: {tmp_path / 'no-haproxy'} is not installed on this host yet"
    assert checked["validator"] in json.dumps(checked["warnings"])
    assert not (tmp_path / "live").exists()
    # Outside check mode a missing binary is an error, never a pass.
    assert run(tmp_path, haproxy=str(tmp_path / "no-haproxy"), **staged_args("cc03"))["failed"]


def test_a_refused_tree_leaves_the_live_one_untouched(tmp_path):
    run(tmp_path, **staged_args("aa01"))
    live = (tmp_path / "live" / "haproxy.cfg").read_text()
    broken = staged_args("bb02")
    broken["config"] = broken["config"].replace("mode http", "mode nonsense")
    result = run(tmp_path, **broken)
    assert result["failed"] and "haproxy -c refused" in result["msg"] and f"{tmp_path / 'live'} is untouched" in result["msg"]
    assert (tmp_path / "live" / "haproxy.cfg").read_text() == live


def test_a_file_outside_the_tree_is_refused_before_anything_is_written(tmp_path):
    args = staged_args("aa01")
    args["maps"] = [{"path": "../../etc/cron.d/x.map", "lines": ["x"]}]
    result = run(tmp_path, **args)
    assert result["failed"] and "expected haproxy.cfg, maps/<name>.map or certs/<name>.pem" in result["msg"]
    assert not (tmp_path / "staging").exists() and not (tmp_path / "live").exists()


def test_a_copy_to_last_known_good_is_the_live_tree(tmp_path):
    run(tmp_path, **staged_args("aa01"))
    promoted = run(tmp_path, src=str(tmp_path / "live"), dest=str(tmp_path / "last-good"), validate=False)
    assert (promoted["changed"], "validator" in promoted) == (True, False)
    assert (tmp_path / "last-good" / "haproxy.cfg").read_bytes() == (tmp_path / "live" / "haproxy.cfg").read_bytes()
