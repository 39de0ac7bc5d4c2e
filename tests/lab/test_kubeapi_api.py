"""The lab API server against the real kubernetes Python client (and raw HTTPS where
the client hides what the wire carries)."""
from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from lab.testlib.apiserver import READER, LabApi
from tests.lab.kubeapi_fixtures import admin, client_for, kubeapi, reader  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def raw(api: LabApi, method: str, path: str, token: str | None = None, body: Any = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = api.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=str(api.ca)))
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    payload = json.dumps(body).encode() if body is not None else None
    if payload is not None:
        all_headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=payload, headers=all_headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def status_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def namespace(admin_client, name: str) -> str:
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": name}})
    return name


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}


# --- authentication and authorization ---------------------------------------------------------

def test_anonymous_only_reaches_health_and_version(kubeapi: LabApi) -> None:
    assert raw(kubeapi, "GET", "/healthz")[0::2] == (200, b"ok")
    assert raw(kubeapi, "GET", "/readyz")[0::2] == (200, b"ok")
    code, _, body = raw(kubeapi, "GET", "/version")
    assert code == 200 and json.loads(body)["major"] == "1"
    code, _, body = raw(kubeapi, "GET", "/api/v1/namespaces")
    assert code == 401
    assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": "Unauthorized",
                                "reason": "Unauthorized", "code": 401}


def test_invalid_token_is_401_everywhere(kubeapi: LabApi) -> None:
    assert raw(kubeapi, "GET", "/healthz", token="nope")[0] == 401
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(client_for(kubeapi, "not-a-token")).list_namespace()
    assert caught.value.status == 401
    assert status_of(caught.value)["reason"] == "Unauthorized"


def test_reader_may_read_but_not_write(kubeapi: LabApi, reader, admin) -> None:
    core = client.CoreV1Api(reader)
    names = [s.metadata.name for s in core.list_service_for_all_namespaces().items]
    assert "kubernetes" in names
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service("default", service("nope"))
    assert caught.value.status == 403
    assert status_of(caught.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'services is forbidden: User "{READER}" cannot create resource "services" '
                   'in API group "" in the namespace "default"',
        "reason": "Forbidden", "details": {"kind": "services"}, "code": 403}
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_service("kubernetes", "default")
    assert status_of(caught.value)["message"] == (
        f'services "kubernetes" is forbidden: User "{READER}" cannot delete resource "services" '
        'in API group "" in the namespace "default"')
    assert status_of(caught.value)["details"] == {"name": "kubernetes", "kind": "services"}


def test_a_self_subject_access_review_answers_for_the_user_who_asks(reader) -> None:
    """What `kubectl auth can-i` asks; the kubernetes client sends it as JSON, kubectl as protobuf."""
    review = client.AuthorizationV1Api(reader)

    def ask(**attributes: str) -> client.V1SubjectAccessReviewStatus:
        spec = client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(**attributes))
        return review.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec)).status

    allowed = ask(verb="list", resource="endpointslices", group="discovery.k8s.io")
    assert allowed.allowed is True and allowed.reason == (
        'RBAC: allowed by ClusterRoleBinding "k8sedge:edge-reader" of ClusterRole "k8sedge:edge-reader"'
        ' to ServiceAccount "edge-reader/k8sedge"')
    assert ask(verb="create", resource="services", namespace="default").allowed is False
    with pytest.raises(ApiException) as caught:
        review.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec()))
    assert caught.value.status == 422 and "exactly one of nonResourceAttributes or resourceAttributes" in status_of(caught.value)["message"]



def test_a_review_is_answered_never_stored(kubeapi: LabApi) -> None:
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert raw(kubeapi, "GET", path, token=kubeapi.reader_token)[0] == 403  # RBAC first: the reader may only create one
    code, _, body = raw(kubeapi, "GET", path, token=kubeapi.admin_token)
    assert code == 405, body


