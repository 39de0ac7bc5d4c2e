"""Start the lab API server as a subprocess with a fresh CA, for the kubeapi tests and the
model-build benchmark."""
from __future__ import annotations

import os
import secrets
import selectors
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lab import pki
from lab.topology import REPO

READER = "system:serviceaccount:k8sedge:edge-reader"


@dataclass(frozen=True)
class LabApi:
    url: str
    ca: Path
    admin_token: str
    reader_token: str
    admin_kubeconfig: Path
    reader_kubeconfig: Path
    log: Path
    pid: int


def start_server(workdir: Path, *extra: str) -> tuple[subprocess.Popen[str], LabApi]:
    """Start `python -m lab.kubeapi` on an ephemeral port; returns once it listens."""
    ca, ca_key = workdir / "ca.crt", workdir / "ca.key"
    cert, key = workdir / "server.crt", workdir / "server.key"
    pki.create_ca(ca, ca_key)
    pki.create_server_cert(cert, key, ca, ca_key, ["localhost"], ["127.0.0.1"])
    admin, reader = secrets.token_hex(16), secrets.token_hex(16)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{admin},lab-admin,1000,"system:masters,lab:admins"\n'
                      f"{reader},{READER},1001\n")
    log = workdir / "access.log"
    proc, url = _launch(workdir, "0", *extra)
    admin_cfg, reader_cfg = workdir / "admin.kubeconfig", workdir / "reader.kubeconfig"
    pki.write_kubeconfig(admin_cfg, url, ca, admin, "lab-admin", "lab")
    pki.write_kubeconfig(reader_cfg, url, ca, reader, "edge-reader", "lab")
    return proc, LabApi(url, ca, admin, reader, admin_cfg, reader_cfg, log, proc.pid)


def _launch(workdir: Path, port: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """The server on the PKI and tokens start_server wrote into workdir; returns once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.kubeapi", "--bind", "127.0.0.1", "--port", port,
         "--tls-cert", str(workdir / "server.crt"), "--tls-key", str(workdir / "server.key"),
         "--token-auth-file", str(workdir / "tokens.csv"), "--client-ca-file", str(workdir / "ca.crt"),
         "--authorization-policy", str(REPO / "lab" / "rbac.yaml"),
         "--authorization-policy", str(REPO / "docs" / "rbac.yaml"), "--log-file", str(workdir / "access.log"),
         "--root-ca-file", str(workdir / "ca.crt"),
         *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    waiter = selectors.DefaultSelector()
    waiter.register(proc.stdout, selectors.EVENT_READ)
    line = proc.stdout.readline() if waiter.select(timeout=20) else ""
    if not line.startswith("listening on https://"):
        proc.kill()
        raise RuntimeError(f"kubeapi did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[-1]


def restart_server(api: LabApi, *extra: str) -> subprocess.Popen[str]:
    """A new server (empty store) at api's address, with its CA and tokens: a cluster's API coming
    back after an outage, for clients that must reconnect."""
    proc, url = _launch(api.ca.parent, api.url.rsplit(":", 1)[1], *extra)
    assert url == api.url, (url, api.url)
    return proc


def stop_server(proc: subprocess.Popen[str]) -> int:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
