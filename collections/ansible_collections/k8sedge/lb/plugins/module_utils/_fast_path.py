# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher's fast path: an endpoint-only change straight into haproxy's runtime API over SSH.

`bin/k8sedge-watch --fast-path` calls this for every endpoint-only change, before it runs
playbooks/endpoints.yml (which then writes the config on disk and the bookkeeping). Per edge
host, over one persistent SSH connection (OpenSSH ControlMaster; the inventory's address, user,
key and options, strict host key checking forced on): read `show servers state` and the running
worker's structure digest, compute what the role would (the `k8sedge.lb.haproxy_view` slots with
the running slots as `previous`, the fail-static guard against the running servers, `plan()`'s
commands), send the commands in one batch and read the servers back.

It only acts when the running worker's structure is exactly the one the new model needs, so a
host that is behind (a reload pending, a failed run, more targets than slots) is left to the
playbook; so are nginx hosts (no runtime API). Every refusal and failure says why.

`hosts_from()`, `plan_host()` and `remaining()` are pure; `Ssh` is the only I/O.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ansible_collections.k8sedge.lb.plugins.module_utils._guard import GuardError, check
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import (
    CliError, Server, answer_of, current_slots, parse_servers_state, parse_var, plan)
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewError, ViewOptions, haproxy_view

__all__ = ["EdgeHost", "FastPath", "FastPathError", "HostPlan", "Outcome", "Ssh", "hosts_from", "plan_host", "remaining"]

STRUCTURE_VARIABLE = "proc.k8sedge_structure"  # set by roles/edge_haproxy's haproxy.cfg
READ = ("show servers state", f"get var {STRUCTURE_VARIABLE}")
_SSH_CONNECTIONS = ("ssh", "smart")
# Names and paths that go on an ssh command line: never an option (no leading '-'), no shell.
_ADDRESS = re.compile(r"[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]{0,252}")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}")
_SOCKET = re.compile(r"/[A-Za-z0-9_./-]{1,200}")
# Runs on the edge (python3, which Ansible needs there anyway): each command of the JSON list on
# stdin on its own connection to the stats socket (haproxy's non-interactive CLI), the answers
# as a JSON list on stdout.
REMOTE = (
    "import json,socket,sys\n"
    "out=[]\n"
    "for c in json.load(sys.stdin):\n"
    " b=b''\n"
    " try:\n"
    "  s=socket.socket(socket.AF_UNIX);s.settimeout(5);s.connect(sys.argv[1]);s.sendall(c.encode()+b'\\n')\n"
    "  while 1:\n"
    "   d=s.recv(65536)\n"
    "   if not d:break\n"
    "   b+=d\n"
    "  s.close()\n"
    " except OSError as e:sys.exit('stats socket %s: %s'%(sys.argv[1],e))\n"
    " out.append(b.decode(errors='replace'))\n"
    "json.dump(out,sys.stdout)\n"
)


class FastPathError(Exception):
    """The fast path cannot take this change on this host; the playbook will. Says why."""


@dataclass(frozen=True)
class EdgeHost:
    """One edge as the inventory describes it (playbooks/runtime_hosts.yml)."""

    name: str
    engine: str
    address: str
    user: str = ""
    port: int | None = None
    private_key: str = ""
    ssh_args: tuple[str, ...] = ()
    become: bool = False
    socket: str = "/run/haproxy/admin.sock"
    view: ViewOptions = field(default_factory=ViewOptions)
    max_removed_share: float = 0.3
    override: bool = False
    unsupported: str = ""  # why this host cannot take the fast path at all ("" if it can)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _field(name: str, raw: dict[str, Any], key: str, accept: Callable[[Any], bool], expected: str) -> Any:
    value = raw.get(key)
    if not accept(value):
        shown = "(not shown)" if key == "certificates" else repr(value)[:80]
        raise FastPathError(f"edge host {name}: {key}: expected {expected}, got {shown}")
    return value


