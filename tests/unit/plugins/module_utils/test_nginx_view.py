"""The nginx view of the edge model: what each frontend becomes, what nginx cannot serve, and what
is refused before it can reach a config line."""
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
from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_view import REFUSE_UPSTREAM, ViewError, ViewOptions, build_view


def with_configmaps(**changes) -> ModelOptions:
    """The model options the fixtures are written for: the ingress-nginx ConfigMaps named (reading
    them is opt-in)."""
    return ModelOptions(tcp_services_configmap="ingress-nginx/tcp-services", udp_services_configmap="ingress-nginx/udp-services",
                        **changes)


FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = yaml.safe_load((FIXTURES / "nginx_view.yaml").read_text())
DIRECTORY = "/etc/nginx/k8sedge/releases/0123456789abcdef"
CERTS = {"shop": FIXTURE["certificate"]}


def model() -> dict[str, Any]:
    return copy.deepcopy(FIXTURE["model"])


def view(raw: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    options = {"directory": DIRECTORY, "certificates": CERTS, **options}
    return build_view(model() if raw is None else raw, ViewOptions(**options))


def frontend(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in raw["frontends"] if f["name"] == name)


def backend(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(b for b in raw["backends"] if b["name"] == name)


def server(result: dict[str, Any], *directives: str) -> dict[str, Any]:
    """The http server whose directives include all of `directives`."""
    matches = [s for s in result["http"]["servers"] if all(d in s["directives"] for d in directives)]
    assert len(matches) == 1, (directives, result["http"]["servers"])
    return matches[0]


def stream(result: dict[str, Any], name: str) -> list[str]:
    return next(s["directives"] for s in result["stream"]["servers"] if s["frontend"] == name)


def locations(srv: dict[str, Any]) -> dict[str, list[str]]:
    return {loc["match"]: loc["directives"] for loc in srv["locations"]}


def upstreams(result: dict[str, Any], module: str) -> dict[str, list[str]]:
    return {u["name"]: u["directives"] for u in result[module]["upstreams"]}


def every_line(result: dict[str, Any]) -> list[str]:
    lines = [result["admin"]["listen"]]
    for module in ("http", "stream"):
        for block in result[module]["upstreams"] + result[module]["servers"] + result[module].get("maps", []):
            lines += block["directives"]
            for loc in block.get("locations", []):
                lines += [loc["match"], *loc["directives"]]
    return lines


# --- what the model becomes ---------------------------------------------------------------------

def test_each_host_gets_a_server_and_the_default_server_comes_last():
    result = view()
    port80 = [s for s in result["http"]["servers"] if s["directives"][0].startswith("listen 80")]
    assert [s["directives"][1] for s in port80] == [
        "server_name *.apps.example.com", "server_name secure.example.com", "server_name shop.example.com", 'server_name ""']
    assert port80[-1]["directives"][0] == "listen 80 default_server"


@pytest.mark.parametrize(("path", "path_type", "matches"), [
    ("/", "prefix", ["/"]),
    ("/api", "prefix", ["= /api", "/api/"]),
    ("/api/", "prefix", ["= /api", "/api/"]),
    ("/api/v1", "prefix", ["= /api/v1", "/api/v1/"]),
    ("/api", "exact", ["= /api"]),
    ("/api/", "exact", ["= /api/"]),
    ("/", "exact", ["= /"]),
])
def test_kubernetes_paths_become_locations_that_match_whole_path_elements(path, path_type, matches):
    raw = model()
    frontend(raw, "default-http-80")["routes"][0].update(path=path, path_type=path_type)
    srv = server(view(raw), "server_name shop.example.com")
    for match in matches:
        assert locations(srv)[match][0] == "proxy_pass http://default_api_8080"


def test_a_location_claimed_twice_goes_to_the_first_route_and_is_reported():
    raw = model()
    routes = frontend(raw, "default-http-80")["routes"]
    routes.insert(1, {**routes[1], "path": "/api/v1/", "backend": "default_web_80"})
    result = view(raw)
    assert locations(server(result, "server_name shop.example.com"))["= /api/v1"][0] == "proxy_pass http://default_api_8080"
    assert [f["field"] for f in result["findings"]] == ["routes[1].path", "routes[1].path"]


def test_unknown_hosts_get_the_routes_of_host_star_else_a_clear_404():
    with_default = locations(server(view(), "listen 80 default_server"))
    assert with_default["/"][0] == "proxy_pass http://default_web_80"
    raw = model()
    frontend(raw, "default-http-80")["routes"].pop()
    without = locations(server(view(raw), "listen 80 default_server"))
    assert without == {"/": ['return 404 "k8sedge: no route for this host\\n"']}


def test_a_path_no_route_of_a_host_serves_gets_a_clear_404():
    """A server answers only its routes' paths: without a `location /` nginx would serve any other
    path of a known host from its default document root (its welcome page), found with traffic
    on the lab's edges."""
    no_path = ['return 404 "k8sedge: no route for this host and path\\n"']
    result = view()
    assert locations(server(result, "listen 80", "server_name *.apps.example.com")) == {
        "/": no_path, "= /health": ["proxy_pass http://default_web_80", "proxy_connect_timeout 5000ms", "proxy_read_timeout 60000ms",
                                    "proxy_send_timeout 60000ms"]}
    assert locations(server(result, "server_name shop.example.com"))["/"][0] == "proxy_pass http://default_web_80"  # a route has /
    raw = model()
    for route in frontend(raw, "default-http-80")["routes"]:
        if route["host"] == "*":
            route.update(path="/only", path_type="exact")
    assert locations(server(view(raw), "listen 80 default_server"))["/"] == no_path


def test_a_host_whose_routes_are_all_left_out_still_answers_404():
    raw = model()
    backend(raw, "default_web_80")["proxy_protocol"] = "v1"  # nginx cannot send PROXY from HTTP
    result = view(raw)
    assert {f["backend"] for f in result["findings"]} == {"default_web_80"}
    for srv in result["http"]["servers"]:
        for loc in srv["locations"]:
            assert "default_web_80" not in " ".join(loc["directives"])
        assert locations(srv)["/"][0].startswith(("return 404", "proxy_pass", "return 308")), srv


def test_proxy_settings_come_from_the_backend():
    srv = server(view(), "server_name shop.example.com")
    assert locations(srv)["= /api/v1"] == [
        "proxy_pass http://default_api_8080", "proxy_connect_timeout 2000ms", "proxy_read_timeout 30000ms", "proxy_send_timeout 30000ms"]


@pytest.mark.parametrize(("balance", "directive"), [
    ("roundrobin", None), ("leastconn", "least_conn"), ("source", "hash $remote_addr consistent"),
])
def test_balance_algorithms(balance, directive):
    raw = model()
    backend(raw, "default_web_80")["balance"] = balance
    got = upstreams(view(raw), "http")["default_web_80"]
    assert got[0] == directive if directive else got[0].startswith("server ")


@pytest.mark.parametrize(("health", "parameters"), [
    ("tcp", "max_fails=2 fail_timeout=10s"), ("http", "max_fails=2 fail_timeout=10s"), ("none", "max_fails=0"),
])
def test_health_checks_are_passive(health, parameters):
    raw = model()
    backend(raw, "default_web_80")["health_check"] = {"type": health}
    assert upstreams(view(raw), "http")["default_web_80"] == [
        f"server 10.0.0.11:30080 {parameters}", f"server 10.0.0.12:30080 {parameters}"]


def test_passive_check_settings_are_the_operators():
    assert upstreams(view(max_fails=5, fail_timeout_s=30), "http")["default_web_80"][0] == "server 10.0.0.11:30080 max_fails=5 fail_timeout=30s"


def test_draining_targets_serve_only_when_no_target_is_ready():
    result = view()
    assert upstreams(result, "http")["default_api_8080"] == [
        "least_conn", "server 10.0.0.11:30880 max_fails=2 fail_timeout=10s", "server [fd00::11]:30880 max_fails=2 fail_timeout=10s"]
    assert upstreams(result, "stream")["default_db_5432_tcp"] == [
        "hash $remote_addr consistent", "server 10.0.0.12:31432 max_fails=2 fail_timeout=10s"]


def test_a_backend_without_targets_answers_503_or_closes():
    raw = model()
    backend(raw, "default_web_80")["targets"] = []
    result = view(raw)
    assert "default_web_80" not in upstreams(result, "http")
    assert locations(server(result, "server_name shop.example.com"))["/"] == ['return 503 "k8sedge: no ready targets for this route\\n"']
    assert f"proxy_pass {REFUSE_UPSTREAM}" in stream(result, "default-tcp-7000")
    assert upstreams(result, "stream")[REFUSE_UPSTREAM] == ["server 127.0.0.1:9 down"]


def test_tcp_and_udp_frontends():
    result = view()
    assert stream(result, "default-udp-53") == [
        "listen 53 udp", "proxy_pass kube-system_dns_53_udp", "proxy_connect_timeout 5000ms", "proxy_timeout 60000ms"]
    # A listener that accepts PROXY takes the client from the header (found with traffic: without
    # set_real_ip_from, nginx sent on the address of the connection, not the one it was given).
    assert stream(result, "default-tcp-9999") == [
        "listen 9999 proxy_protocol", "set_real_ip_from 0.0.0.0/0", "set_real_ip_from ::/0", "proxy_pass default_web_80_tcp_proxy-v1",
        "proxy_connect_timeout 5000ms", "proxy_timeout 60000ms", "proxy_half_close on", "proxy_protocol on"]
    assert upstreams(result, "stream")["kube-system_dns_53_udp"] == ["server 10.0.0.11:30053 max_fails=0"]


def test_tls_passthrough_routes_by_sni_and_closes_unknown_names():
    result = view()
    assert result["stream"]["maps"] == [{"variable": "$k8sedge_sni_default_tcp_8443", "directives": [
        "hostnames", "*.mq.example.com default_mq_5671_tcp", "db.example.com default_db_5432_tcp", f"default {REFUSE_UPSTREAM}"]}]
    directives = stream(result, "default-tcp-8443")
    assert directives[:3] == ["listen 8443", "ssl_preread on", "proxy_pass $k8sedge_sni_default_tcp_8443"]
    # One server block for both backends: the longest timeouts of the two.
    assert "proxy_connect_timeout 5000ms" in directives and "proxy_timeout 3600000ms" in directives


def test_tls_termination_uses_the_certificates_ansible_provides():
    result = view()
    srv = server(result, "listen 443 ssl", "server_name secure.example.com")
    assert srv["directives"][2:] == [f"ssl_certificate {DIRECTORY}/certs/shop.crt", f"ssl_certificate_key {DIRECTORY}/certs/shop.key"]
    assert "ssl_reject_handshake on" in server(result, "listen 443 ssl default_server")["directives"]
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
    assert finding["frontend"] == "default-http-443" and finding["backend"] == "default_api_8080"
    assert finding["field"] == "routes[0].certificate"
    assert all(name in finding["message"] for name in ("api.example.com/", "certificate api", "edge_nginx_certificates"))


def test_a_tls_frontend_without_a_certificate_given_is_left_out_with_its_redirects():
    result = view(certificates={})
    assert not [s for s in result["http"]["servers"] if s["directives"][0].startswith("listen 443")]
    assert not [s for s in result["http"]["servers"] if "server_name secure.example.com" in s["directives"]]
    assert result["certificates"] == []
    assert [(f["frontend"], f["field"]) for f in result["findings"]] == [
        ("default-http-443", "routes[0].certificate"), ("default-http-443", "routes")]
    assert server(result, "server_name shop.example.com")  # every other route is served


def test_plain_http_routes_of_a_tls_host_redirect():
    assert locations(server(view(), "listen 80", "server_name secure.example.com"))["/"] == ["return 308 https://$host$request_uri"]
    raw = model()
    frontend(raw, "default-http-443")["port"] = 8443
    frontend(raw, "default-tcp-8443")["port"] = 9443
    assert locations(server(view(raw), "listen 80", "server_name secure.example.com"))["/"] == ["return 308 https://$host:8443$request_uri"]


@pytest.mark.parametrize(("name", "proxy", "field"), [
    ("default_web_80", "v1", "proxy_protocol"),
    ("default_web_80_tcp_proxy-v1", "v2", "proxy_protocol"),
])
def test_what_open_source_nginx_cannot_send_is_left_out_and_reported(name, proxy, field):
    raw = model()
    backend(raw, name)["proxy_protocol"] = proxy
    result = view(raw)
    assert {f["backend"] for f in result["findings"]} == {name}
    assert all(f["field"] == field for f in result["findings"])
    assert name not in upstreams(result, "http") and name not in upstreams(result, "stream")


def test_one_sni_server_sends_proxy_protocol_to_all_its_backends_or_none():
    raw = model()
    backend(raw, "default_mq_5671_tcp")["proxy_protocol"] = "v1"
    result = view(raw)
    assert [f["field"] for f in result["findings"]] == ["sni[1].proxy_protocol"]
    assert "proxy_protocol on" not in stream(result, "default-tcp-8443")


def test_pools_and_their_addresses():
    result = view(pools=("internal",), pool_addresses={"internal": "10.213.0.201"})
    assert result["http"]["servers"] == []
    assert [s["frontend"] for s in result["stream"]["servers"]] == ["internal-tcp-8443"]
    assert stream(result, "internal-tcp-8443")[0] == "listen 10.213.0.201:8443"
    assert stream(view(pools=("internal",), pool_addresses={"internal": "fd00::201"}), "internal-tcp-8443")[0] == "listen [fd00::201]:8443"


def test_pod_routes_only_when_a_served_backend_is_in_pod_mode():
    assert view(pools=("default",))["routes"] == []
    assert view(pools=("default", "internal"), pool_addresses={"internal": "10.213.0.201"})["routes"] == [
        {"cidr": "10.244.1.0/24", "via": "10.0.0.11"}, {"cidr": "fd00:10:244:1::/64", "via": "fd00::11"}]


@pytest.mark.parametrize(("options", "message"), [
    ({"admin_port": 9999}, r"frontend default-tcp-9999: port 9999/tcp on every address is also used by the admin listener .*: add 9999"
                           r" to edge_info's reserved_ports option"),
    ({"pools": ("default", "internal")}, r"frontend internal-tcp-8443: port 8443/tcp on every address is also used by frontend default-tcp-8443:"
                                         r" give pools default and internal distinct addresses in edge_nginx_pool_addresses"),
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
    assert server(result, "listen 10.213.0.201:80 default_server")


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


def test_the_models_own_build_is_accepted():
    """The model built from the model tests' cluster fixture (real API shapes) renders."""
    cluster = yaml.safe_load((FIXTURES / "cluster.yaml").read_text())
    kinds = ("services", "endpoint_slices", "nodes", "ingresses", "config_maps")
    built = build_model(ClusterState(**{k: cluster.get(k, []) for k in kinds}), with_configmaps())
    certificates = {name: FIXTURE["certificate"] for f in built["frontends"] for name in f.get("certificates", [])}
    result = build_view(built, ViewOptions(directory=DIRECTORY, certificates=certificates, pools=("default",)))
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
    ("frontend:default-http-80.routes.0.host", "frontend default-http-80 field routes[0].host"),
    ("frontend:default-http-80.routes.0.path", "frontend default-http-80 field routes[0] field path"),
    ("frontend:default-http-80.routes.0.backend", "frontend default-http-80 field routes[0] field backend"),
    ("frontend:default-http-80.routes.0.path_type", "frontend default-http-80 field routes[0] field path_type"),
    ("frontend:default-http-443.routes.0.certificate", "frontend default-http-443 field routes[0] field certificate"),
    ("frontend:default-tcp-8443.sni.0.host", "frontend default-tcp-8443 field sni[0].host"),
    ("frontend:default-tcp-9999.backend", "frontend default-tcp-9999 field backend"),
    ("frontend:default-tcp-9999.protocol", "frontend default-tcp-9999 field protocol"),
    ("frontend:default-tcp-9999.name", "model field frontends[3] field name"),
    ("frontend:default-tcp-9999.pool", "frontend default-tcp-9999 field pool"),
    ("backend:default_web_80.name", "backend field name"),
    ("backend:default_web_80.balance", "backend default_web_80 field balance"),
    ("backend:default_web_80.proxy_protocol", "backend default_web_80 field proxy_protocol"),
    ("backend:default_web_80.targets.0.address", "backend default_web_80 field targets[0].address"),
    ("backend:default_web_80.targets.0.state", "backend default_web_80 field targets[0] field state"),
    ("generation", "model field generation"),
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
    ("frontend:default-http-80.port", "80;", "frontend default-http-80 field port"),
    ("frontend:default-http-80.port", True, "frontend default-http-80 field port"),
    ("frontend:default-http-80.port", 70000, "frontend default-http-80 field port"),
    ("frontend:default-http-443.port", "443 ssl", "frontend default-http-443 field port"),
    ("frontend:default-http-80.tls", "yes", "frontend default-http-80 field tls"),
    ("backend:default_web_80.targets.0.port", "1;", "backend default_web_80 field targets[0] field port"),
    ("backend:default_web_80.targets.0.address", "010.0.0.1", "backend default_web_80 field targets[0].address"),
    ("backend:default_web_80.targets.0.address", "fe80::1%eth0", "backend default_web_80 field targets[0].address"),
    ("backend:default_web_80.timeouts.connect_ms", "5s", "backend default_web_80 field timeouts field connect_ms"),
    ("backend:default_web_80.timeouts.server_ms", 0, "backend default_web_80 field timeouts field server_ms"),
    ("backend:default_web_80.health_check", {"type": "http;"}, "backend default_web_80 field health_check field type"),
    ("frontend:default-http-80.routes.0.host", "a" * 64 + ".example.com", "frontend default-http-80 field routes[0].host"),
    ("frontend:default-http-80.routes.0.path", "/" + "a" * 256, "frontend default-http-80 field routes[0] field path"),
    ("frontend:default-http-80.routes.0.path", "/a b", "frontend default-http-80 field routes[0] field path"),
    ("frontend:default-http-80.routes", "shop", "frontend default-http-80 field routes"),
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
    with pytest.raises(ViewError, match=r"model field routes\[0\]\.cidr"):
        view(raw, pools=("default", "internal"), pool_addresses={"internal": "10.213.0.201"})


@pytest.mark.parametrize(("options", "where"), [
    ({"directory": "relative/path"}, "option directory"),
    ({"directory": "/etc/nginx/x;y"}, "option directory"),
    ({"directory": "/etc/nginx/../x"}, "option directory"),
    ({"pools": ("default;",)}, "option pools"),
    ({"admin_address": "localhost"}, "option admin_address"),
    ({"admin_address": "127.0.0.1;"}, "option admin_address"),
    ({"admin_port": 0}, "option field admin_port"),
    ({"pool_addresses": {"default": "10.0.0.1 x"}}, r"option pool_addresses\[default\]"),
    ({"certificates": {"Shop": FIXTURE["certificate"]}}, "option certificates"),
    ({"certificates": {"shop": {"cert": "not pem", "key": FIXTURE["certificate"]["key"]}}}, r"option certificates\[shop\]\.cert"),
    ({"certificates": {"shop": {"cert": FIXTURE["certificate"]["cert"]}}}, r"option certificates\[shop\]\.key"),
    ({"max_fails": -1}, "option field max_fails"),
])
def test_operator_options_are_checked(options, where):
    with pytest.raises(ViewError, match=f"^{where}"):
        view(**options)


SAFE_LINE = re.compile(r"[A-Za-z0-9_.:/*=\[\] $\"\\-]*")


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
    for line in every_line(result):
        assert SAFE_LINE.fullmatch(line), line
        assert ";" not in line and "{" not in line and "}" not in line and "#" not in line
