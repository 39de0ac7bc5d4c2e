"""The probe engine against real servers on loopback, started by the tests: HTTP, HTTPS with a
test CA, TCP, UDP, a server that hangs, one that resets, one that needs a PROXY header."""
from __future__ import annotations

import hashlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._probe import ProbeSpecError, parse, proxy_header, run_all, run_one
from lab.pki import create_ca, create_server_cert

Handler = Callable[[socket.socket], None]


class TcpServer:
    """Accepts on 127.0.0.1 and runs handler(conn) per connection in a thread."""

    def __init__(self, handler: Handler, context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.context = context
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_answer(status: str = "200 OK", body: bytes = b"Hostname: s2-abc\n", headers: str = "Content-Type: text/plain\r\n",
                chunked: bool = False) -> Handler:
    def handle(conn: socket.socket) -> None:
        head = read_head(conn)
        handle.requests.append(head)  # type: ignore[attr-defined]
        if chunked:
            payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:])) + b"0\r\n\r\n"
            conn.sendall(f"HTTP/1.1 {status}\r\n{headers}Transfer-Encoding: chunked\r\n\r\n".encode() + payload)
        else:
            conn.sendall(f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    handle.requests = []  # type: ignore[attr-defined]
    return handle


@pytest.fixture
def serve() -> Iterator[Callable[..., TcpServer]]:
    servers: list[TcpServer] = []

    def start(handler: Handler, context: ssl.SSLContext | None = None) -> TcpServer:
        servers.append(TcpServer(handler, context))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("pki")
    paths = {name: where / name for name in ("ca.crt", "ca.key", "shop.crt", "shop.key")}
    create_ca(paths["ca.crt"], paths["ca.key"], "probe-test-ca")
    create_server_cert(paths["shop.crt"], paths["shop.key"], paths["ca.crt"], paths["ca.key"], dns_names=["shop.pctest"],
                       ip_addresses=[], common_name="shop.pctest")
    return paths


@pytest.fixture
def tls_server(pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["shop.crt"], pki["shop.key"])
    seen: list[str | None] = []

    def remember(sock, name, _context):
        seen.append(name)
    context.sni_callback = remember
    context.seen = seen  # type: ignore[attr-defined]
    return context


def probe(**spec):
    return run_one(parse({"name": "p", "address": "127.0.0.1", **spec}))


# --- HTTP ---------------------------------------------------------------------------------------

def test_http_sends_host_header_and_checks_status_body_and_headers(serve):
    handler = http_answer()
    server = serve(handler)
    result = probe(port=server.port, host="s2.pctest", body_regex="Hostname: s2-", expect_headers={"Content-Type": "^text/"})
    assert result.ok, result.error
    assert result.status == 200 and result.body == "Hostname: s2-abc\n"
    assert result.latency_ms is not None and result.connect_ms is not None and result.latency_ms >= result.connect_ms
    request = handler.requests[0].decode()
    assert request.startswith("GET / HTTP/1.1\r\nHost: s2.pctest\r\n")


@pytest.mark.parametrize(("spec", "error"), [
    ({"status_code": ["200"]}, "expected status 200, got 503; body: 'no server'"),
    ({"status_code": ["200-299", "404"]}, "expected status 200-299, 404, got 503"),
])
def test_http_status_mismatch_says_what_came_back(serve, spec, error):
    server = serve(http_answer("503 Service Unavailable", b"no server"))
    result = probe(port=server.port, **spec)
    assert not result.ok and result.status == 503
    assert result.error.startswith(error)


def test_http_status_range_body_not_regex_and_missing_header(serve):
    server = serve(http_answer("404 Not Found", b"k8sedge: no route for this host and path"))
    assert probe(port=server.port, status_code=["200-499"]).ok
    refused = probe(port=server.port, status_code=["200-499"], body_not_regex="^k8sedge: no route")
    assert not refused.ok and "matches '^k8sedge: no route'" in refused.error
    missing = probe(port=server.port, status_code=["404"], expect_headers={"Location": "^https://"})
    assert not missing.ok and missing.error == "no Location header in the response (status 404)"


def test_http_chunked_body_and_head_request(serve):
    server = serve(http_answer(body=b"Hostname: chunked-pod\n", chunked=True))
    assert probe(port=server.port, body_regex="chunked-pod$").ok
    head = http_answer()
    server = serve(head)
    assert probe(port=server.port, method="HEAD").ok
    assert head.requests[0].startswith(b"HEAD / HTTP/1.1\r\n")


def test_https_with_sni_and_test_ca(serve, pki, tls_server):
    server = serve(http_answer(body=b"shop\n"), context=tls_server)
    result = probe(type="https", port=server.port, host="shop.pctest", ca_path=str(pki["ca.crt"]), body_regex="shop")
    assert result.ok, result.error
    assert tls_server.seen[-1] == "shop.pctest"
    assert result.tls["version"].startswith("TLS")


def test_https_sni_differs_from_host_and_certificate_checks(serve, pki, tls_server):
    server = serve(http_answer(), context=tls_server)
    wrong_name = probe(type="https", port=server.port, host="other.pctest", ca_path=str(pki["ca.crt"]))
    assert not wrong_name.ok and wrong_name.error.startswith("TLS certificate not accepted")
    assert probe(type="https", port=server.port, host="other.pctest", sni="shop.pctest", ca_path=str(pki["ca.crt"])).ok
    untrusted = probe(type="https", port=server.port, host="shop.pctest")
    assert not untrusted.ok and "certificate not accepted" in untrusted.error
    assert probe(type="https", port=server.port, host="shop.pctest", validate_certs=False).ok


def test_https_checks_the_served_certificate_is_the_one_given(serve, pki, tls_server):
    """The fingerprint check holds with or without chain validation: a rotation that did not take fails."""
    server = serve(http_answer(), context=tls_server)
    served = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pki["shop.crt"].read_text())).hexdigest()
    given = probe(type="https", port=server.port, host="shop.pctest", ca_path=str(pki["ca.crt"]),
                  certificate_sha256=["0" * 64, served.upper()])
    assert given.ok and given.tls["certificate_sha256"] == served, given.error
    stale = probe(type="https", port=server.port, host="shop.pctest", validate_certs=False, certificate_sha256=["ab" * 32])
    assert not stale.ok and stale.error == (f"served certificate SHA-256 {served[:16]}..., expected abababababababab...:"
                                            " not the certificate the edge was given")
    with pytest.raises(ProbeSpecError, match="certificate_sha256: expected a list of SHA-256 fingerprints"):
        parse({"name": "p", "type": "https", "address": "127.0.0.1", "port": 443, "certificate_sha256": "ab" * 32})


