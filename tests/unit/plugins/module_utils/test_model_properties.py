"""Properties of the edge model over generated clusters: order does not matter, targets come from
the input, no conflict survives, and no hostile string from the cluster reaches the model."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, ModelOptions, build_model


def with_configmaps(**changes) -> ModelOptions:
    """The model options the fixtures are written for: the ingress-nginx ConfigMaps named (reading
    them is opt-in)."""
    return ModelOptions(tcp_services_configmap="ingress-nginx/tcp-services", udp_services_configmap="ingress-nginx/udp-services",
                        **changes)


OPTIONS = with_configmaps()
KINDS = ("services", "endpoint_slices", "nodes", "ingresses", "config_maps")
FIXTURE = yaml.safe_load((Path(__file__).parent / "fixtures" / "cluster.yaml").read_text())
EXAMPLES = 200  # per property: the whole file runs in well under 30 s
# Small name and value pools, so that generated objects collide, duplicate and conflict often.
NAMESPACES = ("a", "b")
SERVICES = ("s0", "s1", "s2", "s3")
HOSTS = ("x.example.com", "y.example.com", "*.example.com", "X.Example.com")
PATHS = ("/", "/x", "/x/y")
TIMES = ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", None)
EDGE_PORTS = (80, 443, 7000, 7001)
SERVED_TEXT = re.compile(r"[A-Za-z0-9._~/:*-]*")
HOSTILE_CHARACTERS = ("\n", "\r", "\t", "\x00", " ", "{", "}", '"', "'", ";", "#", "\\", "$", "`", "é", "\u212a", "\u0661", "\u2028")

maybe = st.booleans()


def metadata(name: str, namespace: str | None, created: str | None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    if created is not None:
        meta["creationTimestamp"] = created
    return meta


@st.composite
def nodes(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    for i in range(draw(st.integers(0, 4))):
        labels = {"topology.kubernetes.io/zone": draw(st.sampled_from(["z1", "z2"]))}
        if draw(maybe):
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        addresses = [{"type": "InternalIP", "address": f"10.0.0.{i + 1}"}]
        if draw(maybe):
            addresses.append({"type": "InternalIP", "address": f"fd00::{i + 1}"})
        cidrs = draw(st.lists(st.sampled_from(["10.244.0.0/24", "10.244.0.0/16", "10.244.1.0/24", "fd00:1::/64"]), max_size=2, unique=True))
        found.append({
            "metadata": metadata(f"node-{i}", None, draw(st.sampled_from(TIMES)), labels=labels),
            "spec": {"podCIDRs": cidrs},
            "status": {"addresses": addresses, "conditions": [{"type": "Ready", "status": draw(st.sampled_from(["True", "False"]))}]},
        })
    return found


IDENTITIES = [(namespace, name) for namespace in NAMESPACES for name in SERVICES]
ADDRESSES = {"IPv4": ("10.244.0.1", "10.244.0.2", "10.244.1.1"), "IPv6": ("fd00::1", "fd00:0::2")}
# The API reads a null protocol as an absent one, TCP: all three spellings must give one model.
TCP_SPELLINGS = ({"protocol": "TCP"}, {"protocol": None}, {})


@st.composite
def services(draw: st.DrawFn, identities: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found = []
    for namespace, name in identities:
        annotations = {"lb.k8sedge.io/expose": draw(st.sampled_from(["true", "true", "false"]))}
        if draw(maybe):
            annotations["lb.k8sedge.io/hosts"] = ",".join(draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3)))
            tls = draw(st.sampled_from(["none", "terminate", "passthrough"]))
            annotations["lb.k8sedge.io/tls"] = tls
            if tls == "terminate":
                annotations["lb.k8sedge.io/tls-certificate"] = "cert"
            if tls != "passthrough":
                annotations["lb.k8sedge.io/path"] = draw(st.sampled_from(PATHS))
        if draw(maybe):
            annotations["lb.k8sedge.io/tcp-ports"] = f"{draw(st.sampled_from(EDGE_PORTS))}:{draw(st.sampled_from(['80', 'http']))}"
        if draw(maybe):
            annotations["lb.k8sedge.io/udp-ports"] = f"{draw(st.sampled_from(EDGE_PORTS))}:53"
        for key, values in (("pool", ["default", "other"]), ("proxy-protocol", ["none", "v2"])):
            if draw(maybe):
                annotations[f"lb.k8sedge.io/{key}"] = draw(st.sampled_from(values))
        node_ports = draw(maybe)
        annotations["lb.k8sedge.io/backend"] = draw(st.sampled_from(["pod", "nodeport"])) if node_ports else "pod"
        ports = [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"}, {"name": "dns", "protocol": "UDP", "port": 53}]
        if node_ports:
            for port in ports:
                port["nodePort"] = draw(st.integers(30000, 30003))
        spec: dict[str, Any] = {"type": "NodePort" if node_ports else "ClusterIP", "ports": ports}
        if draw(maybe):
            spec["ipFamilies"] = draw(st.sampled_from([["IPv4"], ["IPv6"], ["IPv6", "IPv4"]]))
        if node_ports and draw(maybe):
            spec.update(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=32000)
        found.append({"metadata": metadata(name, namespace, draw(st.sampled_from(TIMES)), annotations=annotations), "spec": spec})
    return found


@st.composite
def endpoint_slices(draw: st.DrawFn, identities: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found = []
    for i in range(draw(st.integers(0, 6))):
        address_type = draw(st.sampled_from(["IPv4", "IPv6"]))
        endpoints = []
        for _ in range(draw(st.integers(0, 3))):
            conditions = {k: draw(st.sampled_from([True, False, None])) for k in ("ready", "serving", "terminating")}
            endpoints.append({
                "addresses": [draw(st.sampled_from(ADDRESSES[address_type]))],
                "conditions": {k: v for k, v in conditions.items() if v is not None},
                "nodeName": f"node-{draw(st.integers(0, 4))}",
            })
        namespace, name = draw(st.sampled_from(identities or IDENTITIES))
        found.append({
            "metadata": metadata(f"slice-{i}", namespace, None, labels={"kubernetes.io/service-name": name}),
            "addressType": address_type,
            "ports": [{"name": "http", **draw(st.sampled_from(TCP_SPELLINGS)), "port": draw(st.sampled_from([8080, 8081]))},
                      {"name": "dns", "protocol": "UDP", "port": 53}],
            "endpoints": endpoints,
        })
    return found


@st.composite
def ingresses(draw: st.DrawFn, identities: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found = []
    for i in range(draw(st.integers(0, 3))):
        namespace, name = draw(st.sampled_from(identities or IDENTITIES))
        paths = [{"path": draw(st.sampled_from(PATHS)), "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80}}}}]
        rule = {"http": {"paths": paths}}
        if draw(maybe):
            rule["host"] = draw(st.sampled_from(HOSTS)).lower()
        found.append({
            "metadata": metadata(f"ing-{i}", namespace, draw(st.sampled_from(TIMES))),
            "spec": {"ingressClassName": "k8sedge", "rules": [rule]},
        })
    return found


@st.composite
def config_maps(draw: st.DrawFn, identities: list[tuple[str, str]]) -> list[dict[str, Any]]:
    data = {}
    for _ in range(draw(st.integers(0, 3))):
        namespace, name = draw(st.sampled_from(identities or IDENTITIES))
        data[str(draw(st.sampled_from(EDGE_PORTS)))] = f"{namespace}/{name}:80" + draw(st.sampled_from(["", ":PROXY", "::PROXY"]))
    return [{"metadata": metadata("tcp-services", "ingress-nginx", draw(st.sampled_from(TIMES))), "data": data}]


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    identities = draw(st.lists(st.sampled_from(IDENTITIES), max_size=6, unique=True))
    if identities and draw(st.integers(0, 9)) == 0:
        identities.append(identities[0])  # now and then, the same Service twice
    return {
        "services": draw(services(identities)), "endpoint_slices": draw(endpoint_slices(identities)), "nodes": draw(nodes()),
        "ingresses": draw(ingresses(identities)), "config_maps": draw(config_maps(identities)),
    }


def build(objects: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return build_model(ClusterState(**objects), OPTIONS)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def places(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key or index) of every leaf and of every dict key, to replace with a hostile value."""
    if isinstance(value, dict):
        for key, item in list(value.items()):
            yield value, key
            yield from places(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from places(item)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters(), data=st.data())
