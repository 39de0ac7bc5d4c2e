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
from lab.topology import KUBECONFIG, KUBECONFIG_ADMIN, KUBECTL


def kubectl(*args: str, admin: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
    kubeconfig = KUBECONFIG_ADMIN if admin else KUBECONFIG
    return subprocess.run([str(KUBECTL), f"--kubeconfig={kubeconfig}", *args], check=check,
                          capture_output=True, text=True, timeout=60)


def in_host(host: str, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return labctl("exec", host, "--", *command, check=check, timeout=timeout)


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
