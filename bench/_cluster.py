"""A synthetic cluster of a given shape, in the shapes the API returns, and fast seeding of a lab
API server with it (raw HTTPS POSTs from a few threads: the typed client costs minutes).

Deterministic: the same shape gives the same objects, so every sample reads the same cluster.
"""
from __future__ import annotations

import http.client
import json
import ssl
import threading
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from lab.testlib.apiserver import LabApi

Obj = dict[str, Any]

EXPOSE = "lb.k8sedge.io/expose"
HOSTS = "lb.k8sedge.io/hosts"
BACKEND = "lb.k8sedge.io/backend"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# The lab's API server allocates node ports from the default range, 30000-32767: at most 2,768
# NodePort Services of one port, so larger shapes expose the rest in pod mode (ClusterIP).
NODE_PORTS = 2768


@dataclass(frozen=True)
class Shape:
    services: int
    nodes: int
    namespaces: int
    slices_per_service: int = 2
    endpoints_per_slice: int = 5
    pod_every: int = 2  # every n-th Service is exposed in pod mode (ClusterIP), the rest nodeport
    local_every: int = 10  # every n-th nodeport Service has externalTrafficPolicy: Local

    def __post_init__(self) -> None:
        if self.node_port_services > NODE_PORTS:
            raise ValueError(f"{self.node_port_services} NodePort Services do not fit the node port range")
        if self.endpoints // self.nodes + 2 > 254:
            raise ValueError("more endpoints per node than a /24 pod network holds")

    @property
    def node_port_services(self) -> int:
        return sum(1 for s in range(self.services) if not _pod_mode(self, s))

    @property
    def endpoints(self) -> int:
        return self.services * self.slices_per_service * self.endpoints_per_slice

    def facts(self) -> dict[str, int]:
        return {**asdict(self), "node_port_services": self.node_port_services,
                "endpoint_slices": self.services * self.slices_per_service, "endpoints": self.endpoints}


def _pod_mode(shape: Shape, index: int) -> bool:
    return index % shape.pod_every == shape.pod_every - 1


def _namespace(shape: Shape, index: int) -> str:
    return f"team-{index % shape.namespaces:02d}"


def namespaces(shape: Shape) -> list[Obj]:
    return [{"metadata": {"name": _namespace(shape, i)}} for i in range(shape.namespaces)]


def _pod_network(node: int) -> str:
    return f"10.{128 + node // 256}.{node % 256}"


def nodes(shape: Shape) -> list[Obj]:
    """Ready nodes, each with an InternalIP, a /24 pod network and a zone."""
    return [{
        "metadata": {"name": f"node-{n:03d}", "labels": {
            "kubernetes.io/hostname": f"node-{n:03d}", "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": f"zone-{n % 3}"}},
        "spec": {"podCIDR": f"{_pod_network(n)}.0/24", "podCIDRs": [f"{_pod_network(n)}.0/24"]},
        "status": {
            "conditions": [{"type": kind, "status": "False", "reason": "KubeletHasSufficient" + kind.removesuffix("Pressure")}
                           for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")]
            + [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": f"172.20.{n // 250}.{n % 250 + 1}"},
                          {"type": "Hostname", "address": f"node-{n:03d}"}],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "250"},
            "allocatable": {"cpu": "8", "memory": "31Gi", "pods": "250"},
            "nodeInfo": {"kubeletVersion": "v1.31.0", "kubeProxyVersion": "v1.31.0", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.0"},
        },
    } for n in range(shape.nodes)]


def services(shape: Shape) -> list[Obj]:
    """Every Service exposed with a host name: nodeport ones of type NodePort (some Local),
    pod ones of type ClusterIP."""
    items = []
    for s in range(shape.services):
        name, namespace = f"svc-{s:05d}", _namespace(shape, s)
        annotations = {EXPOSE: "true", HOSTS: f"{name}.{namespace}.bench.example"}
        spec: Obj = {"selector": {"app": name}, "sessionAffinity": "None",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
        if _pod_mode(shape, s):
            annotations[BACKEND] = "pod"
            spec["type"] = "ClusterIP"
        else:
            spec["type"] = "NodePort"
            local = (s // shape.pod_every) % shape.local_every == 0
            spec["externalTrafficPolicy"] = "Local" if local else "Cluster"
        items.append({"metadata": {"name": name, "namespace": namespace, "labels": {"app": name},
                                   "annotations": annotations}, "spec": spec})
    return items


def _conditions(endpoint: int) -> Obj:
    """85 % ready; 5 % each not ready yet, terminating while serving, terminating and gone."""
    kind = endpoint % 20
    if kind == 0:
        return {"ready": False, "serving": False, "terminating": False}
    if kind == 1:
        return {"ready": False, "serving": True, "terminating": True}
    if kind == 2:
        return {"ready": False, "serving": False, "terminating": True}
    return {"ready": True, "serving": True, "terminating": False}


def endpoint_slices(shape: Shape) -> list[Obj]:
    """The Services' slices; endpoints spread round-robin over the nodes, pod IPs in the
    node's pod network."""
    items = []
    for i in range(shape.services * shape.slices_per_service):
        s = i // shape.slices_per_service
        name, namespace = f"svc-{s:05d}", _namespace(shape, s)
        endpoints = []
        for j in range(shape.endpoints_per_slice):
            e = i * shape.endpoints_per_slice + j
            node = e % shape.nodes
            pod = f"{name}-{i % shape.slices_per_service}{j}"
            endpoints.append({
                "addresses": [f"{_pod_network(node)}.{e // shape.nodes + 2}"],
                "conditions": _conditions(e),
                "nodeName": f"node-{node:03d}",
                "zone": f"zone-{node % 3}",
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod},
            })
        items.append({
            "metadata": {"name": f"{name}-{i % shape.slices_per_service}", "namespace": namespace, "labels": {
                SERVICE_NAME_LABEL: name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        })
    return items


def _path(kind: str, obj: Obj) -> str:
    namespace = obj["metadata"].get("namespace")
    scope = f"namespaces/{namespace}/" if namespace else ""
    return {"namespaces": "/api/v1/namespaces", "nodes": "/api/v1/nodes",
            "services": f"/api/v1/{scope}services",
            "endpointslices": f"/apis/discovery.k8s.io/v1/{scope}endpointslices"}[kind]


def _post_all(api: LabApi, kind: str, objects: Iterator[Obj], lock: threading.Lock, failures: list[str]) -> None:
    host, port = api.url.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=60,
                                       context=ssl.create_default_context(cafile=str(api.ca)))
    headers = {"Authorization": f"Bearer {api.admin_token}", "Content-Type": "application/json"}
    try:
        while True:
            with lock:
                obj = next(objects, None)
            if obj is None:
                return
            conn.request("POST", _path(kind, obj), body=json.dumps(obj), headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 201:
                failures.append(f"{kind} {obj['metadata']['name']}: {response.status} {body[:200]!r}")
                return
    finally:
        conn.close()


def create_all(api: LabApi, kind: str, objects: list[Obj], threads: int = 4) -> None:
    """POST every object; raises RuntimeError naming the first failures."""
    lock, failures, source = threading.Lock(), [], iter(objects)
    workers = [threading.Thread(target=_post_all, args=(api, kind, source, lock, failures)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise RuntimeError(f"seeding {kind} failed: {'; '.join(failures[:3])}")


def seed(api: LabApi, shape: Shape) -> None:
    create_all(api, "namespaces", namespaces(shape))
    create_all(api, "nodes", nodes(shape))
    create_all(api, "services", services(shape))
    create_all(api, "endpointslices", endpoint_slices(shape))
