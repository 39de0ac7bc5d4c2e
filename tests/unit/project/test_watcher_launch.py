"""bin/k8sedge-watch started as docs/awx.md shows it: by its shebang, with the system's Python first on PATH."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def system_python_has_ansible() -> bool:
    return subprocess.run(["python3", "-c", "import ansible"], env={"PATH": SYSTEM_PATH}, capture_output=True).returncode == 0


@pytest.mark.skipif(system_python_has_ansible(), reason="the system's Python has Ansible: nothing to switch from")
def test_the_watcher_switches_to_the_project_venv_when_the_system_python_has_no_ansible():
    result = subprocess.run([str(REPO / "bin/k8sedge-watch"), "--help"], env={"PATH": SYSTEM_PATH, "HOME": "/root"},
                            cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: k8sedge-watch"), result.stdout[:500]
