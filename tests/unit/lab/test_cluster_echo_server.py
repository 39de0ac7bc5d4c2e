"""The echo server as a process on 127.0.0.1: what the seed's checks and the edge will send it."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from lab import pki
from lab.cluster._echo_protocol import proxy_v1_header

REPO = Path(__file__).resolve().parents[3]


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a certificate for passthrough.pctest, as the lab makes them."""
    d = tmp_path_factory.mktemp("pki")
    files = {name: d / name for name in ("ca.crt", "ca.key", "pod.crt", "pod.key")}
    pki.create_ca(files["ca.crt"], files["ca.key"])
    pki.create_server_cert(files["pod.crt"], files["pod.key"], files["ca.crt"], files["ca.key"],
                           dns_names=["passthrough.pctest"], ip_addresses=[], common_name="passthrough.pctest")
    return files


@pytest.fixture(scope="module")
def echo(tls_files: dict[str, Path]) -> Iterator[dict[str, int]]:
    ports = {"http": _free_port(socket.SOCK_STREAM), "tcp": _free_port(socket.SOCK_STREAM), "udp": _free_port(socket.SOCK_DGRAM),
             "https": _free_port(socket.SOCK_STREAM)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.cluster.echo", "--pod", "echo-abc-x1y2z", "--namespace", "default", "--node", "node1",
         "--ip", "127.0.0.1", "--http-port", str(ports["http"]), "--tcp-port", str(ports["tcp"]),
         "--udp-port", str(ports["udp"]), "--drain-seconds", "0.5"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "ECHO_HTTPS_PORT": str(ports["https"]), "ECHO_TLS_CERT": str(tls_files["pod.crt"]),
             "ECHO_TLS_KEY": str(tls_files["pod.key"])})
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", ports["http"]), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("echo server did not start")
            time.sleep(0.05)
    yield {**ports, "pid": proc.pid}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _exchange(port: int, data: bytes, until_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        out = b""
        sock.settimeout(0.3 if not until_close else 3)
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except socket.timeout:
            pass
    return out


@pytest.mark.parametrize("port_key, request_bytes", [
    ("http", b"HEAD / HTTP/1.1\r\nHost: s2.pctest\r\n\r\n"),
    ("http", b"HEAD / HTTP/1.1\n\n"),  # typed by hand in telnet, no Host
    ("tcp", b"HEAD / HTTP/1.1\r\n\r\n"),  # the seed's TCP check on the raw port
])
def test_head_gets_200_without_body(echo, port_key, request_bytes):
    out = _exchange(echo[port_key], request_bytes)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nX-Pod-Name: echo-abc-x1y2z" in head
    assert body == b""


def test_keep_alive_serves_two_requests_on_one_connection(echo):
    out = _exchange(echo["http"], b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    until_close=True)
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert b"real path=/a\n" in out and b"real path=/b\n" in out


def test_proxy_protocol_client_is_reported(echo):
    header = proxy_v1_header("192.0.2.7", 51000, "127.0.0.1", echo["http"])
    out = _exchange(echo["http"], header + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", until_close=True)
    assert b"\tclient_address=127.0.0.1\n\tproxy_protocol_client=192.0.2.7:51000\n\tproxy_protocol_version=1\n" in out


def test_https_port_serves_the_echo_with_its_own_certificate(echo, tls_files):
    context = ssl.create_default_context(cafile=str(tls_files["ca.crt"]))
    with socket.create_connection(("127.0.0.1", echo["https"]), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname="passthrough.pctest") as tls:
            seen = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET /x HTTP/1.1\r\nHost: passthrough.pctest\r\nConnection: close\r\n\r\n")
            out = b""
            while chunk := tls.recv(65536):
                out += chunk
    assert seen == ssl.PEM_cert_to_DER_cert(tls_files["pod.crt"].read_text())
    assert out.startswith(b"HTTP/1.1 200 OK")
    assert b"\trequest_uri=https://passthrough.pctest/x\n\ttls_version=TLSv1.3\n\ttls_server_name=passthrough.pctest\n" in out


def test_https_port_needs_a_certificate():
    result = subprocess.run([sys.executable, "-m", "lab.cluster.echo", "--ip", "127.0.0.1", "--http-port", "0", "--tcp-port", "0",
                             "--udp-port", "0", "--https-port", str(_free_port(socket.SOCK_STREAM))],
                            cwd=REPO, capture_output=True, text=True, timeout=30, env={**os.environ, "ECHO_TLS_CERT": ""})
    assert result.returncode == 2
    assert "--https-port needs --tls-cert and --tls-key" in result.stderr


def test_tcp_port_echoes_bytes(echo):
    assert _exchange(echo["tcp"], b"hello\n") == b"hello\n"


def test_udp_port_prefixes_pod_name(echo):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(b"ping", ("127.0.0.1", echo["udp"]))
        assert sock.recvfrom(1024)[0] == b"echo-abc-x1y2z: ping"


def test_healthz(echo):
    out = _exchange(echo["http"], b"GET /healthz HTTP/1.0\r\n\r\n", until_close=True)
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"\r\n\r\nok\n")


def test_zz_sigterm_drains_then_exits_zero(echo):
    proc_pid = echo["pid"]
    os.kill(proc_pid, signal.SIGTERM)
    time.sleep(0.2)
    out = _exchange(echo["http"], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out, "still serving while draining"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc_pid, os.WNOHANG)
        if pid:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.05)
    else:
        pytest.fail("echo server still running 5 s after SIGTERM")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", echo["http"]), timeout=1)