# --- TCP ----------------------------------------------------------------------------------------

def test_tcp_send_and_expect_like_the_seed(serve):
    server = serve(http_answer())
    result = probe(type="tcp", port=server.port, send="HEAD / HTTP/1.1\r\nHost: s2.pctest\r\n\r\n", expect="^HTTP/1.1 200")
    assert result.ok, result.error
    assert result.received.startswith("HTTP/1.1 200 OK")
    wrong = probe(type="tcp", port=server.port, send="HEAD / HTTP/1.1\r\n\r\n", expect="^HTTP/1.1 204")
    assert not wrong.ok and wrong.error.startswith("expected '^HTTP/1.1 204', received 'HTTP/1.1 200 OK")


def test_tcp_half_close_gets_the_answer_of_a_server_that_reads_to_the_end(serve):
    def upper(conn: socket.socket) -> None:
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        conn.sendall(data.upper())
    server = serve(upper)
    assert probe(type="tcp", port=server.port, send="ping", half_close=True, expect="^PING$").ok


def test_tcp_connect_only_and_refused():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        assert probe(type="tcp", port=listener.getsockname()[1]).ok
        free = listener.getsockname()[1]
    refused = probe(type="tcp", port=free)
    assert not refused.ok and refused.error == "connection refused"


def test_tcp_hold_tells_a_proxy_that_closes_at_once(serve):
    closes = serve(lambda conn: None)  # accepted, then closed: what a proxy without backends does
    result = probe(type="tcp", port=closes.port, hold=0.5)
    assert not result.ok and result.error.startswith("connection closed by the peer after")
    keeps = serve(lambda conn: time.sleep(1))
    assert probe(type="tcp", port=keeps.port, hold=0.3).ok
    banner = serve(lambda conn: conn.sendall(b"220 ready\r\n"))
    result = probe(type="tcp", port=banner.port, hold=0.5)
    assert result.ok and result.received == "220 ready\r\n"