@pytest.mark.parametrize("path, message", [
    ("/api/v1/namespaces/default/secrets",
     'secrets is forbidden: User "{u}" cannot list resource "secrets" in API group "" '
     'in the namespace "default"'),
    ("/api/v1/secrets",
     'secrets is forbidden: User "{u}" cannot list resource "secrets" in API group "" '
     "at the cluster scope"),
    ("/apis/apps/v1/namespaces/default/deployments/x",
     'deployments.apps "x" is forbidden: User "{u}" cannot get resource "deployments" in API '
     'group "apps" in the namespace "default"'),
    ("/api/v1/namespaces/default/serviceaccounts",
     'serviceaccounts is forbidden: User "{u}" cannot list resource "serviceaccounts" in API group "" '
     'in the namespace "default"'),
])
def test_reader_forbidden_wording(kubeapi: LabApi, path: str, message: str) -> None:
    code, _, body = raw(kubeapi, "GET", path, token=kubeapi.reader_token)
    assert code == 403
    assert json.loads(body)["message"] == message.format(u=READER)


def test_reader_status_subresource_wording(kubeapi: LabApi) -> None:
    code, _, body = raw(kubeapi, "PATCH", "/api/v1/namespaces/default/services/kubernetes/status",
                        token=kubeapi.reader_token, body={"status": {}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert code == 403
    assert json.loads(body)["message"] == (
        f'services "kubernetes" is forbidden: User "{READER}" cannot patch resource '
        '"services/status" in API group "" in the namespace "default"')


def test_discovery_is_open_to_any_authenticated_user(kubeapi: LabApi) -> None:
    code, _, body = raw(kubeapi, "GET", "/apis/apps/v1", token=kubeapi.reader_token)
    resources = {r["name"]: r for r in json.loads(body)["resources"]}
    assert code == 200
    assert resources["deployments/scale"] == {
        "name": "deployments/scale", "singularName": "", "namespaced": True,
        "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}
    assert resources["deployments"]["shortNames"] == ["deploy"]
    assert resources["deployments"]["categories"] == ["all"]
    code, _, body = raw(kubeapi, "GET", "/api", token=kubeapi.reader_token)
    assert json.loads(body)["versions"] == ["v1"]
    code, _, body = raw(kubeapi, "GET", "/apis", token=kubeapi.reader_token)
    assert {g["name"] for g in json.loads(body)["groups"]} == {
        "apps", "authorization.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "networking.k8s.io",
        "rbac.authorization.k8s.io"}


# --- CRUD and errors ----------------------------------------------------------------------------

def test_service_crud_errors(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "crud")
    created = core.create_namespaced_service(ns, service("web", selector={"app": "web"}))
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    assert created.spec.cluster_ip.startswith("10.96.") and created.spec.cluster_ip != "10.96.0.1"
    assert created.spec.ports[0].target_port == 80 and created.spec.ports[0].protocol == "TCP"
    assert (created.spec.session_affinity, created.spec.ip_family_policy) == ("None", "SingleStack")

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, service("web"))
    assert (caught.value.status, status_of(caught.value)["reason"]) == (409, "AlreadyExists")
    assert status_of(caught.value)["message"] == 'services "web" already exists'

    with pytest.raises(ApiException) as caught:
        core.read_namespaced_service("missing", ns)
    assert status_of(caught.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'services "missing" not found', "reason": "NotFound",
        "details": {"name": "missing", "kind": "services"}, "code": 404}

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, service("Bad_Name"))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith('Service "Bad_Name" is invalid: metadata.name: Invalid value: '
                                      '"Bad_Name": a DNS-1035 label must consist of')
    assert body["details"]["causes"][0]["field"] == "metadata.name"

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, {"metadata": {"name": "noports"}, "spec": {}})
    assert status_of(caught.value)["message"] == 'Service "noports" is invalid: spec.ports: Required value'

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service("nowhere", service("x"))
    assert (caught.value.status, status_of(caught.value)["message"]) == (404, 'namespaces "nowhere" not found')

    body = service("elsewhere")
    body["metadata"]["namespace"] = "default"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, body)
    assert caught.value.status == 400

    core.delete_namespaced_service("web", ns)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_service("web", ns)
    assert caught.value.status == 404


