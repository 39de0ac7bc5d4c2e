"""edge_info and the k8sedge.lb.k8s inventory plugin against the lab's API server."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from lab import credentials
from lab.topology import API_URL, KUBECONFIG, MODEL_OPTIONS, REPO, TOKEN_FILE, host
from tests.lab.conftest import kubectl

pytestmark = pytest.mark.usefixtures("lab")

ANSIBLE_ENV = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
               "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_DEPRECATION_WARNINGS": "0"}


def edge_info(*args: str, env: dict[str, str] | None = None) -> dict:
    """Run the module ad hoc on localhost; its result, failed or not."""
    result = subprocess.run(
        [str(REPO / ".venv/bin/ansible"), "localhost", "-m", "k8sedge.lb.edge_info", "-a",
         " ".join([*args, *(f"{k}={v}" for k, v in MODEL_OPTIONS.items())])],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**ANSIBLE_ENV, **(env or {})})
    # The default callback prints `localhost | SUCCESS => {...}` or `localhost | FAILED! => {...}`.
    status, _, body = result.stdout.partition(" => ")
    return {**json.loads(body), "failed": "FAILED!" in status}


def _frontend(model: dict, name: str) -> dict:
    return next(f for f in model["frontends"] if f["name"] == name)


def test_the_seed_service_is_served_on_http_and_on_tcp_9999():
    result = edge_info(f"kubeconfig={KUBECONFIG}")
    assert not result["failed"], result
    model = result["model"]
    http = _frontend(model, "default-http-80")
    [s2_route] = [r for r in http["routes"] if r["host"] == "s2.pctest"]
    tcp = _frontend(model, "default-tcp-9999")
    assert tcp["backend"] == "default_s2_80_tcp" or tcp["backend"].startswith("default_s2_")
    backend = next(b for b in model["backends"] if b["name"] == s2_route["backend"])
    assert backend["mode"] == "nodeport"
    assert [(t["address"], t["port"], t["state"]) for t in backend["targets"]] == [
        (host("node1").ip, 31780, "ready"), (host("node2").ip, 31780, "ready")]
    assert {(r["cidr"], r["via"]) for r in model["routes"]} == {
        (host("node1").pod_cidr, host("node1").ip), (host("node2").pod_cidr, host("node2").ip)}
    assert result["read"]["counts"]["services"] >= 6
    assert "internal" not in {b["service"] for b in model["backends"]}


def test_local_traffic_policy_targets_only_nodes_with_a_local_endpoint():
    model = edge_info(f"kubeconfig={KUBECONFIG}")["model"]
    backend = next(b for b in model["backends"] if b["service"] == "local-web")
    pod = json.loads(kubectl("get", "pods", "-l", "app=local-web", "-o", "json").stdout)["items"][0]
    assert [t["node"] for t in backend["targets"]] == [pod["spec"]["nodeName"]]
    assert backend["health_check"] == {"type": "http", "path": "/healthz", "port": 31791}


def test_the_lab_has_tls_proxy_protocol_and_pod_mode_services():
    """What lab/manifests adds for the edge roles' traffic checks (molecule/shared/tasks/)."""
    model = edge_info(f"kubeconfig={KUBECONFIG}")["model"]
    assert not model["errors"], model["errors"]
    frontends = {f["name"]: f for f in model["frontends"]}
    backends = {b["name"]: b for b in model["backends"]}
    assert frontends["default-http-443"]["certificates"] == ["secure-pctest"]
    assert {"host": "secure.pctest", "redirect_https": True} in [
        {k: r[k] for k in ("host", "redirect_https")} for r in frontends["default-http-80"]["routes"]]
    assert frontends["passthrough-tcp-443"]["sni"] == [{"host": "passthrough.pctest", "backend": "default_tls-echo_443_tcp"}]
    assert [(t["address"], t["port"]) for t in backends["default_tls-echo_443_tcp"]["targets"]] == [
        (host("node1").ip, 31787), (host("node2").ip, 31787)]
    proxy = {name: (f["accept_proxy"], backends[f["backend"]]["proxy_protocol"]) for name, f in frontends.items()
             if name in ("default-tcp-9995", "default-tcp-9996", "default-tcp-9997", "default-tcp-9998", "default-tcp-9002")}
    assert proxy == {"default-tcp-9995": (False, "v1"), "default-tcp-9996": (True, "v1"), "default-tcp-9997": (False, "v1"),
                     "default-tcp-9998": (True, "none"), "default-tcp-9002": (False, "v2")}
    assert backends["default_proxied_80_proxy-v2"]["proxy_protocol"] == "v2"
    pods = json.loads(kubectl("get", "pods", "-l", "app=s2", "-o", "json").stdout)["items"]
    for name in ("default_direct_80", "default_direct_80_tcp_proxy-v1"):
        assert backends[name]["mode"] == "pod"
        assert sorted(t["address"] for t in backends[name]["targets"]) == sorted(p["status"]["podIP"] for p in pods)
        assert {t["port"] for t in backends[name]["targets"]} == {8080}


