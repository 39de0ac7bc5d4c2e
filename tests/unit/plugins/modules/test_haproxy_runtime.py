"""The haproxy_runtime module against a stats socket that behaves like haproxy's: check mode
sends nothing, a run sends the plan and proves it, a missing server asks for a reload."""
from __future__ import annotations

import json
import re
import socket
import threading
from types import SimpleNamespace

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import CliError
from ansible_collections.k8sedge.lb.plugins.modules.haproxy_runtime import run

HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_check_status"
          " srv_check_state srv_port")
CHECK_STATUS = {"INI": 1, "L4OK": 6, "L4CON": 8}  # haproxy's enum healthcheck_status


class FakeHaproxy:
    """Servers as haproxy keeps them, changed by the commands haproxy's CLI takes."""

    def __init__(self, path: str) -> None:
        self.servers = {("b", "s1"): ["10.0.0.1", 80, 0, 1], ("b", "s2"): ["0.0.0.0", 0, 0x05, 1]}
        self.structure = "d1"
        self.checks = {("b", "s1"): "L4OK"}  # the servers with a health check, and its last status
        self.sent: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def answer(self, command: str) -> str:
        if command == "show info":
            return "Name: HAProxy\n"
        if command == "show servers state":
            rows = [f"3 {b} 1 {s} {a} {0 if self.checks.get((b, s), 'OK').endswith('CON') else 2} {adm} {w} 1"
                    f" {CHECK_STATUS.get(self.checks.get((b, s)), 1)} {6 if (b, s) in self.checks else 0} {p}"
                    for (b, s), (a, p, adm, w) in sorted(self.servers.items())]
            return "\n".join(["1", HEADER, *rows]) + "\n"
        if command == "get var proc.k8sedge_structure":
            return f"proc.k8sedge_structure: type=str value=<{self.structure}>\n"
        self.sent.append(command)
        if match := re.fullmatch(r"set server (\w+)/(\w+) addr (\S+) port (\d+)", command):
            self.servers[match[1], match[2]][:2] = [match[3], int(match[4])]
        elif match := re.fullmatch(r"set server (\w+)/(\w+) state (ready|drain|maint)", command):
            server = self.servers[match[1], match[2]]
            # As haproxy 2.6 does: ready and drain clear FMAINT and keep CMAINT (config memory).
            server[2] = (server[2] & 0x04) | {"ready": 0, "drain": 0x08, "maint": 0x01}[match[3]]
        elif match := re.fullmatch(r"set weight (\w+)/(\w+) (\d+)", command):
            self.servers[match[1], match[2]][3] = int(match[3])
        return "\n"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.answer(conn.makefile().readline().strip()).encode())


@pytest.fixture(name="haproxy")
def fixture_haproxy(tmp_path):
    fake = FakeHaproxy(str(tmp_path / "admin.sock"))
    yield fake
    fake.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept: a close alone does not, and another test may get its fd
    fake.sock.close()


def module(path: str, backends=None, structure=None, check_mode=False, socket_mode=None, health=False):
    params = {"socket": path, "backends": backends, "structure": structure, "wait_seconds": 1, "socket_mode": socket_mode,
              "settle_seconds": 0, "health": health}
    attributes: list[dict] = []

    def set_fs_attributes_if_different(wanted: dict, changed: bool) -> bool:
        attributes.append(wanted)
        return True

    return SimpleNamespace(params=params, check_mode=check_mode, _diff=True, attributes=attributes,
                           set_fs_attributes_if_different=set_fs_attributes_if_different,
                           load_file_common_arguments=lambda wanted: {**wanted, "secontext": [None, None, None]})


def test_the_socket_is_made_root_only_while_haproxy_runs(haproxy, tmp_path):
    running = module(str(tmp_path / "admin.sock"), socket_mode="0600")
    assert run(running)["changed"] is True
    assert running.attributes == [{"path": str(tmp_path / "admin.sock"), "mode": "0600", "owner": "root", "group": "root",
                                   "secontext": [None, None, None]}]
    stopped = module(str(tmp_path / "none.sock"), socket_mode="0600")
    assert run(stopped)["running"] is False and stopped.attributes == []


DESIRED = [{"backend": "b", "servers": [{"name": "s1", "address": "10.0.0.1", "port": 80, "state": "drain"},
                                        {"name": "s2", "address": "10.0.0.2", "port": 8080, "state": "ready"}]}]


