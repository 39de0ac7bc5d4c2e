"""The pure parts of the watch core: classification, merging, debounce timing, what is watched."""
from __future__ import annotations

import copy
import json
import time

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils import _watch as w

TARGET = {"address": "10.244.1.5", "port": 8080, "node": "node1", "zone": "", "state": "ready"}
MODEL = {
    "frontends": [{"name": "default-http-80", "pool": "default", "protocol": "http", "port": 80,
                   "routes": [{"host": "web.test", "path": "/", "backend": "default_web_80"}]}],
    "backends": [{"name": "default_web_80", "balance": "roundrobin", "targets": [TARGET]},
                 {"name": "default_db_5432", "balance": "roundrobin", "targets": []}],
    "routes": [{"cidr": "10.244.1.0/24", "via": "10.213.0.21", "node": "node1"}],
    "generation": "a" * 64,
}


def changed(edit) -> dict:
    model = copy.deepcopy(MODEL)
    edit(model)
    model["generation"] = "b" * 64
    return model


def _add_target(m):
    m["backends"][0]["targets"].append({**TARGET, "address": "10.244.1.6"})


def _drain(m):
    m["backends"][0]["targets"][0]["state"] = "draining"


def _balance(m):
    m["backends"][0]["balance"] = "leastconn"


def _new_frontend(m):
    m["frontends"].append({"name": "default-tcp-9999", "pool": "default", "protocol": "tcp", "port": 9999})


def _route(m):
    m["routes"].append({"cidr": "10.244.2.0/24", "via": "10.213.0.22", "node": "node2"})


def _new_backend(m):
    m["backends"].append({"name": "default_x_80", "balance": "roundrobin", "targets": [TARGET]})


@pytest.mark.parametrize("edit, kind, parts, backends", [
    (_add_target, w.ENDPOINTS, (), ("default_web_80",)),
    (_drain, w.ENDPOINTS, (), ("default_web_80",)),
    (lambda m: m["backends"][1]["targets"].append(TARGET), w.ENDPOINTS, (), ("default_db_5432",)),
    (lambda m: m["backends"][0]["targets"].clear(), w.ENDPOINTS, (), ("default_web_80",)),
    (_balance, w.STRUCTURAL, ("backends",), ()),
    (_new_frontend, w.STRUCTURAL, ("frontends",), ()),
    (_route, w.STRUCTURAL, ("routes",), ()),
    (_new_backend, w.STRUCTURAL, ("backends",), ("default_x_80",)),
    (lambda m: (_add_target(m), _balance(m)), w.STRUCTURAL, ("backends",), ("default_web_80",)),
])
def test_classify(edit, kind, parts, backends):
    assert w.classify(MODEL, changed(edit)) == (kind, parts, backends)


def test_classify_without_a_previous_model_is_structural():
    kind, parts, _ = w.classify(None, MODEL)
    assert (kind, parts) == (w.STRUCTURAL, ("frontends", "backends", "routes"))


def _change(kind: str, generation: str, previous: str | None, first: float, parts=(), backends=()) -> w.Change:
    return w.Change(generation, previous, kind, tuple(parts), tuple(backends), first, first + 0.1, MODEL)


@pytest.mark.parametrize("first_kind, second_kind, merged", [
    (w.ENDPOINTS, w.ENDPOINTS, w.ENDPOINTS),
    (w.ENDPOINTS, w.STRUCTURAL, w.STRUCTURAL),
    (w.STRUCTURAL, w.ENDPOINTS, w.STRUCTURAL),
])
def test_merge_keeps_the_newest_generation_and_the_widest_kind(first_kind, second_kind, merged):
    pending = _change(first_kind, "g2", "g1", 10.0, backends=["a"])
    newer = _change(second_kind, "g3", "g2", 12.0, parts=["routes"] if second_kind == w.STRUCTURAL else [], backends=["b"])
    result = w.merge(pending, newer)
    assert (result.generation, result.previous, result.kind, result.first_event) == ("g3", "g1", merged, 10.0)
    assert result.backends == ("a", "b")
    assert w.merge(None, newer) is newer


