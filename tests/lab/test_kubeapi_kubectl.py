"""The lab API server against the real kubectl binary, with a kubeconfig from lab.pki."""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.testlib.apiserver import READER, LabApi
from tests.lab.kubeapi_fixtures import KUBECTL, kubeapi, kubectl  # noqa: F401

pytestmark = pytest.mark.timeout(90)

MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abcde
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses: [10.244.1.10]
- addresses: [10.244.1.11]
- addresses: [10.244.2.10]
- addresses: [10.244.2.11]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web}
spec:
  nodeName: node-1
  containers:
  - name: web
    image: nginx:1.27
"""

AGE = r"\d+s"


@pytest.fixture(scope="module")
def manifest(kubeapi: LabApi, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifests") / "web.yaml"
    path.write_text(MANIFEST)
    result = kubectl(kubeapi, "create", "-f", str(path))
    assert (result.stdout, result.stderr) == (
        "service/web created\ndeployment.apps/web created\n"
        "endpointslice.discovery.k8s.io/web-abcde created\npod/web-1 created\n", "")
    return path


def lines(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_version_raw(kubeapi: LabApi) -> None:
    version = json.loads(kubectl(kubeapi, "get", "--raw", "/version").stdout)
    assert (version["major"], version["gitVersion"]) == ("1", "v1.37.0-k8sedge.lab")
    result = kubectl(kubeapi, "version")
    assert "Server Version: v1.37.0-k8sedge.lab" in result.stdout and result.stderr == ""


def test_get_services_and_slices_all_namespaces(kubeapi: LabApi, manifest: Path) -> None:
    result = kubectl(kubeapi, "get", "svc,endpointslices", "-A")
    assert result.stderr == ""
    services, slices = result.stdout.split("\n\n")
    rows = lines(services)
    assert rows[0] == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows[1][:6] == ["default", "service/kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert rows[2][:3] == ["default", "service/web", "ClusterIP"]
    assert rows[2][4:6] == ["<none>", "80/TCP"] and re.fullmatch(AGE, rows[2][6])
    rows = lines(slices)
    assert rows[0] == ["NAMESPACE", "NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    port = kubeapi.url.rsplit(":", 1)[1]
    assert rows[1][:5] == ["default", "endpointslice.discovery.k8s.io/kubernetes", "IPv4", port, "127.0.0.1"]
    assert rows[2][:5] == ["default", "endpointslice.discovery.k8s.io/web-abcde", "IPv4", "8080",
                           "10.244.1.10,10.244.1.11,10.244.2.10 + 1 more..."]


def test_get_pods_wide(kubeapi: LabApi, manifest: Path) -> None:
    rows = lines(kubectl(kubeapi, "get", "pods", "-o", "wide").stdout)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                       "READINESS GATES"]
    assert rows[1][:4] == ["web-1", "0/1", "Pending", "0"]
    assert rows[1][5:] == ["<none>", "node-1", "<none>", "<none>"]


def test_annotate_scale_delete(kubeapi: LabApi, manifest: Path) -> None:
    assert kubectl(kubeapi, "annotate", "svc", "web", "k=v").stdout == "service/web annotated\n"
    got = kubectl(kubeapi, "get", "svc", "web", "-o", "jsonpath={.metadata.annotations.k}").stdout
    assert got == "v"
    assert kubectl(kubeapi, "scale", "deployment", "web", "--replicas=3").stdout == "deployment.apps/web scaled\n"
    got = kubectl(kubeapi, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}")
    assert got.stdout == "3 2"
    rows = lines(kubectl(kubeapi, "get", "deploy", "-o", "wide").stdout)
    assert rows[1][:4] == ["web", "0/3", "0", "0"] and rows[1][5:] == ["web", "nginx:1.27", "app=web"]


def test_delete_waits_and_reports(kubeapi: LabApi, manifest: Path) -> None:
    source = kubectl(kubeapi, "get", "svc", "web", "-o", "json").stdout
    doc = json.loads(source)
    doc["metadata"] = {"name": "gone"}
    doc["spec"].pop("clusterIP"), doc["spec"].pop("clusterIPs")
    path = manifest.parent / "gone.json"
    path.write_text(json.dumps(doc))
    kubectl(kubeapi, "create", "-f", str(path))
    result = kubectl(kubeapi, "delete", "svc", "gone")  # --wait is the default
    assert (result.stdout, result.stderr) == ('service "gone" deleted from default namespace\n', "")
    missing = kubectl(kubeapi, "get", "svc", "gone", check=False)
    assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): services "gone" not found\n')


def test_get_watch_shows_changes(kubeapi: LabApi, manifest: Path) -> None:
    env = dict(os.environ, KUBECONFIG=str(kubeapi.admin_kubeconfig), HOME=str(kubeapi.ca.parent))
    watcher = subprocess.Popen([KUBECTL, "get", "svc", "-w", "--request-timeout=20s"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        assert header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
        seen = [watcher.stdout.readline().split()[0] for _ in range(2)]
        assert seen == ["kubernetes", "web"]
        kubectl(kubeapi, "patch", "svc", "web", "--type=merge", "-p",
                '{"spec":{"type":"NodePort","ports":[{"name":"http","port":80,"targetPort":8080,"nodePort":31080}]}}')
        changed = watcher.stdout.readline().split()
        assert changed[:2] == ["web", "NodePort"] and changed[4] == "80:31080/TCP"
    finally:
        os.kill(watcher.pid, signal.SIGTERM)
        watcher.wait(timeout=10)


def test_reader_is_refused_writes(kubeapi: LabApi, manifest: Path) -> None:
    result = kubectl(kubeapi, "delete", "svc", "web", kubeconfig=kubeapi.reader_kubeconfig, check=False)
    assert result.returncode == 1
    assert result.stderr == (
        f'Error from server (Forbidden): services "web" is forbidden: User "{READER}" cannot '
        'delete resource "services" in API group "" in the namespace "default"\n')
    listed = kubectl(kubeapi, "get", "svc", "-n", "default", "-o", "name", kubeconfig=kubeapi.reader_kubeconfig)
    assert listed.stdout == "service/kubernetes\nservice/web\n"


def test_no_warnings_from_discovery(kubeapi: LabApi, manifest: Path) -> None:
    result = kubectl(kubeapi, "api-resources", "-o", "name")
    assert result.stderr == ""
    assert set(result.stdout.split()) == {
        "namespaces", "nodes", "services", "endpoints", "configmaps", "pods", "serviceaccounts", "secrets",
        "clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
        "roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
        "endpointslices.discovery.k8s.io", "ingresses.networking.k8s.io",
        "ingressclasses.networking.k8s.io", "deployments.apps", "leases.coordination.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io"}


def test_kubectl_auth_can_i_answers_as_a_real_cluster(kubeapi: LabApi) -> None:
    """What docs/getting-started.md has an operator run to check the reader's access."""
    def can_i(*args: str) -> tuple[int, str]:
        result = kubectl(kubeapi, "auth", "can-i", *args, kubeconfig=kubeapi.reader_kubeconfig, check=False)
        return result.returncode, result.stdout.strip()

    assert can_i("list", "services", "--all-namespaces") == (0, "yes")
    assert can_i("watch", "endpointslices.discovery.k8s.io", "-n", "default") == (0, "yes")
    assert can_i("get", "nodes") == (0, "yes")
    assert can_i("create", "services", "-n", "default") == (1, "no")
    assert can_i("patch", "pods", "--subresource=status", "-n", "default") == (1, "no")
    assert can_i("get", "secrets", "-n", "default") == (1, "no")
    assert can_i("get", "/healthz") == (0, "yes")
    # The reason, as the RBAC authorizer gives it.
    verbose = kubectl(kubeapi, "auth", "can-i", "list", "services", "-A", "-v=8",
                      kubeconfig=kubeapi.reader_kubeconfig, check=False).stderr
    said = verbose.replace("\\", "").replace('"', "")
    assert ("RBAC: allowed by ClusterRoleBinding k8sedge:edge-reader of ClusterRole k8sedge:edge-reader"
            " to ServiceAccount edge-reader/k8sedge") in said, verbose[-3000:]
    # Admins are allowed everything (system:masters).
    assert kubectl(kubeapi, "auth", "can-i", "delete", "nodes", check=False).stdout.strip() == "yes"
    # The rollout's Lease (docs/rbac.yaml), in its own namespace only.
    assert can_i("update", "leases.coordination.k8s.io", "-n", "k8sedge") == (0, "yes")
    assert can_i("update", "leases.coordination.k8s.io", "-n", "default") == (1, "no")