def test_any_order_gives_the_same_bytes(objects, data):
    shuffled = {kind: data.draw(st.permutations(items)) for kind, items in objects.items()}
    first = build(objects)
    assert json.dumps(build(shuffled)) == json.dumps(first)
    # Reordering endpoints inside a slice changes the indexes findings name, never what is served.
    for piece in shuffled["endpoint_slices"]:
        piece["endpoints"] = data.draw(st.permutations(piece["endpoints"]))
    assert build(shuffled)["generation"] == first["generation"]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters())
def test_every_target_comes_from_the_input(objects):
    node_addresses = {a["address"] for n in objects["nodes"] for a in n["status"]["addresses"]}
    node_ports = {p["nodePort"] for s in objects["services"] for p in s["spec"]["ports"] if "nodePort" in p}
    pod_addresses = {e["addresses"][0].replace("fd00:0::2", "fd00::2") for s in objects["endpoint_slices"] for e in s["endpoints"]}
    pod_ports = {p["port"] for s in objects["endpoint_slices"] for p in s["ports"]}
    for backend in build(objects)["backends"]:
        for target in backend["targets"]:
            if backend["mode"] == "nodeport":
                assert target["address"] in node_addresses and target["port"] in node_ports
            else:
                assert target["address"] in pod_addresses and target["port"] in pod_ports


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters())
def test_no_conflict_survives(objects):
    model = build(objects)
    frontends = model["frontends"]
    ports = [(f["pool"], f["protocol"], f["port"]) for f in frontends]
    assert len(ports) == len(set(ports))
    for frontend in frontends:
        claims = [(r["host"], r["path"]) for r in frontend.get("routes", [])] + [(s["host"], "") for s in frontend.get("sni", [])]
        assert len(claims) == len(set(claims))
    # A pool's stream frontend never shares a port with its HTTP frontends.
    http = {(f["pool"], f["port"]) for f in frontends if f["protocol"] == "http"}
    assert not http & {(f["pool"], f["port"]) for f in frontends if f["protocol"] == "tcp"}
    assert {b["name"] for b in model["backends"]} == {
        name for f in frontends for name in [f.get("backend", "")] + [r["backend"] for r in f.get("routes", []) + f.get("sni", [])] if name
    }


