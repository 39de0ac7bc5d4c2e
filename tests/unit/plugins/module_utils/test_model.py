"""The edge model over fixtures in the API's own shapes: what is served, and what is refused."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils._model import (
    ClusterState, InvalidValue, ModelOptions, build_model, build_model_json, generation, model_document)


def with_configmaps(**changes) -> ModelOptions:
    """The model options the fixtures are written for: the ingress-nginx ConfigMaps named (reading
    them is opt-in)."""
    return ModelOptions(tcp_services_configmap="ingress-nginx/tcp-services", udp_services_configmap="ingress-nginx/udp-services",
                        **changes)


FIXTURES = Path(__file__).parent / "fixtures"
KINDS = ("services", "endpoint_slices", "nodes", "ingresses", "config_maps")


def load(name: str) -> Any:
    return yaml.safe_load((FIXTURES / name).read_text())


CLUSTER = load("cluster.yaml")
BAD_INPUTS = load("bad_inputs.yaml")["cases"]
CONFLICTS = load("conflicts.yaml")["cases"]


def cluster(add: dict[str, list[Any]] | None = None, **replace: Any) -> ClusterState:
    """cluster.yaml plus the objects in `add`; `replace` swaps whole lists."""
    add = add or {}
    lists = {kind: CLUSTER.get(kind, []) + add.get(kind, []) for kind in KINDS}
    return ClusterState(**{**lists, **replace})


def service(name: str, annotations: dict[str, str], namespace: str = "default", **spec: Any) -> dict[str, Any]:
    spec = {"type": "NodePort", "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30801}], **spec}
    return {"metadata": {"name": name, "namespace": namespace, "annotations": annotations}, "spec": spec}


@pytest.fixture(scope="module", name="model")
def fixture_model() -> dict[str, Any]:
    return build_model(cluster(), with_configmaps())


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_the_cluster_fixture_is_served_without_findings(model):
    assert model["errors"] == []
    assert model["warnings"] == []


def test_frontends_are_named_and_sorted_by_pool_protocol_port(model):
    assert [f["name"] for f in model["frontends"]] == [
        "default-http-80", "default-http-443",
        "default-tcp-53", "default-tcp-7000", "default-tcp-9996", "default-tcp-9997", "default-tcp-9998", "default-tcp-9999",
        "default-udp-53",
        "internal-tcp-8443",
    ]


@pytest.mark.parametrize(("frontend", "accept_proxy", "backend", "proxy_protocol"), [
    # The seed's entry, then the ingress-nginx PROXY forms: decode from clients, encode to backends.
    ("default-tcp-9999", False, "default_s2_80_tcp", "none"),
    ("default-tcp-9998", True, "default_s2_80_tcp", "none"),
    ("default-tcp-9997", False, "default_s2_80_tcp_proxy-v1", "v1"),
    ("default-tcp-9996", True, "default_s2_80_tcp_proxy-v1", "v1"),
    # A LoadBalancer of our class without port annotations: every port, TCP and UDP apart.
    ("default-tcp-53", False, "kube-system_dns_53_tcp", "none"),
    ("default-udp-53", False, "kube-system_dns_53_udp", "none"),
    ("default-tcp-7000", False, "shop_api_9000_tcp_proxy-v2", "v2"),
    ("internal-tcp-8443", False, "shop_dual_443_tcp", "none"),
])
def test_stream_frontends(model, frontend, accept_proxy, backend, proxy_protocol):
    found = by_name(model["frontends"])[frontend]
    assert (found["accept_proxy"], found["backend"], found["tls"]) == (accept_proxy, backend, False)
    assert by_name(model["backends"])[backend]["proxy_protocol"] == proxy_protocol


def test_http_routes_are_in_matching_order(model):
    routes = by_name(model["frontends"])["default-http-80"]["routes"]
    assert [(r["host"], r["path"], r["path_type"], r["backend"], r["redirect_https"]) for r in routes] == [
        ("api.example.com", "/v1", "prefix", "shop_api_80_proxy-v2", False),
        ("shop.example.com", "/status", "exact", "shop_api_80_proxy-v2", True),
        ("shop.example.com", "/", "prefix", "shop_api_80_proxy-v2", True),
        ("web.example.com", "/", "prefix", "default_web_80", True),  # lowercased from Web.Example.com
        ("www.example.com", "/", "prefix", "default_web_80", True),
        ("*", "/", "prefix", "shop_api_80_proxy-v2", False),  # the Ingress rule without a host
    ]


def test_tls_terminate_routes_get_an_https_frontend(model):
    https = by_name(model["frontends"])["default-http-443"]
    assert (https["port"], https["tls"], https["certificates"]) == (443, True, ["example-com", "shop-cert"])
    assert [(r["host"], r["path"], r["certificate"]) for r in https["routes"]] == [
        ("shop.example.com", "/status", "shop-cert"),
        ("shop.example.com", "/", "shop-cert"),
        ("web.example.com", "/", "example-com"),
        ("www.example.com", "/", "example-com"),
    ]


@pytest.mark.parametrize(("backend", "targets"), [
    # nodeport: Ready nodes only, node-c is NotReady and node-d carries the exclusion label.
    ("default_web_80", [("10.0.0.11", 30080, "node-a", "zone-a", "ready"), ("10.0.0.12", 30080, "node-b", "zone-b", "ready")]),
    # externalTrafficPolicy Local: nodes with a local endpoint; only a terminating one drains.
    ("kube-system_dns_53_udp", [("10.0.0.11", 30053, "node-a", "zone-a", "ready"), ("10.0.0.12", 30053, "node-b", "zone-b", "draining")]),
    # pod: the named port resolves per slice (8080, 8081); 10.244.2.7 is terminating in one slice and
    # ready in another (once, ready); 10.244.2.9 serves while terminating; 10.244.2.8 does not serve.
    ("shop_api_80_proxy-v2", [
        ("10.244.1.5", 8080, "node-a", "zone-a", "ready"),
        ("10.244.1.9", 8081, "node-a", "zone-a", "ready"),
        ("10.244.2.7", 8080, "node-b", "zone-b", "ready"),
        ("10.244.2.9", 8080, "node-b", "zone-b", "draining"),
    ]),
    ("shop_api_9000_tcp_proxy-v2", [
        ("10.244.1.5", 9000, "node-a", "zone-a", "ready"),
        ("10.244.1.9", 9000, "node-a", "zone-a", "ready"),
        ("10.244.2.7", 9000, "node-b", "zone-b", "ready"),
        ("10.244.2.9", 9000, "node-b", "zone-b", "draining"),
    ]),
    # Dual-stack follows ipFamilies; the IPv6 address comes out canonical; the FQDN slice is ignored.
    ("shop_dual_443_tcp", [("10.244.1.20", 8443, "node-a", "zone-a", "ready"), ("fd00:10:244:1::20", 8443, "node-a", "zone-a", "ready")]),
])
def test_targets(model, backend, targets):
    found = by_name(model["backends"])[backend]["targets"]
    assert [(t["address"], t["port"], t["node"], t["zone"], t["state"]) for t in found] == targets


@pytest.mark.parametrize(("backend", "expected"), [
    ("default_web_80", {
        "namespace": "default", "service": "web", "port": 80, "port_name": "http", "protocol": "TCP", "frontend_protocol": "http",
        "mode": "nodeport", "balance": "leastconn", "health_check": {"type": "http", "path": "/healthz"},
        "timeouts": {"connect_ms": 5000, "server_ms": 120000}, "proxy_protocol": "none",
    }),
    ("kube-system_dns_53_tcp", {
        "namespace": "kube-system", "service": "dns", "port": 53, "port_name": "dns-tcp", "protocol": "TCP", "frontend_protocol": "tcp",
        "mode": "nodeport", "balance": "roundrobin", "health_check": {"type": "http", "path": "/healthz", "port": 32000},
        "timeouts": {"connect_ms": 5000, "server_ms": 60000}, "proxy_protocol": "none",
    }),
    ("shop_dual_443_tcp", {
        "namespace": "shop", "service": "dual", "port": 443, "port_name": "", "protocol": "TCP", "frontend_protocol": "tcp",
        "mode": "pod", "balance": "roundrobin", "health_check": {"type": "tcp"},
        "timeouts": {"connect_ms": 5000, "server_ms": 60000}, "proxy_protocol": "none",
    }),
])
def test_backend_settings(model, backend, expected):
    found = dict(by_name(model["backends"])[backend])
    del found["name"], found["targets"]
    assert found == expected


def test_pod_network_routes_follow_each_node_and_family(model):
    assert model["routes"] == [
        {"cidr": "10.244.1.0/24", "via": "10.0.0.11", "node": "node-a"},
        {"cidr": "10.244.2.0/24", "via": "10.0.0.12", "node": "node-b"},  # from the legacy spec.podCIDR
        {"cidr": "10.244.3.0/24", "via": "10.0.0.13", "node": "node-c"},  # NotReady nodes keep their route
        {"cidr": "10.244.4.0/24", "via": "10.0.0.14", "node": "node-d"},
        {"cidr": "fd00:10:244:1::/64", "via": "fd00::11", "node": "node-a"},
    ]


def test_a_refused_pod_network_never_takes_the_route_of_a_good_node(model):
    case = next(c for c in BAD_INPUTS if c["id"] == "pod-networks-no-node-should-have")
    assert build_model(cluster(case["add"]), with_configmaps())["routes"] == model["routes"]


def test_a_null_protocol_reads_as_an_absent_one_in_any_order():
    """The API defaults a null protocol as an absent one (TCP): slices that spell it either way give
    one model, whatever their order (a cache of checked ports once made the first one seen win)."""
    slices = [{"metadata": {"name": f"api-{i}", "namespace": "shop", "labels": {"kubernetes.io/service-name": "api"}},
               "addressType": "IPv4", "ports": [{"name": "web", "port": 8080, **spelling}],
               "endpoints": [{"addresses": [f"10.244.1.{90 + i}"]}]} for i, spelling in enumerate(({"protocol": None}, {}))]
    first, second = (build_model(cluster({"endpoint_slices": order}), with_configmaps()) for order in (slices, slices[::-1]))
    assert first == second and first["errors"] == []
    assert {"10.244.1.90", "10.244.1.91"} <= {t["address"] for t in by_name(first["backends"])["shop_api_80_proxy-v2"]["targets"]}


def test_nothing_read_is_a_warning_not_a_silent_empty_model():
    found = build_model(ClusterState(), ModelOptions())
    assert (found["frontends"], found["backends"], found["errors"]) == ([], [], [])
    assert [(w["kind"], w["namespace"], w["name"], w["field"]) for w in found["warnings"]] == [("", "", "", "")]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c["id"] for c in BAD_INPUTS])
def test_bad_input_is_reported_and_the_rest_goes_on(model, case):
    found = build_model(cluster(case["add"]), with_configmaps())
    assert found["errors"] == case["errors"]
    assert found["warnings"] == case.get("warnings", [])
    backends = by_name(found["backends"])
    assert not set(case.get("absent", [])) & set(backends)
    assert all(backends.get(name) == backend for name, backend in by_name(model["backends"]).items())


@pytest.mark.parametrize("case", CONFLICTS, ids=[c["id"] for c in CONFLICTS])
def test_conflicts_have_one_deterministic_winner(case):
    found = build_model(cluster(case["add"]), with_configmaps())
    assert found["errors"] == case["errors"]
    frontends = by_name(found["frontends"])
    for name, backend in case.get("frontends", {}).items():
        assert frontends.get(name, {"backend": ""})["backend"] == backend
    for name, sni in case.get("sni", {}).items():
        assert [[s["host"], s["backend"]] for s in frontends[name]["sni"]] == sni
    routes = {f"{f['pool']} {r['host']} {r['path']}": r["backend"] for f in found["frontends"] if f["protocol"] == "http" for r in f["routes"]}
    for route, backend in case.get("routes", {}).items():
        assert routes[route] == backend


def test_findings_do_not_change_the_generation(model):
    found = build_model(cluster({"services": [service("bad", {"lb.k8sedge.io/expose": "maybe"})]}), with_configmaps())
    assert found["errors"] and found["generation"] == model["generation"]


def test_what_is_served_changes_the_generation(model):
    nodes = [dict(node, spec={"podCIDRs": ["10.244.99.0/24"]}) if node["metadata"]["name"] == "node-c" else node for node in CLUSTER["nodes"]]
    assert build_model(cluster(nodes=nodes), with_configmaps())["generation"] != model["generation"]


def test_legacy_endpoints_when_the_cluster_has_no_endpointslices():
    endpoints = [{
        "metadata": {"name": "api", "namespace": "shop"},
        "subsets": [{
            "addresses": [{"ip": "10.244.1.5", "nodeName": "node-a"}, {"ip": "10.244.2.7", "nodeName": "node-b"}],
            "notReadyAddresses": [{"ip": "10.244.2.8", "nodeName": "node-b"}],
            "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}, {"name": "grpc", "port": 9000, "protocol": "TCP"}],
        }],
    }]
    found = build_model(cluster(endpoint_slices=None, endpoints=endpoints), with_configmaps())
    targets = by_name(found["backends"])["shop_api_80_proxy-v2"]["targets"]
    assert [(t["address"], t["port"], t["zone"], t["state"]) for t in targets] == [
        ("10.244.1.5", 8080, "zone-a", "ready"), ("10.244.2.7", 8080, "zone-b", "ready"),
    ]


@pytest.mark.parametrize(("pool", "frontends"), [
    ("internal", ["internal-tcp-8443"]),
    ("edge-b", []),
])
def test_the_pool_option_builds_one_pool(pool, frontends):
    found = build_model(cluster(), with_configmaps(pool=pool))
    assert [f["name"] for f in found["frontends"]] == frontends
    assert {b["name"] for b in found["backends"]} == {f["backend"] for f in found["frontends"]}


def test_ingress_class_by_the_legacy_annotation():
    found = build_model(cluster(), with_configmaps(ingress_class="nginx"))
    routes = by_name(found["frontends"])["default-http-80"]["routes"]
    assert "other.example.com" in {r["host"] for r in routes}
    assert "shop.example.com" not in {r["host"] for r in routes}


def test_local_traffic_without_a_health_check_node_port_warns():
    local = service("local", {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/tcp-ports": "7001:80"}, externalTrafficPolicy="Local")
    slices = [{
        "metadata": {"name": "local-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "local"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.244.2.40"], "conditions": {"ready": True}, "nodeName": "node-b"}],
    }]
    found = build_model(cluster({"services": [local], "endpoint_slices": slices}), with_configmaps())
    backend = by_name(found["backends"])["default_local_80_tcp"]
    assert backend["health_check"] == {"type": "tcp"}
    assert [t["node"] for t in backend["targets"]] == ["node-b"]
    assert [w["field"] for w in found["warnings"]] == ["spec.externalTrafficPolicy"]


def test_a_backend_without_targets_is_kept_with_a_warning():
    empty = service("empty", {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/backend": "pod", "lb.k8sedge.io/tcp-ports": "7001:80"})
    found = build_model(cluster({"services": [empty]}), with_configmaps())
    assert by_name(found["backends"])["default_empty_80_tcp"]["targets"] == []
    assert found["warnings"] == [{
        "kind": "Service", "namespace": "default", "name": "empty", "field": "spec.ports[0]",
        "message": "backend default_empty_80_tcp has no targets: kept, the edge answers for it",
    }]


def test_expose_false_opts_a_loadbalancer_out():
    dns = next(s for s in CLUSTER["services"] if s["metadata"]["name"] == "dns")
    opted_out = {**dns, "metadata": {**dns["metadata"], "annotations": {"lb.k8sedge.io/expose": "false"}}}
    services = [s for s in CLUSTER["services"] if s is not dns] + [opted_out]
    found = build_model(cluster(services=services), with_configmaps())
    assert not [b for b in found["backends"] if b["service"] == "dns"]


def test_exposed_with_nothing_to_serve_warns():
    found = build_model(cluster({"services": [service("idle", {"lb.k8sedge.io/expose": "true"})]}), with_configmaps())
    assert [(w["name"], w["field"]) for w in found["warnings"]] == [("idle", "metadata.annotations[lb.k8sedge.io/expose]")]


@pytest.mark.parametrize(("options", "message"), [
    ({"pool": "Edge"}, "option pool: expected a DNS label"),
    ({"http_port": 0}, "option http_port: expected a port number"),
    ({"https_port": 80}, "option https_port: expected a port other than http_port"),
    ({"tcp_services_configmap": "tcp-services"}, "option tcp_services_configmap: expected <namespace>/<name>"),
    ({"nodeport_subset_size": -1}, "option nodeport_subset_size: expected 0 .every node. or a positive number"),
])
def test_options_are_checked(options, message):
    with pytest.raises(InvalidValue, match=message):
        ModelOptions(**options)


def _node(name: str, address: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "z"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": address}]}}


NODES_40 = [_node(f"n{i:02}", f"192.0.2.{i + 1}") for i in range(40)]
SERVICES_50 = [service(f"s{i:02}", {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/tcp-ports": f"{7000 + i}:80"},
                       ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30000 + i}]) for i in range(50)]


def _subsets(nodes: list[dict[str, Any]], size: int = 25) -> dict[str, set[str]]:
    found = build_model(ClusterState(services=SERVICES_50, nodes=nodes), with_configmaps(nodeport_subset_size=size))
    return {b["service"]: {t["node"] for t in b["targets"]} for b in found["backends"]}


def test_nodeport_targets_are_a_subset_of_the_nodes_spread_over_all_of_them():
    subsets = _subsets(NODES_40)
    assert {len(nodes) for nodes in subsets.values()} == {25}
    # Every node carries some Services, and no node carries all of them.
    load = {name: sum(name in nodes for nodes in subsets.values()) for name in (n["metadata"]["name"] for n in NODES_40)}
    assert 0 < min(load.values()) and max(load.values()) < len(SERVICES_50)
    assert len({frozenset(nodes) for nodes in subsets.values()}) > 10


def test_a_node_leaving_changes_at_most_one_member_of_each_subset():
    before = _subsets(NODES_40)
    after = _subsets(NODES_40[:17] + NODES_40[18:])
    for name, nodes in before.items():
        assert len(nodes - after[name]) <= 1 and len(after[name]) == 25
        assert nodes - after[name] <= {"n17"}


def test_subset_size_zero_or_a_small_cluster_uses_every_node():
    assert {len(nodes) for nodes in _subsets(NODES_40, size=0).values()} == {40}
    assert {len(nodes) for nodes in _subsets(NODES_40[:25]).values()} == {25}


def test_the_json_text_is_the_model_and_hashes_the_same(model):
    found_generation, text, gates = build_model_json(cluster(), with_configmaps())
    assert json.loads(text) == model and gates == model["gates"] == []
    assert found_generation == model["generation"] == generation(model)
    assert model_document(text) == model and model_document(model) is model


@pytest.mark.parametrize("value", ["{not json", "[]", {"frontends": []}, 42])
def test_model_document_refuses_what_edge_info_does_not_return(value):
    with pytest.raises(InvalidValue, match="model: expected"):
        model_document(value)


@pytest.mark.parametrize("port", [8404, 8405])
def test_a_claim_on_a_port_the_edge_keeps_is_refused_on_its_object_and_the_rest_is_served(model, port):
    admin = service("admin", {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/tcp-ports": f"{port}:80"}, namespace="tenant")
    found = build_model(cluster({"services": [admin]}), with_configmaps())
    assert [e for e in found["errors"] if e["name"] == "admin"] == [{
        "kind": "Service", "namespace": "tenant", "name": "admin", "field": "metadata.annotations[lb.k8sedge.io/tcp-ports]",
        "message": f"tcp port {port} in pool default: port {port} is kept by the edge for itself (its admin listeners; option"
                   " reserved_ports)"}]
    assert found["frontends"] == model["frontends"] and found["backends"] == model["backends"]
    # An edge whose admin listeners are elsewhere can give the port out.
    served = build_model(cluster({"services": [admin]}), with_configmaps(reserved_ports=()))
    assert f"default-tcp-{port}" in by_name(served["frontends"])


def test_reading_a_configmap_is_opt_in():
    found = build_model(cluster(), ModelOptions())
    assert "default-tcp-9999" in by_name(build_model(cluster(), with_configmaps())["frontends"])
    assert "default-tcp-9999" not in by_name(found["frontends"])
    assert not [e for e in found["errors"] + found["warnings"] if e["kind"] == "ConfigMap"]
