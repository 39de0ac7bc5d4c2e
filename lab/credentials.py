"""The lab's secrets: SSH key, CA, API server certificate, tokens, kubeconfigs, and the
certificates of the lab's TLS host names.

Made once and kept across `labctl down`, so a kubeconfig copied elsewhere stays
valid for the next `labctl up`.
"""
from __future__ import annotations

import csv
import secrets
import subprocess
from pathlib import Path

from lab import pki
from lab.topology import (
    ADMIN_USER, API_URL, GATES_USER, GATEWAY_IP, KUBECONFIG, KUBECONFIG_ADMIN, KUBECONFIG_GATES, KUBECONFIG_STATUS,
    PKI_DIR, READER_USER, SSH_KEY, STATUS_USER, TOKEN_FILE,
)

CA_CERT = PKI_DIR / "ca.crt"
CA_KEY = PKI_DIR / "ca.key"
SERVER_CERT = PKI_DIR / "apiserver.crt"
SERVER_KEY = PKI_DIR / "apiserver.key"
# user -> groups, as kube-apiserver's token file lists them.
USERS = {ADMIN_USER: ["system:masters"], READER_USER: ["system:serviceaccounts"],
         STATUS_USER: ["system:serviceaccounts"], GATES_USER: ["system:serviceaccounts"]}
KUBECONFIGS = {KUBECONFIG_ADMIN: ADMIN_USER, KUBECONFIG: READER_USER, KUBECONFIG_STATUS: STATUS_USER,
               KUBECONFIG_GATES: GATES_USER}
# Host names served over TLS in lab/manifests, each with a certificate of the lab CA:
# secure.pctest is terminated by the edges (Ansible gives them .lab/pki/secure.pctest.{crt,key}),
# passthrough.pctest by the tls-echo pods themselves (their env names the files).
TLS_HOSTS = ("secure.pctest", "passthrough.pctest")


def tls_files(name: str) -> tuple[Path, Path]:
    """(certificate, private key) of one of TLS_HOSTS."""
    return PKI_DIR / f"{name}.crt", PKI_DIR / f"{name}.key"


def ensure() -> None:
    SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
    if not SSH_KEY.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k8sedge-lab",
                        "-f", str(SSH_KEY)], check=True)
    PKI_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not CA_CERT.exists():
        pki.create_ca(CA_CERT, CA_KEY)
    if not SERVER_CERT.exists():
        pki.create_server_cert(
            SERVER_CERT, SERVER_KEY, CA_CERT, CA_KEY,
            dns_names=["kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"],
            ip_addresses=[GATEWAY_IP, "127.0.0.1", "10.96.0.1"],
        )
    for name in TLS_HOSTS:
        cert, key = tls_files(name)
        if not cert.exists():
            pki.create_server_cert(cert, key, CA_CERT, CA_KEY, dns_names=[name], ip_addresses=[], common_name=name)
    tokens = _tokens()
    for path, user in KUBECONFIGS.items():
        pki.write_kubeconfig(path, API_URL, CA_CERT, tokens[user], user, "k8sedge-lab")


def _tokens() -> dict[str, str]:
    """user -> token, minting a token for each user the token file does not have yet (a file
    from an older lab keeps its tokens, so kubeconfigs copied elsewhere stay valid)."""
    tokens: dict[str, str] = {}
    if TOKEN_FILE.exists():
        with open(TOKEN_FILE, newline="") as handle:
            tokens = {row[1]: row[0] for row in csv.reader(handle)}
    missing = [user for user in USERS if user not in tokens]
    if missing:
        with open(TOKEN_FILE, "a", newline="") as out:
            writer = csv.writer(out)
            for user in missing:
                tokens[user] = secrets.token_urlsafe(32)
                writer.writerow([tokens[user], user, f"lab-{list(USERS).index(user) + 1}", ",".join(USERS[user])])
        TOKEN_FILE.chmod(0o600)
    return tokens