def test_update_conflict_and_generation(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "conflict")
    svc = core.create_namespaced_service(ns, service("web"))
    svc.metadata.labels = {"a": "b"}
    updated = core.replace_namespaced_service("web", ns, svc)
    assert updated.metadata.generation == 1  # metadata-only change
    assert int(updated.metadata.resource_version) > int(svc.metadata.resource_version)
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_service("web", ns, svc)  # svc still carries the old version
    assert caught.value.status == 409
    assert status_of(caught.value)["message"] == (
        'Operation cannot be fulfilled on services "web": the object has been modified; please '
        "apply your changes to the latest version and try again")
    updated.spec.ports[0].port = 81
    assert core.replace_namespaced_service("web", ns, updated).metadata.generation == 2


def test_generate_name_and_dry_run(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "genname")
    made = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "cfg-"}})
    assert made.metadata.name.startswith("cfg-") and len(made.metadata.name) == 9
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dry"}}, dry_run="All")
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns).items]
    assert names == [made.metadata.name]


def test_delete_returns_status_or_object(kubeapi: LabApi, admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "deletes")
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    core.create_namespaced_service(ns, service("s"))
    code, _, body = raw(kubeapi, "DELETE", f"/api/v1/namespaces/{ns}/configmaps/c", kubeapi.admin_token)
    assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Success",
                                "details": {"name": "c", "kind": "configmaps", "uid": cm.metadata.uid}}
    code, _, body = raw(kubeapi, "DELETE", f"/api/v1/namespaces/{ns}/services/s", kubeapi.admin_token)
    assert code == 200 and json.loads(body)["kind"] == "Service"


# --- services ---------------------------------------------------------------------------------

def test_node_ports_allocated_released_and_conflicting(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "nodeports")
    first = core.create_namespaced_service(ns, service("np", type="NodePort"))
    port = first.spec.ports[0].node_port
    assert 30000 <= port <= 32767 and first.spec.external_traffic_policy == "Cluster"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, service("clash", type="NodePort",
                                                   ports=[{"port": 80, "nodePort": port}]))
    body = status_of(caught.value)
    assert body["message"] == (f'Service "clash" is invalid: spec.ports[0].nodePort: Invalid value: '
                               f"{port}: provided port is already allocated")
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
                                          "message": f"Invalid value: {port}: provided port is already allocated"}]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, service("range", type="NodePort",
                                                   ports=[{"port": 80, "nodePort": 20000}]))
    assert status_of(caught.value)["message"].endswith(
        "spec.ports[0].nodePort: Invalid value: 20000: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767")
    # A type change back to ClusterIP releases the port; so does delete.
    core.patch_namespaced_service("np", ns, {"spec": {"type": "ClusterIP"}})
    assert core.read_namespaced_service("np", ns).spec.ports[0].node_port is None
    second = core.create_namespaced_service(ns, service("reuse", type="NodePort",
                                                        ports=[{"port": 80, "nodePort": port}]))
    assert second.spec.ports[0].node_port == port
    core.delete_namespaced_service("reuse", ns)
    core.create_namespaced_service(ns, service("again", type="NodePort", ports=[{"port": 80, "nodePort": port}]))


def test_load_balancer_local_and_headless(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "lb")
    lb = core.create_namespaced_service(ns, service("lb", type="LoadBalancer",
                                                    externalTrafficPolicy="Local"))
    assert 30000 <= lb.spec.health_check_node_port <= 32767
    assert lb.spec.health_check_node_port != lb.spec.ports[0].node_port
    headless = core.create_namespaced_service(ns, service("hl", clusterIP="None"))
    assert (headless.spec.cluster_ip, headless.spec.cluster_ips) == ("None", ["None"])
    fixed = core.create_namespaced_service(ns, service("fixed", clusterIP="10.96.200.200"))
    assert fixed.spec.cluster_ip == "10.96.200.200"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, service("taken", clusterIP="10.96.200.200"))
    assert status_of(caught.value)["message"] == (
        'Service "taken" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.200.200"}: '
        "failed to allocate IP 10.96.200.200: provided IP is already allocated")


# --- subresources -----------------------------------------------------------------------------

