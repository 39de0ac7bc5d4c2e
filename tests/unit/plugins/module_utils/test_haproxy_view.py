"""The haproxy view of the edge model: what is served and how, and what is refused."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewError, ViewOptions, haproxy_view

MODEL = yaml.safe_load((Path(__file__).parent / "fixtures" / "haproxy_view_model.yaml").read_text())
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
CERTS = {"web": {"cert": PEM_CERT, "key": PEM_KEY}}


def view(model: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    options = {"udp_frontends": "skip", "certificates": CERTS, **options}
    return haproxy_view(copy.deepcopy(MODEL) if model is None else model, ViewOptions(**options))


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(item for item in items if item["name"] == name)


def maps(result: dict[str, Any]) -> dict[str, list[str]]:
    return {m["path"]: m["lines"] for m in result["maps"]}


def changed(path: str, value: Any) -> dict[str, Any]:
    """MODEL with the value at a dotted path (list indexes as numbers) replaced."""
    model = copy.deepcopy(MODEL)
    *parents, last = path.split(".")
    node: Any = model
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return model


def test_only_the_served_pools_are_rendered_and_udp_is_skipped_with_a_finding():
    result = view()
    assert [f["name"] for f in result["frontends"]] == ["default-http-80", "default-http-443", "default-tcp-8443", "default-tcp-9999"]
    assert "blue_x_7000_tcp" not in {b["name"] for b in result["backends"]}
    assert "default_dns_53_udp" not in {b["name"] for b in result["backends"]}
    [finding] = result["findings"]
    assert (finding["where"], finding["field"]) == ("frontend default-udp-5353", "protocol")
    assert "edge_nginx" in finding["message"]
    assert [f["name"] for f in view(pools=["blue"])["frontends"]] == ["blue-tcp-7000"]


def test_udp_is_skipped_with_a_finding_by_default():
    result = haproxy_view(copy.deepcopy(MODEL), ViewOptions(certificates=CERTS))
    assert "default-udp-5353" not in [f["name"] for f in result["frontends"]]
    assert [f for f in result["findings"] if f["where"] == "frontend default-udp-5353"]


def test_udp_in_a_served_pool_fails_when_the_operator_chooses_fail_naming_the_frontend_and_edge_nginx():
    with pytest.raises(ViewError, match=r"^frontend default-udp-5353: protocol: UDP .* serve pool default with the nginx engine \(role edge_nginx\)"):
        view(udp_frontends="fail")
    assert view(udp_frontends="fail", pools=["blue"])["frontends"]  # the blue pool has no UDP


def test_http_routes_become_ordered_maps_with_kubernetes_prefix_semantics():
    result = view()
    http = by_name(result["frontends"], "default-http-80")
    assert [(lookup["variable"], lookup["converter"], lookup["file"]) for lookup in http["lookups"]] == [
        ("txn.k8sedge_key", "map_str", "maps/default-http-80.host-exact.map"),
        ("txn.k8sedge_key", "map_beg", "maps/default-http-80.host-prefix.map"),
        ("txn.k8sedge_wild", "map_beg", "maps/default-http-80.wildcard-prefix.map"),
        ("txn.k8sedge_any", "map_str", "maps/default-http-80.any-exact.map"),
        ("txn.k8sedge_any", "map_beg", "maps/default-http-80.any-prefix.map"),
    ]
    files = maps(result)
    # Prefix /api/v1 matches /api/v1 and /api/v1/..., not /api/v1x; exact /healthz only itself.
    assert files["maps/default-http-80.host-exact.map"] == [
        "s2.pctest/api/v1 default_api_80", "s2.pctest/healthz default_api_80"]
    # map_beg takes the first match in file order: longest first.
    assert files["maps/default-http-80.host-prefix.map"] == [
        "s2.pctest/api/v1/ default_api_80", "shop.pctest/ k8sedge-redirect-default", "s2.pctest/ default_s2_80"]
    assert files["maps/default-http-80.wildcard-prefix.map"] == ["*.apps.pctest/ default_api_80"]
    assert files["maps/default-http-80.any-exact.map"] == ["*/static default_s2_80"]
    assert files["maps/default-http-80.any-prefix.map"] == ["*/static/ default_s2_80"]
    assert http["scheme"] == "http" and http["bind"] == ":80" and http["bind_options"] == []


def test_tls_termination_names_the_given_certificates_and_http_redirects_to_its_port():
    result = view()
    https = by_name(result["frontends"], "default-http-443")
    assert https["bind_options"] == ["ssl", "crt certs/web.pem", "alpn h2,http/1.1"]
    assert https["scheme"] == "https"
    assert [c["name"] for c in result["certificates"]] == ["web"]
    assert result["redirects"] == [{"name": "k8sedge-redirect-default", "location": "https://%[var(txn.k8sedge_host)]%[url]"}]
    model = changed("frontends.1.port", 8443)
    model["frontends"] = [f for f in model["frontends"] if f["name"] != "default-tcp-8443"]
    assert view(model)["redirects"][0]["location"] == "https://%[var(txn.k8sedge_host)]:8443%[url]"


def with_tls_route(model: dict[str, Any], host: str, certificate: str) -> dict[str, Any]:
    """The model plus a TLS terminate route of `host` and its redirect from plain HTTP, as edge_info gives them."""
    route = {"host": host, "path": "/", "path_type": "prefix", "backend": "default_api_80"}
    by_name(model["frontends"], "default-http-80")["routes"].insert(0, {**route, "certificate": "", "redirect_https": True})
    https = by_name(model["frontends"], "default-http-443")
    https["routes"].insert(0, {**route, "certificate": certificate, "redirect_https": False})
    https["certificates"] = sorted({*https["certificates"], certificate})
    return model


def test_a_route_whose_certificate_is_not_given_is_left_out_and_the_rest_served():
    result = view(with_tls_route(copy.deepcopy(MODEL), "api.pctest", "api"))
    base = view()
    assert {k: v for k, v in result.items() if k != "findings"} == {k: v for k, v in base.items() if k != "findings"}
    [finding] = [f for f in result["findings"] if f not in base["findings"]]
    assert (finding["where"], finding["field"]) == ("frontend default-http-443", "routes[0].certificate")
    assert all(name in finding["message"] for name in ("api.pctest/", "default_api_80", "certificate api", "not given in certificates"))


def test_a_tls_frontend_without_a_certificate_given_is_left_out_with_its_redirects():
    result = view(certificates={})
    assert [f["name"] for f in result["frontends"]] == ["default-http-80", "default-tcp-8443", "default-tcp-9999"]
    assert result["certificates"] == [] and result["redirects"] == []
    assert not [line for lines in maps(result).values() for line in lines if line.startswith("shop.pctest")]
    assert maps(result)["maps/default-http-80.host-exact.map"] == maps(view())["maps/default-http-80.host-exact.map"]
    assert [(f["where"], f["field"]) for f in result["findings"] if f["where"] == "frontend default-http-443"] == [
        ("frontend default-http-443", "routes[0].certificate"), ("frontend default-http-443", "routes")]


def test_sni_passthrough_and_tcp_frontends():
    result = view()
    sni = by_name(result["frontends"], "default-tcp-8443")
    assert sni["mode"] == "tcp" and sni["sni"] is True and sni["backend"] == ""
    assert maps(result)["maps/default-tcp-8443.host-exact.map"] == ["db.pctest default_db_5432_tcp"]
    assert maps(result)["maps/default-tcp-8443.wildcard-exact.map"] == ["*.tls.pctest default_db_5432_tcp"]
    tcp = by_name(result["frontends"], "default-tcp-9999")
    assert tcp["backend"] == "default_s2_80_tcp_proxy-v2" and tcp["bind_options"] == ["accept-proxy"]


@pytest.mark.parametrize("name, expected", [
    ("default_api_80", {"mode": "http", "balance": "leastconn", "timeout_connect": "1500ms", "timeout_server": "30000ms",
                        "http_check": "/ready", "default_server": ["check", "inter 2s", "fall 3", "rise 2"]}),
    ("default_s2_80", {"mode": "http", "balance": "roundrobin", "http_check": "/healthz",
                       "default_server": ["check", "inter 2s", "fall 3", "rise 2", "port 31791"]}),
    ("default_db_5432_tcp", {"mode": "tcp", "balance": "source", "http_check": "", "default_server": [], "timeout_server": "3600000ms"}),
    ("default_s2_80_tcp_proxy-v2", {"mode": "tcp", "default_server": ["check", "inter 2s", "fall 3", "rise 2", "send-proxy-v2"]}),
])
def test_backend_settings(name, expected):
    backend = by_name(view()["backends"], name)
    assert {key: backend[key] for key in expected} == expected


def test_targets_fill_slots_draining_ones_with_weight_zero_the_rest_disabled():
    servers = by_name(view()["backends"], "default_api_80")["servers"]
    assert len(servers) == 10
    assert servers[0] == {"name": "s1", "address": "10.244.1.7", "port": 8080, "state": "ready", "endpoint": "10.244.1.7:8080", "options": []}
    assert servers[1]["options"] == ["weight 0"] and servers[1]["state"] == "drain"
    assert servers[2] == {"name": "s3", "address": "", "port": 0, "state": "maint", "endpoint": "0.0.0.0:0", "options": ["disabled"]}
    v6 = by_name(view()["backends"], "default_s2_80_tcp_proxy-v2")["servers"][0]
    assert v6["endpoint"] == "[fd00::21]:31780"


@pytest.mark.parametrize("targets, slots, count", [(0, 10, 10), (10, 10, 10), (11, 10, 20), (25, 10, 30), (3, 2, 4)])
def test_slots_grow_in_steps(targets, slots, count):
    model = changed("backends.4.targets", [{"address": f"10.213.1.{i + 1}", "port": 80, "state": "ready"} for i in range(targets)])
    servers = by_name(view(model, slots=slots)["backends"], "default_s2_80")["servers"]
    assert len(servers) == count
    assert sum(s["state"] == "ready" for s in servers) == targets


def test_a_redirect_needs_a_tls_frontend_of_its_pool():
    model = copy.deepcopy(MODEL)
    model["frontends"] = [f for f in model["frontends"] if f["name"] != "default-http-443"]
    with pytest.raises(ViewError, match=r"^frontend default-http-80: routes\[3\]\.redirect_https: no TLS frontend of pool default"):
        view(model)


def test_running_slots_that_say_nothing_usable_are_filled_anew():
    previous = {"default_s2_80": {"s4": {"address": ["10.213.0.22"], "port": 31780}, "s5": "10.213.0.22:31780"}}
    assert view(previous=previous)["backends"] == view()["backends"]
    with pytest.raises(ViewError, match=r"^options: previous.default_s2_80: expected slot names, got 4"):
        view(previous={"default_s2_80": {4: {}}})


def test_targets_keep_the_slot_the_running_haproxy_has_them_in():
    previous = {"default_s2_80": {"s4": {"address": "10.213.0.22", "port": 31780}, "s9": {"address": "10.9.9.9", "port": 1}}}
    servers = by_name(view(previous=previous)["backends"], "default_s2_80")["servers"]
    assert [(s["name"], s["address"]) for s in servers if s["state"] != "maint"] == [("s1", "10.213.0.21"), ("s4", "10.213.0.22")]


def test_structure_digest_ignores_targets_but_not_settings():
    base = view()["structure"]
    assert view(changed("backends.4.targets.1.address", "10.213.0.23"))["structure"] == base
    assert view(changed("backends.4.targets.1.state", "draining"))["structure"] == base
    assert view(changed("backends.4.balance", "leastconn"))["structure"] != base
    assert view(certificates={"web": {"cert": PEM_CERT, "key": PEM_KEY.replace("MIIE", "MIIF")}})["structure"] != base


def test_pod_routes_only_when_a_served_backend_is_in_pod_mode():
    assert view()["routes"] == [{"cidr": "10.244.1.0/24", "via": "10.213.0.21"}, {"cidr": "10.244.2.0/24", "via": "10.213.0.22"}]
    assert view(pools=["blue"])["routes"] == []


def test_runtime_lists_every_slot_of_every_backend():
    runtime = by_name([{"name": r["backend"], **r} for r in view()["runtime"]], "default_api_80")
    assert runtime["servers"][:2] == [{"name": "s1", "address": "10.244.1.7", "port": 8080, "state": "ready"},
                                      {"name": "s2", "address": "10.244.2.9", "port": 8080, "state": "drain"}]


def test_the_view_is_deterministic_and_sorted():
    assert view() == view()
    assert [m["path"] for m in view()["maps"]] == sorted(m["path"] for m in view()["maps"])


# Defence in depth: nothing the view lets through can end a line, open a section or quote.
@pytest.mark.parametrize("path, value, message", [
    ("frontends.0.name", "web\nbackend evil", r"^frontend \"web\?backend\?evil\": name: expected a name"),
    ("frontends.0.port", 0, r"^frontend default-http-80: port: expected a port number"),
    ("frontends.0.port", True, r"^frontend default-http-80: port: expected a port number"),
    ("frontends.0.routes.0.host", "s2.pctest evil", r"^frontend default-http-80: routes\[0\]\.host: expected a lowercase host name"),
    ("frontends.0.routes.0.host", "S2.pctest", r"routes\[0\]\.host: expected a lowercase host name"),
    ("frontends.0.routes.0.path", "/a b", r"^frontend default-http-80: routes\[0\]\.path: expected a path"),
    ("frontends.0.routes.0.path", "/a\n", r"routes\[0\]\.path: expected a path"),
    ("frontends.0.routes.0.path", "/a{b}", r"routes\[0\]\.path: expected a path"),
    ("frontends.0.routes.0.path_type", "regex", r"routes\[0\]\.path_type: expected one of exact, prefix"),
    ("frontends.0.routes.0.backend", "x y", r"routes\[0\]\.backend: expected a name"),
    ("frontends.2.sni.0.host", "db.pctest\n", r"^frontend default-tcp-8443: sni\[0\]\.host"),
    ("frontends.3.backend", "a#b", r"^frontend default-tcp-9999: backend: expected a name"),
    ("frontends.0.routes.0.backend", "default_missing_80", r"^backend default_missing_80: named by frontend default-http-80 but missing"),
    ("backends.4.balance", "roundrobin\n", r"^backend default_s2_80: balance: expected one of roundrobin, leastconn, source"),
    ("backends.4.timeouts.connect_ms", "5s", r"^backend default_s2_80: timeouts\.connect_ms: expected milliseconds"),
    ("backends.4.timeouts.server_ms", 0, r"timeouts\.server_ms: expected milliseconds"),
    ("backends.4.health_check.path", "/x y", r"^backend default_s2_80: health_check\.path: expected a path"),
    ("backends.4.health_check.port", 70000, r"health_check\.port: expected a port number"),
    ("backends.4.proxy_protocol", "v3", r"proxy_protocol: expected one of none, v1, v2"),
    ("backends.4.targets.0.address", "10.213.0.21 backup", r"^backend default_s2_80: targets\[0\]\.address: expected an IP address"),
    ("backends.4.targets.0.address", "010.213.0.21", r"targets\[0\]\.address: expected an IP address in canonical form"),
    ("backends.4.targets.0.port", "80", r"targets\[0\]\.port: expected a port number"),
    ("backends.4.targets.0.state", "out", r"targets\[0\]\.state: expected one of ready, draining"),
    ("backends.4.frontend_protocol", "tcp", r"^backend default_s2_80: frontend_protocol: tcp, but frontend default-http-80 speaks http"),
    ("routes.0.cidr", "10.244.2.1/24", r"^model: routes\[0\]\.cidr: expected a CIDR"),
    ("routes.0.via", "fd00::1", r"^model: routes\[0\]\.via: expected an IPv4 address"),
    ("generation", "abc\n", r"^model: generation: expected a hex digest"),
    ("frontends.1.tls", "yes", r"^frontend default-http-443: tls: expected true or false"),
    ("frontends.3.accept_proxy", None, r"^frontend default-tcp-9999: accept_proxy: expected true or false"),
    ("backends.0", "default_api_80", r"^model: backends\[0\]: expected an object"),
    ("backends.0.name", ["default_api_80"], r"^model: backends\[0\]\.name: expected a name"),
])
def test_values_that_could_break_a_config_line_are_refused(path, value, message):
    with pytest.raises(ViewError, match=message):
        view(changed(path, value))


@pytest.mark.parametrize("options, message", [
    ({"pools": []}, r"^options: pools: expected a non-empty list"),
    ({"pools": ["a b"]}, r"^options: pools\[\]: expected a name"),
    ({"slots": 0}, r"^options: slots: expected a number of server slots"),
    ({"admin_address": "0.0.0.0 ssl"}, r"^options: admin_address: expected an IP address"),
    ({"admin_port": 80}, r"^frontend default-http-80: port: 80 is already taken by the admin listener"),
    ({"admin_port": 9999}, r"^frontend default-tcp-9999: port: 9999 is already taken by the admin listener .*: add 9999 to edge_info's"
                           r" reserved_ports option"),
    ({"bind_address": "localhost"}, r"^options: bind_address: expected an IP address"),
    ({"udp_frontends": "ignore"}, r"^options: udp_frontends: expected one of fail, skip"),
    ({"certificates": {"web": {"cert": "not pem", "key": PEM_KEY}}}, r"^certificate \"web\": cert: expected PEM text .*\(the value is not shown\)"),
    ({"certificates": {"Web Cert": {"cert": PEM_CERT, "key": PEM_KEY}}}, r"^certificate \"Web\?Cert\": name: expected a name"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ViewError, match=message):
        view(**options)
