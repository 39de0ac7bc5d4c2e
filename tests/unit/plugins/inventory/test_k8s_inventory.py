"""The k8sedge.lb.k8s inventory plugin, run by the real ansible-inventory/ansible-playbook on manifests."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
ENV = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
       "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}
# A label value no API server would accept: the inventory must treat cluster data as data.
HOSTILE = "{{ lookup('pipe', 'touch /tmp/k8sedge-injected') }}"


def _node(name: str, ip: str, ready: str = "True", labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels or {"topology.kubernetes.io/zone": "z1"}},
            "spec": {"podCIDRs": ["10.244.9.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": ready}]}}


def _service() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": "web.example"}},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(yaml.safe_dump_all([
        _service(), _node("n1", "192.0.2.1", labels={"evil": HOSTILE}), _node("n2", "192.0.2.2", ready="False"),
        _node("bad name!", "192.0.2.3")]))
    config = tmp_path / "cluster.k8s.yml"
    config.write_text(yaml.safe_dump({"plugin": "k8sedge.lb.k8s", "src": str(manifests),
                                      "groups": {"ready": "k8s_ready"}}))
    (tmp_path / "edges.yml").write_text(yaml.safe_dump({"edges": {"hosts": {"e1": {}}}}))
    return tmp_path


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv/bin" / argv[0]), *argv[1:]], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)


def _edge_models(source: Path, edge_models: str) -> None:
    config = source / "cluster.k8s.yml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "edge_models": edge_models}))


def test_nodes_become_hosts_and_the_model_is_not_built_by_default(source: Path):
    result = _run("ansible-inventory", "-i", str(source), "--list")
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert sorted(inventory["k8s_nodes"]["hosts"]) == ["n1", "n2"]
    assert inventory["ready"]["hosts"] == ["n1"]
    assert "Node skipped: metadata.name" in result.stderr
    edge = inventory["_meta"]["hostvars"]["e1"]
    assert "k8sedge_model_summary" not in edge and "k8sedge_models" not in edge
    assert "k8sedge_model_read" in edge


def test_edge_models_summary_gives_the_edges_a_summary_of_the_model(source: Path):
    _edge_models(source, "summary")
    result = _run("ansible-inventory", "-i", str(source), "--list")
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert sorted(inventory["k8s_nodes"]["hosts"]) == ["n1", "n2"]
    edge = inventory["_meta"]["hostvars"]["e1"]
    assert "k8sedge_models" not in edge
    [(pool, summary)] = edge["k8sedge_model_summary"].items()
    assert pool == "default" and len(summary["generation"]["__ansible_unsafe"]) > 12
    assert {key: summary[key] for key in ("frontends", "backends", "targets", "refused")} == {
        "frontends": 1, "backends": 1, "targets": 1, "refused": 2}


def test_edge_models_full_gives_the_models(source: Path):
    _edge_models(source, "full")
    result = _run("ansible-inventory", "-i", str(source), "--list")
    assert result.returncode == 0, result.stderr
    edge = json.loads(result.stdout)["_meta"]["hostvars"]["e1"]
    models = edge["k8sedge_models"]
    assert models["default"]["generation"] == edge["k8sedge_model_summary"]["default"]["generation"]
    assert len(models["default"]["errors"]) == edge["k8sedge_model_summary"]["default"]["refused"]
    [frontend] = models["default"]["frontends"]
    assert frontend["routes"][0]["host"] == {"__ansible_unsafe": "web.example"}
    [backend] = models["default"]["backends"]
    assert [t["address"] for t in backend["targets"]] == [{"__ansible_unsafe": "192.0.2.1"}]


def test_cluster_values_are_never_templated(source: Path, tmp_path: Path):
    marker = Path("/tmp/k8sedge-injected")
    marker.unlink(missing_ok=True)
    playbook = tmp_path / "show.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "n1", "gather_facts": False, "tasks": [
        {"ansible.builtin.debug": {"msg": "{{ k8s_labels.evil }}"}}]}]))
    result = _run("ansible-playbook", "-i", str(source), str(playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.dumps(HOSTILE)[1:-1] in result.stdout
    assert not marker.exists()


def test_an_unreadable_source_fails_the_inventory(tmp_path: Path):
    config = tmp_path / "broken.k8s.yml"
    config.write_text(yaml.safe_dump({"plugin": "k8sedge.lb.k8s", "src": str(tmp_path / "missing")}))
    result = _run("ansible-inventory", "-i", str(config), "--list")
    assert result.returncode != 0
    assert "no such file or directory" in result.stderr
