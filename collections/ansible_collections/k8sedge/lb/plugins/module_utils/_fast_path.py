# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher's fast path: an endpoint-only change straight into haproxy's runtime API, with the
haproxy_runtime module's own code, over SSH.

`bin/k8sedge-watch --fast-path` calls this for every endpoint-only change, before it runs
playbooks/endpoints.yml (which then writes the config on disk and the bookkeeping). Per edge
host, one persistent SSH connection (OpenSSH; the inventory's address, user, key and options,
strict host key checking forced on) forwards a socket in the watcher's private directory to
haproxy's stats socket on the edge, and the module's `Cli` talks through it: read the servers
and the running worker's structure digest, compute what the role would (the
`k8sedge.lb.haproxy_view` slots with the running slots as `previous`, the fail-static guard
against the running servers), then `Cli.apply()`: the module's plan, sent and read back.

It only acts when the running worker's structure is exactly the one the new model needs, so a
host that is behind (a reload pending, a failed run, more targets than slots) is left to the
playbook; so are nginx hosts (no runtime API) and hosts that log in as another user than root
(the forward opens the root-only socket as the login user; become cannot help it). Every
refusal and failure says why.

`hosts_from()` and `plan_host()` are pure; `Ssh` and the module's `Cli` are the only I/O.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError
from ansible_collections.k8sedge.lb.plugins.module_utils._gates import evidence, haproxy_checked, haproxy_serves, host_targets, probe_name
from ansible_collections.k8sedge.lb.plugins.module_utils._guard import GuardError, check
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import (
    STRUCTURE_VARIABLE, Cli, CliError, Server, current_slots, parse_var)
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewError, ViewOptions, haproxy_view

__all__ = ["EdgeHost", "FastPath", "FastPathError", "HostPlan", "Outcome", "Ssh", "hosts_from", "plan_host"]

_SSH_CONNECTIONS = ("ssh", "smart")
# Names and paths that go on an ssh command line: never an option (no leading '-'), no shell;
# the socket also goes into `-L local:remote`, so no ':'.
_ADDRESS = re.compile(r"[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]{0,252}")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}")
_SOCKET = re.compile(r"/[A-Za-z0-9_./-]{1,200}")


class FastPathError(ApplyError):
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
    elif user != "root" and (user or become):
        # An SSH forward opens the remote socket as the login user; nothing runs there to become.
        unsupported = (f"login user {user or '(SSH default)'}{' with become' if become else ''}: the fast path reaches the stats socket"
                       f" {socket_path} through an SSH forward, as the login user, and the role keeps it root's (mode 0600)")
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
    return EdgeHost(name, engine, address, user, port or None, key, ssh_args, socket_path, view, float(share), override, unsupported)


def hosts_from(data: Any) -> list[EdgeHost]:
    """The edges from what playbooks/runtime_hosts.yml wrote (host -> variables), by name."""
    if not isinstance(data, dict) or not data:
        raise FastPathError("runtime hosts: expected host -> variables for at least one host")
    return [_host(name, data[name]) for name in sorted(data)]


# --- what the host must run ---------------------------------------------------------------------

@dataclass(frozen=True)
class HostPlan:
    """The slots one host must have for the model (the view's runtime list, as the role passes it
    to haproxy_runtime), and the model's generation."""

    runtime: list[dict[str, Any]] = field(repr=False)
    generation: str = ""


def _live(servers: dict[tuple[str, str], Server]) -> dict[str, Any]:
    """What the running worker serves, in the model's shape, for the fail-static guard."""
    return {"backends": [{"name": backend, "targets": [{"address": s["address"], "port": s["port"]} for s in slots.values()]}
                         for backend, slots in sorted(current_slots(servers).items())]}


def plan_host(model: dict[str, Any], host: EdgeHost, servers: dict[tuple[str, str], Server], structure: str) -> HostPlan:
    """What `host` must run, given its running servers and its worker's structure digest;
    FastPathError when the playbook must do it."""
    try:
        guard = check(model, {host.name: _live(servers)}, host.max_removed_share)
        if not guard["ok"] and not host.override:
            raise FastPathError(f"fail-static: {'; '.join(guard['reasons'])}")
        # A backend the change would empty keeps its running servers (held), as the playbooks do.
        view = haproxy_view(model if host.override else guard["model"], replace(host.view, previous=current_slots(servers)))
    except (ViewError, GuardError) as exc:
        raise FastPathError(f"{host.name}: {exc}") from None
    if view["structure"] != structure:
        raise FastPathError(f"{host.name}: haproxy runs structure {structure[:12] or 'unknown'}, the model needs"
                            f" {view['structure'][:12]}: more than server slots differ (a reload)")
    return HostPlan(view["runtime"], view["generation"])


# --- SSH ----------------------------------------------------------------------------------------