def test_status_subresource_is_separate(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "status")
    core.create_namespaced_service(ns, service("lb", type="LoadBalancer"))
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    core.patch_namespaced_service("lb", ns, ingress)  # main resource: status ignored
    assert core.read_namespaced_service("lb", ns).status.load_balancer.ingress is None
    patched = core.patch_namespaced_service_status("lb", ns, {**ingress, "spec": {"type": "ClusterIP"}})
    assert patched.status.load_balancer.ingress[0].ip == "192.0.2.10"
    assert patched.spec.type == "LoadBalancer" and patched.metadata.generation == 1


def test_deployment_scale_and_generation(admin) -> None:
    apps = client.AppsV1Api(admin)
    ns = namespace(admin, "scale")
    dep = apps.create_namespaced_deployment(ns, deployment("web"))
    assert dep.metadata.generation == 1 and dep.spec.strategy.type == "RollingUpdate"
    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=web")
    scaled = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    assert apps.read_namespaced_deployment("web", ns).metadata.generation == 2
    apps.patch_namespaced_deployment_status("web", ns, {"status": {"readyReplicas": 4, "replicas": 4}})
    current = apps.read_namespaced_deployment("web", ns)
    assert (current.metadata.generation, current.status.ready_replicas) == (2, 4)
    assert apps.read_namespaced_deployment_scale("web", ns).status.replicas == 4
    bad = deployment("mismatch")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment(ns, bad)
    assert status_of(caught.value)["message"] == (
        'Deployment.apps "mismatch" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`')


def test_patch_types(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "patches")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c", "labels": {"a": "1"}},
                                           "data": {"k": "v", "drop": "x"}})
    merged = core.patch_namespaced_config_map("c", ns, {"data": {"drop": None, "new": "n"}})
    assert merged.data == {"k": "v", "new": "n"}
    ops = [{"op": "add", "path": "/metadata/labels/b", "value": "2"},
           {"op": "test", "path": "/data/k", "value": "v"},
           {"op": "remove", "path": "/data/new"}]
    patched = core.patch_namespaced_config_map("c", ns, ops)  # a list goes as json-patch
    assert patched.metadata.labels == {"a": "1", "b": "2"} and patched.data == {"k": "v"}
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("c", ns, [{"op": "test", "path": "/data/k", "value": "z"}])
    assert caught.value.status == 422


# --- pods -------------------------------------------------------------------------------------

def _pod(name: str, node: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


def test_pod_graceful_deletion(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "pods")
    core.create_namespaced_pod(ns, _pod("bound", "node-1"))
    core.create_namespaced_pod(ns, _pod("unbound", None))
    pending = core.delete_namespaced_pod("bound", ns)
    assert pending.metadata.deletion_timestamp is not None
    assert pending.metadata.deletion_grace_period_seconds == 30
    still = core.read_namespaced_pod("bound", ns)
    assert still.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("bound", ns, grace_period_seconds=0)
    core.delete_namespaced_pod("unbound", ns)
    assert core.list_namespaced_pod(ns).items == []


def test_pod_field_selector_on_node(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "podsel")
    for name, node in (("a", "node-1"), ("b", "node-2"), ("c", None)):
        core.create_namespaced_pod(ns, _pod(name, node))
    pods = core.list_namespaced_pod(ns, field_selector="spec.nodeName=node-1")
    assert [p.metadata.name for p in pods.items] == ["a"]
    pods = core.list_namespaced_pod(ns, field_selector="spec.nodeName!=node-1,metadata.name!=c")
    assert [p.metadata.name for p in pods.items] == ["b"]


def test_namespace_delete_takes_contents(kubeapi: LabApi, admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "doomed")
    core.create_namespaced_service(ns, service("s", type="NodePort", ports=[{"port": 80, "nodePort": 31999}]))
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    code, _, body = raw(kubeapi, "DELETE", f"/api/v1/namespaces/{ns}", kubeapi.admin_token)
    gone = json.loads(body)
    assert (code, gone["kind"], gone["status"]["phase"]) == (200, "Namespace", "Terminating")
    assert gone["metadata"]["deletionTimestamp"]
    assert core.list_namespaced_config_map(ns).items == []
    with pytest.raises(ApiException):
        core.read_namespace(ns)
    namespace(admin, ns)  # node port 31999 was released with its service
    core.create_namespaced_service(ns, service("s", type="NodePort", ports=[{"port": 80, "nodePort": 31999}]))
    with pytest.raises(ApiException) as caught:
        core.delete_namespace("default")
    assert caught.value.status == 403


# --- lists --------------------------------------------------------------------------------------

def test_pagination_is_a_consistent_snapshot(kubeapi: LabApi, admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "pages")
    for i in range(25):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i:02d}"}})
    first = core.list_namespaced_config_map(ns, limit=10)
    assert first.metadata.remaining_item_count == 15 and first.metadata._continue
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm-99-late"}})
    core.delete_namespaced_config_map("cm-20", ns)
    names = [c.metadata.name for c in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(ns, limit=10, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
    assert names == [f"cm-{i:02d}" for i in range(25)]
    # List items carry no kind/apiVersion on the wire, as the real API sends them.
    code, _, body = raw(kubeapi, "GET", f"/api/v1/namespaces/{ns}/configmaps?limit=2", kubeapi.admin_token)
    doc = json.loads(body)
    assert doc["kind"] == "ConfigMapList" and "kind" not in doc["items"][0]


def test_continue_token_expires(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "expire")
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{i}"}})
    token = core.list_namespaced_config_map(ns, limit=1).metadata._continue
    for i in range(6):  # each change + paginated list leaves a newer snapshot behind (4 kept)
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"n{i}"}})
        core.list_namespaced_config_map(ns, limit=1)
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(ns, limit=1, _continue=token)
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (410, "Expired")
    assert body["message"].startswith("The provided continue parameter is too old to display a "
                                      "consistent list result.")
    assert body["metadata"]["continue"]


