"""Where cluster state comes from: manifests on disk, and the reader's choice of resources."""
from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import read_state
from ansible_collections.k8sedge.lb.plugins.module_utils._manifests import load_state

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"}}
SLICE = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s-1", "namespace": "d"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"}}


@pytest.mark.parametrize("write", [
    pytest.param(lambda d: (d / "a.yaml").write_text(yaml.safe_dump_all([SERVICE, SLICE, NODE, POD])), id="multi-doc"),
    pytest.param(lambda d: (d / "list.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "List", "items": [SERVICE, SLICE, NODE, POD]})), id="kubectl-list"),
    pytest.param(lambda d: (d / "x.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [SERVICE, SLICE, NODE]})), id="json"),
    pytest.param(lambda d: [(d / "sub").mkdir(), (d / "sub/svc.yml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ServiceList", "items": [{"metadata": SERVICE["metadata"]}]})),
        (d / "sub/rest.yaml").write_text(yaml.safe_dump_all([SLICE, NODE]))], id="typed-list-in-subdir"),
])
def test_manifests_in_every_shape_give_the_same_state(tmp_path, write):
    write(tmp_path)
    state, meta = load_state(str(tmp_path))
    assert [s["metadata"]["name"] for s in state.services] == ["s"]
    assert state.services[0]["kind"] == "Service"
    assert [s["metadata"]["name"] for s in state.endpoint_slices] == ["s-1"]
    assert [n["metadata"]["name"] for n in state.nodes] == ["n"]
    assert meta["counts"]["services"] == 1


def test_manifests_with_only_endpoints_fall_back_to_them(tmp_path):
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s", "namespace": "d"}}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump_all([SERVICE, endpoints]))
    state, _ = load_state(str(tmp_path))
    assert state.endpoint_slices is None
    assert len(state.endpoints) == 1


@pytest.mark.parametrize("content, message", [
    ("- just\n- a list\n", "expected Kubernetes objects"),
    ("kind: List\nitems: 3\n", "List.items must be a list"),
    ("a: [unclosed\n", "src .*bad.yaml"),
])
def test_bad_manifests_are_errors_naming_the_file(tmp_path, content, message):
    (tmp_path / "bad.yaml").write_text(content)
    with pytest.raises(k8s.ReadError, match=message):
        load_state(str(tmp_path))


@pytest.mark.parametrize("name, content", [
    ("deep.yaml", "kind: Service\nmetadata: {labels: " + "[" * 10_000 + "]" * 10_000 + "}\n"),
    ("deep.json", '{"kind": "Service", "metadata": {"labels": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}}"),
])
def test_a_manifest_nested_too_deeply_is_a_read_error_naming_the_file(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    (tmp_path / "fine.yaml").write_text("kind: Service\napiVersion: v1\nmetadata: {name: a, namespace: default}\n")
    for src in (tmp_path / name, tmp_path):  # the file itself, or the directory that holds it
        with pytest.raises(k8s.ReadError, match=f"src {tmp_path / name}: a value nests too deeply"):
            read_state({}, str(src))


@pytest.mark.parametrize("odd", ["apiVersion: [v1]", "kind: {a: b}"])
def test_an_object_whose_kind_is_not_a_string_is_left_out_and_the_rest_read(tmp_path, odd):
    good = "apiVersion: v1\nkind: Service\nmetadata: {name: good, namespace: default}\n"
    bad = {"apiVersion: [v1]": "apiVersion: [v1]\nkind: Service\n", "kind: {a: b}": "apiVersion: v1\nkind: {a: b}\n"}[odd]
    (tmp_path / "objects.yaml").write_text(good + "---\n" + bad + "metadata: {name: bad, namespace: default}\n")
    state, read = read_state({}, str(tmp_path))
    assert [s["metadata"]["name"] for s in state.services] == ["good"]
    [refused] = read["refused"]
    assert refused.startswith(f"src {tmp_path / 'objects.yaml'}: object 1: ") and "expected a string, got" in refused


class FakeReader(k8s.Reader):
    """Serves canned pages by path, recording what was asked."""

    def __init__(self, pages: dict[str, list[dict]]):
        self.pages = pages
        self.asked: list[str] = []
        self.requests, self.seconds = 0, 0.0

    def get(self, path, query=None):
        self.asked.append(path)
        query = dict(query or [])
        pages = self.pages.get(path)
        if pages is None:
            return None
        return pages[int(query.get("continue", 0))]


def _list(items, cont=None):
    return {"items": items, "metadata": {"resourceVersion": "5", **({"continue": cont} if cont else {})}}


def test_reader_follows_continue_tokens_and_falls_back_to_endpoints():
    reader = FakeReader({
        "/api/v1/services": [_list([SERVICE], "1"), _list([{**SERVICE, "metadata": {"name": "t"}}])],
        "/api/v1/endpoints": [_list([{"metadata": {"name": "s"}}])],
        "/apis/networking.k8s.io/v1/ingresses": [_list([])],
        "/api/v1/nodes": [_list([NODE])],
    })
    state, meta = k8s.read_cluster(reader, k8s.ReadOptions())
    assert [s["metadata"]["name"] for s in state.services] == ["s", "t"]
    assert state.endpoint_slices is None and len(state.endpoints) == 1
    assert meta["api_version_endpoint_slices"] is None
    assert "/apis/discovery.k8s.io/v1/endpointslices" not in reader.asked


def test_reader_scopes_lists_to_the_namespaces_asked():
    reader = FakeReader({
        "/apis/discovery.k8s.io/v1": [{"kind": "APIResourceList"}],
        **{f"/api/v1/namespaces/{ns}/services": [_list([SERVICE])] for ns in ("a", "b")},
        **{f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices": [_list([SLICE])] for ns in ("a", "b")},
        "/api/v1/nodes": [_list([NODE])],
    })
    state, meta = k8s.read_cluster(reader, k8s.ReadOptions(namespaces=("a", "b"), read_ingresses=False))
    assert len(state.services) == 2 and len(state.endpoint_slices) == 2
    assert "services@namespaces/a/" in meta["resource_versions"]
    assert not any("ingresses" in path for path in reader.asked)


def test_pods_are_read_only_for_readiness_gates_and_only_those_that_list_the_gate_are_kept():
    gated = {"metadata": {"name": "gated"}, "spec": {"readinessGates": [{"conditionType": "lb.k8sedge.io/edge-ready"}]}}
    other = {"metadata": {"name": "other"}, "spec": {"readinessGates": [{"conditionType": "example.com/ready"}]}}
    pages = {
        "/api/v1/services": [_list([SERVICE])],
        "/api/v1/endpoints": [_list([])],
        "/api/v1/nodes": [_list([NODE])],
        "/api/v1/pods": [_list([other, gated], "1"), _list([{"metadata": {"name": "plain"}, "spec": {}}])],
    }
    state, _meta = k8s.read_cluster(FakeReader(pages), k8s.ReadOptions(read_ingresses=False))
    assert state.pods is None
    reader = FakeReader(pages)
    state, meta = k8s.read_cluster(reader, k8s.ReadOptions(read_ingresses=False, read_pods=True))
    assert [p["metadata"]["name"] for p in state.pods] == ["gated"]
    assert meta["counts"]["pods"] == 1 and reader.asked.count("/api/v1/pods") == 2


def test_reading_the_nodes_asks_for_nothing_else():
    reader = FakeReader({"/api/v1/nodes": [_list([NODE], "1"), _list([{**NODE, "metadata": {"name": "n2"}}])]})
    nodes, meta = k8s.read_nodes(reader, k8s.ReadOptions())
    assert [node["metadata"]["name"] for node in nodes] == [NODE["metadata"]["name"], "n2"]
    assert meta["counts"] == {"nodes": 2} and meta["resource_versions"] == {"nodes": "5"}
    assert set(reader.asked) == {"/api/v1/nodes"}


def test_a_missing_list_endpoint_is_an_error_not_an_empty_list():
    reader = FakeReader({"/apis/discovery.k8s.io/v1": [{}]})
    with pytest.raises(k8s.ReadError, match="404, the API does not serve this resource"):
        k8s.read_cluster(reader, k8s.ReadOptions())


class CannedConnection:
    """Answers every request with one status and body."""

    def __init__(self, status: int, body: bytes):
        self.status, self.body = status, body

    def request(self, method, path, query=None, timeout=30.0):
        return self.status, self.body


@pytest.mark.parametrize("status, message", [(200, "the response nests values too deeply"), (500, "500: b'")])
def test_a_response_nested_too_deeply_is_a_read_error_not_a_traceback(status, message):
    reader = k8s.Reader(CannedConnection(status, b"[" * 100_000 + b"]" * 100_000), timeout=5)
    with pytest.raises(k8s.ReadError, match=f"GET /api/v1/nodes: {message}"):
        reader.get("/api/v1/nodes")
