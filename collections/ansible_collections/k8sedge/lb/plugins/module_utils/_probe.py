# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic probes: HTTP and HTTPS like curl (with --resolve-style addressing), TCP like telnet,
UDP send and expect. Standard library only, so a probe runs wherever it is delegated.

Every socket operation is bounded by what is left of the probe's own timeout, and the runner
stops waiting at an overall deadline, so no probe can hang a play.
"""
from __future__ import annotations

import hashlib
import ipaddress
import queue
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ProbeError

try:  # on the controller; the probes that edges run for their targets do without it
    from cryptography import x509
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

TYPES = ("http", "https", "tcp", "udp")
PROXY_VERSIONS = ("none", "v1", "v2")
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HEAD_LIMIT = 65536  # bytes of response head we read before giving up on it
SHOWN = 300  # characters of a body or of received bytes kept in a result

_METHOD = re.compile(r"[A-Z]{1,20}")
_PATH = re.compile(r"/[!-~]*")  # visible ASCII, no space: cannot end the request line
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # an HTTP header name
_VALUE = re.compile(r"[\t -~]*")  # a header value without CR/LF
_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]{1,255}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STATUS_RANGE = re.compile(r"([1-5][0-9]{2})(?:-([1-5][0-9]{2}))?")


class ProbeSpecError(ProbeError):
    """A probe specification that cannot be run."""


@dataclass(frozen=True)
class Probe:
    """One probe: where to connect, what to send, what must come back."""

    name: str
    type: str
    address: str
    port: int
    timeout: float = 5.0
    method: str = "GET"
    path: str = "/"
    host: str = ""  # HTTP Host header; the address (with the port if not the default) when empty
    sni: str = ""  # TLS server name; the Host header's name when empty and not an address
    headers: tuple[tuple[str, str], ...] = ()
    status_code: tuple[tuple[int, int], ...] = ((200, 200),)
    body_regex: str = ""
    body_not_regex: str = ""
    expect_headers: tuple[tuple[str, str], ...] = ()
    tls: bool = False  # tcp: TLS handshake after connecting (and after the PROXY header)
    validate_certs: bool = True
    ca_path: str = ""
    certificate_sha256: tuple[str, ...] = ()  # the served certificate must be one of these (TLS)
    send: bytes = b""
    expect: str = ""
    half_close: bool = False
    hold: float = 0.0  # tcp without expect: the peer must not close the connection this long
    send_proxy: str = "none"

    @property
    def uses_tls(self) -> bool:
        return self.type == "https" or (self.type == "tcp" and self.tls)

    @property
    def host_header(self) -> str:
        if self.host:
            return self.host
        name = f"[{self.address}]" if ":" in self.address else self.address
        default = 443 if self.type == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"

    @property
    def server_name(self) -> str | None:
        name = self.sni or (self.host.rsplit(":", 1)[0] if self.host and not self.host.startswith("[") else "")
        if not name:
            name = self.address
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
        return None  # no SNI for an address, as curl does

    @property
    def target(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass
class Result:
    """What a probe saw. `ok` is the verdict; `error` says why not, in one line."""

    name: str
    ok: bool
    target: str
    latency_ms: float | None = None
    connect_ms: float | None = None
    error: str = ""
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    received: str = ""
    tls: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- specification ------------------------------------------------------------------------------

def _fail(name: str, field_name: str, message: str) -> ProbeSpecError:
    return ProbeSpecError(f"probe {name!r}: {field_name}: {message}")


def _status_ranges(name: str, value: Any) -> tuple[tuple[int, int], ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    ranges = []
    for item in items:
        match = _STATUS_RANGE.fullmatch(str(item).strip())
        if not match:
            raise _fail(name, "status_code", f"expected a status code (200) or a range (200-399), got {item!r}")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise _fail(name, "status_code", f"range {item!r} ends before it starts")
        ranges.append((low, high))
    if not ranges:
        raise _fail(name, "status_code", "expected at least one status code")
    return tuple(ranges)


def _regex(name: str, field_name: str, value: Any) -> str:
    text = "" if value is None else str(value)
    try:
        re.compile(text)
    except re.error as exc:
        raise _fail(name, field_name, f"not a regular expression: {exc}") from None
    return text


def _pairs(name: str, field_name: str, value: Any, check_value: bool) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise _fail(name, field_name, "expected a mapping of header name to value")
    pairs = []
    for key, item in value.items():
        if not _TOKEN.fullmatch(str(key)):
            raise _fail(name, field_name, f"{key!r} is not a header name")
        text = str(item)
        if check_value and not _VALUE.fullmatch(text):
            raise _fail(name, field_name, f"the value of {key} has a line break or a control character")
        if not check_value:
            _regex(name, f"{field_name}[{key}]", text)
        pairs.append((str(key), text))
    return tuple(sorted(pairs, key=lambda p: p[0].lower()))


def parse(spec: Mapping[str, Any]) -> Probe:
    """A Probe from the module's option shape (missing or None keys take the defaults)."""
    given = {k: v for k, v in spec.items() if v is not None}
    name = str(given.get("name") or "")
    if not name:
        raise ProbeSpecError("probe without a name: every probe needs one, results are reported by name")
    kind = given.get("type", "http")
    if kind not in TYPES:
        raise _fail(name, "type", f"expected one of {', '.join(TYPES)}, got {kind!r}")
    address = str(given.get("address") or "")
    if not _HOST.fullmatch(address):
        raise _fail(name, "address", f"expected an IP address or a host name, got {address!r}")
    raw_port = given.get("port", 0)
    port = raw_port if isinstance(raw_port, int) and not isinstance(raw_port, bool) \
        else int(raw_port) if isinstance(raw_port, str) and raw_port.isdigit() else 0
    if not 1 <= port <= 65535:
        raise _fail(name, "port", f"expected 1-65535, got {given.get('port')!r}")
    timeout = float(given.get("timeout", 5.0))
    if not 0 < timeout <= 3600:
        raise _fail(name, "timeout", f"expected seconds between 0 and 3600, got {timeout}")
    method = str(given.get("method", "GET"))
    if not _METHOD.fullmatch(method):
        raise _fail(name, "method", f"expected an upper-case HTTP method, got {method!r}")
    path = str(given.get("path", "/"))
    if not _PATH.fullmatch(path):
        raise _fail(name, "path", f"expected a path starting with / without spaces, got {path!r}")
    host = str(given.get("host", ""))
    if host and not _HOST.fullmatch(host):
        raise _fail(name, "host", f"expected a host name, got {host!r}")
    sni = str(given.get("sni", ""))
    if sni and not _HOST.fullmatch(sni):
        raise _fail(name, "sni", f"expected a host name, got {sni!r}")
    send_proxy = given.get("send_proxy", "none")
    if send_proxy not in PROXY_VERSIONS:
        raise _fail(name, "send_proxy", f"expected one of {', '.join(PROXY_VERSIONS)}, got {send_proxy!r}")
    if send_proxy != "none" and kind == "udp":
        raise _fail(name, "send_proxy", "PROXY protocol headers are for TCP connections, not UDP")
    hold = float(given.get("hold", 0.0))
    if not 0 <= hold < timeout:
        raise _fail(name, "hold", f"expected seconds from 0 to less than the timeout ({timeout}), got {hold}")
    fingerprints = given.get("certificate_sha256") or []
    if isinstance(fingerprints, str) or not all(isinstance(f, str) and _SHA256.fullmatch(f.lower()) for f in fingerprints):
        raise _fail(name, "certificate_sha256", f"expected a list of SHA-256 fingerprints (64 hex digits), got {fingerprints!r:.80}")
    send = given.get("send", b"")
    return Probe(
        name=name, type=kind, address=address, port=port, timeout=timeout, method=method, path=path, host=host,
        sni=sni, headers=_pairs(name, "headers", given.get("headers"), check_value=True),
        status_code=_status_ranges(name, given.get("status_code", [200])),
        body_regex=_regex(name, "body_regex", given.get("body_regex")),
        body_not_regex=_regex(name, "body_not_regex", given.get("body_not_regex")),
        expect_headers=_pairs(name, "expect_headers", given.get("expect_headers"), check_value=False),
        tls=bool(given.get("tls", False)), validate_certs=bool(given.get("validate_certs", True)),
        ca_path=str(given.get("ca_path", "")), certificate_sha256=tuple(f.lower() for f in fingerprints),
        send=send if isinstance(send, bytes) else str(send).encode("utf-8"),
        expect=_regex(name, "expect", given.get("expect")), half_close=bool(given.get("half_close", False)),
        hold=hold, send_proxy=send_proxy,
    )


