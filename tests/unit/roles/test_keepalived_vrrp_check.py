"""roles/edge_keepalived/files/vrrp-check, keepalived's track script: the proxy probe against real
sockets on loopback, and the config check against the state record (k8sedge.lb.edge_state)."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/edge_keepalived/files/vrrp-check"
_loader = importlib.machinery.SourceFileLoader("vrrp_check", str(SCRIPT))
_spec = importlib.util.spec_from_loader("vrrp_check", _loader)
check = importlib.util.module_from_spec(_spec)
_loader.exec_module(check)

GEN = "a" * 64
OTHER = "b" * 64
NOW = 1_700_000_000.0


@contextmanager
def admin(answer: bytes | None) -> Iterator[tuple[int, threading.Event]]:
    """A listener on loopback that answers every connection with `answer` (None: never answers).
    Yields its port and an event that stops it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.05)
    stop = threading.Event()
    held = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.recv(1024)
            if answer is None:
                held.append(conn)
            else:
                conn.sendall(answer)
                conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], stop
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


def test_probe_accepts_2xx_only():
    with admin(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (port, _):
        assert check.probe("127.0.0.1", port, "/stats", 0.5) is None
    with admin(b"HTTP/1.1 503 Service Unavailable\r\n\r\n") as (port, _):
        assert check.probe("127.0.0.1", port, "/stats", 0.5) == f"proxy admin 127.0.0.1:{port}/stats: answered 'HTTP/1.1 503 Service Unavailable'"
    with admin(b"SSH-2.0-OpenSSH\r\n") as (port, _):
        assert "answered 'SSH-2.0-OpenSSH'" in check.probe("127.0.0.1", port, "/stats", 0.5)


def test_probe_refused_and_hung():
    port = free_port()
    assert check.probe("127.0.0.1", port, "/stats", 0.5) == f"proxy admin 127.0.0.1:{port}: Connection refused"
    with admin(None) as (port, _):
        started = time.monotonic()
        reason = check.probe("127.0.0.1", port, "/stats", 0.3)
        assert reason.startswith(f"proxy admin 127.0.0.1:{port}: ") and time.monotonic() - started < 0.6


@contextmanager
def stats_socket(path: Path, answer: bytes | None) -> Iterator[None]:
    """A unix socket that answers every command with `answer` and closes, as haproxy's CLI does
    (None: never answers)."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    server.settimeout(0.05)
    stop = threading.Event()
    held = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            assert conn.recv(64) == b"show info\n"
            if answer is None:
                held.append(conn)
            else:
                conn.sendall(answer)
                conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()


def test_probe_socket(tmp_path):
    path = tmp_path / "admin.sock"
    assert check.probe_socket(str(path), 0.3) == f"haproxy stats socket {path}: No such file or directory"
    with stats_socket(path, b"Name: HAProxy\nVersion: 2.6.12\nPid: 4242\nUptime_sec: 9\n\n"):
        assert check.probe_socket(str(path), 0.3) is None
    path.unlink()
    with stats_socket(path, b"Unknown command.\n"):
        assert check.probe_socket(str(path), 0.3) == f"haproxy stats socket {path}: answered b'Unknown command.\\n'"
    path.unlink()
    with stats_socket(path, None):
        started = time.monotonic()
        assert check.probe_socket(str(path), 0.3).startswith(f"haproxy stats socket {path}: ")
        assert time.monotonic() - started < 0.6
    path.unlink()
    with stats_socket(path, b"Pid: 1\n"):
        pass
    # A socket file nobody listens on any more: what a killed haproxy leaves behind.
    assert check.probe_socket(str(path), 0.3) == f"haproxy stats socket {path}: Connection refused"


def test_watch_runs_its_time_when_healthy_and_stops_at_the_first_miss():
    with admin(b"HTTP/1.0 200 OK\r\n\r\n") as (port, stop):
        started = time.monotonic()
        assert check.watch(lambda: check.probe("127.0.0.1", port, "/stats", 0.2), 0.4, 0.05) is None
        assert 0.35 < time.monotonic() - started < 0.7
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        assert "Connection refused" in check.watch(lambda: check.probe("127.0.0.1", port, "/stats", 0.2), 5.0, 0.05)
        # Seen within a poll or two of the listener closing, not at the end of the watch.
        assert time.monotonic() - started < 0.6


def state(tmp_path: Path, rollout: object, serving: str | None = GEN) -> str:
    """A state record as k8sedge.lb.edge_state writes it (a str: the file's text as it is)."""
    path = tmp_path / "state.json"
    record = {"version": 1, "rollout": rollout}
    if serving is not None:
        record["serving"] = {"generation": serving, "routes": [], "backends": []}
    path.write_text(rollout if isinstance(rollout, str) else json.dumps(record))
    return str(path)


@pytest.mark.parametrize("rollout, serving, verdict", [
    ({"status": "passed", "since": NOW - 9999}, GEN, None),
    ({"status": "applying", "generation": GEN, "since": NOW - 5}, GEN, None),
    # A rollout in flight: the proxy still serves the previous generation, within the grace period.
    ({"status": "applying", "generation": GEN, "since": NOW - 60}, OTHER, None),
    ({"status": "applying", "generation": GEN, "since": NOW - 121}, OTHER,
     "proxy serves generation bbbbbbbbbbbb, the rollout applies aaaaaaaaaaaa since 121 s (grace 120 s)"),
    ({"status": "applying", "generation": GEN, "since": NOW - 200}, None, "proxy serves generation none"),
    # A failed rollout that could not be rolled back gives the VIP up whatever the proxy serves.
    ({"status": "failed", "failed_generation": GEN, "since": NOW}, GEN,
     "rollout of generation aaaaaaaaaaaa failed its probes on this host"),
    ({"status": "failed", "failed_generation": GEN, "since": NOW}, OTHER, "failed its probes"),
    # Rolled back: the host serves its last-known-good config and keeps its VIPs.
    ({"status": "rolled-back", "failed_generation": OTHER, "since": NOW - 9999}, GEN, None),
    ({"status": "done", "since": NOW}, GEN, "rollout.status: expected one of applying, passed, failed, rolled-back"),
    ({"status": "passed", "since": "yesterday"}, GEN, "rollout.since: expected unix seconds"),
    ({"status": "passed", "since": True}, GEN, "rollout.since: expected unix seconds"),
    ([GEN], GEN, "rollout: expected an object"),
    ('{"version": 1, "rollout": ', GEN, "unreadable"),
    ("[1]", GEN, "unreadable (expected an object)"),
])
def test_config_reason(tmp_path, rollout, serving, verdict):
    reason = check.config_reason(state(tmp_path, rollout, serving), 120, NOW)
    assert (reason is None) if verdict is None else (verdict in reason), reason


def test_the_record_is_parsed_again_only_when_it_changed(tmp_path, monkeypatch):
    cache = str(tmp_path / "state.cache")
    path = state(tmp_path, {"status": "failed", "failed_generation": GEN, "since": NOW})
    assert "failed its probes" in check.config_reason(path, 120, NOW, cache)
    parsed, loads = [], json.loads

    def counted(text, **kwargs):
        if isinstance(text, bytes):  # the record (the cache is read as text)
            parsed.append(text)
        return loads(text, **kwargs)

    monkeypatch.setattr(check.json, "loads", counted)
    assert "failed its probes" in check.config_reason(path, 120, NOW, cache) and parsed == []  # from the cache
    state(tmp_path, {"status": "passed", "since": NOW + 1})  # a new record: another size, another mtime
    assert check.config_reason(path, 120, NOW, cache) is None and len(parsed) == 1
    Path(cache).write_text("{damaged")
    assert check.config_reason(path, 120, NOW, cache) is None and len(parsed) == 2


def test_a_drained_host_is_unhealthy_whatever_its_rollout_says(tmp_path):
    cache = str(tmp_path / "state.cache")
    path = tmp_path / "state.json"
    record = {"version": 1, "rollout": {"status": "passed", "since": NOW},
              "serving": {"generation": GEN, "routes": [], "backends": []}}
    path.write_text(json.dumps(record))
    assert check.config_reason(str(path), 120, NOW, cache) is None
    path.write_text(json.dumps({**record, "maintenance": {"since": NOW, "reason": "kernel 6.1.99"}}))
    assert check.config_reason(str(path), 120, NOW, cache) == \
        "drained for maintenance (kernel 6.1.99): playbooks/undrain.yml brings it back"
    path.write_text(json.dumps({"version": 1, "maintenance": {"since": NOW, "reason": ""}}))  # before any rollout
    assert check.config_reason(str(path), 120, NOW, cache).startswith("drained for maintenance:")
    path.write_text(json.dumps(record))
    assert check.config_reason(str(path), 120, NOW, cache) is None


def test_no_record_or_no_rollout_yet_is_healthy(tmp_path):
    assert check.config_reason(str(tmp_path / "state.json"), 120, NOW) is None
    (tmp_path / "state.json").write_text('{"version": 1, "serving": {"generation": "aa", "routes": [], "backends": []}}')
    assert check.config_reason(str(tmp_path / "state.json"), 120, NOW) is None


def test_report_records_changes_only(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(check.syslog, "syslog", lambda priority, message: logged.append(message))
    check.report(str(tmp_path / "status"), "proxy", None)
    check.report(str(tmp_path / "status"), "proxy", None)
    check.report(str(tmp_path / "status"), "proxy", "proxy admin 127.0.0.1:8404: Connection refused")
    assert (tmp_path / "status/proxy").read_text() == "down: proxy admin 127.0.0.1:8404: Connection refused\n"
    assert logged == ["proxy: up", "proxy: down: proxy admin 127.0.0.1:8404: Connection refused"]


def test_the_script_as_keepalived_runs_it(tmp_path):
    """Exit status is the verdict; the interpreter flags of the shebang (-IS) are honoured."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-IS", str(SCRIPT), *args, "--status-dir", str(tmp_path / "status")],
                              capture_output=True, text=True, timeout=10)

    with admin(b"HTTP/1.0 200 OK\r\n\r\n") as (port, _):
        assert run("proxy", "--host", "127.0.0.1", "--port", str(port), "--path", "/stub_status").returncode == 0
        started = time.monotonic()
        assert run("proxy", "--host", "127.0.0.1", "--port", str(port), "--path", "/stub_status", "--watch", "0.6",
                   "--poll", "0.05").returncode == 0
        # The watch ends by --watch seconds after the process started, start-up included.
        assert time.monotonic() - started < 1.2
    assert run("proxy", "--host", "127.0.0.1", "--port", str(free_port()), "--path", "/stub_status").returncode == 1
    with stats_socket(tmp_path / "admin.sock", b"Pid: 7\n"):
        assert run("proxy", "--socket", str(tmp_path / "admin.sock"), "--watch", "0.3", "--poll", "0.05").returncode == 0
    assert run("proxy", "--socket", str(tmp_path / "admin.sock")).returncode == 1
    assert (tmp_path / "status/proxy").read_text() == f"down: haproxy stats socket {tmp_path / 'admin.sock'}: Connection refused\n"
    state_path = state(tmp_path, {"status": "failed", "failed_generation": GEN, "since": NOW})
    assert run("config", "--state", state_path).returncode == 1
    assert (tmp_path / "status/config").read_text().startswith("down: rollout of generation aaaaaaaaaaaa failed")
    state(tmp_path, {"status": "passed", "since": NOW})
    assert run("config", "--state", state_path).returncode == 0
    assert (tmp_path / "status/config").read_text() == "up\n"