def test_leases_as_the_rollout_holds_them(kubeapi: LabApi, tmp_path: Path) -> None:
    """What an operator sees of the rollout's lock: `kubectl get lease` with its holder; a duration
    the real API refuses is refused with its words."""
    manifest = tmp_path / "lease.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: lease-test}\n")
    kubectl(kubeapi, "apply", "-f", str(manifest))
    manifest.write_text(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: k8sedge-rollout, namespace: lease-test}\n"
        "spec: {holderIdentity: awx/site, leaseDurationSeconds: 900, acquireTime: '2026-12-07T10:00:00.000000Z',"
        " renewTime: '2026-12-07T10:00:00.000000Z', leaseTransitions: 0}\n")
    assert kubectl(kubeapi, "apply", "-f", str(manifest)).stdout == "lease.coordination.k8s.io/k8sedge-rollout created\n"
    table = kubectl(kubeapi, "get", "lease", "-n", "lease-test").stdout.splitlines()
    assert table[0].split() == ["NAME", "HOLDER", "AGE"]
    assert table[1].split()[:2] == ["k8sedge-rollout", "awx/site"]
    manifest.write_text(manifest.read_text().replace("900", "0"))
    refused = kubectl(kubeapi, "apply", "-f", str(manifest), check=False)
    assert refused.returncode == 1
    assert refused.stderr == ('The Lease "k8sedge-rollout" is invalid: spec.leaseDurationSeconds: Invalid value: 0:'
                              " must be greater than 0\n")


