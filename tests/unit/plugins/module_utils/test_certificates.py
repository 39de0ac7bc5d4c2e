"""k8sedge.lb.certificates_expiring: which of the operator's certificates expire soon."""
from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.k8sedge.lb.plugins.filter.certificate_fingerprints import certificate_fingerprints
from ansible_collections.k8sedge.lb.plugins.filter.certificates_expiring import certificates_expiring

NOW = datetime.datetime.now(datetime.timezone.utc)


def pair(common_name: str, days: float) -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=400))
            .not_valid_after(NOW + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return {"cert": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()}


def test_only_what_expires_within_the_threshold_soonest_first():
    found = certificates_expiring({"shop": pair("shop.example.com", 10.5), "api": pair("api.example.com", 200),
                                   "old": pair("old.example.com", -3.5)}, days=30)
    assert [f["name"] for f in found] == ["old", "shop"]
    assert found[0]["message"].startswith("certificate old (CN=old.example.com) expired 4 days ago, on ")
    assert found[1]["message"].startswith("certificate shop (CN=shop.example.com) expires in 10 days, on ")
    assert certificates_expiring({"api": pair("api.example.com", 200)}, days=365)[0]["name"] == "api"
    assert certificates_expiring({}, days=30) == []


@pytest.mark.parametrize(("certificates", "days", "message"), [
    ({"shop": {"cert": "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n", "key": "-----BEGIN KEY-----\nx\n-----END KEY-----\n"}},
     30, 'edge_haproxy_certificates: certificate "shop": cert: expected an X.509 certificate in PEM'),
    ({"shop": {"cert": "not pem", "key": "x"}}, 30, 'certificate "shop": cert: expected PEM text'),
    ({}, -1, "within_days: expected a number of days, 0 or more"),
    ({}, "soon", "k8sedge.lb.certificates_expiring: invalid literal"),
])
def test_what_cannot_be_read_is_refused_by_name(certificates, days, message):
    with pytest.raises(AnsibleFilterError, match=message):
        certificates_expiring(certificates, days=days, variable="edge_haproxy_certificates")


def test_each_certificate_has_the_sha256_fingerprint_of_its_first_certificate():
    shop, api = pair("shop.example.com", 90), pair("api.example.com", 90)
    chain = {**shop, "cert": shop["cert"] + api["cert"]}  # a leaf and what signed it: the leaf is presented
    found = certificate_fingerprints({"shop": chain, "api": api})
    leaf = x509.load_pem_x509_certificate(shop["cert"].encode()).fingerprint(hashes.SHA256()).hex()
    assert found == {"api": x509.load_pem_x509_certificate(api["cert"].encode()).fingerprint(hashes.SHA256()).hex(),
                     "shop": leaf}
    with pytest.raises(AnsibleFilterError, match='edge_haproxy_certificates: certificate "bad": cert: expected an X.509'):
        certificate_fingerprints({"bad": {**api, "cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}},
                                 variable="edge_haproxy_certificates")
