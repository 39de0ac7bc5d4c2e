"""The API reader never hands over a partial read: against a real (lab) API server."""
from __future__ import annotations

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AuthOptions
from lab import pki
from lab.testlib.apiserver import READER, start_server, stop_server
from tests.lab.kubeapi_fixtures import client_for, kubectl

SERVICES = 7


@pytest.fixture(scope="module")
def small_api(tmp_path_factory):
    """A server that keeps one list snapshot, so a second list expires the first's token."""
    proc, api = start_server(tmp_path_factory.mktemp("kubeapi-read"), "--list-snapshots", "1")
    admin = client_for(api, api.admin_token)
    from kubernetes import client

    core = client.CoreV1Api(admin)
    for index in range(SERVICES):
        core.create_namespaced_service("default", {
            "metadata": {"name": f"svc{index}"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}})
    yield api, core
    admin.close()
    stop_server(proc)


def _reader(api_and_admin, timeout: float = 10) -> k8s.Reader:
    api = api_and_admin[0]
    auth = AuthOptions(host=api.url, api_key=api.reader_token, ca_cert=str(api.ca))
    return k8s.Reader(k8s.connect(auth), timeout)


def test_paginated_list_reads_every_item(small_api):
    items, version = _reader(small_api).list("/api/v1/services", [], page_size=2)
    assert sorted(i["metadata"]["name"] for i in items) == sorted(
        ["kubernetes", *(f"svc{i}" for i in range(SERVICES))])
    assert int(version) > 0


def test_a_410_mid_pagination_is_an_error_not_a_short_list(small_api):
    reader = _reader(small_api)
    real_get = reader.get
    pages = []

    def get_and_interfere(path, query=None):
        page = real_get(path, query)
        pages.append(path)
        if len(pages) == 1:  # a write, then another list: the server drops our snapshot
            core = small_api[1]
            core.patch_namespaced_service("svc0", "default", {"metadata": {"annotations": {"touched": str(len(pages))}}})
            _reader(small_api).get("/api/v1/services", [("limit", 1)])
        return page

    reader.get = get_and_interfere
    with pytest.raises(k8s.ReadError, match=r"GET /api/v1/services: 410 Expired: The provided continue parameter is too old"):
        reader.list("/api/v1/services", [], page_size=2)


def test_forbidden_is_an_error(small_api):
    with pytest.raises(k8s.ReadError, match='403 Forbidden: secrets is forbidden: User "system:serviceaccount:k8sedge:edge-reader"'):
        _reader(small_api).list("/api/v1/secrets", [], page_size=10)


def test_the_deadline_bounds_the_whole_read(small_api):
    reader = _reader(small_api, timeout=0.2)
    reader.get("/version")
    reader._deadline = 0  # the clock has run out
    with pytest.raises(k8s.ReadError, match="gave up after the 0.2 s read timeout"):
        k8s.read_cluster(reader, k8s.ReadOptions())


def test_read_cluster_counts_what_it_read(small_api):
    state, meta = k8s.read_cluster(_reader(small_api), k8s.ReadOptions(page_size=3))
    assert len(state.services) == SERVICES + 1
    assert meta["counts"]["services"] == SERVICES + 1
    assert meta["api_version_endpoint_slices"] == "discovery.k8s.io/v1"
    assert set(meta["resource_versions"]) == {"services", "endpoint_slices", "ingresses", "nodes"}


def test_a_client_certificate_authenticates_our_reader_and_kubectl(small_api, tmp_path):
    """kube-apiserver's X.509 authentication (CN the user): our client presents the certificate a
    kubeconfig names, kubectl does too, and both act as that user under RBAC."""
    api = small_api[0]
    pki.create_client_cert(tmp_path / "reader.crt", tmp_path / "reader.key", api.ca, api.ca.parent / "ca.key", READER)
    kubeconfig = tmp_path / "cert.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": api.url, "certificate-authority": str(api.ca)}}],
        "users": [{"name": "reader", "user": {"client-certificate": "reader.crt", "client-key": "reader.key"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "reader"}}]}))
    connection = k8s.connect(AuthOptions(kubeconfig=str(kubeconfig)))
    _state, meta = k8s.read_cluster(k8s.Reader(connection, 10), k8s.ReadOptions())
    assert meta["counts"]["services"] == SERVICES + 1
    with pytest.raises(k8s.ReadError, match=f'403 Forbidden: secrets is forbidden: User "{READER}"'):
        k8s.Reader(connection, 10).list("/api/v1/secrets", [], 10)
    assert "service/svc0" in kubectl(api, "get", "services", "-A", "-o", "name", kubeconfig=kubeconfig).stdout
    refused = kubectl(api, "get", "deployments", "-A", kubeconfig=kubeconfig, check=False)
    assert f'User "{READER}" cannot list resource "deployments"' in refused.stderr, refused.stderr