def test_tcp_tls_handshake_for_passthrough(serve, pki, tls_server):
    server = serve(lambda conn: conn.recv(1), context=tls_server)
    result = probe(type="tcp", tls=True, sni="shop.pctest", port=server.port, ca_path=str(pki["ca.crt"]))
    assert result.ok, result.error
    assert tls_server.seen[-1] == "shop.pctest"
    plain = serve(lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    refused = probe(type="tcp", tls=True, sni="shop.pctest", port=plain.port, validate_certs=False)
    assert not refused.ok and refused.error.startswith("TLS handshake failed")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_header_with_real_addresses(serve, version):
    received: list[bytes] = []

    def needs_proxy(conn: socket.socket) -> None:
        data = conn.recv(4096)
        while b"\r\n\r\n" not in data[data.find(b"HEAD"):] if b"HEAD" in data else True:
            data += conn.recv(4096)
        received.append(data)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    server = serve(needs_proxy)
    result = probe(type="tcp", port=server.port, send_proxy=version, send="HEAD / HTTP/1.1\r\n\r\n", expect="^HTTP/1.1 200")
    assert result.ok, result.error
    data = received[0]
    if version == "v1":
        assert data.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")
        assert data.split(b"\r\n", 1)[0].split(b" ")[5] == str(server.port).encode()
    else:
        assert data.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
        assert struct.unpack("!H", data[26:28])[0] == server.port
    assert data.endswith(b"HEAD / HTTP/1.1\r\n\r\n")


def test_proxy_header_ipv6():
    assert proxy_header("v1", ("::1", 1000), ("::2", 80)) == b"PROXY TCP6 ::1 ::2 1000 80\r\n"
    assert proxy_header("v2", ("::1", 1000), ("::2", 80))[12:16] == b"\x21\x21\x00\x24"


def test_http_with_proxy_header(serve):
    def needs_proxy(conn: socket.socket) -> None:
        head = read_head(conn)
        status = "200 OK" if head.startswith(b"PROXY TCP4 ") else "400 Bad Request"
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
    server = serve(needs_proxy)
    assert probe(port=server.port, send_proxy="v1").ok
    assert probe(port=server.port).status == 400


# --- failures in time ---------------------------------------------------------------------------

def test_a_server_that_hangs_fails_at_the_timeout(serve):
    server = serve(lambda conn: time.sleep(5))
    started = time.monotonic()
    result = probe(port=server.port, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert not result.ok and result.error == "timed out after 0.5 s"


def test_a_server_that_drips_bytes_is_bounded_by_the_total_timeout(serve):
    def drip(conn: socket.socket) -> None:
        read_head(conn)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            conn.sendall(bytes([byte]))
            time.sleep(0.1)
    server = serve(drip)
    started = time.monotonic()
    result = probe(port=server.port, timeout=1)
    assert time.monotonic() - started < 2
    assert not result.ok and result.error == "timed out after 1 s"


def test_a_server_that_resets(serve):
    def reset(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server = serve(reset)
    result = probe(port=server.port)
    assert not result.ok and result.error == "connection reset by the peer"
    closed = serve(lambda conn: None)
    result = probe(port=closed.port)
    assert not result.ok and (result.error.startswith("connection closed before") or result.error.startswith("connection reset"))


def test_overall_deadline_and_concurrency(serve):
    server = serve(lambda conn: time.sleep(3))
    probes = [parse({"name": f"p{i}", "address": "127.0.0.1", "port": server.port, "timeout": 2}) for i in range(6)]
    started = time.monotonic()
    results = run_all(probes, concurrency=2, deadline=1.0)
    took = time.monotonic() - started
    assert took < 2.5
    assert [r.name for r in results] == [f"p{i}" for i in range(6)]
    assert all(not r.ok for r in results)
    # two ran and hit the deadline inside the probe; the others never started or did not finish
    assert sum(r.error == "timed out after 1 s" or r.error.startswith("timed out after 0.") for r in results) >= 2
    assert any("overall deadline" in r.error for r in results)


def test_probes_run_concurrently(serve):
    server = serve(http_answer())
    slow = serve(lambda conn: (time.sleep(0.5), http_answer()(conn)))
    probes = [parse({"name": f"s{i}", "address": "127.0.0.1", "port": slow.port}) for i in range(4)]
    probes.append(parse({"name": "fast", "address": "127.0.0.1", "port": server.port}))
    started = time.monotonic()
    results = run_all(probes, concurrency=8, deadline=10)
    assert all(r.ok for r in results), [r.error for r in results]
    assert time.monotonic() - started < 1.5  # not 4 x 0.5 s in a row


# --- UDP ----------------------------------------------------------------------------------------

@pytest.fixture
def udp_echo() -> Iterator[tuple[int, list[bytes]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            seen.append(data)
            if len(seen) > 1:  # the first datagram is "lost": the probe must send again
                sock.sendto(b"udp-echo-abc: " + data, peer)
    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1], seen
    stop.set()
    sock.close()


def test_udp_send_expect_with_a_lost_datagram(udp_echo):
    port, seen = udp_echo
    result = probe(type="udp", port=port, send="k8sedge-probe", expect="k8sedge-probe$", timeout=1.5)
    assert result.ok, result.error
    assert result.received == "udp-echo-abc: k8sedge-probe"
    assert len(seen) == 2


def test_udp_wrong_answer_and_no_answer(udp_echo):
    port, _ = udp_echo
    wrong = probe(type="udp", port=port, send="x", expect="^nope", timeout=1.5)
    assert not wrong.ok and wrong.error == "expected '^nope', received 'udp-echo-abc: x'"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        started = time.monotonic()
        result = probe(type="udp", port=silent.getsockname()[1], send="x", timeout=0.6)
        assert time.monotonic() - started < 1.2
    assert not result.ok and result.error == "timed out after 0.6 s"


def test_udp_port_unreachable():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        port = gone.getsockname()[1]
    result = probe(type="udp", port=port, send="x", timeout=1)
    assert not result.ok and result.error in ("port unreachable (ICMP)", "timed out after 1 s")


# --- specifications -----------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "ftp"}, "probe 'p': type: expected one of http, https, tcp, udp, got 'ftp'"),
    ({"port": 0}, "probe 'p': port: expected 1-65535, got 0"),
    ({"path": "/a b"}, "probe 'p': path: expected a path starting with / without spaces"),
    ({"method": "get\r\n"}, "probe 'p': method: expected an upper-case HTTP method"),
    ({"host": "a\r\nX-Evil: 1"}, "probe 'p': host: expected a host name"),
    ({"headers": {"X-A": "1\r\nX-B: 2"}}, "probe 'p': headers: the value of X-A has a line break"),
    ({"status_code": ["2xx"]}, "probe 'p': status_code: expected a status code (200) or a range (200-399), got '2xx'"),
    ({"status_code": ["399-200"]}, "probe 'p': status_code: range '399-200' ends before it starts"),
    ({"body_regex": "("}, "probe 'p': body_regex: not a regular expression"),
    ({"type": "udp", "send_proxy": "v1"}, "probe 'p': send_proxy: PROXY protocol headers are for TCP connections"),
    ({"hold": 9}, "probe 'p': hold: expected seconds from 0 to less than the timeout"),
])
def test_bad_specifications_name_the_probe_and_field(spec, message):
    with pytest.raises(ProbeSpecError) as exc:
        parse({"name": "p", "address": "127.0.0.1", "port": 80, **spec})
    assert str(exc.value).startswith(message)


def test_defaults_and_names():
    spec = parse({"name": "p", "address": "10.0.0.1", "port": 8080, "host": None, "status_code": None})
    assert spec.host_header == "10.0.0.1:8080" and spec.status_code == ((200, 200),)
    assert spec.server_name is None
    named = parse({"name": "p", "type": "https", "address": "10.0.0.1", "port": 443, "host": "shop.pctest"})
    assert named.host_header == "shop.pctest" and named.server_name == "shop.pctest"
    assert parse({"name": "p", "address": "::1", "port": 80}).target == "[::1]:80"
    with pytest.raises(ProbeSpecError, match="probe without a name"):
        parse({"address": "10.0.0.1", "port": 80})
