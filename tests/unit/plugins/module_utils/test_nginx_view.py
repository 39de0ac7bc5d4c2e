"""The nginx view of the edge model: what each frontend becomes, what nginx cannot serve, and what
is refused before it can reach a config line. How the templates spell it: filter/test_nginx_view_filter.py."""
from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, ModelOptions, build_model
from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_view import REFUSE_UPSTREAM, ViewError, ViewOptions, nginx_view


def with_configmaps(**changes) -> ModelOptions:
    """The model options the fixtures are written for: the ingress-nginx ConfigMaps named (reading
    them is opt-in)."""
    return ModelOptions(tcp_services_configmap="ingress-nginx/tcp-services", udp_services_configmap="ingress-nginx/udp-services",
                        **changes)


FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = yaml.safe_load((FIXTURES / "nginx_view.yaml").read_text())
CERTS = {"shop": FIXTURE["certificate"]}


def model() -> dict[str, Any]:
    return copy.deepcopy(FIXTURE["model"])


def view(raw: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    options = {"certificates": CERTS, **options}
    return nginx_view(model() if raw is None else raw, ViewOptions(**options))


def frontend(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in raw["frontends"] if f["name"] == name)


def backend(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(b for b in raw["backends"] if b["name"] == name)


def server(result: dict[str, Any], port: int, name: str = "") -> dict[str, Any]:
    """The http server listening on port for host `name` ("": the default server)."""
    matches = [s for s in result["http"]["servers"] if s["listen"] == str(port) and s["name"] == name]
    assert len(matches) == 1, (port, name, result["http"]["servers"])
    assert matches[0]["default"] is (name == "")
    return matches[0]


def stream(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in result["stream"]["servers"] if s["frontend"] == name)


def locations(srv: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, path) -> the location: kind `exact` or `prefix`."""
    return {("exact" if loc["exact"] else "prefix", loc["path"]): loc for loc in srv["locations"]}


def answers(srv: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, path) -> (answer, upstream)."""
    return {key: (loc["answer"], loc["upstream"]) for key, loc in locations(srv).items()}


def upstreams(result: dict[str, Any], module: str) -> dict[str, dict[str, Any]]:
    return {u["name"]: u for u in result[module]["upstreams"]}


def findings(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["where"], f["field"]) for f in result["findings"]]


def every_value(value: Any) -> list[str]:
    """Every text the templates print."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in every_value(item)]
    if isinstance(value, list):
        return [text for item in value for text in every_value(item)]
    return [value] if isinstance(value, str) else []


# --- what the model becomes ---------------------------------------------------------------------

def test_each_host_gets_a_server_and_the_default_server_comes_last():
    result = view()
    port80 = [s for s in result["http"]["servers"] if s["listen"] == "80"]
    assert [(s["name"], s["default"]) for s in port80] == [
        ("*.apps.example.com", False), ("secure.example.com", False), ("shop.example.com", False), ("", True)]


@pytest.mark.parametrize(("path", "path_type", "matches"), [
    ("/", "prefix", [("prefix", "/")]),
    ("/api", "prefix", [("exact", "/api"), ("prefix", "/api/")]),
    ("/api/", "prefix", [("exact", "/api"), ("prefix", "/api/")]),
    ("/api/v1", "prefix", [("exact", "/api/v1"), ("prefix", "/api/v1/")]),
    ("/api", "exact", [("exact", "/api")]),
    ("/api/", "exact", [("exact", "/api/")]),
    ("/", "exact", [("exact", "/")]),
])
def test_kubernetes_paths_become_locations_that_match_whole_path_elements(path, path_type, matches):
    raw = model()
    frontend(raw, "default-http-80")["routes"][0].update(path=path, path_type=path_type)
    srv = server(view(raw), 80, "shop.example.com")
    for match in matches:
        assert answers(srv)[match] == ("proxy", "default_api_8080")


def test_a_location_claimed_twice_goes_to_the_first_route_and_is_reported():
    raw = model()
    routes = frontend(raw, "default-http-80")["routes"]
    routes.insert(1, {**routes[1], "path": "/api/v1/", "backend": "default_web_80"})
    result = view(raw)
    assert answers(server(result, 80, "shop.example.com"))[("exact", "/api/v1")] == ("proxy", "default_api_8080")
    assert findings(result) == [("frontend default-http-80", "routes[1].path")] * 2


def test_unknown_hosts_get_the_routes_of_host_star_else_a_clear_404():
    assert answers(server(view(), 80))[("prefix", "/")] == ("proxy", "default_web_80")
    raw = model()
    frontend(raw, "default-http-80")["routes"].pop()
    assert answers(server(view(raw), 80)) == {("prefix", "/"): ("no_host", "")}


def test_a_path_no_route_of_a_host_serves_gets_a_clear_404():
    """A server answers only its routes' paths: without a `location /` nginx would serve any other
    path of a known host from its default document root (its welcome page), found with traffic
    on the lab's edges."""
    result = view()
    assert locations(server(result, 80, "*.apps.example.com")) == {
        ("prefix", "/"): {"path": "/", "exact": False, "answer": "no_path", "upstream": "", "connect_ms": 0, "server_ms": 0,
                          "https_port": 0},
        ("exact", "/health"): {"path": "/health", "exact": True, "answer": "proxy", "upstream": "default_web_80", "connect_ms": 5000,
                               "server_ms": 60000, "https_port": 0}}
    assert answers(server(result, 80, "shop.example.com"))[("prefix", "/")] == ("proxy", "default_web_80")  # a route has /
    raw = model()
    for route in frontend(raw, "default-http-80")["routes"]:
        if route["host"] == "*":
            route.update(path="/only", path_type="exact")
    assert answers(server(view(raw), 80))[("prefix", "/")] == ("no_path", "")


def test_locations_are_sorted_prefix_paths_first():
    srv = server(view(), 80, "shop.example.com")
    assert [(loc["exact"], loc["path"]) for loc in srv["locations"]] == [(False, "/"), (False, "/api/v1/"), (True, "/api/v1")]


def test_a_host_whose_routes_are_all_left_out_still_answers_404():
    raw = model()
    backend(raw, "default_web_80")["proxy_protocol"] = "v1"  # nginx cannot send PROXY from HTTP
    result = view(raw)
    assert result["findings"] and all(f["field"].endswith(".backend") and "backend default_web_80 " in f["message"]
                                      for f in result["findings"])
    for srv in result["http"]["servers"]:
        assert "default_web_80" not in [loc["upstream"] for loc in srv["locations"]]
        assert answers(srv)[("prefix", "/")][0] in ("no_path", "no_host", "proxy", "redirect"), srv


def test_proxy_settings_come_from_the_backend():
    location = locations(server(view(), 80, "shop.example.com"))[("exact", "/api/v1")]
    assert (location["upstream"], location["connect_ms"], location["server_ms"]) == ("default_api_8080", 2000, 30000)


@pytest.mark.parametrize("balance", ["roundrobin", "leastconn", "source"])
def test_balance_algorithms(balance):
    raw = model()
    backend(raw, "default_web_80")["balance"] = balance
    assert upstreams(view(raw), "http")["default_web_80"]["balance"] == balance


@pytest.mark.parametrize(("health", "checked", "max_fails"), [("tcp", True, 2), ("http", True, 2), ("none", False, 0)])
def test_health_checks_are_passive(health, checked, max_fails):
    raw = model()
    backend(raw, "default_web_80")["health_check"] = {"type": health}
    upstream = upstreams(view(raw), "http")["default_web_80"]
    assert (upstream["servers"], upstream["checked"], upstream["max_fails"]) == (["10.0.0.11:30080", "10.0.0.12:30080"], checked, max_fails)


def test_passive_check_settings_are_the_operators():
    upstream = upstreams(view(max_fails=5, fail_timeout_s=30), "http")["default_web_80"]
    assert (upstream["max_fails"], upstream["fail_timeout"]) == (5, 30)


def test_draining_targets_serve_only_when_no_target_is_ready():
    result = view()
    assert upstreams(result, "http")["default_api_8080"]["servers"] == ["10.0.0.11:30880", "[fd00::11]:30880"]
    assert upstreams(result, "stream")["default_db_5432_tcp"]["servers"] == ["10.0.0.12:31432"]


def test_a_backend_without_targets_answers_503_or_closes():
    raw = model()
    backend(raw, "default_web_80")["targets"] = []
    result = view(raw)
    assert "default_web_80" not in upstreams(result, "http")
    assert answers(server(result, 80, "shop.example.com"))[("prefix", "/")] == ("no_targets", "")
    assert stream(result, "default-tcp-7000")["target"] == REFUSE_UPSTREAM
    assert result["stream"]["refuse"] == REFUSE_UPSTREAM and REFUSE_UPSTREAM not in upstreams(result, "stream")


def test_the_refusing_upstream_only_when_used():
    assert view()["stream"]["refuse"] == REFUSE_UPSTREAM  # a name no SNI route serves is closed
    assert view(pools=("internal",))["stream"]["refuse"] == ""


def test_tcp_and_udp_frontends():
    result = view()
    assert stream(result, "default-udp-53") == {
        "frontend": "default-udp-53", "listen": "53", "udp": True, "accept_proxy": False, "ssl_preread": False,
        "target": "kube-system_dns_53_udp", "connect_ms": 5000, "server_ms": 60000, "half_close": False, "proxy_protocol": False}
    # A listener that accepts PROXY takes the client from the header (found with traffic: without
    # set_real_ip_from, nginx sent on the address of the connection, not the one it was given).
    assert stream(result, "default-tcp-9999") == {
        "frontend": "default-tcp-9999", "listen": "9999", "udp": False, "accept_proxy": True, "ssl_preread": False,
        "target": "default_web_80_tcp_proxy-v1", "connect_ms": 5000, "server_ms": 60000, "half_close": True, "proxy_protocol": True}
    assert upstreams(result, "stream")["kube-system_dns_53_udp"]["checked"] is False


def test_tls_passthrough_routes_by_sni_and_closes_unknown_names():
    result = view()
    assert result["stream"]["maps"] == [{"variable": "$k8sedge_sni_default_tcp_8443", "default": REFUSE_UPSTREAM, "entries": [
        {"host": "*.mq.example.com", "upstream": "default_mq_5671_tcp"}, {"host": "db.example.com", "upstream": "default_db_5432_tcp"}]}]
    sni = stream(result, "default-tcp-8443")
    assert (sni["ssl_preread"], sni["target"]) == (True, "$k8sedge_sni_default_tcp_8443")
    # One server block for both backends: the longest timeouts of the two.
    assert (sni["connect_ms"], sni["server_ms"]) == (5000, 3600000)


def test_tls_termination_uses_the_certificates_ansible_provides():
    result = view()
    srv = server(result, 443, "secure.example.com")
    assert (srv["ssl"], srv["certificate"], srv["reject_handshake"]) == (True, "shop", False)
    default = server(result, 443)
    assert (default["ssl"], default["certificate"], default["reject_handshake"]) == (True, "", True)
    assert [c["name"] for c in result["certificates"]] == ["shop"]
    assert "BEGIN" not in json.dumps(result)


def with_tls_route(raw: dict[str, Any], host: str, certificate: str) -> dict[str, Any]:
    """The model plus a TLS terminate route of `host` and its redirect from plain HTTP, as edge_info gives them."""
    route = {"host": host, "path": "/", "path_type": "prefix", "backend": "default_api_8080"}
    frontend(raw, "default-http-80")["routes"].insert(0, {**route, "certificate": "", "redirect_https": True})
    https = frontend(raw, "default-http-443")
    https["routes"].insert(0, {**route, "certificate": certificate, "redirect_https": False})
    https["certificates"] = sorted({*https["certificates"], certificate})
    return raw


def test_a_route_whose_certificate_is_not_given_is_left_out_and_the_rest_served():
    result = view(with_tls_route(model(), "api.example.com", "api"))
    assert {k: v for k, v in result.items() if k not in ("findings", "digest")} == {
        k: v for k, v in view().items() if k not in ("findings", "digest")}
    [finding] = result["findings"]
    assert (finding["where"], finding["field"]) == ("frontend default-http-443", "routes[0].certificate")
    assert all(name in finding["message"] for name in ("api.example.com/", "default_api_8080", "certificate api", "not in certificates"))


def test_a_tls_frontend_without_a_certificate_given_is_left_out_with_its_redirects():
    result = view(certificates={})
    assert not [s for s in result["http"]["servers"] if s["listen"] == "443"]
    assert not [s for s in result["http"]["servers"] if s["name"] == "secure.example.com"]
    assert result["certificates"] == []
    assert findings(result) == [("frontend default-http-443", "routes[0].certificate"), ("frontend default-http-443", "routes")]
    assert server(result, 80, "shop.example.com")  # every other route is served


def test_plain_http_routes_of_a_tls_host_redirect():
    location = locations(server(view(), 80, "secure.example.com"))[("prefix", "/")]
    assert (location["answer"], location["https_port"]) == ("redirect", 0)
    raw = model()
    frontend(raw, "default-http-443")["port"] = 8443
    frontend(raw, "default-tcp-8443")["port"] = 9443
    assert locations(server(view(raw), 80, "secure.example.com"))[("prefix", "/")]["https_port"] == 8443


@pytest.mark.parametrize(("name", "proxy", "field"), [
    ("default_web_80", "v1", r"routes\[\d\]\.backend"),
    ("default_web_80_tcp_proxy-v1", "v2", "backend"),
])
def test_what_open_source_nginx_cannot_send_is_left_out_and_reported(name, proxy, field):
    raw = model()
    backend(raw, name)["proxy_protocol"] = proxy
    result = view(raw)
    assert result["findings"]
    assert all(re.fullmatch(field, f["field"]) and f"backend {name} " in f["message"] for f in result["findings"])
    assert name not in upstreams(result, "http") and name not in upstreams(result, "stream")


def test_one_sni_server_sends_proxy_protocol_to_all_its_backends_or_none():
    raw = model()
    backend(raw, "default_mq_5671_tcp")["proxy_protocol"] = "v1"
    result = view(raw)
    assert findings(result) == [("frontend default-tcp-8443", "sni[1].backend")]
    assert stream(result, "default-tcp-8443")["proxy_protocol"] is False


def test_pools_and_their_addresses():
    result = view(pools=("internal",), pool_addresses={"internal": "10.213.0.201"})
    assert result["http"]["servers"] == []
    assert [s["frontend"] for s in result["stream"]["servers"]] == ["internal-tcp-8443"]
    assert stream(result, "internal-tcp-8443")["listen"] == "10.213.0.201:8443"
    assert stream(view(pools=("internal",), pool_addresses={"internal": "fd00::201"}), "internal-tcp-8443")["listen"] == "[fd00::201]:8443"


def test_pod_routes_only_when_a_served_backend_is_in_pod_mode():
    assert view(pools=("default",))["routes"] == []
    assert view(pools=("default", "internal"), pool_addresses={"internal": "10.213.0.201"})["routes"] == [
        {"cidr": "10.244.1.0/24", "via": "10.0.0.11"}, {"cidr": "fd00:10:244:1::/64", "via": "fd00::11"}]


@pytest.mark.parametrize(("options", "message"), [
    ({"admin_port": 9999}, r"frontend default-tcp-9999: port 9999/tcp on every address is also used by the admin listener .*: add 9999"
                           r" to edge_info's reserved_ports option"),
    ({"pools": ("default", "internal")}, r"frontend internal-tcp-8443: port 8443/tcp on every address is also used by frontend default-tcp-8443:"
                                         r" give pools default and internal distinct addresses in pool_addresses"),
    ({"pools": ("default", "internal"), "pool_addresses": {"internal": "10.213.0.201"}}, None),  # nginx serves it via the wildcard
    ({"pools": ("default", "internal"), "pool_addresses": {"default": "10.213.0.201", "internal": "10.213.0.201"}}, "frontend internal-tcp-8443"),
    ({"admin_port": 80}, None),  # the http module shares a port between servers
    ({"admin_port": 53}, None),  # UDP 53 is not TCP 53
    ({"admin_port": 8443, "admin_address": "0.0.0.0"}, "frontend default-tcp-8443: port 8443/tcp on every address is also used by the admin"),
])
def test_listeners_nginx_could_not_bind_are_refused(options, message):
    if message is None:
        view(**options)
    else:
        with pytest.raises(ViewError, match=message):
            view(**options)


def test_two_pools_with_http_on_one_port_need_addresses():
    raw = model()
    second = copy.deepcopy(frontend(raw, "default-http-80"))
    second.update(name="internal-http-80", pool="internal")
    raw["frontends"] = [f for f in raw["frontends"] if f["pool"] == "default"] + [second]
    with pytest.raises(ViewError, match="frontend internal-http-80: port 80/tcp .* frontend default-http-80"):
        view(raw, pools=("default", "internal"), pool_addresses={"default": "10.213.0.200", "internal": "10.213.0.200"})
    result = view(raw, pools=("default", "internal"), pool_addresses={"default": "10.213.0.200", "internal": "10.213.0.201"})
    assert [s for s in result["http"]["servers"] if s["listen"] == "10.213.0.201:80" and s["default"]]


def test_the_view_is_deterministic_whatever_the_target_order():
    raw = model()
    first = view(raw)
    for item in raw["backends"]:
        random.Random(7).shuffle(item["targets"])
    assert view(raw) == first
    assert first["digest"] == view()["digest"]
    changed = model()
    backend(changed, "default_web_80")["targets"].pop()
    assert view(changed)["digest"] != first["digest"]


def test_the_digest_covers_the_certificates_contents():
    other = {"shop": {**FIXTURE["certificate"], "cert": FIXTURE["certificate"]["cert"] + "\n"}}
    assert view(certificates=other)["digest"] != view()["digest"]


def test_the_models_own_build_is_accepted():
    """The model built from the model tests' cluster fixture (real API shapes) renders."""
    cluster = yaml.safe_load((FIXTURES / "cluster.yaml").read_text())
    kinds = ("services", "endpoint_slices", "nodes", "ingresses", "config_maps")
    built = build_model(ClusterState(**{k: cluster.get(k, []) for k in kinds}), with_configmaps())
    certificates = {name: FIXTURE["certificate"] for f in built["frontends"] for name in f.get("certificates", [])}
    result = nginx_view(built, ViewOptions(certificates=certificates, pools=("default",)))
    assert result["http"]["servers"] and result["stream"]["servers"]


# --- defence in depth -----------------------------------------------------------------------------

HOSTILE = ["x;", "x}", "x{", "x\n", 'x"', "x y", "x#", "x$y", "x'", "\\x", "x\r", "x\t", "", "é"]


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set a value in the model at a dotted path of names and indexes."""
    parts = path.split(".")
    target: Any = raw
    for part in parts[:-1]:
        if part.startswith("frontend:"):
            target = frontend(target, part.split(":", 1)[1])
        elif part.startswith("backend:"):
            target = backend(target, part.split(":", 1)[1])
        else:
            target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    target[int(last) if last.isdigit() else last] = value


FIELDS = [
    ("frontend:default-http-80.routes.0.host", "frontend default-http-80: routes[0].host: "),
    ("frontend:default-http-80.routes.0.path", "frontend default-http-80: routes[0].path: "),
    ("frontend:default-http-80.routes.0.backend", "frontend default-http-80: routes[0].backend: "),
    ("frontend:default-http-80.routes.0.path_type", "frontend default-http-80: routes[0].path_type: "),
    ("frontend:default-http-443.routes.0.certificate", "frontend default-http-443: routes[0].certificate: "),
    ("frontend:default-tcp-8443.sni.0.host", "frontend default-tcp-8443: sni[0].host: "),
    ("frontend:default-tcp-9999.backend", "frontend default-tcp-9999: backend: "),
    ("frontend:default-tcp-9999.protocol", "frontend default-tcp-9999: protocol: "),
    ("frontend:default-tcp-9999.name", "model: frontends[3].name: "),
    ("frontend:default-tcp-9999.pool", "frontend default-tcp-9999: pool: "),
    ("backend:default_web_80.name", 'backend "'),
    ("backend:default_web_80.balance", "backend default_web_80: balance: "),
    ("backend:default_web_80.proxy_protocol", "backend default_web_80: proxy_protocol: "),
    ("backend:default_web_80.targets.0.address", "backend default_web_80: targets[0].address: "),
    ("backend:default_web_80.targets.0.state", "backend default_web_80: targets[0].state: "),
    ("generation", "model: generation: "),
    ("routes.0.cidr", None),  # routes are read only for pod-mode backends: see the next test
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(("path", "where"), [f for f in FIELDS if f[1]])
def test_values_that_could_break_a_config_line_are_refused_naming_the_field(path, where, value):
    raw = model()
    _set(raw, path, value)
    with pytest.raises(ViewError) as error:
        view(raw)
    assert str(error.value).startswith(where)


@pytest.mark.parametrize(("path", "value", "where"), [
    ("frontend:default-http-80.port", "80;", "frontend default-http-80: port: "),
    ("frontend:default-http-80.port", True, "frontend default-http-80: port: "),
    ("frontend:default-http-80.port", 70000, "frontend default-http-80: port: "),
    ("frontend:default-http-443.port", "443 ssl", "frontend default-http-443: port: "),
    ("frontend:default-http-80.tls", "yes", "frontend default-http-80: tls: "),
    ("backend:default_web_80.targets.0.port", "1;", "backend default_web_80: targets[0].port: "),
    ("backend:default_web_80.targets.0.address", "010.0.0.1", "backend default_web_80: targets[0].address: "),
    ("backend:default_web_80.targets.0.address", "fe80::1%eth0", "backend default_web_80: targets[0].address: "),
    ("backend:default_web_80.timeouts.connect_ms", "5s", "backend default_web_80: timeouts.connect_ms: "),
    ("backend:default_web_80.timeouts.server_ms", 0, "backend default_web_80: timeouts.server_ms: "),
    ("backend:default_web_80.health_check", {"type": "http;"}, "backend default_web_80: health_check.type: "),
    ("frontend:default-http-80.routes.0.host", "a" * 64 + ".example.com", "frontend default-http-80: routes[0].host: "),
    ("frontend:default-http-80.routes.0.path", "/" + "a" * 256, "frontend default-http-80: routes[0].path: "),
    ("frontend:default-http-80.routes.0.path", "/a b", "frontend default-http-80: routes[0].path: "),
    ("frontend:default-http-80.routes", "shop", "frontend default-http-80: routes: "),
])
def test_other_values_out_of_grammar_are_refused(path, value, where):
    raw = model()
    _set(raw, path, value)
    with pytest.raises(ViewError) as error:
        view(raw)
    assert str(error.value).startswith(where)


@pytest.mark.parametrize("value", ["10.244.1.0/24;", "10.244.1.1/24", "10.244.1.0/24 via 1.1.1.1", "x"])
def test_pod_routes_are_checked(value):
    raw = model()
    raw["routes"][0]["cidr"] = value
    with pytest.raises(ViewError, match=r"^model: routes\[0\]\.cidr: "):
        view(raw, pools=("default", "internal"), pool_addresses={"internal": "10.213.0.201"})


@pytest.mark.parametrize(("options", "where"), [
    ({"pools": ("default;",)}, r"options: pools\[\]: "),
    ({"pools": "default"}, "options: pools: "),
    ({"admin_address": "localhost"}, "options: admin_address: "),
    ({"admin_address": "127.0.0.1;"}, "options: admin_address: "),
    ({"admin_port": 0}, "options: admin_port: "),
    ({"pool_addresses": {"default": "10.0.0.1 x"}}, r"options: pool_addresses\[default\]: "),
    ({"pool_addresses": ["default"]}, r"options: pool_addresses: "),
    ({"certificates": {"Shop": FIXTURE["certificate"]}}, 'certificate "Shop": name: '),
    ({"certificates": {"shop": {"cert": "not pem", "key": FIXTURE["certificate"]["key"]}}}, 'certificate "shop": cert: '),
    ({"certificates": {"shop": {"cert": FIXTURE["certificate"]["cert"]}}}, 'certificate "shop": key: '),
    ({"certificates": ["shop"]}, "options: certificates: "),
    ({"max_fails": -1}, "options: max_fails: "),
    ({"fail_timeout_s": 0}, "options: fail_timeout: "),
])
def test_operator_options_are_checked(options, where):
    with pytest.raises(ViewError, match=f"^{where}"):
        view(**options)


SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:/*~\[\]$-]*")


@settings(max_examples=300, deadline=None)
@given(host=st.text(max_size=40), path=st.text(max_size=40), name=st.text(max_size=20))
def test_no_input_reaches_a_line_it_could_break(host, path, name):
    raw = model()
    route = frontend(raw, "default-http-80")["routes"][0]
    route.update(host=host, path=path)
    frontend(raw, "default-tcp-7000")["backend"] = backend(raw, "default_empty_7000_tcp")["name"] = name
    try:
        result = view(raw)
    except ViewError:
        return
    for value in every_value({key: result[key] for key in ("admin", "http", "stream", "certificates", "routes")}):
        assert SAFE_VALUE.fullmatch(value), value