def test_a_rotated_certificate_is_a_structural_change_of_the_latest_model():
    before = {"edge1": {"shop": "1" * 64, "api": "3" * 64}, "edge2": {"shop": "1" * 64}}
    assert w.certificates_changed(before, before) == ""
    after = {"edge1": {"shop": "2" * 64, "api": "3" * 64}, "edge2": {"shop": "2" * 64, "web": "4" * 64}, "edge3": {}}
    what = w.certificates_changed(before, after)
    assert what == "certificates of edge1 (shop), edge2 (shop, web)"
    latest = _change(w.ENDPOINTS, "g2", "g1", 10.0, backends=["a"])
    change = w.inventory_change(latest, what, 50.0)
    assert (change.generation, change.previous, change.kind, change.parts, change.backends, change.first_event) == \
        ("g2", "g2", w.STRUCTURAL, (what,), (), 50.0)
    assert change.model is latest.model
    assert change.summary == "generation g2 -> g2: structural, certificates of edge1 (shop), edge2 (shop, web) changed"


def test_event_is_json_data_without_the_model():
    change = _change(w.ENDPOINTS, "c" * 64, "d" * 64, 100.0, backends=["default_web_80"])
    event = change.event()
    assert "model" not in event
    assert event["change"] == "endpoints" and event["counts"] == {"frontends": 1, "backends": 2, "targets": 1}
    assert event["summary"] == f"generation {'d' * 12} -> {'c' * 12}: endpoints, targets of default_web_80 changed"


def test_debounce_waits_for_quiet_but_never_past_max_delay():
    debounce = w.Debounce(quiet=0.2, max_delay=1.0)
    assert debounce.wait(0.0) is None
    debounce.touch(10.0, 1000.0)
    assert debounce.wait(10.0) == pytest.approx(0.2)
    debounce.touch(10.15, 1000.15)
    assert debounce.wait(10.2) == pytest.approx(0.15)
    for step in range(1, 10):  # a change every 0.1 s: the quiet window keeps moving
        debounce.touch(10.15 + step * 0.1, 0)
    assert debounce.wait(11.0) == 0.0  # max_delay since the first change
    assert debounce.take() == 1000.0
    assert debounce.wait(11.0) is None


def test_collections_follow_what_the_model_reads():
    # No ConfigMap is read unless it is named: exposure is opt-in.
    assert [c.name for c in w.collections(True, k8s.ReadOptions())] == ["services", "endpointslices", "ingresses", "nodes"]
    named = k8s.ReadOptions(tcp_services_configmap="ingress-nginx/tcp-services", udp_services_configmap="ingress-nginx/udp-services")
    names = [(c.name, c.path, c.query) for c in w.collections(True, named)]
    assert names == [
        ("services", "/api/v1/services", ()),
        ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices", ()),
        ("ingresses", "/apis/networking.k8s.io/v1/ingresses", ()),
        ("nodes", "/api/v1/nodes", ()),
        ("configmap ingress-nginx/tcp-services", "/api/v1/namespaces/ingress-nginx/configmaps", (("fieldSelector", "metadata.name=tcp-services"),)),
        ("configmap ingress-nginx/udp-services", "/api/v1/namespaces/ingress-nginx/configmaps", (("fieldSelector", "metadata.name=udp-services"),)),
    ]
    scoped = w.collections(False, k8s.ReadOptions(namespaces=("a", "b"), label_selector="edge=yes", read_ingresses=False))
    assert [(c.name, c.path, c.query) for c in scoped[:4]] == [
        ("services in a", "/api/v1/namespaces/a/services", (("labelSelector", "edge=yes"),)),
        ("services in b", "/api/v1/namespaces/b/services", (("labelSelector", "edge=yes"),)),
        ("endpoints in a", "/api/v1/namespaces/a/endpoints", ()),
        ("endpoints in b", "/api/v1/namespaces/b/endpoints", ()),
    ]
    assert [c.state_field for c in scoped] == ["services", "services", "endpoints", "endpoints", "nodes"]


def test_params_take_awx_s_variables_and_the_model_defaults():
    params = w.params_with_defaults({"namespaces": ["web"]}, {"K8S_AUTH_HOST": "https://api.example:6443", "K8S_AUTH_VERIFY_SSL": "false"})
    assert params["host"] == "https://api.example:6443" and params["validate_certs"] is False
    assert params["namespaces"] == ["web"] and params["http_port"] == 80 and params["timeout"] == 30
    explicit = w.params_with_defaults({"host": "https://other:6443"}, {"K8S_AUTH_HOST": "https://api.example:6443"})
    assert explicit["host"] == "https://other:6443"


