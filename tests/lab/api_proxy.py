"""A TCP relay in front of the lab's API server that a test can take down, as if the API server
had died: every open connection is cut at once and new ones are refused until it comes back.

It relays bytes (TLS passes through untouched, so clients still verify the API server's own
certificate: the relay listens on the same address, another port). `die_after` cuts everything once
the server has sent that many bytes in all, in the middle of whatever response is under way.
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import yaml

from lab.topology import API_PORT, GATEWAY_IP, KUBECONFIG


class ApiProxy:
    def __init__(self, die_after: int | None = None) -> None:
        self.die_after = die_after
        self.sent = 0  # bytes the API server sent to clients through the relay
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0

    def start(self) -> ApiProxy:
        listener = socket.create_server((GATEWAY_IP, self.port))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def kill(self) -> None:
        """The API server is gone: no listener, every connection cut."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        for sock in ([listener] if listener else []) + list(sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def kubeconfig(self, path: Path) -> Path:
        """The lab's read-only kubeconfig, pointed at the relay."""
        config = yaml.safe_load(KUBECONFIG.read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://{GATEWAY_IP}:{self.port}"
        path.write_text(yaml.safe_dump(config))
        return path

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((GATEWAY_IP, API_PORT), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is None:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while chunk := source.recv(16384):
                if from_server and self.die_after is not None:
                    with self._lock:
                        allowed = max(0, self.die_after - self.sent)
                        self.sent += len(chunk)
                    if len(chunk) >= allowed:
                        sink.sendall(chunk[:allowed])
                        self.kill()
                        return
                elif from_server:
                    with self._lock:
                        self.sent += len(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