def test_rbac_applied_through_the_api_grants_and_its_removal_revokes(kubeapi: LabApi, tmp_path: Path) -> None:
    """A ServiceAccount, its token Secret (filled in as the token controller does) and a Role bound
    to it, applied with kubectl: the token authenticates as the account, the Role grants what it
    says and nothing else, and deleting the binding takes it back."""
    manifest = tmp_path / "viewer.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: Namespace
metadata: {name: rbac-test}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: rbac-test}
---
apiVersion: v1
kind: Secret
metadata:
  name: viewer-token
  namespace: rbac-test
  annotations: {kubernetes.io/service-account.name: viewer}
type: kubernetes.io/service-account-token
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "viewer:configmaps", namespace: rbac-test}
rules:
  - {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer, namespace: rbac-test}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "viewer:configmaps"}
subjects:
  - {kind: ServiceAccount, name: viewer, namespace: rbac-test}
""")
    kubectl(kubeapi, "apply", "-f", str(manifest))
    secret = json.loads(kubectl(kubeapi, "-n", "rbac-test", "get", "secret", "viewer-token", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["ca.crt"]) == kubeapi.ca.read_bytes()
    assert base64.b64decode(secret["data"]["namespace"]) == b"rbac-test"
    table = kubectl(kubeapi, "-n", "rbac-test", "get", "secret").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table[1].split()[:3] == ["viewer-token", "kubernetes.io/service-account-token", "3"]
    viewer = tmp_path / "viewer.kubeconfig"
    config = yaml.safe_load(kubeapi.reader_kubeconfig.read_text())
    config["users"][0]["user"] = {"token": base64.b64decode(secret["data"]["token"]).decode()}
    viewer.write_text(yaml.safe_dump(config))

    def can_i(*args: str) -> str:
        return kubectl(kubeapi, "auth", "can-i", *args, kubeconfig=viewer, check=False).stdout.strip()

    assert can_i("list", "configmaps", "-n", "rbac-test") == "yes"
    assert can_i("list", "configmaps", "-n", "default") == "no"
    assert can_i("delete", "configmaps", "-n", "rbac-test") == "no"
    assert kubectl(kubeapi, "-n", "rbac-test", "get", "configmaps", kubeconfig=viewer).returncode == 0
    assert kubectl(kubeapi, "-n", "rbac-test", "get", "rolebinding").stdout.splitlines()[1].split()[:2] == [
        "viewer", "Role/viewer:configmaps"]
    kubectl(kubeapi, "-n", "rbac-test", "delete", "rolebinding", "viewer")
    assert can_i("list", "configmaps", "-n", "rbac-test") == "no"
    kubectl(kubeapi, "-n", "rbac-test", "delete", "secret", "viewer-token")
    refused = kubectl(kubeapi, "-n", "rbac-test", "get", "configmaps", kubeconfig=viewer, check=False)
    assert refused.returncode == 1 and "Unauthorized" in refused.stderr
