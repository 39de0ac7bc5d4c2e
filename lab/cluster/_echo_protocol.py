"""Pure parts of the echo server: PROXY protocol headers, HTTP request heads, the echo page."""
from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field

PROXY_V1_PREFIX = b"PROXY "
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_V1_MAX = 107  # the spec's longest v1 line, CRLF included

# A request line as far as it has arrived: enough to tell HTTP from bytes to echo.
HTTP_START = re.compile(rb"^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT) ")
REQUEST_LINE = re.compile(r"^([A-Z]+) (\S+) HTTP/(\d)\.(\d)$")


class ProtocolError(ValueError):
    """Input that is not valid PROXY protocol or HTTP/1.x."""


@dataclass(frozen=True)
class ProxyHeader:
    """What a PROXY header said; client is "ip:port", or None for LOCAL/UNKNOWN; version 1 or 2
    (0: no header)."""

    length: int
    client: str | None = None
    version: int = 0


def _could_be_prefix(data: bytes, signature: bytes) -> bool:
    n = min(len(data), len(signature))
    return data[:n] == signature[:n]


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """The PROXY v1/v2 header at the start of data.

    Returns ProxyHeader(length=0) when data does not start with one, None when more bytes are
    needed to tell, and raises ProtocolError for a broken header.
    """
    if _could_be_prefix(data, PROXY_V2_SIGNATURE):
        return None if len(data) < 16 else _parse_v2(data)
    if _could_be_prefix(data, PROXY_V1_PREFIX):
        return None if len(data) < len(PROXY_V1_PREFIX) else _parse_v1(data)
    return ProxyHeader(0)


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= PROXY_V1_MAX:
            raise ProtocolError("PROXY v1 header without CRLF in its first 107 bytes")
        return None
    parts = data[:end].decode("ascii", "replace").split(" ")
    if parts[1:2] == ["UNKNOWN"]:
        return ProxyHeader(end + 2, version=1)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProtocolError(f"bad PROXY v1 header {data[:end]!r}")
    _, family, src, _dst, sport, _dport = parts
    try:
        addr = ipaddress.ip_address(src)
        port = int(sport)
    except ValueError as exc:
        raise ProtocolError(f"bad PROXY v1 address in {data[:end]!r}") from exc
    if (addr.version == 4) != (family == "TCP4") or not 0 <= port <= 65535:
        raise ProtocolError(f"bad PROXY v1 header {data[:end]!r}")
    return ProxyHeader(end + 2, _host_port(str(addr), port), 1)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if data[:12] != PROXY_V2_SIGNATURE:
        raise ProtocolError("bad PROXY v2 signature")
    ver_cmd, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ProtocolError(f"PROXY v2 header with version {ver_cmd >> 4}")
    if len(data) < 16 + length:
        return None
    total = 16 + length
    command = ver_cmd & 0x0F
    if command == 0:  # LOCAL: a health check by the proxy itself
        return ProxyHeader(total, version=2)
    if command != 1:
        raise ProtocolError(f"PROXY v2 header with command {command}")
    body = data[16:total]
    if family >> 4 == 1 and len(body) >= 12:
        src, port = ipaddress.IPv4Address(body[0:4]), struct.unpack("!H", body[8:10])[0]
    elif family >> 4 == 2 and len(body) >= 36:
        src, port = ipaddress.IPv6Address(body[0:16]), struct.unpack("!H", body[32:34])[0]
    else:
        return ProxyHeader(total, version=2)  # UNSPEC or AF_UNIX: no address to report
    return ProxyHeader(total, _host_port(str(src), port), 2)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def proxy_v1_header(client_ip: str, client_port: int, server_ip: str, server_port: int) -> bytes:
    family = "TCP6" if ":" in client_ip else "TCP4"
    return f"PROXY {family} {client_ip} {server_ip} {client_port} {server_port}\r\n".encode()


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str  # "1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)  # names lowercased, in order

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in (self.header("connection") or "").split(",")}
        return "keep-alive" in tokens if self.version == "1.0" else "close" not in tokens


def head_end(data: bytes) -> int:
    """Index just past the blank line ending a request head, or -1 (bare LF accepted, as telnet users type)."""
    match = re.search(rb"\r?\n\r?\n", data)
    return match.end() if match else -1


def parse_request_head(head: bytes) -> Request:
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    match = REQUEST_LINE.match(lines[0])
    if not match:
        raise ProtocolError(f"bad request line {lines[0][:100]!r}")
    method, target, major, minor = match.groups()
    if major != "1":
        raise ProtocolError(f"HTTP/{major}.{minor} is not supported")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:100]!r}")
        headers.append((name.lower(), value.strip()))
    return Request(method, target, f"{major}.{minor}", headers)


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    node: str
    ip: str


@dataclass(frozen=True)
class TlsInfo:
    """What the TLS handshake of a connection the pod terminated said."""

    version: str  # "TLSv1.3"
    server_name: str  # the SNI the client sent; "" without one


def echo_page(pod: PodInfo, request: Request, client_address: str, body: bytes,
              proxy: ProxyHeader | None, local_address: str, tls: TlsInfo | None = None) -> str:
    """The text the echo server answers with, in the layout of the classic echoserver image.

    A connection the pod itself decrypted says so (`tls_version`, `tls_server_name`): what tells
    TLS passthrough (the pod's handshake) from termination at the edge (plain HTTP here)."""
    target = request.target
    if target.startswith(("http://", "https://")):
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path, _, query = target.partition("?")
    host = request.header("host") or local_address
    info = [
        f"client_address={client_address}",
        *([f"proxy_protocol_client={proxy.client}", f"proxy_protocol_version={proxy.version}"] if proxy and proxy.client else []),
        f"method={request.method}",
        f"real path={path}",
        f"query={query}",
        f"request_version={request.version}",
        f"request_uri={'https' if tls else 'http'}://{host}{target}",
        *([f"tls_version={tls.version}", f"tls_server_name={tls.server_name or '-'}"] if tls else []),
    ]
    lines = [
        f"Hostname: {pod.name}",
        "",
        "Pod Information:",
        f"\tnode name:\t{pod.node}",
        f"\tpod name:\t{pod.name}",
        f"\tpod namespace:\t{pod.namespace}",
        f"\tpod IP:\t{pod.ip}",
        "",
        "Request Information:",
        *(f"\t{line}" for line in info),
        "",
        "Request Headers:",
        *(f"\t{k}={v}" for k, v in request.headers),
        "",
        "Request Body:",
        "\t" + (body.decode("utf-8", "replace") if body else "-no body in request-"),
        "",
    ]
    return "\n".join(lines)


def http_response(status: int, reason: str, body: bytes, *, head_only: bool, keep_alive: bool,
                  pod_name: str, date: str, content_type: str = "text/plain") -> bytes:
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Server: k8sedge-echo",
        f"Date: {date}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        f"X-Pod-Name: {pod_name}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


def decode_chunked(data: bytes) -> tuple[bytes, int] | None:
    """(body, bytes consumed) of a complete chunked body at the start of data, None if incomplete."""
    body, pos = b"", 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            size = int(data[pos:end].split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise ProtocolError("bad chunk size") from exc
        pos = end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n", pos)
            while trailer_end > pos:  # skip trailer fields
                pos = trailer_end + 2
                trailer_end = data.find(b"\r\n", pos)
            return (body, trailer_end + 2) if trailer_end >= 0 else None
        if len(data) < pos + size + 2:
            return None
        body += data[pos:pos + size]
        pos += size + 2