def test_check_mode_reports_and_sends_nothing(haproxy):
    result = run(module(haproxy.sock.getsockname(), DESIRED, "d1", check_mode=True))
    assert result["changed"] is True
    assert result["commands"] == ["set server b/s1 state drain", "set server b/s2 addr 10.0.0.2 port 8080", "set server b/s2 state ready"]
    assert haproxy.sent == []
    assert "+b/s2 10.0.0.2:8080 ready" in "\n".join("+" + line for line in result["diff"]["after"].splitlines())


def test_a_run_applies_the_plan_and_a_second_run_changes_nothing(haproxy):
    first = run(module(haproxy.sock.getsockname(), DESIRED, "d1"))
    assert first["changed"] is True and haproxy.sent == first["commands"]
    assert first["servers"] == {"b": {"s1": {"address": "10.0.0.1", "port": 80, "state": "drain"},
                                      "s2": {"address": "10.0.0.2", "port": 8080, "state": "ready"}}}
    second = run(module(haproxy.sock.getsockname(), DESIRED, "d1"))
    assert second["changed"] is False and second["commands"] == []


def test_without_backends_it_only_reports(haproxy):
    result = run(module(haproxy.sock.getsockname()))
    assert result == {"changed": False, "running": True, "servers": {"b": {"s1": {"address": "10.0.0.1", "port": 80, "state": "ready"}}},
                      "commands": [], "structure": "d1"}
    assert haproxy.sent == []


def test_a_read_answers_the_verdict_only_once_every_server_was_checked(haproxy):
    assert run(module(haproxy.sock.getsockname(), health=True))["health"] == {"b": {"up": 1, "down": 0}}
    haproxy.servers[("b", "s3")] = ["10.0.0.3", 80, 0, 1]
    haproxy.checks[("b", "s3")] = "L4CON"  # checked, and found down
    haproxy.checks[("b", "s2")] = "INI"  # in maintenance: haproxy has no opinion on it, checked or not
    assert run(module(haproxy.sock.getsockname(), health=True))["health"] == {"b": {"up": 1, "down": 1}}
    haproxy.servers[("b", "s4")] = ["10.0.0.4", 80, 0, 1]
    haproxy.checks[("b", "s4")] = "INI"  # a server haproxy has not checked yet: no verdict stands
    assert "health" not in run(module(haproxy.sock.getsockname(), health=True))


def test_a_worker_with_another_structure_fails_the_run_after_waiting(haproxy):
    with pytest.raises(CliError, match="the running worker has structure d1, not d2"):
        run(module(haproxy.sock.getsockname(), DESIRED, "d2"))
    assert haproxy.sent == []


def test_no_socket_means_not_running(tmp_path):
    assert run(module(str(tmp_path / "none.sock")))["running"] is False
    with pytest.raises(CliError, match="haproxy is not running"):
        run(module(str(tmp_path / "none.sock"), DESIRED))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "stale.sock"))  # a file nobody listens on, as a stopped haproxy leaves
    stale.close()
    assert run(module(str(tmp_path / "stale.sock")))["running"] is False


def test_the_desired_slots_as_json_text_are_the_same_plan(haproxy):
    as_text = run(module(haproxy.sock.getsockname(), json.dumps(DESIRED), "d1", check_mode=True))
    assert as_text["commands"] == run(module(haproxy.sock.getsockname(), DESIRED, "d1", check_mode=True))["commands"]
    with pytest.raises(CliError, match=r"^backends: expected a list or its JSON text: "):
        run(module(haproxy.sock.getsockname(), "[{", "d1"))
    with pytest.raises(CliError, match=r"^backends: expected a list of objects"):
        run(module(haproxy.sock.getsockname(), '{"backend": "b"}', "d1"))


def test_the_running_slots_as_json_text(haproxy, monkeypatch):
    from ansible_collections.k8sedge.lb.plugins.modules import haproxy_runtime

    class Exited(Exception):
        pass

    def exit_json(**result):
        raise Exited(result)

    fake = module(haproxy.sock.getsockname())
    fake.params["servers_json"] = True
    fake.exit_json = exit_json
    monkeypatch.setattr(haproxy_runtime, "AnsibleModule", lambda **_: fake)
    with pytest.raises(Exited) as exited:
        haproxy_runtime.main()
    [answered] = exited.value.args
    assert "servers" not in answered
    assert json.loads(answered["servers_json"]) == {"b": {"s1": {"address": "10.0.0.1", "port": 80, "state": "ready"}}}
