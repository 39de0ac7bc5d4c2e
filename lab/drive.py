"""Drive the lab from other programs (tests, benchmarks) through its own command, lab/labctl."""
from __future__ import annotations

import subprocess

from lab.topology import REPO

LABCTL = str(REPO / "lab" / "labctl")


def labctl(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LABCTL, *args], check=check, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
