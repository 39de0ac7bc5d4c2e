"""haproxy's runtime API: reading `show servers state`, planning the commands, the socket client."""
from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import (
    Cli, CliError, current_slots, parse_servers_state, parse_var, plan, state_of)

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
    server.close()


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