class Ssh:
    """One edge's stats socket, forwarded over one OpenSSH connection that this process starts
    and stops by its PID (`ssh -N -L <private dir>/<digest>.sock:<stats socket>`).

    The forward's socket is mode 0600 in the watcher's 0700 directory, whatever the SSH config
    says. The connection is no ControlMaster and joins none: a ControlPath from the inventory
    would hand the forward to a master Ansible owns. Strict host key checking is forced on (ssh
    keeps the first value of an option, so the inventory's options cannot turn it off)."""

    def __init__(self, host: EdgeHost, directory: Path, timeout: float = 5.0) -> None:
        stem = directory / hashlib.sha256(host.name.encode()).hexdigest()[:12]  # an inventory name may hold ':' or '/'
        self.host = host
        self.local = stem.with_suffix(".sock")
        self.log = stem.with_suffix(".log")
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._explained = 0  # how much of the log an error has quoted already

    def argv(self) -> list[str]:
        argv = ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindMask=0177", "-o", "StreamLocalBindUnlink=yes",
                "-o", f"ConnectTimeout={max(1, int(self.timeout))}", "-o", "ServerAliveInterval=10",
                "-N", "-L", f"{self.local}:{self.host.socket}"]
        if self.host.private_key:
            argv += ["-i", self.host.private_key]
        if self.host.port:
            argv += ["-p", str(self.host.port)]
        if self.host.user:
            argv += ["-l", self.host.user]
        return [*argv, *self.host.ssh_args, "--", self.host.address]

    def open(self) -> None:
        """Connect and wait until the forward listens (ssh binds it once authenticated)."""
        self.close()  # what is left of a connection that went away
        with self.log.open("wb") as log:
            try:
                self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            except OSError as exc:
                raise FastPathError(f"{self.host.name}: ssh {self.host.address}: {exc}") from None
        self._explained = 0
        deadline = time.monotonic() + self.timeout * 3
        while not self.local.is_socket():
            if self.process.poll() is not None:
                failed = f"exit {self.process.returncode}"
            elif time.monotonic() > deadline:
                failed = f"no forward after {self.timeout * 3:g} s"
            else:
                time.sleep(0.01)
                continue
            self.close()
            raise FastPathError(f"{self.host.name}: ssh {self.host.address}: {failed}: {self._log()[-300:]}")

    def cli(self) -> Cli:
        """The module's Cli on the forward; the connection is opened again if it went away (an
        edge rebooted, the network dropped it)."""
        if self.process is None or self.process.poll() is not None:
            self.open()
        return _Forwarded(self)

    def refusal(self) -> str:
        """Why the edge refused a forwarded connection, if ssh logged that since the last call."""
        text = self._log()
        refused = [line.strip() for line in text[self._explained:].splitlines() if "open failed" in line]
        self._explained = len(text)
        if not refused:
            return ""
        return (f" (ssh {self.host.address}: {refused[-1]}: sshd there did not open {self.host.socket} as"
                f" {self.host.user or 'the login user'}: haproxy not running, the socket not that user's, or AllowStreamLocalForwarding off)")

    def _log(self) -> str:
        return self.log.read_text(errors="replace").strip() if self.log.exists() else ""

    def close(self) -> None:
        """Stop the connection (by its PID) and remove its socket (ssh leaves it behind)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        self.local.unlink(missing_ok=True)


class _Forwarded(Cli):
    """The module's Cli on a forward. A socket the edge cannot open reaches us as a connection
    dropped without an answer; ssh's log says which, and the error quotes it."""

    def __init__(self, ssh: Ssh) -> None:
        super().__init__(str(ssh.local), ssh.timeout)
        self.ssh = ssh

    def run(self, command: str) -> str:
        try:
            return super().run(command)
        except CliError as exc:
            raise CliError(f"{exc}{self.ssh.refusal()}") from None


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
    """Applies a model to every haproxy edge at once, one thread per host; `connect(host)` gives
    the module's Cli on that host's stats socket (Ssh.cli in the watcher)."""

    def __init__(self, hosts: list[EdgeHost], connect: Callable[[EdgeHost], Cli]) -> None:
        self.hosts = hosts
        self.connect = connect
        self.lock = threading.Lock()  # the watcher's main loop and its playbook thread both apply
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="k8sedge-fast-path")
        # Evidence waits for haproxy's checks for seconds: never in the way of the next apply.
        self._evidence_pool = ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="k8sedge-gate-evidence")

    def _apply(self, host: EdgeHost, model: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        if host.unsupported:
            return Outcome(host.name, "skipped", host.unsupported)
        try:
            cli = self.connect(host)
            servers = cli.servers()
            host_plan = plan_host(model, host, servers, parse_var(cli.run(f"get var {STRUCTURE_VARIABLE}")))
            commands = cli.apply(host_plan.runtime, servers)[0]
        except FastPathError as exc:
            return Outcome(host.name, "fallback", str(exc), seconds=time.monotonic() - started)
        except CliError as exc:
            return Outcome(host.name, "fallback", f"{host.name}: {exc}", seconds=time.monotonic() - started)
        return Outcome(host.name, "applied" if commands else "current", commands=tuple(commands), seconds=time.monotonic() - started)

    def apply(self, model: dict[str, Any]) -> list[Outcome]:
        """Every host's outcome, in host order."""
        with self.lock:
            return list(self._pool.map(lambda host: self._apply(host, model), self.hosts))

    def gate_evidence(self, gates: list[dict[str, Any]], seconds: float) -> dict[str, list[dict[str, Any]] | None]:
        """Per host, what it shows of the pod targets of the Pods that wait for the readiness gate
        (`_gates.evidence()` rows), waiting up to `seconds` for haproxy's first checks of new
        servers to pass: haproxy serves it, and its own health check, sent from that host, is the
        probe. None for a host the fast path does not reach (nginx, another login): its Pods wait
        for the playbook."""
        def look(host: EdgeHost) -> list[dict[str, Any]] | None:
            if host.unsupported:
                return None
            targets = host_targets(gates, list(host.view.pools))
            deadline = time.monotonic() + seconds
            while True:
                try:
                    servers = self.connect(host).servers()
                except (FastPathError, CliError):
                    return None
                rows = evidence(targets, lambda t: haproxy_serves(t, servers),
                                {probe_name(t): haproxy_checked(t, servers) for t in targets})
                if all(row["ok"] for row in rows) or time.monotonic() >= deadline:
                    return rows
                time.sleep(0.25)

        return dict(zip((h.name for h in self.hosts), self._evidence_pool.map(look, self.hosts)))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._evidence_pool.shutdown(wait=True)