@pytest.mark.parametrize("selector, expected", [
    ("tier=web", ["a", "b"]),
    ("tier==web,env=prod", ["a"]),
    ("tier!=web", ["c", "d"]),
    ("env in (prod, dev)", ["a", "b", "c"]),
    ("env notin (prod)", ["b", "c", "d"]),
    ("env", ["a", "b", "c"]),
    ("!env", ["d"]),
])
def test_label_selectors(admin, selector: str, expected: list[str]) -> None:
    core = client.CoreV1Api(admin)
    ns = "labels"
    if not any(n.metadata.name == ns for n in core.list_namespace().items):
        namespace(admin, ns)
        for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "web", "env": "dev"}),
                             ("c", {"tier": "db", "env": "dev"}), ("d", {"tier": "db"})):
            core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})
    items = core.list_namespaced_config_map(ns, label_selector=selector).items
    assert [c.metadata.name for c in items] == expected


def test_field_selector_errors(admin) -> None:
    core = client.CoreV1Api(admin)
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_service("default", field_selector="spec.bogus=1")
    assert (caught.value.status, status_of(caught.value)["message"]) == (
        400, "field label not supported: spec.bogus")
    found = core.list_service_for_all_namespaces(field_selector="metadata.name=kubernetes")
    assert [s.metadata.namespace for s in found.items] == ["default"]


def test_table_output(kubeapi: LabApi) -> None:
    code, _, body = raw(kubeapi, "GET", "/api/v1/namespaces/default/services", kubeapi.admin_token,
                        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    doc = json.loads(body)
    assert doc["kind"] == "Table"
    assert [c["name"] for c in doc["columnDefinitions"]] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    row = next(r for r in doc["rows"] if r["cells"][0] == "kubernetes")
    assert row["cells"][1:5] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["namespace"] == "default"


# --- watch --------------------------------------------------------------------------------------

def test_watch_from_resource_version(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "watchrv")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "before"}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}})
    core.patch_namespaced_config_map("w", ns, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w", ns)
    seen = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv,
                                      timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_version_replays_then_follows(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "watchlive")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "old"}})
    threading.Timer(0.3, lambda: core.create_namespaced_config_map(ns, {"metadata": {"name": "new"}})).start()
    seen = [(e["type"], e["object"].metadata.name)
            for e in watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=2)]
    assert seen == [("ADDED", "old"), ("ADDED", "new")]


