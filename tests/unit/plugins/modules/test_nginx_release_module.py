"""The nginx_release module as Ansible runs it (arguments on stdin): check mode writes nothing
where the release goes, and with `validate` proves the release with the real nginx on a scratch
copy, whose paths the release's own files name."""
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

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (make setup installs it)")


def run(tmp_path: Path, dest: Path, **args: Any) -> dict[str, Any]:
    module_args = {"dest": str(dest), "_ansible_check_mode": True, **args}
    result = subprocess.run([sys.executable, "-m", "ansible_collections.k8sedge.lb.plugins.modules.nginx_release"],
                            input=json.dumps({"ANSIBLE_MODULE_ARGS": module_args}), capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": f"{REPO / 'collections'}", "TMPDIR": str(tmp_path)},
                            check=False)
    return json.loads(result.stdout)


def files(dest: Path, tmp_path: Path, listen: str) -> dict[str, str]:
    """A release whose nginx.conf includes a file of its own directory by its absolute path, as
    edge_nginx's does; pid and logs under tmp_path, so that the check touches nothing else."""
    return {"nginx.conf": (f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                           f"http {{\n    access_log off;\n    include {dest}/http.conf;\n}}\n"),
            "http.conf": f"server {{ listen {listen}; return 204; }}\n"}


def validate(tmp_path: Path) -> str:
    return f"{NGINX} -t -q -p {tmp_path}/ -e {tmp_path}/startup.log -c %s"


def test_check_mode_proves_the_release_on_a_scratch_copy_and_writes_nothing_there(tmp_path):
    dest = tmp_path / "releases" / "0123"
    result = run(tmp_path, dest, files=files(dest, tmp_path, "127.0.0.1:39999"), validate=validate(tmp_path))
    assert not result.get("failed"), result
    assert (result["changed"], result["written"], result["validated"]) == (True, ["http.conf", "nginx.conf"], "")
    assert not dest.exists()
    assert not list(tmp_path.glob("k8sedge-nginx-check-*"))  # the scratch is gone


def test_a_release_nginx_refuses_fails_the_plan_naming_the_release_not_the_scratch(tmp_path):
    dest = tmp_path / "releases" / "0123"
    result = run(tmp_path, dest, files=files(dest, tmp_path, "127.0.0.1:notaport"), validate=validate(tmp_path))
    assert result["failed"] is True
    assert result["msg"].startswith(f"release {dest}: `{validate(tmp_path)}` refused it (exit 1): nginx: [emerg]")
    assert f"{dest}/http.conf:1" in result["msg"] and "k8sedge-nginx-check-" not in result["msg"]
    assert result["msg"].endswith("check mode wrote nothing but a scratch copy, removed")
    assert not dest.exists() and not list(tmp_path.glob("k8sedge-nginx-check-*"))


def test_without_validate_check_mode_only_says_what_it_would_write(tmp_path):
    dest = tmp_path / "releases" / "0123"
    result = run(tmp_path, dest, files=files(dest, tmp_path, "127.0.0.1:notaport"))
    assert (result["changed"], "validated" in result) == (True, False)
    assert not dest.exists()