# --- running one probe --------------------------------------------------------------------------

class ProbeFailed(Exception):
    """The probe ran and what came back is not what was expected."""


class _Clock:
    """The time left of one probe; every socket operation gets at most that as its timeout."""

    def __init__(self, seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.started = now()
        self.until = self.started + seconds
        self.seconds = seconds

    def left(self) -> float:
        remaining = self.until - self._now()
        if remaining <= 0:
            raise socket.timeout(f"timed out after {self.seconds:g} s")
        return remaining

    def elapsed_ms(self) -> float:
        return round((self._now() - self.started) * 1000, 1)


def _show(data: bytes) -> str:
    text = data[:SHOWN].decode("utf-8", "replace")
    return text + ("..." if len(data) > SHOWN else "")


def proxy_header(version: str, local: tuple, peer: tuple) -> bytes:
    """The PROXY protocol header a proxy in front of us would have sent, with our real addresses."""
    source, destination = ipaddress.ip_address(local[0]), ipaddress.ip_address(peer[0])
    if version == "v1":
        family = "TCP4" if source.version == 4 else "TCP6"
        return f"PROXY {family} {source} {destination} {local[1]} {peer[1]}\r\n".encode("ascii")
    family = 0x11 if source.version == 4 else 0x21  # AF_INET/AF_INET6, STREAM
    addresses = source.packed + destination.packed + struct.pack("!HH", local[1], peer[1])
    return PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(addresses)) + addresses