def test_watch_too_old_resource_version_is_410(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "watchold")
    core.create_namespaced_endpoints(ns, {"metadata": {"name": "e"}})
    rv = core.read_namespaced_endpoints("e", ns).metadata.resource_version
    for i in range(310):  # the module's server keeps 300 events per resource
        core.patch_namespaced_endpoints("e", ns, {"metadata": {"labels": {"n": str(i)}}})
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(core.list_namespaced_endpoints, ns, resource_version=rv,
                                      timeout_seconds=1):
            pass
    assert caught.value.status == 410
    assert f"Expired: too old resource version: {rv} (" in str(caught.value.reason)


def test_watch_selector_transitions(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "watchsel")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c", "labels": {"on": "no"}}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("c", ns, {"metadata": {"labels": {"on": "yes"}}})
    core.patch_namespaced_config_map("c", ns, {"data": {"a": "b"}})
    core.patch_namespaced_config_map("c", ns, {"metadata": {"labels": {"on": "no"}}})
    seen = [e["type"] for e in watch.Watch().stream(core.list_namespaced_config_map, ns,
                                                    label_selector="on=yes", resource_version=rv,
                                                    timeout_seconds=1)]
    assert seen == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_bookmarks(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "bookmarks")
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    events = list(watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv,
                                       allow_watch_bookmarks=True, timeout_seconds=1))
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and all(int(b["object"]["metadata"]["resourceVersion"]) >= int(rv) for b in bookmarks)
    assert bookmarks[0]["object"]["kind"] == "ConfigMap"


def test_watch_send_initial_events(kubeapi: LabApi, admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "watchlist")
    core.create_namespaced_config_map(ns, {"metadata": {"name": "one"}})
    code, headers, body = raw(
        kubeapi, "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=1&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        kubeapi.admin_token)
    events = [json.loads(line) for line in body.splitlines()]
    assert code == 200 and headers.get("Transfer-Encoding") == "chunked"
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "one"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_access_log_has_no_tokens(kubeapi: LabApi) -> None:
    time.sleep(0.1)
    text = kubeapi.log.read_text()
    assert "GET /api/v1/namespaces/default/secrets system:serviceaccount:k8sedge:edge-reader 403" in text
    assert kubeapi.admin_token not in text and kubeapi.reader_token not in text


def test_field_validation_strict_and_warn(kubeapi: LabApi, admin) -> None:
    ns = namespace(admin, "fieldval")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "bogus": 1}, "extra": 2}
    code, _, reply = raw(kubeapi, "POST", f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict",
                         kubeapi.admin_token, body)
    assert (code, json.loads(reply)["message"]) == (
        400, 'strict decoding error: unknown field "extra", unknown field "metadata.bogus"')
    code, headers, reply = raw(kubeapi, "POST", f"/api/v1/namespaces/{ns}/configmaps",
                               kubeapi.admin_token, body)
    assert code == 201 and headers["Warning"] == '299 - "unknown field \\"extra\\"", 299 - "unknown field \\"metadata.bogus\\""'
    assert "extra" not in json.loads(reply) and "bogus" not in json.loads(reply)["metadata"]


def test_delete_collection_by_selector(admin) -> None:
    core = client.CoreV1Api(admin)
    ns = namespace(admin, "collection")
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="team=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["c"]


def test_ingress_and_class(kubeapi: LabApi, admin) -> None:
    net = client.NetworkingV1Api(admin)
    ns = namespace(admin, "ingress")
    net.create_ingress_class({"metadata": {"name": "edge"}, "spec": {"controller": "k8sedge.io/haproxy"}})
    ing = net.create_namespaced_ingress(ns, {
        "metadata": {"name": "web"},
        "spec": {"ingressClassName": "edge", "tls": [{"hosts": ["a.example"]}],
                 "rules": [{"host": "a.example", "http": {"paths": [{
                     "path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    assert ing.metadata.generation == 1
    net.patch_namespaced_ingress_status("web", ns, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}})
    code, _, body = raw(kubeapi, "GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
                        kubeapi.admin_token, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert json.loads(body)["rows"][0]["cells"][:5] == ["web", "edge", "a.example", "192.0.2.7", "80, 443"]
    with pytest.raises(ApiException) as caught:
        net.create_ingress_class({"metadata": {"name": "nocontroller"}, "spec": {}})
    assert status_of(caught.value)["message"] == (
        'IngressClass.networking.k8s.io "nocontroller" is invalid: spec.controller: Required value')