def _host(name: str, raw: Any) -> EdgeHost:
    if not isinstance(raw, dict):
        raise FastPathError(f"edge host {name}: expected the variables runtime_hosts.yml writes, got {type(raw).__name__}")
    engine = _field(name, raw, "engine", lambda v: v in ("haproxy", "nginx"), "haproxy or nginx")
    connection = _field(name, raw, "connection", _text, "a connection plugin name")
    address = _field(name, raw, "address", lambda v: _text(v) and bool(_ADDRESS.fullmatch(v)), "a host name or address")
    user = _field(name, raw, "user", lambda v: v == "" or (_text(v) and bool(_USER.fullmatch(v))), "a user name or empty")
    port = _field(name, raw, "port", lambda v: v in (None, "") or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535),
                  "a port 1-65535 or none")
    key = _field(name, raw, "private_key", lambda v: _text(v) and not v.startswith("-"), "a file path or empty")
    args = _field(name, raw, "ssh_args", _text, "SSH options as text")
    become = _field(name, raw, "become", lambda v: isinstance(v, bool), "true or false")
    socket_path = _field(name, raw, "socket", lambda v: _text(v) and bool(_SOCKET.fullmatch(v)), "an absolute path")
    share = _field(name, raw, "max_removed_share", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
                   "a share from 0 to 1")
    override = _field(name, raw, "override", lambda v: isinstance(v, bool), "true or false")
    unsupported = ""
    if engine != "haproxy":
        unsupported = f"engine {engine}: no runtime API (the playbook writes a release and reloads)"
    elif connection not in _SSH_CONNECTIONS:
        unsupported = f"connection {connection}: the fast path speaks OpenSSH only"
    elif become and raw.get("become_method") != "sudo":
        unsupported = f"become_method {raw.get('become_method')}: the fast path becomes root with sudo -n only"
    try:
        ssh_args = tuple(shlex.split(args))
    except ValueError as exc:
        raise FastPathError(f"edge host {name}: ssh_args: {exc}") from None
    view = ViewOptions(
        pools=tuple(_field(name, raw, "pools", lambda v: isinstance(v, list) and all(map(_text, v)), "a list of pool names")),
        certificates=_field(name, raw, "certificates", lambda v: isinstance(v, dict), "name -> {cert, key}"),
        slots=raw.get("slots"), admin_address=raw.get("admin_address"), admin_port=raw.get("admin_port"),
        bind_address=raw.get("bind_address") or "", udp_frontends=raw.get("udp_frontends"))
    try:  # the view checks its options first: refuse bad ones now, not at the first change
        haproxy_view({"generation": "", "frontends": [], "backends": []}, view)
    except ViewError as exc:
        raise FastPathError(f"edge host {name}: {exc}") from None
    return EdgeHost(name, engine, address, user, port or None, key, ssh_args, become, socket_path, view, float(share), override, unsupported)


def hosts_from(data: Any) -> list[EdgeHost]:
    """The edges from what playbooks/runtime_hosts.yml wrote (host -> variables), by name."""
    if not isinstance(data, dict) or not data:
        raise FastPathError("runtime hosts: expected host -> variables for at least one host")
    return [_host(name, data[name]) for name in sorted(data)]


# --- what to send ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HostPlan:
    """The commands that take one host's running servers to the model, and the slots they aim at."""

    commands: tuple[str, ...]
    runtime: list[dict[str, Any]] = field(repr=False)  # the view's runtime list
    generation: str = ""


def _live(servers: dict[tuple[str, str], Server]) -> dict[str, Any]:
    """What the running worker serves, in the model's shape, for the fail-static guard."""
    return {"backends": [{"name": backend, "targets": [{"address": s["address"], "port": s["port"]} for s in slots.values()]}
                         for backend, slots in sorted(current_slots(servers).items())]}


def plan_host(model: dict[str, Any], host: EdgeHost, servers_state: str, structure: str) -> HostPlan:
    """What to send to `host`, given its answers to READ; FastPathError when the playbook must do it."""
    try:
        servers = parse_servers_state(servers_state)
        running = parse_var(structure)
        guard = check(model, {host.name: _live(servers)}, host.max_removed_share)
        if not guard["ok"] and not host.override:
            raise FastPathError(f"fail-static: {'; '.join(guard['reasons'])}")
        # A backend the change would empty keeps its running servers (held), as the playbooks do.
        view = haproxy_view(model if host.override else guard["model"], replace(host.view, previous=current_slots(servers)))
        if view["structure"] != running:
            raise FastPathError(f"{host.name}: haproxy runs structure {running[:12] or 'unknown'}, the model needs"
                                f" {view['structure'][:12]}: more than server slots differ (a reload)")
        return HostPlan(tuple(plan(view["runtime"], servers)), view["runtime"], view["generation"])
    except (CliError, ViewError, GuardError) as exc:
        raise FastPathError(f"{host.name}: {exc}") from None


def remaining(host_plan: HostPlan, commands: tuple[str, ...], answers: list[str]) -> list[str]:
    """After the batch (its commands, then `show servers state`): each answer checked, and the
    commands still needed to reach the plan's slots ([] when haproxy took them all)."""
    if len(answers) != len(commands) + 1:
        raise FastPathError(f"expected {len(commands) + 1} answers from the stats socket, got {len(answers)}")
    try:
        for command, answer in zip(commands, answers):
            answer_of(command, answer)
        return plan(host_plan.runtime, parse_servers_state(answers[-1]))
    except CliError as exc:
        raise FastPathError(str(exc)) from None