def _not_after(der: bytes) -> dict[str, str]:
    """{"not_after": ISO time} of a DER certificate, where the cryptography package is (the
    controller); {} elsewhere or for what it cannot read: the verdict never depends on it."""
    if not HAS_CRYPTOGRAPHY or not der:
        return {}
    try:
        return {"not_after": x509.load_der_x509_certificate(der).not_valid_after_utc.isoformat()}
    except ValueError:
        return {}


def _tls_context(probe: Probe) -> ssl.SSLContext:
    if not probe.validate_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=probe.ca_path or None)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeFailed(f"cannot load the CA file {probe.ca_path}: {exc}") from None


def _open(probe: Probe, clock: _Clock, result: Result) -> socket.socket:
    """Connected (PROXY header sent, TLS handshaken when asked) socket."""
    sock = socket.create_connection((probe.address, probe.port), timeout=clock.left())
    try:
        result.connect_ms = clock.elapsed_ms()
        if probe.send_proxy != "none":
            sock.settimeout(clock.left())
            sock.sendall(proxy_header(probe.send_proxy, sock.getsockname(), sock.getpeername()))
        if probe.uses_tls:
            context = _tls_context(probe)
            sock.settimeout(clock.left())
            sock = context.wrap_socket(sock, server_hostname=probe.server_name)
            der = sock.getpeercert(binary_form=True) or b""
            served = hashlib.sha256(der).hexdigest()
            result.tls = {"version": sock.version() or "", "cipher": (sock.cipher() or ("",))[0], "certificate_sha256": served,
                          **_not_after(der)}
            if probe.certificate_sha256 and served not in probe.certificate_sha256:
                raise ProbeFailed(f"served certificate SHA-256 {served[:16]}..., expected "
                                  f"{' or '.join(f[:16] + '...' for f in probe.certificate_sha256)}: not the certificate the edge was given")
        return sock
    except BaseException:
        sock.close()
        raise


