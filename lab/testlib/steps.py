"""Steps on the lab, each bounded by a deadline: a command on a host, a playbook on one edge, a
proxy role put there as its molecule scenario does, and wrk from the lab's client through an edge
while its proxy reloads, with reloads that say whether the proxy took them."""
from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from lab import cli
from lab.topology import REPO

# Seconds kept back from the deadline for the cleanup (purge, lab down) that always runs.
CLEANUP_RESERVE = 45.0
# What wrk sends: the lab's HTTP service.
HOST_HEADER = "Host: s2.pctest"
STATE_RECORD = "/var/lib/k8sedge/state.json"  # each edge's state record (k8sedge.lb.edge_state)
# A shell command that prints the generation an edge serves, as its state record says.
SERVED_GENERATION = f"python3 -c \"import json; print(json.load(open('{STATE_RECORD}'))['serving']['generation'])\""
MASTER_PROC = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy-master.sock');"
               " s.sendall(b'show proc\\n'); print(s.recv(65536).decode())")
T = TypeVar("T")


class LabError(Exception):
    """A lab step (labctl, a playbook, a command on a host) that failed: the benchmark cannot measure."""


def left(deadline: float, reserve: float = CLEANUP_RESERVE) -> float:
    """Seconds left before the deadline, less the reserve; LabError when none are."""
    seconds = deadline - time.monotonic() - reserve
    if seconds <= 0:
        raise LabError("time bound reached")
    return seconds


def on_host(host: str, *command: str, deadline: float, check: bool = True) -> subprocess.CompletedProcess[str]:
    """command on a lab host, as `labctl exec` runs it without starting labctl each time (a
    reload sample makes dozens of these calls); LabError if it fails and check is set."""
    result = subprocess.run(cli.in_host_argv(host, list(command)), capture_output=True, text=True,
                            timeout=min(60.0, left(deadline, reserve=0)))
    if check and result.returncode != 0:
        raise LabError(f"{host}: {' '.join(command)} exited {result.returncode}: {result.stderr[-1000:]}")
    return result


def playbook(path: str, edge: str, deadline: float, extra_vars: dict[str, object] | None = None,
             reserve: float = CLEANUP_RESERVE) -> None:
    """A playbook of the repo (e.g. molecule/edge_nginx/converge.yml) on one edge (K8SEDGE_EDGES)."""
    command = [str(REPO / ".venv/bin/ansible-playbook"), path]
    for name, value in (extra_vars or {}).items():
        command += ["-e", f"{name}={value}"]
    env = {**os.environ, "K8SEDGE_EDGES": edge, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env,
                                timeout=min(600.0, left(deadline, reserve)))
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{path} on {edge}: timed out after {exc.timeout:.0f} s") from exc
    if result.returncode != 0:
        raise LabError(f"{path} on {edge} failed:\n{result.stdout[-3000:]}\n{result.stderr[-1000:]}")


def installed(edge: str, package: str, deadline: float) -> bool:
    status = on_host(edge, "dpkg-query", "-W", "-f=${Status}", package, deadline=deadline, check=False).stdout
    return status.startswith("install ok installed")


def converge(edge: str, scenario: str, deadline: float, extra_vars: dict[str, object] | None = None) -> None:
    """A proxy role on one edge as its molecule scenario puts it there: converge.yml, after its
    prepare.yml when the other proxy is installed (it would hold the same ports; prepare.yml
    removes it, a few seconds of Ansible spared when there is nothing to remove)."""
    other = {"edge_haproxy": "nginx", "edge_nginx": "haproxy"}[scenario]
    if installed(edge, other, deadline):
        playbook(f"molecule/{scenario}/prepare.yml", edge, deadline)
    playbook(f"molecule/{scenario}/converge.yml", edge, deadline, extra_vars)


