"""haproxy's runtime API: reading `show servers state`, planning the commands, the socket client
(against stand-ins, and how a real haproxy ends its answers)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import (
    Cli, CliError, answered, current_slots, health, parse_servers_state, parse_var, plan, state_of)

HAPROXY = shutil.which("haproxy")

HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change"
          " srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id"
          " srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port")


def line(name: str, address: str, port: int, admin: int = 0, weight: int = 1, backend: str = "b") -> str:
    return f"3 {backend} 1 {name} {address} 2 {admin} {weight} 1 7 6 3 4 6 0 0 0 - {port} - 0 0 - - 0"


def state(*lines: str) -> str:
    return "\n".join(["1", HEADER, *lines]) + "\n"


RUNNING = parse_servers_state(state(
    line("s1", "10.0.0.1", 80),
    line("s2", "10.0.0.2", 80, admin=0x08),  # drain by the runtime API
    line("s3", "10.0.0.3", 80, weight=0),  # drain by `weight 0` in the config
    line("s4", "0.0.0.0", 0, admin=0x05),  # `disabled` in the config: FMAINT|CMAINT
    line("s5", "10.0.0.5", 80, admin=0x01),  # maint by the runtime API
))


def test_parse_reads_every_server_by_backend_and_name():
    assert RUNNING[("b", "s1")].address == "10.0.0.1" and RUNNING[("b", "s1")].port == 80
    assert [RUNNING[("b", f"s{i}")].state for i in range(1, 6)] == ["ready", "drain", "drain", "maint", "maint"]


@pytest.mark.parametrize("text", ["", "2\n", "1\n" + HEADER + "\n3 b x\n"])
def test_parse_refuses_what_it_cannot_read(text):
    with pytest.raises(CliError):
        parse_servers_state(text)


@pytest.mark.parametrize("admin, weight, expected", [
    (0, 1, "ready"), (0, 0, "drain"), (0x08, 1, "drain"), (0x01, 1, "maint"), (0x05, 1, "maint"), (0x09, 0, "maint"), (0x02, 1, "ready"),
    (0x04, 1, "ready"),  # disabled in the config, made ready at runtime
])
def test_state_of(admin, weight, expected):
    assert state_of(admin, weight) == expected


def test_current_slots_leaves_maintenance_out():
    assert current_slots(RUNNING) == {"b": {
        "s1": {"address": "10.0.0.1", "port": 80, "state": "ready"},
        "s2": {"address": "10.0.0.2", "port": 80, "state": "drain"},
        "s3": {"address": "10.0.0.3", "port": 80, "state": "drain"},
    }}


@pytest.mark.parametrize("server, want, commands", [
    ("s1", ("10.0.0.1", 80, "ready"), []),
    ("s1", ("10.0.0.9", 81, "ready"), ["set server b/s1 addr 10.0.0.9 port 81"]),
    ("s1", ("10.0.0.1", 80, "drain"), ["set server b/s1 state drain"]),
    ("s1", ("", 0, "maint"), ["set server b/s1 state maint"]),
    ("s2", ("10.0.0.2", 80, "ready"), ["set server b/s2 state ready"]),
    ("s2", ("10.0.0.2", 80, "drain"), []),
    ("s3", ("10.0.0.3", 80, "ready"), ["set weight b/s3 1"]),
    ("s3", ("10.0.0.3", 80, "drain"), []),
    ("s4", ("", 0, "maint"), []),
    ("s4", ("10.0.0.4", 8080, "ready"), ["set server b/s4 addr 10.0.0.4 port 8080", "set server b/s4 state ready"]),
    ("s4", ("fd00::4", 8080, "drain"), ["set server b/s4 addr fd00::4 port 8080", "set server b/s4 state drain"]),
    ("s5", ("10.0.0.5", 80, "ready"), ["set server b/s5 state ready"]),
])
def test_plan(server, want, commands):
    address, port, wanted = want
    desired = [{"backend": "b", "servers": [{"name": server, "address": address, "port": port, "state": wanted}]}]
    assert plan(desired, RUNNING) == commands


@pytest.mark.parametrize("desired, message", [
    ([{"backend": "c", "servers": [{"name": "s1", "state": "maint"}]}], r"backend c: server s1 is not in the running haproxy: .*needs a reload"),
    ([{"backend": "b", "servers": [{"name": "s9", "state": "maint"}]}], r"server s9 is not in the running haproxy"),
    ([{"backend": "b;shutdown", "servers": []}], r"backend: expected a haproxy name"),
    ([{"backend": "b", "servers": [{"name": "s1 x", "state": "maint"}]}], r"server: expected a haproxy name"),
    ([{"backend": "b", "servers": [{"name": "s1", "state": "up"}]}], r"state: expected ready, drain or maint"),
    ([{"backend": "b", "servers": [{"name": "s1", "address": "10.0.0.1; shutdown", "port": 80, "state": "ready"}]}], r"expected an address and a port"),
    ([{"backend": "b", "servers": [{"name": "s1", "address": "10.0.0.1", "port": 0, "state": "ready"}]}], r"expected an address and a port"),
])
def test_plan_refuses(desired, message):
    with pytest.raises(CliError, match=message):
        plan(desired, RUNNING)


@pytest.mark.parametrize("text, value", [
    ("proc.k8sedge_structure: type=str value=<abc123>\n\n", "abc123"),
    ("Variable not found\n", ""),
])
def test_parse_var(text, value):
    assert parse_var(text) == value


@pytest.fixture(name="fake_haproxy")
def fixture_fake_haproxy(tmp_path):
    """A stats socket that answers like haproxy: one command a connection, then close."""
    path = str(tmp_path / "admin.sock")
    answers = {"show servers state": state(line("s1", "10.0.0.1", 80)), "get var proc.k8sedge_structure": "proc.k8sedge_structure: type=str value=<d1>\n",
               "set server b/s9 state ready": "No such server.\n"}
    received: list[str] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                command = conn.makefile().readline().strip()
                received.append(command)
                conn.sendall(answers.get(command, "\n").encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept: a close alone does not, and another test may get its fd
    server.close()
    thread.join(timeout=5)


def test_cli_sends_one_command_a_connection_and_reads_the_answer(fake_haproxy):
    path, received = fake_haproxy
    cli = Cli(path)
    assert cli.servers()[("b", "s1")].address == "10.0.0.1"
    assert cli.wait_for("proc.k8sedge_structure", "d1", 1) == "d1"
    cli.run("set server b/s1 state ready")
    assert received == ["show servers state", "get var proc.k8sedge_structure", "set server b/s1 state ready"]


def test_cli_turns_haproxy_refusals_and_socket_errors_into_cli_errors(fake_haproxy, tmp_path):
    path, received = fake_haproxy
    with pytest.raises(CliError, match="haproxy refused 'set server b/s9 state ready': No such server"):
        Cli(path).run("set server b/s9 state ready")
    with pytest.raises(CliError, match="refusing to send a command with a newline"):
        Cli(path).run("show info\nshutdown sessions")
    with pytest.raises(CliError, match="stats socket"):
        Cli(str(tmp_path / "missing.sock")).run("show info")
    assert Cli(path).wait_for("proc.k8sedge_structure", "other", 0.3) == "d1"
    assert "shutdown sessions" not in " ".join(received)


def test_apply_sends_the_plan_and_proves_it_by_reading_back(fake_haproxy):
    path, received = fake_haproxy
    desired = [{"backend": "b", "servers": [{"name": "s1", "address": "10.0.0.1", "port": 80, "state": "drain"}]}]
    # The stand-in takes nothing: the read-back still shows s1 ready.
    with pytest.raises(CliError, match="haproxy did not take the changes; still to do: set server b/s1 state drain"):
        Cli(path).apply(desired, Cli(path).servers())
    assert received[-2:] == ["set server b/s1 state drain", "show servers state"]
    servers = Cli(path).servers()
    received.clear()
    assert Cli(path).apply([{"backend": "b", "servers": [{"name": "s1", "address": "10.0.0.1", "port": 80, "state": "ready"}]}],
                           servers) == ([], servers)
    assert received == []  # nothing to send, nothing read back


def test_apply_stops_at_a_refusal(fake_haproxy):
    path, received = fake_haproxy
    running = parse_servers_state(state(line("s1", "10.0.0.1", 80), line("s9", "0.0.0.0", 0, admin=0x05)))
    desired = [{"backend": "b", "servers": [{"name": "s9", "address": "10.0.0.9", "port": 80, "state": "ready"}]}]
    with pytest.raises(CliError, match="haproxy refused 'set server b/s9 state ready': No such server"):
        Cli(path).apply(desired, running)
    assert received == ["set server b/s9 addr 10.0.0.9 port 80", "set server b/s9 state ready"]


@pytest.mark.parametrize("command, answer, whole", [
    ("set server b/s1 state ready", b"\n", True),
    ("show servers state", b"1\n# be_id be_name\n", False),
    ("show servers state", b"1\n# be_id be_name\n3 b 1 s1\n\n", True),
    ("show info", b"Name: HAProxy\n", False),
    ("set server b/s9 state ready", b"No such server.\n\n", True),
    ("get var proc.k8sedge_structure", b"proc.k8sedge_structure: type=str value=<ab", False),
    ("get var proc.k8sedge_structure", b"proc.k8sedge_structure: type=str value=<abc>\n", True),
    ("show info", b"", False),
])
def test_answered_knows_where_haproxy_ends_an_answer(command, answer, whole):
    assert answered(command, answer) is whole


def serve_once(path: str, answer: bytes, hold: float) -> threading.Thread:
    """A socket that answers one connection with `answer` and keeps it open `hold` seconds."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(1024)
            conn.sendall(answer)
            time.sleep(hold)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_cli_returns_at_the_end_of_the_answer_not_at_the_close(tmp_path):
    """Through an SSH forward the close comes one delayed ACK after the answer: not waited for."""
    path = str(tmp_path / "admin.sock")
    thread = serve_once(path, b"Name: HAProxy\n\n", hold=3)
    started = time.monotonic()
    assert Cli(path).run("show info") == "Name: HAProxy\n\n"
    assert time.monotonic() - started < 1
    thread.join()


