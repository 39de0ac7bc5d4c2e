"""The kubelet's kube-proxy: a userspace NodePort proxy, health check node ports and /healthz.

Listeners follow the Services; the backends of a listener are looked up when a connection (or a
new UDP flow) arrives, so endpoint changes apply to new connections at once. A TCP connection
with no usable backend is reset; a UDP datagram with none is dropped. Client addresses are not
preserved (the backend sees the node's address), as with kube-proxy's userspace mode.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from email.utils import formatdate

from lab.cluster._model import format_time, now
from lab.cluster._proxy_rules import HealthCheck, NodePortRule

log = logging.getLogger("lab.cluster.proxy")

PROXY_HEALTHZ_PORT = 10256
CONNECT_TIMEOUT = 2.0
UDP_IDLE_SECONDS = 30.0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, which is what a client sees as "connection refused/reset"."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


class _UdpFlow(asyncio.DatagramProtocol):
    """The backend side of one client's UDP flow: replies go back through the listener."""

    def __init__(self, listener: asyncio.DatagramTransport, client: tuple) -> None:
        self.listener, self.client = listener, client
        self.transport: asyncio.DatagramTransport | None = None
        self.last_used = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.last_used = time.monotonic()
        self.listener.sendto(data, self.client)


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, proxy: NodeProxy, key: tuple[str, int]) -> None:
        self.proxy, self.key = proxy, key
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple, _UdpFlow] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        flow = self.flows.get(addr)
        if flow is not None and flow.transport is not None and not flow.transport.is_closing():
            flow.last_used = time.monotonic()
            flow.transport.sendto(data)
            return
        backend = self.proxy.pick(self.key)
        if backend is None or self.transport is None:
            return
        asyncio.get_running_loop().create_task(self._open_flow(addr, backend, data))

    async def _open_flow(self, client: tuple, backend: tuple[str, int], first: bytes) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            transport, flow = await loop.create_datagram_endpoint(lambda: _UdpFlow(self.transport, client), remote_addr=backend)
        except OSError as exc:
            log.warning("udp %s: cannot reach %s:%s: %s", self.key, *backend, exc)
            return
        self.flows[client] = flow
        transport.sendto(first)

    def expire(self) -> None:
        limit = time.monotonic() - UDP_IDLE_SECONDS
        for client, flow in list(self.flows.items()):
            if flow.last_used < limit and flow.transport is not None:
                flow.transport.close()
                del self.flows[client]

    def close(self) -> None:
        for flow in self.flows.values():
            if flow.transport is not None:
                flow.transport.close()
        if self.transport is not None:
            self.transport.close()


class NodeProxy:
    def __init__(self, node_ip: str) -> None:
        self.node_ip = node_ip
        self.rules: dict[tuple[str, int], NodePortRule] = {}
        self.checks: dict[int, HealthCheck] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._tcp: dict[tuple[str, int], asyncio.Server] = {}
        self._udp: dict[tuple[str, int], _UdpListener] = {}
        self._hc: dict[int, asyncio.Server] = {}
        self._healthz: asyncio.Server | None = None

    def pick(self, key: tuple[str, int]) -> tuple[str, int] | None:
        """The next backend of a listener, round robin; None when there is none."""
        rule = self.rules.get(key)
        if rule is None or not rule.backends:
            return None
        index = self._next.get(key, 0) % len(rule.backends)
        self._next[key] = index + 1
        return rule.backends[index]

    async def start(self) -> None:
        self._healthz = await asyncio.start_server(self._serve_proxy_healthz, "0.0.0.0", PROXY_HEALTHZ_PORT, reuse_address=True)

    async def update(self, rules: dict[tuple[str, int], NodePortRule], checks: dict[int, HealthCheck]) -> None:
        """Swap in new rules and open/close listeners to match."""
        self.rules, self.checks = rules, checks
        for key in [k for k in self._tcp if k not in rules]:
            log.info("nodeport %s/%s: closing", *key)
            self._tcp.pop(key).close()
        for key in [k for k in self._udp if k not in rules]:
            log.info("nodeport %s/%s: closing", *key)
            self._udp.pop(key).close()
        for port in [p for p in self._hc if p not in checks]:
            log.info("health check node port %s: closing", port)
            self._hc.pop(port).close()
        for key, rule in rules.items():
            if key in self._tcp or key in self._udp:
                continue
            try:
                await self._listen(key, rule)
            except OSError as exc:  # the next update tries again
                log.error("nodeport %s/%s of %s/%s: cannot listen: %s", *key, rule.namespace, rule.service, exc)
        for port in checks:
            if port in self._hc:
                continue
            try:
                self._hc[port] = await asyncio.start_server(
                    lambda r, w, p=port: self._serve_health_check(r, w, p), "0.0.0.0", port, reuse_address=True)
                log.info("health check node port %s: listening", port)
            except OSError as exc:
                log.error("health check node port %s: cannot listen: %s", port, exc)

    def expire_flows(self) -> None:
        for listener in self._udp.values():
            listener.expire()

    async def _listen(self, key: tuple[str, int], rule: NodePortRule) -> None:
        protocol, port = key
        if protocol == "TCP":
            self._tcp[key] = await asyncio.start_server(
                lambda r, w: self._serve_tcp(r, w, key), self.node_ip, port, reuse_address=True)
        elif protocol == "UDP":
            loop = asyncio.get_running_loop()
            _, listener = await loop.create_datagram_endpoint(
                lambda: _UdpListener(self, key), local_addr=(self.node_ip, port))
            self._udp[key] = listener
        else:
            log.warning("nodeport %s/%s of %s/%s: protocol not proxied", protocol, port, rule.namespace, rule.service)
            return
        log.info("nodeport %s/%s: listening for %s/%s:%s", protocol, port, rule.namespace, rule.service, rule.port_name)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: tuple[str, int]) -> None:
        rule = self.rules.get(key)
        tries = len(rule.backends) if rule else 0
        for _ in range(tries):
            backend = self.pick(key)
            if backend is None:
                break
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*backend), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                log.warning("nodeport %s/%s: backend %s:%s failed: %s", *key, *backend, exc)
                continue
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
                writer.close()
            return
        _reset(writer)

    async def _serve_health_check(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        # Like kube-proxy, any path and method get the answer.
        check = self.checks.get(port)
        if check is None:
            _reset(writer)
            return
        headers = {"X-Content-Type-Options": "nosniff", "X-Load-Balancing-Endpoint-Weight": str(check.local_endpoints)}
        await _answer_http(reader, writer, check.status, check.body(), headers)

    async def _serve_proxy_healthz(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stamp = format_time(now())
        body = json.dumps({"lastUpdated": stamp, "currentTime": stamp, "nodeEligible": True}).encode()
        await _answer_http(reader, writer, 200, body, {"X-Content-Type-Options": "nosniff"})

    def close(self) -> None:
        for server in [*self._tcp.values(), *self._hc.values(), *([self._healthz] if self._healthz else [])]:
            server.close()
        for listener in self._udp.values():
            listener.close()


async def _answer_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, body: bytes,
                       headers: dict[str, str]) -> None:
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
        writer.close()
        return
    reason = "OK" if status == 200 else "Service Unavailable"
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Date: {formatdate(usegmt=True)}",
             f"Content-Length: {len(body)}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()
