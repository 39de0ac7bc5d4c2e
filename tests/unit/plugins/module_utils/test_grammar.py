"""The grammars the edge views share with the model: names the model builds, addresses in the
spelling a config line carries, and the PEM text of the certificates Ansible gives."""
from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g


@pytest.mark.parametrize("value", ["default-http-80", "default_s2_80_tcp_proxy-v1", "a", "x" * 253, "pool.1"])
def test_model_name_accepts_what_the_model_builds(value):
    assert g.model_name(value) == value


@pytest.mark.parametrize("value", ["", "x" * 254, "-a", "_a", "A", "a b", "a\n", "a;", "a{", "é", None, 7])
def test_model_name_refuses_anything_else(value):
    with pytest.raises(g.InvalidValue, match="expected a name"):
        g.model_name(value)


@pytest.mark.parametrize("value", ["10.213.0.21", "127.0.0.1", "0.0.0.0", "::", "::1", "fd00::1", "2001:db8::7"])
def test_canonical_ip_takes_any_address_spelled_as_python_spells_it(value):
    assert str(g.canonical_ip(value)) == value


@pytest.mark.parametrize("value", ["010.0.0.1", "FD00::1", "fd00:0::1", "fe80::1%eth0", "10.0.0.1 x", "10.0.0.256", "", None])
def test_canonical_ip_refuses_other_spellings(value):
    with pytest.raises(g.InvalidValue, match="canonical form"):
        g.canonical_ip(value)


@pytest.mark.parametrize("value, expected", [
    ("10.0.0.1", (4, "10.0.0.1")), ("::ffff:10.0.0.1", (4, "10.0.0.1")), ("fd00:0::1", (6, "fd00::1")),
    ("240.0.0.1", (4, "240.0.0.1")),  # class E: some clouds give it to pods
])
def test_ip_reads_every_spelling_of_an_address_as_one(value, expected):
    assert g.ip(value) == expected


@pytest.mark.parametrize("value, refused", [
    ("127.0.0.1", "loopback"), ("::ffff:127.0.0.1", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::ffff:0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("::ffff:224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"), ("::ffff:255.255.255.255", "broadcast"),
    ("169.254.169.254", "link-local"), ("::ffff:169.254.169.254", "link-local"), ("fe80::1", "link-local"),
])
def test_ip_refuses_what_is_never_a_node_or_a_pod(value, refused):
    with pytest.raises(g.InvalidValue, match=f"got the {refused} address"):
        g.ip(value)


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_ipv6_form_are_read_alike(address):
    outcomes = []
    for spelling in (str(address), f"::ffff:{address}"):
        try:
            outcomes.append(g.ip(spelling))
        except g.InvalidValue as exc:
            outcomes.append(str(exc).partition(" address ")[0])
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("value", ["10.244.1.0/24", "10.244.0.0/16", "fd00:10:244:1::/64", "fd00::/48", "10.244.1.7/32"])
def test_pod_cidr_takes_a_network_the_size_of_a_node(value):
    assert str(g.pod_cidr(value)) == value


@pytest.mark.parametrize("value, message", [
    ("0.0.0.0/0", "a default route"), ("::/0", "a default route"),
    ("10.0.0.0/15", "of /16 or narrower"), ("fd00::/47", "of /48 or narrower"),
    ("169.254.0.0/16", "link-local"), ("127.0.0.0/16", "loopback"), ("224.0.0.0/16", "multicast"),
    ("255.255.255.0/24", "broadcast"), ("fe80::/64", "link-local"), ("::ffff:0:0/104", "IPv4-mapped"),
    ("10.244.1.1/24", "host bits zero"),
])
def test_pod_cidr_refuses_what_would_take_the_edges_other_traffic(value, message):
    with pytest.raises(g.InvalidValue, match=message):
        g.pod_cidr(value)


def _pem_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8sedge.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())


CERT, KEY = _pem_pair()


@pytest.mark.parametrize("value", [CERT, KEY, CERT + CERT, CERT.strip(), "\n" + KEY + "\n\n", CERT.replace("\n", "\r\n"),
                                   "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00FF\nAAAA\n"
                                   "-----END RSA PRIVATE KEY-----\n"])
def test_pem_takes_blocks_chains_and_keys(value):
    assert g.pem(value) == value


@pytest.mark.parametrize("value", [
    "", "not pem", None,
    "-----BEGIN CERTIFICATE-----\nAAAA\n",  # no end
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n",  # another label
    CERT + "trailing text\n",
    "-----END CERTIFICATE-----\n" + CERT,
    CERT.replace("-----END", "-----BEGIN CERTIFICATE-----\n-----END", 1),  # nested
    "-----BEGIN CERTIFICATE-----\nAA AA\n-----END CERTIFICATE-----\n",
    "-----BEGIN CERTIFICATE-----\nAAAA;\n-----END CERTIFICATE-----\n",
])
def test_pem_refuses_anything_else(value):
    with pytest.raises(g.InvalidValue, match="expected PEM text"):
        g.pem(value)
