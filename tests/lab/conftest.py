"""Fixtures for tests that stand on the lab.

The `lab` fixture brings the lab up once per session (reusing one a developer
already started) and takes it down at the end if it brought it up.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from lab import cli
from lab.drive import LABCTL, labctl
from lab.topology import KUBECONFIG, KUBECONFIG_ADMIN, KUBECTL, REPO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what stands on the lab, so that `-m "not lab"` selects the rest (their own API
    servers and namespaces), which `make test` runs before the lab is up."""
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


def kubectl(*args: str, admin: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
    kubeconfig = KUBECONFIG_ADMIN if admin else KUBECONFIG
    return subprocess.run([str(KUBECTL), f"--kubeconfig={kubeconfig}", *args], check=check,
                          capture_output=True, text=True, timeout=60)


def in_host(host: str, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return labctl("exec", host, "--", *command, check=check, timeout=timeout)


def ansible_playbook(name: str, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """playbooks/<name> on the lab's inventory, as an operator runs it."""
    return subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "inventory/lab", f"playbooks/{name}", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": f"{REPO / '.venv/bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                               "ANSIBLE_FORCE_COLOR": "0"})


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    """The run's output, once it says it succeeded."""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces, mounts, nspawn)")
    was_up = cli.is_up()
    if not was_up:
        result = labctl("up", check=False)
        if result.returncode != 0:
            labctl("down", check=False)
            pytest.fail(f"labctl up failed:\n{result.stdout}\n{result.stderr}")
    yield
    if not was_up:
        labctl("down", check=False)