def test_no_build_while_a_collection_is_lost_even_if_another_re_listed():
    params = w.params_with_defaults({"host": "https://127.0.0.1:6443", "api_key": "t"}, {})
    watcher = w.Watcher(params, w.WatchOptions(debounce=0.1))
    services, slices = (w._Stream(watcher, c) for c in w.collections(True, watcher.read)[:2])
    watcher.streams = [services, slices]
    assert watcher.build_wait(0.0) is None  # nothing listed yet
    services.synced = slices.synced = True
    with watcher.changes:
        watcher.touch()
        assert watcher.build_wait(time.monotonic()) is not None
    # The API goes away: both streams lose it; the EndpointSlices come back first and re-list.
    watcher.lost(services, "connection refused", 0.5)
    watcher.lost(slices, "connection refused", 0.5)
    watcher.reached(slices)
    with watcher.changes:
        watcher.touch()
        assert watcher.build_wait(time.monotonic()) is None
    assert not watcher.reachable
    watcher.reached(services)
    with watcher.changes:
        assert watcher.build_wait(time.monotonic() + 1) == 0.0
    assert watcher.reachable


def test_a_state_is_built_when_no_configmap_is_named():
    """Reading ingress-nginx's ConfigMaps is opt-in: without them the watcher still builds."""
    params = w.params_with_defaults({"host": "https://127.0.0.1:6443", "api_key": "t"}, {})
    watcher = w.Watcher(params, w.WatchOptions(debounce=0.01, max_delay=0.01))
    watcher.streams = [w._Stream(watcher, c) for c in w.collections(True, watcher.read)]
    for stream in watcher.streams:
        stream.synced = True
    with watcher.changes:
        watcher.touch()
    time.sleep(0.05)  # past the debounce: the build is due
    state, _first = watcher._next_state()
    assert state is not None and state.config_maps == [] and state.services == []


def test_readiness_gates_watch_pods_and_keep_only_those_that_list_the_gate():
    params = w.params_with_defaults({"host": "https://127.0.0.1:6443", "api_key": "t", "readiness_gates": True}, {})
    watcher = w.Watcher(params, w.WatchOptions(debounce=0.01, max_delay=0.01))
    watcher.streams = [w._Stream(watcher, c) for c in w.collections(True, watcher.read)]
    assert [c.name for c in w.collections(True, watcher.read)] == ["services", "endpointslices", "ingresses", "pods", "nodes"]
    pods = next(s for s in watcher.streams if s.collection.name == "pods")
    gated = {"metadata": {"name": "web-1", "namespace": "shop", "resourceVersion": "7"},
             "spec": {"readinessGates": [{"conditionType": "lb.k8sedge.io/edge-ready"}]}}
    plain = {"metadata": {"name": "db-1", "namespace": "shop", "resourceVersion": "8"}, "spec": {}}
    for obj in (gated, plain):
        pods._event(json.dumps({"type": "ADDED", "object": obj}).encode(), "pods")
    assert list(pods.items) == [("shop", "web-1")]
    # The gate taken out of the template's Pod: it is no longer the edge's business.
    pods._event(json.dumps({"type": "MODIFIED", "object": {**gated, "spec": {}}}).encode(), "pods")
    assert pods.items == {}
    for stream in watcher.streams:
        stream.synced = True
    with watcher.changes:
        watcher.touch()
    time.sleep(0.05)
    state, _first = watcher._next_state()
    assert state is not None and state.pods == []


def test_a_pod_that_newly_waits_for_the_gate_is_a_change_though_nothing_served_differs(monkeypatch):
    """A gated Pod behind node ports changes no target: the watcher acts on it all the same, once."""
    params = w.params_with_defaults({"host": "https://127.0.0.1:6443", "api_key": "t", "readiness_gates": True}, {})
    watcher = w.Watcher(params, w.WatchOptions())
    waiting = [{"namespace": "shop", "name": "web-1", "uid": "u1", "targets": [], "nodeport_backends": ["shop_web_80"]}]
    models = iter([{**MODEL, "gates": []}, {**MODEL, "gates": waiting}, {**MODEL, "gates": waiting}, {**MODEL, "gates": []}])
    monkeypatch.setattr(w, "model_of", lambda *_args: next(models))
    emitted: list = []
    for _ in range(4):
        watcher._build(w.ClusterState(), 0.0, emitted.append)
    assert [(c.kind, c.parts, c.backends) for c in emitted] == [
        ("structural", ("frontends", "backends", "routes"), ("default_db_5432", "default_web_80")), ("endpoints", (), ())]
    assert watcher.model["gates"] == []  # acknowledged: it waits no more
