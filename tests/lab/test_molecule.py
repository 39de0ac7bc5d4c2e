"""Every role's molecule scenario, run for real against the lab's edge VMs over SSH."""
from __future__ import annotations

import os
import subprocess

import pytest

from lab.topology import REPO

pytestmark = pytest.mark.usefixtures("lab")

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str):
    env = {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}", "ANSIBLE_FORCE_COLOR": "0"}
    result = subprocess.run([str(REPO / ".venv/bin/molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"molecule test -s {scenario}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"


def test_every_role_has_a_scenario():
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert roles == SCENARIOS
