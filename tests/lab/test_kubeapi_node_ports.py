"""--service-node-port-range, as kube-apiserver's flag: allocations stay inside it."""
from __future__ import annotations

import pytest

from lab.testlib.apiserver import start_server, stop_server
from tests.lab.kubeapi_fixtures import client_for


def test_node_ports_come_from_the_configured_range(tmp_path):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    proc, api = start_server(tmp_path, "--service-node-port-range", "40000-40001")
    try:
        core = client.CoreV1Api(client_for(api, api.admin_token))

        def create(name: str):
            return core.create_namespaced_service("default", {
                "metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})

        ports = sorted(create(name).spec.ports[0].node_port for name in ("a", "b"))
        assert ports == [40000, 40001]
        with pytest.raises(ApiException) as full:
            create("c")
        assert full.value.status == 422
    finally:
        stop_server(proc)
