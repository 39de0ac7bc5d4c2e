"""The benchmark's shape at full size: 5,000 Services and 10,000 EndpointSlices, created
through the API and listed back in pages of 500 by the Python client. Counts and
order are checked, not time (performance is measured by the benchmark)."""
from __future__ import annotations

import http.client
import json
import ssl
import threading
from typing import Any, Iterator

import pytest
from kubernetes import client

from lab.testlib.apiserver import LabApi, start_server, stop_server
from tests.lab.kubeapi_fixtures import client_for

pytestmark = pytest.mark.timeout(120)

SERVICES, SLICES_PER_SERVICE, ENDPOINTS = 5000, 2, 5


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabApi]:
    proc, api = start_server(tmp_path_factory.mktemp("kubeapi-scale"))
    yield api
    assert stop_server(proc) == 0


def _post_all(api: LabApi, path: str, bodies: list[dict[str, Any]], failures: list[str]) -> None:
    host, port = api.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=str(api.ca)))
    headers = {"Authorization": f"Bearer {api.admin_token}", "Content-Type": "application/json"}
    for body in bodies:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            failures.append(f"{body['metadata']['name']}: {response.status}")
    conn.close()


def _slice(i: int) -> dict[str, Any]:
    service = f"svc-{i // SLICES_PER_SERVICE:05d}"
    return {
        "metadata": {"name": f"{service}-{i % SLICES_PER_SERVICE}",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.{(i >> 8) & 0xff}.{i & 0xff}.{j + 1}"],
                       "conditions": {"ready": True}, "nodeName": f"node-{j}"}
                      for j in range(ENDPOINTS)],
    }


def _pages(list_call, **kwargs: Any) -> tuple[list[str], list[int]]:
    names, sizes, token = [], [], None
    while True:
        page = list_call(limit=500, _continue=token, **kwargs)
        names += [f"{o.metadata.namespace}/{o.metadata.name}" for o in page.items]
        sizes.append(len(page.items))
        token = page.metadata._continue
        if not token:
            return names, sizes


def test_paginated_lists_at_benchmark_scale(big: LabApi) -> None:
    admin = client_for(big, big.admin_token)
    core, discovery = client.CoreV1Api(admin), client.DiscoveryV1Api(admin)
    core.create_namespace({"metadata": {"name": "bench"}})
    services = [{"metadata": {"name": f"svc-{i:05d}"},
                 "spec": {"selector": {"app": f"app-{i}"}, "ports": [{"name": "http", "port": 80}]}}
                for i in range(SERVICES)]
    slices = [_slice(i) for i in range(SERVICES * SLICES_PER_SERVICE)]
    failures: list[str] = []
    workers = [threading.Thread(target=_post_all, args=(big, path, bodies[k::2], failures))
               for path, bodies in (("/api/v1/namespaces/bench/services", services),
                                    ("/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices", slices))
               for k in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []

    names, sizes = _pages(core.list_service_for_all_namespaces)
    assert sizes == [500] * 10 + [1]  # default/kubernetes is the 5,001st
    assert names == sorted(names) and len(set(names)) == SERVICES + 1
    names, sizes = _pages(discovery.list_endpoint_slice_for_all_namespaces)
    assert sizes == [500] * 20 + [1]
    assert len(set(names)) == SERVICES * SLICES_PER_SERVICE + 1

    first = discovery.list_namespaced_endpoint_slice("bench", limit=500)
    assert first.metadata.remaining_item_count == SERVICES * SLICES_PER_SERVICE - 500
    one = discovery.list_namespaced_endpoint_slice(
        "bench", label_selector="kubernetes.io/service-name=svc-04999")
    assert [s.metadata.name for s in one.items] == ["svc-04999-0", "svc-04999-1"]
    assert len(one.items[0].endpoints) == ENDPOINTS
    cluster_ips = {s.spec.cluster_ip for s in core.list_namespaced_service("bench").items}
    assert len(cluster_ips) == SERVICES
    admin.close()