class _Reader:
    """Buffered reads from a socket, each bounded by the probe's clock."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock = sock
        self.clock = clock
        self.buffer = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        self.sock.settimeout(self.clock.left())
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise ProbeFailed(f"no {marker!r} in the first {limit} bytes: {_show(self.buffer)!r}")
            if not self.fill():
                raise ProbeFailed(f"connection closed before {marker!r}; received {_show(self.buffer)!r}")
        head, _marker, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self.fill():
                raise ProbeFailed(f"connection closed after {len(self.buffer)} of {size} bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest(self, limit: int) -> bytes:
        while len(self.buffer) < limit and self.fill():
            pass
        return self.buffer[:limit]


def _chunked(reader: _Reader, limit: int) -> bytes:
    body = b""
    while len(body) < limit:
        line = reader.until(b"\r\n", 1024).split(b";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise ProbeFailed(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            break
        body += reader.exactly(size)
        reader.exactly(2)
    return body[:limit]


def _read_response(reader: _Reader, method: str, result: Result, limit: int = 1 << 20) -> bytes:
    head = reader.until(b"\r\n\r\n", HEAD_LIMIT).decode("latin-1")
    status_line, *lines = head.split("\r\n")
    match = re.fullmatch(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?", status_line)
    if not match:
        raise ProbeFailed(f"not an HTTP/1.x response: {status_line[:100]!r}")
    result.status = int(match.group(1))
    headers: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            name = key.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    result.headers = headers
    if method == "HEAD" or result.status in (204, 304) or 100 <= result.status < 200:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked(reader, limit)
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise ProbeFailed(f"bad Content-Length {headers['content-length'][:40]!r}") from None
        return reader.exactly(min(length, limit))
    return reader.rest(limit)


def _check_http(probe: Probe, result: Result, body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    if not any(low <= (result.status or 0) <= high for low, high in probe.status_code):
        wanted = ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in probe.status_code)
        raise ProbeFailed(f"expected status {wanted}, got {result.status}; body: {_show(body)!r}")
    for name, pattern in probe.expect_headers:
        value = result.headers.get(name.lower())
        if value is None:
            raise ProbeFailed(f"no {name} header in the response (status {result.status})")
        if not re.search(pattern, value):
            raise ProbeFailed(f"header {name}: {value[:100]!r} does not match {pattern!r}")
    if probe.body_regex and not re.search(probe.body_regex, text):
        raise ProbeFailed(f"status {result.status}, but the body does not match {probe.body_regex!r}: {_show(body)!r}")
    if probe.body_not_regex and re.search(probe.body_not_regex, text):
        raise ProbeFailed(f"status {result.status}, and the body matches {probe.body_not_regex!r}: {_show(body)!r}")


def _http(probe: Probe, clock: _Clock, result: Result) -> None:
    sock = _open(probe, clock, result)
    with sock:
        lines = [f"{probe.method} {probe.path} HTTP/1.1", f"Host: {probe.host_header}", "User-Agent: k8sedge-probe",
                 "Accept: */*", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in probe.headers]
        sock.settimeout(clock.left())
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        body = _read_response(_Reader(sock, clock), probe.method, result)
        result.body = _show(body)
        _check_http(probe, result, body)


def _tcp(probe: Probe, clock: _Clock, result: Result) -> None:
    sock = _open(probe, clock, result)
    with sock:
        if probe.send:
            sock.settimeout(clock.left())
            sock.sendall(probe.send)
            if probe.half_close and not probe.uses_tls:
                sock.shutdown(socket.SHUT_WR)
        reader = _Reader(sock, clock)
        if probe.expect:
            pattern = re.compile(probe.expect.encode("utf-8"))
            while not pattern.search(reader.buffer):
                if len(reader.buffer) > HEAD_LIMIT or not reader.fill():
                    result.received = _show(reader.buffer)
                    raise ProbeFailed(f"expected {probe.expect!r}, received {_show(reader.buffer)!r}"
                                      + (" before the peer closed" if reader.eof else ""))
            result.received = _show(reader.buffer)
        elif probe.hold:
            _hold(sock, reader, probe.hold, clock, result)


def _hold(sock: socket.socket, reader: _Reader, seconds: float, clock: _Clock, result: Result) -> None:
    """The peer must send something or keep the connection open for `seconds`: a proxy without a
    working backend closes the client's connection at once."""
    until = time.monotonic() + seconds
    while not reader.buffer:
        left = until - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(min(left, clock.left()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return
        except ConnectionResetError:
            raise ProbeFailed(f"connection reset by the peer after {clock.elapsed_ms():g} ms") from None
        if not data:
            raise ProbeFailed(f"connection closed by the peer after {clock.elapsed_ms():g} ms, nothing received")
        reader.buffer += data
    result.received = _show(reader.buffer)


def _udp(probe: Probe, clock: _Clock, result: Result) -> None:
    family = socket.AF_INET6 if ":" in probe.address else socket.AF_INET
    info = socket.getaddrinfo(probe.address, probe.port, family if _is_ip(probe.address) else 0, socket.SOCK_DGRAM)
    family, kind, proto, _canonical_name, address = info[0]
    with socket.socket(family, kind, proto) as sock:
        sock.connect(address)  # so a port unreachable comes back as ConnectionRefusedError
        result.connect_ms = clock.elapsed_ms()
        pattern = re.compile(probe.expect.encode("utf-8")) if probe.expect else None
        interval = probe.timeout / 3  # a lost datagram is sent again, three tries in all
        received = b""
        while True:
            sock.send(probe.send)
            resend_at = time.monotonic() + interval
            while True:
                sock.settimeout(max(0.001, min(resend_at - time.monotonic(), clock.left())))
                try:
                    received = sock.recv(65536)
                except socket.timeout:
                    if time.monotonic() < resend_at:
                        continue
                    clock.left()  # raises when the probe's time is up
                    break
                result.received = _show(received)
                if pattern is None or pattern.search(received):
                    return
                raise ProbeFailed(f"expected {probe.expect!r}, received {_show(received)!r}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


RUNNERS = {"http": _http, "https": _http, "tcp": _tcp, "udp": _udp}


def run_one(probe: Probe, timeout: float | None = None) -> Result:
    """Run one probe within min(its timeout, timeout); never raises for what the network does."""
    clock = _Clock(min(probe.timeout, timeout) if timeout is not None else probe.timeout)
    result = Result(probe.name, False, probe.target)
    try:
        RUNNERS[probe.type](probe, clock, result)
        result.ok = True
    except ProbeFailed as exc:
        result.error = str(exc)
    except socket.timeout as exc:
        result.error = str(exc) if str(exc).startswith("timed out after") else f"timed out after {clock.seconds:g} s"
    except ssl.SSLCertVerificationError as exc:
        result.error = f"TLS certificate not accepted: {exc.verify_message or exc.reason}"
    except ssl.SSLError as exc:
        result.error = f"TLS handshake failed: {exc.reason or exc}"
    except ConnectionRefusedError:
        result.error = "connection refused" if probe.type != "udp" else "port unreachable (ICMP)"
    except ConnectionResetError:
        result.error = "connection reset by the peer"
    except OSError as exc:
        result.error = f"{exc.strerror or exc}"
    result.latency_ms = clock.elapsed_ms()
    return result


def run_all(probes: list[Probe], concurrency: int = 16, deadline: float = 60.0) -> list[Result]:
    """Every probe, at most `concurrency` at once, results in input order. What has not finished
    at the overall deadline is reported as failed; the worker threads are daemons, so they never
    keep the process alive."""
    if not probes:
        return []
    until = time.monotonic() + deadline
    todo: queue.Queue[int] = queue.Queue()
    for index in range(len(probes)):
        todo.put(index)
    done: queue.Queue[tuple[int, Result]] = queue.Queue()

    def worker() -> None:
        while True:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            left = until - time.monotonic()
            probe = probes[index]
            if left <= 0:
                done.put((index, Result(probe.name, False, probe.target, error=f"not started before the overall deadline of {deadline:g} s")))
                continue
            done.put((index, run_one(probe, left)))

    for _worker in range(max(1, min(concurrency, len(probes)))):
        threading.Thread(target=worker, daemon=True).start()
    results: list[Result | None] = [None] * len(probes)
    for _probe in range(len(probes)):
        try:
            index, result = done.get(timeout=max(0.0, until - time.monotonic()) + 0.5)
        except queue.Empty:
            break
        results[index] = result
    return [r if r is not None else Result(probes[i].name, False, probes[i].target,
                                           error=f"did not finish before the overall deadline of {deadline:g} s")
            for i, r in enumerate(results)]