def test_a_close_without_an_answer_is_an_error(tmp_path):
    """What a forward looks like when the far side could not open the socket."""
    path = str(tmp_path / "admin.sock")
    thread = serve_once(path, b"", hold=0)
    with pytest.raises(CliError, match=r"stats socket .*admin.sock: \['show', 'servers', 'state'\]: closed without an answer"):
        Cli(path).servers()
    thread.join()


REAL_CONFIG = """
global
    stats socket {socket} mode 600 level admin
    set-var proc.k8sedge_structure str(d1)
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
backend b
    server s1 127.0.0.1:1 disabled
    server s2 127.0.0.1:2
"""


@pytest.mark.skipif(not HAPROXY, reason="haproxy is not installed (make setup installs it)")
def test_a_real_haproxy_s_answers_end_where_answered_says(tmp_path):
    """Every command the module and the fast path send: the answer read to the close is
    `answered`, and no earlier line end is, but for the empty line after `get var`'s not found."""
    path = tmp_path / "admin.sock"
    (tmp_path / "haproxy.cfg").write_text(REAL_CONFIG.format(socket=path))
    with (tmp_path / "haproxy.log").open("wb") as log:
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(tmp_path / "haproxy.cfg")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not path.is_socket():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
            time.sleep(0.05)
        for command in ("show info", "show servers state", "show stat -1 4 -1", "get var proc.k8sedge_structure", "get var proc.missing",
                        "set server b/s1 addr 127.0.0.3 port 3", "set server b/s1 state ready", "set weight b/s2 0",
                        "set server b/s9 state ready"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
                sock.sendall(command.encode() + b"\n")
                whole = b""
                while chunk := sock.recv(65536):
                    whole += chunk
            assert answered(command, whole), (command, whole[-80:])
            early = [end for end in range(1, len(whole)) if whole[end - 1:end] == b"\n" and answered(command, whole[:end])]
            assert early == [] or whole[early[0]:] == b"\n", (command, whole[:early[0]])
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_health_counts_the_checked_servers_in_service_once_each_had_its_first_check():
    def checked(name: str, operational: int, check_status: int, check_state: int = 6, admin: int = 0) -> str:
        return f"3 b 1 {name} 10.0.0.9 {operational} {admin} 1 1 7 {check_status} 3 4 {check_state} 0 0 0 - 80 - 0 0 - - 0"

    servers = parse_servers_state(state(
        checked("up", 2, 6), checked("going", 3, 15), checked("down", 0, 8),
        checked("unchecked", 2, 1, check_state=0),  # no health check: no opinion
        checked("maint", 0, 1, check_state=14, admin=0x05), checked("drain", 2, 6, admin=0x08),
        checked("ready-again", 2, 6, admin=0x04),  # `disabled` in the config, put in service at runtime
    ))
    assert health(servers) == ([], {"b": {"up": 3, "down": 1}})
    servers = parse_servers_state(state(checked("up", 2, 6), checked("new", 2, 1)))
    assert health(servers) == (["b/new"], {"b": {"up": 1, "down": 0}})
