# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""haproxy's runtime API: read the servers of the running worker, plan the commands that bring
them to the view's slots, send them over the stats socket.

`parse_servers_state()` and `plan()` are pure; `Cli` is the only I/O (Python's socket module,
one command per connection, as haproxy's non-interactive CLI expects). The haproxy_runtime module
and the watcher's fast path (through an SSH forward of the socket) both apply with `Cli.apply()`.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError

__all__ = ["STRUCTURE_VARIABLE", "Cli", "CliError", "NotRunning", "Server", "answer_of", "answered", "current_slots", "desired_slots",
           "health", "parse_servers_state", "parse_var", "plan", "state_of"]

STRUCTURE_VARIABLE = "proc.k8sedge_structure"  # set by roles/edge_haproxy's haproxy.cfg

# srv_admin_state bits (haproxy include/haproxy/server-t.h). A server `disabled` in the config
# starts with FMAINT|CMAINT (5); `set server ... state ready` clears FMAINT and leaves CMAINT,
# which only remembers what the config said: FMAINT alone tells maintenance.
ADMIN_FMAINT = 0x01
ADMIN_FDRAIN = 0x08
# srv_op_state (enum srv_state): stopped, starting, running, stopping; only stopped is down.
OP_STOPPED = 0
# srv_check_status (enum healthcheck_status, include/haproxy/check-t.h): INI until the first
# check finished. srv_check_state bits: the check is configured and enabled.
CHECK_INI = 1
CHECK_RUNS = 0x02 | 0x04
_MAINT = ADMIN_FMAINT
_ERRORS = re.compile(r"^(No such|Require|Unknown command|Permission denied|Invalid|Can't|Cannot|Missing)", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


class CliError(ApplyError):
    """The runtime API refused, or the running haproxy does not have what the view expects."""


class NotRunning(CliError):
    """Nothing listens on the stats socket (no file, or a file left by a stopped haproxy)."""


@dataclass(frozen=True)
class Server:
    """One server of the running worker, as `show servers state` reports it."""

    backend: str
    name: str
    address: str
    port: int
    admin: int
    weight: int
    operational: int
    check_status: int
    check_state: int

    @property
    def state(self) -> str:
        return state_of(self.admin, self.weight)

    @property
    def checked(self) -> bool:
        """In service, with a health check that runs: the servers haproxy has an opinion on."""
        return self.state == "ready" and self.check_state & CHECK_RUNS == CHECK_RUNS


def state_of(admin: int, weight: int) -> str:
    """maint, drain or ready: maintenance wins, then a forced drain or a zero weight."""
    if admin & _MAINT:
        return "maint"
    if admin & ADMIN_FDRAIN or weight == 0:
        return "drain"
    return "ready"


def parse_servers_state(text: str) -> dict[tuple[str, str], Server]:
    """`show servers state` (format 1) by (backend, server)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1":
        raise CliError(f"show servers state: expected format version 1, got {lines[0][:80] if lines else 'nothing'!r}")
    wanted = ("be_name", "srv_name", "srv_addr", "srv_port", "srv_admin_state", "srv_uweight", "srv_op_state",
              "srv_check_status", "srv_check_state")
    indexes: list[int] = []
    servers = {}
    for line in lines[1:]:
        if line.startswith("#"):
            header = line[1:].split()
            indexes = [header.index(name) if name in header else len(header) for name in wanted]
            continue
        fields = line.split()
        values = [fields[i] if i < len(fields) else "" for i in indexes]
        if len(values) < len(wanted) or not all(values[:3]) or not all(n.isdigit() for n in values[3:]):
            raise CliError(f"show servers state: cannot read the line {line[:120]!r}")
        server = Server(values[0], values[1], values[2], *map(int, values[3:]))
        servers[(server.backend, server.name)] = server
    return servers


def health(servers: dict[tuple[str, str], Server]) -> tuple[list[str], dict[str, dict[str, int]]]:
    """(servers whose first check has not finished, backend -> {up, down}) over the checked
    servers (`Server.checked`). A server starts up with check status INI: counted up until its
    first check says otherwise, so until then haproxy has no opinion on it."""
    unsettled: list[str] = []
    backends: dict[str, dict[str, int]] = {}
    for (backend, name), server in sorted(servers.items()):
        if not server.checked:
            continue
        if server.check_status == CHECK_INI:
            unsettled.append(f"{backend}/{name}")
            continue
        counts = backends.setdefault(backend, {"up": 0, "down": 0})
        counts["down" if server.operational == OP_STOPPED else "up"] += 1
    return unsettled, backends


def parse_var(text: str) -> str:
    """The value of `get var <name>`: `proc.x: type=str value=<...>`; '' when not set."""
    match = re.search(r"value=<(.*)>\s*$", text.strip())
    return match.group(1) if match else ""


def current_slots(servers: dict[tuple[str, str], Server]) -> dict[str, dict[str, dict[str, Any]]]:
    """backend -> server -> {address, port, state}, servers in maintenance left out."""
    slots: dict[str, dict[str, dict[str, Any]]] = {}
    for (backend, name), server in sorted(servers.items()):
        if server.state != "maint":
            slots.setdefault(backend, {})[name] = {"address": server.address, "port": server.port, "state": server.state}
    return slots


def desired_slots(desired: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The view's runtime list in the shape of current_slots(), to compare or show."""
    slots: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in desired:
        for slot in entry.get("servers", []):
            if slot.get("state") != "maint":
                slots.setdefault(entry.get("backend"), {})[slot.get("name")] = {k: slot.get(k) for k in ("address", "port", "state")}
    return slots


def answer_of(command: str, answer: str) -> str:
    """haproxy's answer to one command, or CliError when it is a refusal."""
    if _ERRORS.search(answer):
        raise CliError(f"haproxy refused {command!r}: {answer.strip()[:300]}")
    return answer


def answered(command: str, answer: bytes) -> bool:
    """Whether `answer` is haproxy's whole answer to `command`. haproxy ends every answer with an
    empty line and sends none inside one (its management guide: the empty line delimits each
    command's output), except `get var`, whose one line (haproxy 2.6) comes without it."""
    if command.startswith("get var "):
        return answer.endswith(b"\n")
    return answer == b"\n" or answer.endswith(b"\n\n")


def _checked(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise CliError(f"{what}: expected a haproxy name, got {str(value)[:64]!r}")
    return value


def plan(desired: list[dict[str, Any]], servers: dict[tuple[str, str], Server]) -> list[str]:
    """Commands that take the running servers to the desired slots, in order.

    `desired` is the view's `runtime`: [{backend, servers: [{name, address, port, state}]}]. A
    backend or server that the worker does not have cannot be created here: that is a
    structural change, which needs a reload."""
    commands = []
    for entry in desired:
        backend = _checked("backend", entry.get("backend"))
        for slot in entry.get("servers", []):
            name = _checked(f"backend {backend}: server", slot.get("name"))
            current = servers.get((backend, name))
            if current is None:
                raise CliError(f"backend {backend}: server {name} is not in the running haproxy: a structural change, which needs a reload")
            ref = f"{backend}/{name}"
            want = slot.get("state")
            if want == "maint":
                if current.state != "maint":
                    commands.append(f"set server {ref} state maint")
                continue
            if want not in ("ready", "drain"):
                raise CliError(f"backend {backend}: server {name}: state: expected ready, drain or maint, got {str(want)[:32]!r}")
            address, port = slot.get("address"), slot.get("port")
            if not isinstance(address, str) or not re.fullmatch(r"[0-9A-Fa-f.:]+", address) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise CliError(f"backend {backend}: server {name}: expected an address and a port, got {str(address)[:64]!r} {port!r}")
            if (current.address, current.port) != (address, port):
                commands.append(f"set server {ref} addr {address} port {port}")
            if want == "ready":
                if current.admin & (_MAINT | ADMIN_FDRAIN):
                    commands.append(f"set server {ref} state ready")
                if current.weight == 0:
                    commands.append(f"set weight {ref} 1")
            elif current.state != "drain" or current.admin & _MAINT:
                commands.append(f"set server {ref} state drain")
    return commands


class Cli:
    """haproxy's stats socket: one command per connection."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def run(self, command: str) -> str:
        """haproxy's answer to `command`, read up to its end (`answered()`) rather than to the
        close, which through an SSH forward comes one delayed ACK (about 40 ms) later. haproxy
        always answers: a close without a byte is an error."""
        if "\n" in command or ";" in command:
            raise CliError(f"refusing to send a command with a newline or ';': {command[:80]!r}")
        answer = bytearray()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(command.encode() + b"\n")
                while not answered(command, answer):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunning(f"stats socket {self.path}: {exc}") from None
        except OSError as exc:
            raise CliError(f"stats socket {self.path}: {command.split(' ', 3)[:3]}: {exc}") from None
        if not answer:
            raise CliError(f"stats socket {self.path}: {command.split(' ', 3)[:3]}: closed without an answer")
        return answer_of(command, answer.decode(errors="replace"))

    def servers(self) -> dict[tuple[str, str], Server]:
        return parse_servers_state(self.run("show servers state"))

    def apply(self, desired: list[dict[str, Any]], servers: dict[tuple[str, str], Server]) -> tuple[list[str], dict[tuple[str, str], Server]]:
        """Send the commands that take `servers` (as just read) to the `desired` slots, then read
        the servers back to prove it: (the commands sent, the servers after). CliError when
        haproxy refuses a command or did not take them all."""
        commands = plan(desired, servers)
        if not commands:
            return [], servers
        for command in commands:
            self.run(command)
        after = self.servers()
        left = plan(desired, after)
        if left:
            raise CliError(f"haproxy did not take the changes; still to do: {'; '.join(left)}")
        return commands, after

    def wait_for(self, variable: str, value: str, seconds: float) -> str:
        """Wait until the worker that answers has `variable` == value (a reload is asynchronous)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                current = parse_var(self.run(f"get var {variable}"))
            except CliError:
                current = ""
            if current == value or time.monotonic() >= deadline:
                return current
            time.sleep(0.2)

    def health(self) -> tuple[list[str], dict[str, dict[str, int]]]:
        """haproxy's verdict now: the checked servers in service that have not had their first
        check yet, and per backend {up, down}."""
        return health(self.servers())

    def settled_health(self, seconds: float) -> dict[str, dict[str, int]]:
        """Wait until every checked server has finished its first check, then haproxy's verdict
        per backend ({up, down}). Not settling within `seconds` is an error, never a pass."""
        deadline = time.monotonic() + seconds
        while True:
            unsettled, backends = self.health()
            if not unsettled:
                return backends
            if time.monotonic() >= deadline:
                raise CliError(f"haproxy has not finished the first health check of {len(unsettled)} servers after {seconds:g} s: "
                               f"{', '.join(unsettled[:8])}{' and more' if len(unsettled) > 8 else ''}")
            time.sleep(0.2)
