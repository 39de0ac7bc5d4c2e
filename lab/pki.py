"""Certificates and kubeconfig files for the lab API server.

The lab has no cluster PKI, so this module mints a throw-away CA and a server
certificate with the SANs the clients will dial, and writes kubeconfigs that
reference the CA by path and authenticate with a bearer token.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=365)


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start so the key is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_ca(cert_path: str | Path, key_path: str | Path, common_name: str = "k8sedge-lab-ca") -> None:
    """Write a self-signed CA certificate and its private key (0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(Path(key_path), _key_pem(key))
    Path(cert_path).write_bytes(_cert_pem(cert))


def _issue(cert_path: str | Path, key_path: str | Path, ca_cert_path: str | Path, ca_key_path: str | Path,
           subject: list[x509.NameAttribute], usage: x509.ObjectIdentifier,
           extensions: tuple[x509.ExtensionType, ...] = ()) -> None:
    """Write a new key and a certificate for it, signed by the CA, for one extended key usage."""
    ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    _write_private(Path(key_path), _key_pem(key))
    Path(cert_path).write_bytes(_cert_pem(cert))


def create_server_cert(
    cert_path: str | Path,
    key_path: str | Path,
    ca_cert_path: str | Path,
    ca_key_path: str | Path,
    dns_names: list[str] | tuple[str, ...] = ("localhost",),
    ip_addresses: list[str] | tuple[str, ...] = ("127.0.0.1",),
    common_name: str = "kube-apiserver",
) -> None:
    """Write a server certificate signed by the CA, valid for the given SANs."""
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    _issue(cert_path, key_path, ca_cert_path, ca_key_path, [x509.NameAttribute(NameOID.COMMON_NAME, common_name)],
           ExtendedKeyUsageOID.SERVER_AUTH, (x509.SubjectAlternativeName(sans),))


def create_client_cert(
    cert_path: str | Path,
    key_path: str | Path,
    ca_cert_path: str | Path,
    ca_key_path: str | Path,
    common_name: str,
    organizations: tuple[str, ...] = (),
) -> None:
    """Write a client certificate signed by the CA: the user is the CN, the groups the O values,
    as kube-apiserver reads an X.509 client certificate."""
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    _issue(cert_path, key_path, ca_cert_path, ca_key_path, subject, ExtendedKeyUsageOID.CLIENT_AUTH)


def write_kubeconfig(
    path: str | Path,
    server_url: str,
    ca_path: str | Path,
    token: str,
    user_name: str,
    context_name: str,
) -> None:
    """Write a kubeconfig with one cluster, user and context (0600: it holds a token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": context_name,
            "cluster": {"server": server_url, "certificate-authority": str(Path(ca_path).resolve())},
        }],
        "users": [{"name": user_name, "user": {"token": token}}],
        "contexts": [{
            "name": context_name,
            "context": {"cluster": context_name, "user": user_name},
        }],
        "current-context": context_name,
        "preferences": {},
    }
    _write_private(Path(path), yaml.safe_dump(config, sort_keys=False).encode())
