"""Echo server protocol logic: PROXY headers, request heads, the echo page."""
from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.cluster import _echo_protocol as ep

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIG + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


V2_TCP4 = v2(1, 0x11, socket.inet_aton("192.0.2.7") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 51000, 80))
V2_TCP6 = v2(1, 0x21, socket.inet_pton(socket.AF_INET6, "2001:db8::7") + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
             + struct.pack("!HH", 443, 80))


@pytest.mark.parametrize("data, expected", [
    (b"GET / HTTP/1.1\r\n", ep.ProxyHeader(0)),
    (b"hello", ep.ProxyHeader(0)),
    (b"", None),
    (b"PRO", None),
    (b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 80", None),
    (b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 80\r\nGET", ep.ProxyHeader(40, "192.0.2.7:51000", 1)),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 443 80\r\n", ep.ProxyHeader(43, "[2001:db8::7]:443", 1)),
    (b"PROXY UNKNOWN\r\n", ep.ProxyHeader(15, version=1)),
    (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", ep.ProxyHeader(35, version=1)),
    (V2_SIG[:5], None),
    (V2_TCP4[:20], None),
    (V2_TCP4 + b"GET", ep.ProxyHeader(28, "192.0.2.7:51000", 2)),
    (V2_TCP6, ep.ProxyHeader(52, "[2001:db8::7]:443", 2)),
    (v2(0, 0x00, b""), ep.ProxyHeader(16, version=2)),  # LOCAL
    (v2(1, 0x00, b""), ep.ProxyHeader(16, version=2)),  # UNSPEC
])
def test_parse_proxy_header(data, expected):
    assert ep.parse_proxy_header(data) == expected


@pytest.mark.parametrize("data", [
    b"PROXY TCP4 192.0.2.7 10.0.0.1 51000\r\n",
    b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 300.0.0.1 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 192.0.2.7 10.0.0.1 99999 80\r\n",
    b"PROXY " + b"x" * 120,
    V2_SIG + bytes([0x10, 0x11, 0, 0]),  # version 1 in a v2 frame
    V2_SIG + bytes([0x2F, 0x11, 0, 0]),  # unknown command
])
def test_parse_proxy_header_rejects(data):
    with pytest.raises(ep.ProtocolError):
        ep.parse_proxy_header(data)


@given(st.ip_addresses(v=4), st.integers(0, 65535))
def test_proxy_v1_round_trip(ip, port):
    header = ep.proxy_v1_header(str(ip), port, "10.0.0.1", 80)
    assert ep.parse_proxy_header(header + b"rest") == ep.ProxyHeader(len(header), f"{ip}:{port}", 1)


@pytest.mark.parametrize("head, method, target, version, headers, keep_alive", [
    (b"GET / HTTP/1.1\r\nHost: s2.pctest\r\nUser-Agent: curl/7.88.1\r\n\r\n", "GET", "/", "1.1",
     [("host", "s2.pctest"), ("user-agent", "curl/7.88.1")], True),
    (b"HEAD / HTTP/1.1\n\n", "HEAD", "/", "1.1", [], True),
    (b"GET /x HTTP/1.0\r\n\r\n", "GET", "/x", "1.0", [], False),
    (b"GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/x", "1.0", [("connection", "Keep-Alive")], True),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/", "1.1", [("connection", "close")], False),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n", "GET", "/", "1.1", [("x-a", "1"), ("x-a", "2")], True),
])
def test_parse_request_head(head, method, target, version, headers, keep_alive):
    request = ep.parse_request_head(head[:ep.head_end(head)])
    assert (request.method, request.target, request.version, request.headers, request.keep_alive) == (
        method, target, version, headers, keep_alive)


@pytest.mark.parametrize("head", [b"hello\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
                                  b"GET / HTTP/1.1\r\n Folded: x\r\n\r\n"])
def test_parse_request_head_rejects(head):
    with pytest.raises(ep.ProtocolError):
        ep.parse_request_head(head)


@pytest.mark.parametrize("data, end", [(b"GET / HTTP/1.1\r\n\r\nrest", 18), (b"HEAD / HTTP/1.1\n\n", 17), (b"GET / HTTP/1.1\r\n", -1)])
def test_head_end(data, end):
    assert ep.head_end(data) == end


POD = ep.PodInfo("s2-5d8f7b9c4-x7k2p", "default", "node1", "10.244.1.5")


def test_echo_page():
    request = ep.Request("GET", "/a/b?x=1&y=2", "1.1", [
        ("host", "s2.pctest"), ("user-agent", "curl/7.88.1"), ("x-forwarded-for", "10.213.0.100")])
    assert ep.echo_page(POD, request, "10.213.0.11", b"", None, "10.244.1.5:8080") == (
        "Hostname: s2-5d8f7b9c4-x7k2p\n"
        "\n"
        "Pod Information:\n"
        "\tnode name:\tnode1\n"
        "\tpod name:\ts2-5d8f7b9c4-x7k2p\n"
        "\tpod namespace:\tdefault\n"
        "\tpod IP:\t10.244.1.5\n"
        "\n"
        "Request Information:\n"
        "\tclient_address=10.213.0.11\n"
        "\tmethod=GET\n"
        "\treal path=/a/b\n"
        "\tquery=x=1&y=2\n"
        "\trequest_version=1.1\n"
        "\trequest_uri=http://s2.pctest/a/b?x=1&y=2\n"
        "\n"
        "Request Headers:\n"
        "\thost=s2.pctest\n"
        "\tuser-agent=curl/7.88.1\n"
        "\tx-forwarded-for=10.213.0.100\n"
        "\n"
        "Request Body:\n"
        "\t-no body in request-\n"
    )


def test_echo_page_with_proxy_body_and_no_host():
    request = ep.Request("POST", "/", "1.0", [])
    page = ep.echo_page(POD, request, "10.213.0.21", b"abc", ep.ProxyHeader(38, "192.0.2.7:51000", 2), "10.244.1.5:8080")
    assert "\tclient_address=10.213.0.21\n\tproxy_protocol_client=192.0.2.7:51000\n\tproxy_protocol_version=2\n\tmethod=POST\n" in page
    assert "\trequest_uri=http://10.244.1.5:8080/\n" in page
    assert page.endswith("Request Body:\n\tabc\n")


def test_echo_page_of_a_connection_the_pod_decrypted():
    request = ep.Request("GET", "/", "1.1", [("host", "passthrough.pctest")])
    page = ep.echo_page(POD, request, "10.213.0.21", b"", None, "10.244.1.5:8443", ep.TlsInfo("TLSv1.3", "passthrough.pctest"))
    assert ("\trequest_uri=https://passthrough.pctest/\n\ttls_version=TLSv1.3\n\ttls_server_name=passthrough.pctest\n"
            "\n") in page
    no_sni = ep.echo_page(POD, request, "10.213.0.21", b"", None, "10.244.1.5:8443", ep.TlsInfo("TLSv1.2", ""))
    assert "\ttls_server_name=-\n" in no_sni


def test_http_response():
    out = ep.http_response(200, "OK", b"hello", head_only=False, keep_alive=True, pod_name="p", date="D")
    assert out == (b"HTTP/1.1 200 OK\r\nServer: k8sedge-echo\r\nDate: D\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 5\r\nConnection: keep-alive\r\nX-Pod-Name: p\r\n\r\nhello")
    head = ep.http_response(200, "OK", b"hello", head_only=True, keep_alive=False, pod_name="p", date="D")
    assert head.endswith(b"Content-Length: 5\r\nConnection: close\r\nX-Pod-Name: p\r\n\r\n")


@pytest.mark.parametrize("data, expected", [
    (b"3\r\nabc\r\n0\r\n\r\n", (b"abc", 13)),
    (b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nNEXT", (b"abcde", 26)),
    (b"3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n", (b"abc", 25)),
    (b"3\r\nab", None),
    (b"3\r\nabc\r\n0\r\n", None),
])
def test_decode_chunked(data, expected):
    assert ep.decode_chunked(data) == expected


@pytest.mark.parametrize("data, is_http", [(b"GET / HTTP/1.1", True), (b"HEAD / HTTP/1.1", True), (b"hello", False), (b"GETX", False)])
def test_http_start(data, is_http):
    assert bool(ep.HTTP_START.match(data)) is is_http
