"""What the three engine views share (module_utils/_view.py): one error type, one checker that names
where a value was found, the field and what was expected, and the helpers every view needs."""
from __future__ import annotations

import re

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g
from ansible_collections.k8sedge.lb.plugins.module_utils import _haproxy_view, _keepalived_view, _nginx_view
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError, ProbeError, ViewError
from ansible_collections.k8sedge.lb.plugins.module_utils._view import (
    Checker, certificate_digest, check_certificates, endpoint, json_digest, named, path_matches, plain_certificates, pod_routes)

PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
c = Checker("frontend web")


def refused(call, *args) -> str:
    with pytest.raises(ViewError) as error:
        call(*args)
    return str(error.value)


# --- the checker --------------------------------------------------------------------------------

@pytest.mark.parametrize(("call", "value", "message"), [
    (c.name, "web\nbackend evil", 'frontend web: f: expected a name of lowercase letters, digits, \'_\', \'.\' and \'-\', got "web?backend?evil"'),
    (c.host, "S2.pctest", "frontend web: f: expected a lowercase host name, '*.' wildcard or '*', got \"S2.pctest\""),
    (c.path, "/a b", 'frontend web: f: expected a path of letters, digits and . _ ~ / -, got "/a?b"'),
    (c.port, True, "frontend web: f: expected a port number 1-65535, got true"),
    (c.port, 0, "frontend web: f: expected a port number 1-65535, got 0"),
    (c.milliseconds, "5s", 'frontend web: f: expected milliseconds 1-86400000, got "5s"'),
    (c.number, "1", 'frontend web: f: expected a number, got "1"'),
    (c.flag, "yes", 'frontend web: f: expected true or false, got "yes"'),
    (c.address, "010.0.0.1", 'frontend web: f: expected an IP address in canonical form, got "010.0.0.1"'),
    (c.mapping, [], "frontend web: f: expected an object, got a list"),
    (c.sequence, {}, "frontend web: f: expected a list, got a dict"),
    (c.text, None, "frontend web: f: expected text, got null"),
])
def test_a_refusal_names_where_the_field_and_what_was_expected(call, value, message):
    assert refused(call, "f", value) == message


def test_the_value_shown_can_carry_nothing_hostile():
    message = refused(c.name, "f", "x\r\n\x1b[31m" + "y" * 100)
    assert "\n" not in message and "\x1b" not in message and message.endswith('..."')


@pytest.mark.parametrize(("value", "accepted"), [("*", True), ("*.apps.pctest", True), ("s2.pctest", True), ("S2.pctest", False),
                                                 ("*.*.pctest", False), ("", False), (None, False)])
def test_hosts_as_the_model_spells_them(value, accepted):
    if accepted:
        assert c.host("host", value) == value
    else:
        pytest.raises(ViewError, c.host, "host", value)


def test_integers_choices_and_patterns():
    assert c.integer("n", 3, 1, 5) == 3
    assert refused(c.integer, "n", 6, 1, 5) == "frontend web: n: expected an integer from 1 to 5, got 6"
    assert refused(c.integer, "n", 1.0, 1, 5).endswith("got a float")
    assert c.choice("balance", "source", ("roundrobin", "source")) == "source"
    assert refused(c.choice, "balance", "random", ("roundrobin", "source")).endswith("expected one of roundrobin, source, got \"random\"")
    assert c.matches("id", "ab12", re.compile(r"[a-z0-9]+"), "an id") == "ab12"
    assert refused(c.matches, "id", "ab-12", re.compile(r"[a-z0-9]+"), "an id") == 'frontend web: id: expected an id, got "ab-12"'


def test_a_secret_is_never_shown():
    message = refused(c.secret, "key", "not pem but secret", g.pem, "PEM text")
    assert "secret" not in message and message == "frontend web: key: expected PEM text (the value is not shown)"


def test_refusals_and_findings_in_the_same_terms():
    assert str(c.refuse("port", "80 is already taken")) == "frontend web: port: 80 is already taken"
    assert c.finding("routes[0].certificate", "left out") == {"where": "frontend web", "field": "routes[0].certificate", "message": "left out"}