@contextmanager
def role_on(edge: str, scenario: str, deadline: float, keep: bool) -> Iterator[None]:
    """converge(); at the end the scenario's cleanup.yml, unless keep (the edge had it before)."""
    converge(edge, scenario, deadline)
    try:
        yield
    finally:
        if not keep:
            playbook(f"molecule/{scenario}/cleanup.yml", edge, deadline, reserve=0)


@dataclass(frozen=True)
class Run:
    """One wrk run through an edge during reloads."""

    requests: int
    socket_errors: int  # connect + read + write + timeout
    non_2xx: int  # non-2xx/3xx responses
    reloads: int  # reloads done
    confirmed: int  # reloads the proxy confirmed (a new generation of workers)

    @property
    def failed(self) -> int:
        return self.socket_errors + self.non_2xx


def wrk_counts(output: str) -> tuple[int, int, int]:
    """(requests, socket errors, non-2xx/3xx responses) from wrk's summary."""
    requests = re.search(r"(\d+) requests in", output)
    if not requests:
        raise LabError(f"no summary in wrk's output:\n{output[-2000:]}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return (int(requests.group(1)), sum(map(int, errors.groups())) if errors else 0,
            int(non_2xx.group(1)) if non_2xx else 0)


def wrk_during_reloads(address: str, seconds: int, reloads: int, reload: Callable[[], bool], connections: int = 20) -> Run:
    """wrk -t2 -c<connections> (keep-alive) from the client to http://address/ for `seconds`, and
    `reloads` calls of reload() spread evenly from the first second on; reload() returns whether the
    proxy confirmed it."""
    command = cli.in_host_argv("client", ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", HOST_HEADER, f"http://{address}/"])
    started = time.monotonic()
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    confirmed = 0
    try:
        for i in range(reloads):
            time.sleep(max(0.0, started + 1 + i * (seconds - 2) / reloads - time.monotonic()))
            confirmed += reload()
        output, _ = wrk.communicate(timeout=seconds + 30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    requests, socket_errors, non_2xx = wrk_counts(output)
    return Run(requests, socket_errors, non_2xx, reloads, confirmed)


def wait_for(read: Callable[[], T | None | bool], seconds: float = 3.0) -> T | bool | None:
    """Poll read() until it returns something other than None or False; that, or None once
    `seconds` have passed."""
    until = time.monotonic() + seconds
    while True:
        value = read()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= until:
            return None
        time.sleep(0.05)


def _master_reloads(edge: str, deadline: float) -> int | None:
    """How often haproxy's master has reloaded (`show proc` on the master socket); None while the
    socket does not answer (the master re-executes itself at a reload)."""
    result = on_host(edge, "python3", "-c", MASTER_PROC, deadline=deadline, check=False)
    match = re.search(r"^\d+\s+master\s+(\d+)", result.stdout, re.MULTILINE)
    return int(match.group(1)) if result.returncode == 0 and match else None


def haproxy_reloader(edge: str, deadline: float) -> Callable[[], bool]:
    """A `systemctl reload haproxy` on the edge that says whether the master counted it."""
    def reload() -> bool:
        before = wait_for(lambda: _master_reloads(edge, deadline))
        if before is None:
            raise LabError("haproxy's master socket does not answer")
        on_host(edge, "systemctl", "reload", "haproxy", deadline=deadline)
        return wait_for(lambda: (_master_reloads(edge, deadline) or 0) > before) is not None
    return reload


def _nginx_workers(edge: str, deadline: float) -> set[str]:
    master = on_host(edge, "cat", "/run/nginx.pid", deadline=deadline).stdout.strip()
    return set(on_host(edge, "ps", "-o", "pid=", "--ppid", master, deadline=deadline, check=False).stdout.split())


def nginx_reloader(edge: str, command: tuple[str, ...], deadline: float) -> Callable[[], bool]:
    """`command` on the edge, saying whether nginx started new workers."""
    def reload() -> bool:
        before = _nginx_workers(edge, deadline)
        on_host(edge, *command, deadline=deadline)
        return wait_for(lambda: bool(_nginx_workers(edge, deadline) - before)) is not None
    return reload
