"""The workload every lab pod runs: an echo server in the style of the classic ``echoserver`` image.

    python -m lab.cluster.echo --pod NAME --namespace NS --node NODE --ip IP \\
        [--http-port 8080] [--tcp-port 9000] [--udp-port 9001] [--https-port 0] \\
        [--tls-cert FILE --tls-key FILE] [--drain-seconds 2]

Every option can come from the environment instead (POD_NAME, POD_NAMESPACE, NODE_NAME, POD_IP,
ECHO_HTTP_PORT, ECHO_TCP_PORT, ECHO_UDP_PORT, ECHO_HTTPS_PORT, ECHO_TLS_CERT, ECHO_TLS_KEY,
ECHO_DRAIN_SECONDS); a port of 0 is not opened.

Container port names (the convention of lab/manifests and of the kubelet, which reads them to
pick the ports): ``http`` (TCP 8080), ``tcp-echo`` (TCP 9000), ``udp-echo`` (UDP 9001) and
``https`` (TCP, only in pods that are given a certificate).

- http: HTTP/1.1 with keep-alive; any method gets 200 and a text/plain page describing the pod
  and the request (HEAD: the same headers, no body); ``/healthz`` answers "ok". Every response
  carries ``X-Pod-Name``. ``/delay/<ms>`` answers the same page after that many milliseconds (at most
  5,000). A request head ending in a bare LF is accepted, and so is one without
  Host, so a hand-typed ``HEAD / HTTP/1.1`` in telnet gets ``HTTP/1.1 200 OK``.
- tcp-echo: echoes bytes back; a connection that starts like an HTTP request is answered as on
  the http port, so an HTTP health check works there too.
- udp-echo: answers each datagram with ``<pod name>: `` and the datagram.
- https: the http port's echo behind TLS with the certificate and key given (PEM files), so a
  client that reaches the pod through the edge's TLS passthrough sees the pod's certificate; the
  echo page then says ``tls_version`` and the ``tls_server_name`` the client sent.
- Both TCP ports accept a PROXY protocol v1 or v2 header first and report its client as
  ``proxy_protocol_client=<ip:port>`` and its version as ``proxy_protocol_version=1|2``.
- SIGTERM: keep serving for the drain period (responses then say ``Connection: close``), then
  stop listening, close connections and exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import ssl
import sys
from email.utils import formatdate

from lab.cluster._echo_protocol import (
    HTTP_START,
    PodInfo,
    Request,
    ProtocolError,
    ProxyHeader,
    TlsInfo,
    decode_chunked,
    echo_page,
    head_end,
    http_response,
    parse_proxy_header,
    parse_request_head,
)

log = logging.getLogger("lab.cluster.echo")

MAX_HEAD = 65536
MAX_BODY = 1 << 20
IDLE_SECONDS = 60.0
_DELAY = re.compile(r"/delay/([0-9]{1,5})")
MAX_DELAY_MS = 5000
SNI_ATTRIBUTE = "k8sedge_server_name"  # set on a TLS connection's SSLObject by the SNI callback


class _Stream:
    """A reader with a buffer that protocol sniffing can look into without consuming."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buf = b""

    async def fill(self) -> bool:
        chunk = await asyncio.wait_for(self.reader.read(65536), IDLE_SECONDS)
        self.buf += chunk
        return bool(chunk)

    def take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class EchoServer:
    def __init__(self, pod: PodInfo, drain_seconds: float) -> None:
        self.pod = pod
        self.drain_seconds = drain_seconds
        self.draining = False
        self._connections: set[asyncio.Task] = set()

    async def _read_proxy(self, stream: _Stream) -> ProxyHeader | None:
        while True:
            header = parse_proxy_header(stream.buf)
            if header is not None:
                stream.take(header.length)
                return header if header.length else None
            if not await stream.fill():
                raise ConnectionError("closed inside a PROXY header")

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        stream = _Stream(reader)
        try:
            proxy = await self._read_proxy(stream)
            await self._serve_http(stream, writer, proxy)
        except (ConnectionError, asyncio.TimeoutError, ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle_https(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        tls = writer.get_extra_info("ssl_object")
        info = TlsInfo(tls.version() or "", getattr(tls, SNI_ATTRIBUTE, "")) if tls is not None else None
        try:
            await self._serve_http(_Stream(reader), writer, None, info)
        except (ConnectionError, asyncio.TimeoutError, ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        stream = _Stream(reader)
        try:
            proxy = await self._read_proxy(stream)
            if not stream.buf and not await stream.fill():
                return
            if HTTP_START.match(stream.buf):
                await self._serve_http(stream, writer, proxy)
                return
            while stream.buf:
                writer.write(stream.take(len(stream.buf)))
                await writer.drain()
                if not await stream.fill():
                    break
        except (ConnectionError, asyncio.TimeoutError, ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _serve_http(self, stream: _Stream, writer: asyncio.StreamWriter, proxy: ProxyHeader | None,
                          tls: TlsInfo | None = None) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        while True:
            while (end := head_end(stream.buf)) < 0:
                if len(stream.buf) > MAX_HEAD:
                    writer.write(self._response(400, "Bad Request", b"request head too large\n", False, False))
                    return
                if not await stream.fill():
                    return
            try:
                request = parse_request_head(stream.take(end))
                body = await self._read_body(stream, request)
            except ProtocolError as exc:
                writer.write(self._response(400, "Bad Request", f"{exc}\n".encode(), False, False))
                await writer.drain()
                return
            keep_alive = request.keep_alive and not self.draining
            path = request.target.split("?")[0]
            if (delay := _DELAY.fullmatch(path)) is not None:
                # A slow answer, so that a test has connections in flight at any instant.
                await asyncio.sleep(min(int(delay.group(1)), MAX_DELAY_MS) / 1000)
            if path == "/healthz":
                payload = b"ok\n"
            else:
                payload = echo_page(self.pod, request, peer[0], body, proxy, f"{local[0]}:{local[1]}", tls).encode()
            writer.write(self._response(200, "OK", payload, request.method == "HEAD", keep_alive))
            await writer.drain()
            if not keep_alive:
                return

    async def _read_body(self, stream: _Stream, request: Request) -> bytes:
        if "chunked" in (request.header("transfer-encoding") or "").lower():
            while (done := decode_chunked(stream.buf)) is None:
                if len(stream.buf) > MAX_BODY or not await stream.fill():
                    raise ProtocolError("incomplete or too large chunked body")
            stream.take(done[1])
            return done[0]
        try:
            length = int(request.header("content-length") or 0)
        except ValueError as exc:
            raise ProtocolError("bad Content-Length") from exc
        if not 0 <= length <= MAX_BODY:
            raise ProtocolError("bad Content-Length")
        while len(stream.buf) < length:
            if not await stream.fill():
                raise ProtocolError("body shorter than Content-Length")
        return stream.take(length)

    def _response(self, status: int, reason: str, body: bytes, head_only: bool, keep_alive: bool) -> bytes:
        return http_response(status, reason, body, head_only=head_only, keep_alive=keep_alive,
                             pod_name=self.pod.name, date=formatdate(usegmt=True))

    async def close_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.transport is not None:
            self.transport.sendto(self.prefix + data, addr)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context that records the name each client asked for (SNI) on its connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(connection: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        setattr(connection, SNI_ATTRIBUTE, server_name or "")

    context.sni_callback = remember_sni
    return context


async def serve(pod: PodInfo, http_port: int, tcp_port: int, udp_port: int, drain_seconds: float,
                https_port: int = 0, tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    echo = EchoServer(pod, drain_seconds)
    servers = []
    if http_port:
        servers.append(await asyncio.start_server(echo.handle_http, pod.ip, http_port, reuse_address=True))
    if tcp_port:
        servers.append(await asyncio.start_server(echo.handle_tcp, pod.ip, tcp_port, reuse_address=True))
    if https_port:
        servers.append(await asyncio.start_server(echo.handle_https, pod.ip, https_port, ssl=tls, reuse_address=True))
    udp = None
    if udp_port:
        udp, _ = await loop.create_datagram_endpoint(lambda: _UdpEcho(f"{pod.name}: ".encode()), local_addr=(pod.ip, udp_port))
    log.info("pod %s/%s serving on %s: http %s, tcp %s, udp %s, https %s", pod.namespace, pod.name, pod.ip, http_port, tcp_port,
             udp_port, https_port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    echo.draining = True
    log.info("SIGTERM: draining for %.1f s", drain_seconds)
    await asyncio.sleep(drain_seconds)
    for server in servers:
        server.close()
    if udp is not None:
        udp.close()
    await echo.close_connections()
    log.info("stopped")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.cluster.echo", description="Echo server of the lab's pods.")
    parser.add_argument("--pod", default=os.environ.get("POD_NAME", os.uname().nodename))
    parser.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    parser.add_argument("--node", default=os.environ.get("NODE_NAME", ""))
    parser.add_argument("--ip", default=os.environ.get("POD_IP", "127.0.0.1"), help="the only address listened on")
    parser.add_argument("--http-port", type=int, default=_env_int("ECHO_HTTP_PORT", 8080))
    parser.add_argument("--tcp-port", type=int, default=_env_int("ECHO_TCP_PORT", 9000))
    parser.add_argument("--udp-port", type=int, default=_env_int("ECHO_UDP_PORT", 9001))
    parser.add_argument("--https-port", type=int, default=_env_int("ECHO_HTTPS_PORT", 0))
    parser.add_argument("--tls-cert", default=os.environ.get("ECHO_TLS_CERT", ""), help="PEM certificate (chain) of the https port")
    parser.add_argument("--tls-key", default=os.environ.get("ECHO_TLS_KEY", ""), help="PEM private key of the https port")
    parser.add_argument("--drain-seconds", type=float, default=float(os.environ.get("ECHO_DRAIN_SECONDS") or 2.0))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s echo %(levelname)s %(message)s")
    pod = PodInfo(args.pod, args.namespace, args.node, args.ip)
    tls = None
    if args.https_port:
        if not (args.tls_cert and args.tls_key):
            parser.error("--https-port needs --tls-cert and --tls-key (or ECHO_TLS_CERT, ECHO_TLS_KEY)")
        try:
            tls = tls_context(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            print(f"echo: cannot load the certificate {args.tls_cert} and key {args.tls_key}: {exc}", file=sys.stderr)
            return 1
    try:
        asyncio.run(serve(pod, args.http_port, args.tcp_port, args.udp_port, args.drain_seconds, args.https_port, tls))
    except OSError as exc:
        print(f"echo: cannot listen on {args.ip}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