def test_another_layer_checks_with_its_own_error():
    class Refused(ProbeError):
        pass

    with pytest.raises(Refused, match=r"^plan: probes: expected a list, got null$"):
        Checker("plan", Refused).sequence("probes", None)


def test_named_objects_show_a_bad_name_safely():
    name, checker = named("backend", "default_web_80")
    assert (name, checker.where) == ("default_web_80", "backend default_web_80")
    assert refused(named, "backend", "web;evil").startswith('backend "web?evil": name: expected a name')


# --- the helpers --------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "path_type", "matches"), [
    ("/", "prefix", [("prefix", "/")]),
    ("/api", "prefix", [("exact", "/api"), ("prefix", "/api/")]),
    ("/api/", "prefix", [("exact", "/api"), ("prefix", "/api/")]),
    ("/api//", "prefix", [("exact", "/api"), ("prefix", "/api/")]),
    ("/api", "exact", [("exact", "/api")]),
    ("/api/", "exact", [("exact", "/api/")]),
    ("/", "exact", [("exact", "/")]),
])
def test_kubernetes_path_matching(path, path_type, matches):
    assert path_matches(path, path_type) == matches


def test_endpoints_and_digests():
    assert (endpoint("10.0.0.1", 80), endpoint("fd00::1", 80)) == ("10.0.0.1:80", "[fd00::1]:80")
    assert json_digest({"a": 1, "b": [2]}) == json_digest({"b": [2], "a": 1}) != json_digest({"a": 1, "b": [3]})
    pair = {"cert": PEM_CERT, "key": PEM_KEY}
    assert certificate_digest(pair) != certificate_digest({**pair, "key": PEM_KEY.replace("MIIE", "MIIF")})
    assert len(certificate_digest(pair)) == 64


def test_certificates_as_plain_text_and_checked():
    class Vaulted:
        def __str__(self) -> str:
            return PEM_KEY

    assert plain_certificates({"web": {"cert": PEM_CERT, "key": Vaulted()}}) == {"web": {"cert": PEM_CERT, "key": PEM_KEY}}
    assert plain_certificates(["web"]) == ["web"]  # for check_certificates to refuse
    assert check_certificates({"web": {"cert": PEM_CERT, "key": PEM_KEY}}, "certificates")
    assert refused(check_certificates, ["web"], "certificates") == "options: certificates: expected an object, got a list"
    assert refused(check_certificates, {"web": {"cert": PEM_CERT}}, "certificates") == (
        'certificate "web": key: expected PEM text (-----BEGIN ...----- to -----END ...-----) (the value is not shown)')
    assert refused(check_certificates, {"Web": {"cert": PEM_CERT, "key": PEM_KEY}}, "certificates").startswith('certificate "Web": name:')


def test_pod_routes_are_checked_and_sorted_by_family_then_network():
    model = {"routes": [{"cidr": "fd00:10:244:1::/64", "via": "fd00::11"}, {"cidr": "10.244.2.0/24", "via": "10.0.0.12"},
                        {"cidr": "10.244.10.0/24", "via": "10.0.0.13"}]}
    assert [r["cidr"] for r in pod_routes(model)] == ["10.244.2.0/24", "10.244.10.0/24", "fd00:10:244:1::/64"]
    assert pod_routes({}) == []
    assert refused(pod_routes, {"routes": [{"cidr": "10.244.2.1/24", "via": "10.0.0.12"}]}).startswith(
        "model: routes[0].cidr: expected a CIDR with host bits zero")
    assert refused(pod_routes, {"routes": [{"cidr": "10.244.2.0/24", "via": "fd00::1"}]}).startswith(
        "model: routes[0].via: expected an IPv4 address")


# --- siblings look alike -------------------------------------------------------------------------

@pytest.mark.parametrize("module", [_haproxy_view, _nginx_view, _keepalived_view])
def test_the_three_views_share_one_error_and_name_their_entry_point_alike(module):
    engine = module.__name__.rsplit("._", 1)[1].removesuffix("_view")
    assert module.ViewError is ViewError and issubclass(ViewError, EdgeError)
    assert callable(getattr(module, f"{engine}_view")) and f"{engine}_view" in module.__all__
    assert "ViewOptions" in module.__all__