def test_model_from_kubectl_export_equals_model_from_the_api(tmp_path):
    exported = kubectl("get", "svc,endpointslices,nodes,ingresses,configmaps", "-A", "-o", "yaml").stdout
    (tmp_path / "cluster.yaml").write_text(exported)
    from_api = edge_info(f"kubeconfig={KUBECONFIG}")["model"]
    from_files = edge_info(f"src={tmp_path}")["model"]
    assert from_files == from_api


def test_credentials_from_the_environment_as_awx_injects_them():
    token = next(line.split(",")[0] for line in TOKEN_FILE.read_text().splitlines() if "edge-reader" in line)
    env = {"K8S_AUTH_HOST": API_URL, "K8S_AUTH_API_KEY": token,
           "K8S_AUTH_SSL_CA_CERT": str(credentials.CA_CERT), "K8S_AUTH_VERIFY_SSL": "true"}
    result = edge_info(env=env)
    assert not result["failed"], result
    assert result["model"]["generation"] == edge_info(f"kubeconfig={KUBECONFIG}")["model"]["generation"]


def test_a_bad_token_fails_with_the_api_s_answer_and_no_model():
    result = edge_info(f"host={API_URL}", "api_key=not-a-token", f"ca_cert={credentials.CA_CERT}")
    assert result["failed"] is True
    assert "401 Unauthorized" in result["msg"]
    assert "model" not in result


def test_an_unreachable_api_fails_instead_of_returning_an_empty_model():
    result = edge_info("host=https://127.0.0.1:9", "api_key=unused-token", "timeout=5")
    assert result["failed"] is True and "model" not in result
    assert "GET /apis/discovery.k8s.io/v1" in result["msg"]


def test_inventory_plugin_lists_nodes_and_gives_edges_a_summary_of_the_model(tmp_path):
    source = tmp_path / "lab.k8s.yml"  # the lab's source, with the summary asked for
    source.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "inventory/lab/k8s.yml").read_text()), "edge_models": "summary"}))
    result = subprocess.run([str(REPO / ".venv/bin/ansible-inventory"), "-i", "inventory/lab/hosts.yml", "-i", str(source), "--list"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=ANSIBLE_ENV)
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert sorted(inventory["k8s_nodes"]["hosts"]) == ["node1", "node2"]
    node1 = inventory["_meta"]["hostvars"]["node1"]
    # Everything from the cluster is marked unsafe: never templated, whatever it holds.
    assert node1["ansible_host"] == {"__ansible_unsafe": host("node1").ip}
    assert node1["k8s_labels"]["topology.kubernetes.io/zone"] == {"__ansible_unsafe": "lab-a"}
    assert node1["k8s_ready"] is True
    assert inventory["zone_lab_a"]["hosts"] == ["node1"]
    summary = inventory["_meta"]["hostvars"]["edge1"]["k8sedge_model_summary"]
    assert list(summary) == ["default", "passthrough"]  # lab/manifests/70-tls-echo.yaml has its own pool
    for pool in summary:
        module_model = edge_info(f"kubeconfig={KUBECONFIG}", f"pool={pool}")["model"]
        assert summary[pool]["generation"] == {"__ansible_unsafe": module_model["generation"]}
        assert summary[pool]["frontends"] == len(module_model["frontends"])
