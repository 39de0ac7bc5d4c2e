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
    assert result.returncode == 0, (f"molecule test -s {scenario}:\n{failed_tasks(result.stdout)}\n"
                                    f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}")


def failed_tasks(output: str) -> str:
    """Each task that failed on a host, with its header and result, wherever it is in the output:
    the tail alone loses a host that failed while the other went on. The negative checks of a
    scenario (refusals it rescues) show here too."""
    blocks, task = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line
        elif line.startswith(("fatal: [", "failed: [")):
            blocks.append(f"{task}\n{line[:1500]}")
    return "failed tasks:\n" + "\n".join(blocks[-12:]) if blocks else "no failed task in the output"


def test_every_role_has_a_scenario():
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert roles == SCENARIOS