hostile_strings = st.builds(
    lambda before, bad, after: f"zq{before}{bad}{after}",
    st.text("abcdefghijklmnopqrstuvwxyz0123456789.-/:", max_size=6),
    st.sampled_from(HOSTILE_CHARACTERS),
    st.text(max_size=6),
)
# Wrong types too; copied, so that no two places share one mutable value.
hostile_values = st.one_of(hostile_strings, st.sampled_from([None, True, 0, -1, 70000, [], {}, ["zq x"], {"zq\n": "zq\n"}]).map(copy.deepcopy))


# Generated clusters, and the richer hand-written one (TLS, PROXY entries, dual-stack, Ingress).
clusters_to_spoil = st.one_of(clusters(), st.builds(lambda: {kind: copy.deepcopy(FIXTURE.get(kind, [])) for kind in KINDS}))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters_to_spoil, data=st.data())
def test_no_hostile_string_reaches_the_model(objects, data):
    hostile = []
    for _ in range(data.draw(st.integers(1, 4))):
        spots = [spot for items in objects.values() for spot in places(items)]
        if not spots:
            break
        container, key = data.draw(st.sampled_from(spots))
        value = data.draw(hostile_strings if data.draw(maybe) else hostile_values)
        if isinstance(container, dict) and isinstance(value, str) and data.draw(maybe):
            container[value] = container.pop(key)  # a hostile key
        else:
            container[key] = value
        hostile += [value] if isinstance(value, str) else []
    model = build(objects)
    for text in strings(model):
        assert not any(h in text for h in hostile)
        assert text.isascii() and text.isprintable()
    served = {key: model[key] for key in ("frontends", "backends", "routes")}
    assert all(SERVED_TEXT.fullmatch(text) for text in strings(served))
