"""Offline stand-in for the get-pip.py that ansible-test downloads to seed its venvs.

ansible-test --venv fetches get-pip.py from a host this machine cannot reach; this does
the same job with the interpreter's own ensurepip, then lets pip install what ansible-test
asked for. The Makefile places it where ansible-test looks for its cached copy.
"""
from __future__ import annotations

import subprocess
import sys

# Options of get-pip.py itself, not of `pip install`.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True,
               stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                *(arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY)], check=True)