# --- SSH ----------------------------------------------------------------------------------------

class Ssh:
    """One edge's stats socket through OpenSSH: a ControlMaster connection kept open, commands
    through it. Strict host key checking is forced on (ssh keeps the first value of an option, so
    the inventory's options cannot turn it off)."""

    def __init__(self, host: EdgeHost, control_dir: Path, timeout: float = 5.0) -> None:
        self.host = host
        self.control = control_dir / host.name
        self.timeout = timeout

    def argv(self, *extra: str) -> list[str]:
        argv = ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", f"ControlPath={self.control}",
                "-o", f"ConnectTimeout={max(1, int(self.timeout))}", "-o", "ServerAliveInterval=10", *extra]
        if self.host.private_key:
            argv += ["-i", self.host.private_key]
        if self.host.port:
            argv += ["-p", str(self.host.port)]
        if self.host.user:
            argv += ["-l", self.host.user]
        return [*argv, *self.host.ssh_args]

    def open(self) -> None:
        """Start the master connection in the background (ssh -f once authenticated)."""
        argv = [*self.argv("-M", "-N", "-f", "-o", "ControlPersist=no"), "--", self.host.address]
        try:
            with open(f"{self.control}.log", "w", encoding="utf-8") as log:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, timeout=self.timeout * 3,
                                        check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FastPathError(f"{self.host.name}: ssh {self.host.address}: {exc}") from None
        if result.returncode != 0:
            raise FastPathError(f"{self.host.name}: ssh {self.host.address}: exit {result.returncode}:"
                                f" {Path(f'{self.control}.log').read_text(errors='replace').strip()[-300:]}")

    def exchange(self, commands: list[str]) -> list[str]:
        """haproxy's answers to `commands`, one SSH round trip through the master connection."""
        if not self.control.exists():  # the master is gone (an edge rebooted): open a new one
            self.open()
        remote = ["python3", "-c", REMOTE, self.host.socket]
        if self.host.become:
            remote = ["sudo", "-n", "--", *remote]
        argv = [*self.argv("-o", "ControlMaster=no"), "--", self.host.address, shlex.join(remote)]
        try:
            result = subprocess.run(argv, input=json.dumps(commands), capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise FastPathError(f"{self.host.name}: no answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise FastPathError(f"{self.host.name}: ssh: {exc}") from None
        if result.returncode != 0:
            raise FastPathError(f"{self.host.name}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
        try:
            answers = json.loads(result.stdout)
        except ValueError:
            answers = None
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise FastPathError(f"{self.host.name}: expected the stats socket's answers as a JSON list, got {result.stdout[:200]!r}")
        return answers

    def close(self) -> None:
        try:
            subprocess.run([*self.argv("-O", "exit"), "--", self.host.address], capture_output=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):  # a master that does not answer went with its connection
            pass


# --- the fast path ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What the fast path did on one host: applied, current (nothing to send), skipped (not for
    this host) or fallback (the playbook must do it), with the reason and the commands sent."""

    host: str
    status: str
    reason: str = ""
    commands: tuple[str, ...] = ()
    seconds: float = 0.0

    def event(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "commands": len(self.commands), "seconds": round(self.seconds, 3)}


class FastPath:
    """Applies a model to every haproxy edge at once, one thread per host; `exchange(host,
    commands)` is the transport (Ssh.exchange in the watcher)."""

    def __init__(self, hosts: list[EdgeHost], exchange: Callable[[EdgeHost, list[str]], list[str]]) -> None:
        self.hosts = hosts
        self.exchange = exchange
        self.lock = threading.Lock()  # the watcher's main loop and its playbook thread both apply
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="k8sedge-fast-path")

    def _apply(self, host: EdgeHost, model: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        if host.unsupported:
            return Outcome(host.name, "skipped", host.unsupported)
        try:
            host_plan = plan_host(model, host, *self.exchange(host, list(READ)))
            if not host_plan.commands:
                return Outcome(host.name, "current", seconds=time.monotonic() - started)
            answers = self.exchange(host, [*host_plan.commands, READ[0]])
            left = remaining(host_plan, host_plan.commands, answers)
            if left:
                raise FastPathError(f"{host.name}: haproxy did not take every change; still to do: {'; '.join(left)}")
        except FastPathError as exc:
            return Outcome(host.name, "fallback", str(exc), seconds=time.monotonic() - started)
        return Outcome(host.name, "applied", commands=host_plan.commands, seconds=time.monotonic() - started)

    def apply(self, model: dict[str, Any]) -> list[Outcome]:
        """Every host's outcome, in host order."""
        with self.lock:
            return list(self._pool.map(lambda host: self._apply(host, model), self.hosts))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
