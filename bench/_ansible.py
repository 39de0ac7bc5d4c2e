"""Run a playbook as one benchmark sample: the time of its tasks (callback_plugins/bench_timer.py),
so ansible-playbook's start-up counts for neither side, and the peak memory of its process tree."""
from __future__ import annotations

import json
import os
from pathlib import Path

from bench import _process
from bench.harness import BENCH, Sample

REPO = BENCH.parent
CALLBACKS = BENCH / "callback_plugins"


def playbook_env(workdir: Path, collections: Path | None) -> dict[str, str]:
    """The caller's environment without its Ansible and Kubernetes settings, with Ansible's
    state kept in workdir (removed with it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_")) and k != "PYTHONPATH"}
    env.update({
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
    })
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return env


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_playbook(venv: Path, playbook: Path, extra_vars: dict[str, str], env: dict[str, str], timeout: float,
                 workdir: Path, label: str, capture: tuple[str, Path] | None = None) -> Sample:
    """One run of playbook on localhost with venv's Ansible. Its value is the sum of its tasks'
    durations; capture=(task name, file) also writes that task's result to file."""
    timings, report, log = workdir / f"{label}.timings.json", workdir / f"{label}.rusage.json", workdir / f"{label}.log"
    env = {**env, "BENCH_TIMINGS_FILE": str(timings)}
    if capture is not None:
        env.update(BENCH_CAPTURE_TASK=capture[0], BENCH_CAPTURE_FILE=str(capture[1]))
    command = [str(venv / "bin" / "ansible-playbook"), "-i", "localhost,",
               "-e", json.dumps({"ansible_python_interpreter": str(venv / "bin" / "python"), **extra_vars}),
               str(playbook)]
    run = _process.run(command, timeout, report, env, workdir, log)
    if run.returncode is None:
        return Sample(None, timed_out_after=timeout, peak_rss_mb=run.peak_rss_mb)
    if run.returncode != 0 or not timings.exists():
        return Sample(None, peak_rss_mb=run.peak_rss_mb, error=f"{playbook.name} exited {run.returncode}:\n{_tail(log)}")
    tasks = json.loads(timings.read_text())["tasks"]
    return Sample(round(sum(t["seconds"] for t in tasks), 3), peak_rss_mb=run.peak_rss_mb)
