"""What the roles render carries real traffic: haproxy and nginx started on loopback with the tree
each role would apply (rendered as in test_render_with_real_binaries.py), and requests through them
to small servers on loopback that stand in for the targets.

These pin what the lab's molecule scenarios found only with traffic, where the config was valid
for `haproxy -c`/`nginx -t` and still wrong: haproxy's TLS passthrough never looked the name up
(an `accept` ended its content rules), nginx served its welcome page for a path of a known host
that no route serves, and nginx sent on the address of the connection instead of the client a
PROXY header named. Loopback only; every process is stopped by its PID.
"""
from __future__ import annotations

import copy
import datetime
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, ModelOptions, build_model
from lab.testlib.role_render import NOT_RUNNING, Role, loaded_roles, unprivileged_copy
from tests.unit.plugins.module_utils.test_model_properties import FIXTURE
from tests.unit.plugins.test_render_with_real_binaries import HAPROXY, NGINX, NGINX_MODULES, needs_haproxy, needs_nginx

LOOPBACK = "127.0.0.1"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the proxies drop privileges to their users, which needs root")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def service(name: str, annotations: dict[str, str], node_port: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "annotations": {"lb.k8sedge.io/expose": "true", **annotations}},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": node_port}]}}


def model_on_loopback(services: list[dict[str, Any]], targets: dict[str, int], options: ModelOptions,
                      config_maps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The model of these Services on the unit fixture's nodes, each backend's targets replaced by
    one server on loopback (targets: Service name -> port)."""
    model = build_model(ClusterState(services=services, nodes=copy.deepcopy(FIXTURE["nodes"]), config_maps=config_maps or []), options)
    assert not model["errors"], model["errors"]
    for backend in model["backends"]:
        backend["targets"] = [{"address": LOOPBACK, "port": targets[backend["service"]], "node": "", "zone": "", "state": "ready"}]
    return model


def certificate(name: str) -> tuple[str, str]:
    """A self-signed certificate for name and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())


class Backend:
    """A loopback server answering each connection with answer(first bytes it got, connection)."""

    def __init__(self, answer: Callable[[bytes, socket.socket], bytes], tls: ssl.SSLContext | None = None) -> None:
        self.answer, self.tls = answer, tls
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                conn.sendall(self.answer(conn.recv(65536), conn))
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


def http_answer(body: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()


def exchange(port: int, data: bytes, tls: ssl.SSLContext | None = None, server_name: str = "") -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=5) as raw:
        conn = tls.wrap_socket(raw, server_hostname=server_name) if tls else raw
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


def wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the proxy exited with {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {LOOPBACK}:{port}:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module", name="roles")
def fixture_roles() -> Iterator[dict[str, Role]]:
    with loaded_roles() as roles:
        yield roles


@pytest.fixture(name="haproxy_running")
def fixture_haproxy_running(roles: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., None]]:
    procs: list[subprocess.Popen] = []

    def start(model: dict[str, Any], certificates: dict[str, dict[str, str]], wait_port: int) -> None:
        (tmp_path / "chroot").mkdir()
        params = {
            "edge_haproxy_model": model, "edge_haproxy_certificates": certificates, "edge_haproxy_bind_address": LOOPBACK,
            "edge_haproxy_admin_port": free_port(), "edge_haproxy_chroot": str(tmp_path / "chroot"),
            "edge_haproxy_stats_socket": str(tmp_path / "admin.sock"),
            "edge_haproxy_state_dir": str(tmp_path / "state"), "__edge_haproxy_config_dir": str(tmp_path / "etc"),
        }
        variables = roles["haproxy"].run(params, NOT_RUNNING)
        config = Path(roles["haproxy"].value(variables, "__edge_haproxy_staging")) / "haproxy.cfg"
        log = tmp_path / "haproxy.log"
        with open(log, "wb") as out:
            procs.append(subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        wait_for_port(wait_port, procs[-1], log)

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture(name="nginx_running")
def fixture_nginx_running(roles: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., None]]:
    procs: list[subprocess.Popen] = []

    def start(model: dict[str, Any], wait_port: int) -> None:
        params = {
            "edge_nginx_model": model, "edge_nginx_pool_addresses": {"default": LOOPBACK}, "edge_nginx_admin_port": free_port(),
            "edge_nginx_access_log": str(tmp_path / "access.log"),
            "__edge_nginx_root": str(tmp_path / "etc"), "__edge_nginx_state": str(tmp_path / "state"),
        }
        variables = roles["nginx"].run(params)
        config = unprivileged_copy(Path(roles["nginx"].value(variables, "__edge_nginx_dir")) / "nginx.conf", tmp_path)
        (tmp_path / "prefix").mkdir()
        (tmp_path / "prefix" / "modules").symlink_to(NGINX_MODULES)
        log = tmp_path / "startup.log"
        procs.append(subprocess.Popen([NGINX, "-p", f"{tmp_path}/prefix/", "-e", str(log), "-c", str(config), "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for_port(wait_port, procs[-1], log)

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture(name="pod")
def fixture_pod(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A TLS server for pod.test with its own certificate (the edge never holds it), and a client
    that trusts only that certificate."""
    cert, key = certificate("pod.test")
    (tmp_path / "pod.pem").write_text(cert + key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "pod.pem")
    backend = Backend(lambda data, conn: http_answer(f"the pod decrypted: {data.split(b' ')[0].decode()}"), server)
    yield {"backend": backend, "client": ssl.create_default_context(cadata=cert), "cert": cert}
    backend.close()


@needs_haproxy
@needs_root
def test_haproxy_passes_tls_through_by_sni_to_the_pod(haproxy_running, pod):
    https = free_port()
    model = model_on_loopback([service("tls", {"lb.k8sedge.io/hosts": "pod.test", "lb.k8sedge.io/tls": "passthrough"}, 30443)],
                              {"tls": pod["backend"].port}, ModelOptions(http_port=free_port(), https_port=https))
    haproxy_running(model, {}, https)
    answer = exchange(https, b"GET / HTTP/1.1\r\nHost: pod.test\r\n\r\n", pod["client"], "pod.test")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"the pod decrypted: GET"), answer
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        exchange(https, b"GET / HTTP/1.1\r\n\r\n", ssl.create_default_context(cadata=pod["cert"]), "other.test")


@needs_nginx
@needs_root
def test_nginx_passes_tls_through_by_sni_to_the_pod(nginx_running, pod):
    https = free_port()
    model = model_on_loopback([service("tls", {"lb.k8sedge.io/hosts": "pod.test", "lb.k8sedge.io/tls": "passthrough"}, 30443)],
                              {"tls": pod["backend"].port}, ModelOptions(http_port=free_port(), https_port=https))
    nginx_running(model, https)
    answer = exchange(https, b"GET / HTTP/1.1\r\nHost: pod.test\r\n\r\n", pod["client"], "pod.test")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"the pod decrypted: GET"), answer


@needs_nginx
@needs_root
def test_nginx_answers_404_for_a_path_no_route_serves(nginx_running):
    http = free_port()
    backend = Backend(lambda data, conn: http_answer("from the backend"))
    model = model_on_loopback([service("web", {"lb.k8sedge.io/hosts": "web.test", "lb.k8sedge.io/path": "/api"}, 30080)],
                              {"web": backend.port}, ModelOptions(http_port=http, https_port=free_port()))
    try:
        nginx_running(model, http)
        assert exchange(http, b"GET /api HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n").endswith(b"from the backend")
        other = exchange(http, b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
        assert other.startswith(b"HTTP/1.1 404 ") and other.endswith(b"k8sedge: no route for this host and path\n"), other
    finally:
        backend.close()


@pytest.mark.parametrize("engine", [pytest.param("haproxy", marks=needs_haproxy), pytest.param("nginx", marks=needs_nginx)])
@needs_root
def test_a_client_named_by_proxy_protocol_is_the_one_sent_on(engine, haproxy_running, nginx_running):
    """tcp-services `<port>: default/web:80:PROXY:PROXY`: the target gets the client the PROXY
    header named, not the address of the connection to the edge."""
    edge_port = free_port()
    backend = Backend(lambda data, conn: data.split(b"\r\n", 1)[0] + b"\n")
    config_map = {"metadata": {"name": "tcp-services", "namespace": "ingress-nginx"},
                  "data": {str(edge_port): "default/web:80:PROXY:PROXY"}}
    model = model_on_loopback([service("web", {}, 30080)], {"web": backend.port},
                              ModelOptions(http_port=free_port(), https_port=free_port(), tcp_services_configmap="ingress-nginx/tcp-services"),
                              [config_map])
    try:
        if engine == "haproxy":
            haproxy_running(model, {}, edge_port)
        else:
            nginx_running(model, edge_port)
        sent = exchange(edge_port, f"PROXY TCP4 10.9.8.7 {LOOPBACK} 4242 {edge_port}\r\nhello".encode())
        assert sent.startswith(b"PROXY TCP4 10.9.8.7 127.0.0.1 4242 "), sent
    finally:
        backend.close()
