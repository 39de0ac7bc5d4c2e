"""The edge_info action: on the controller it builds the model in Ansible's process, elsewhere (and
with async) it runs the module; both give the same result, take the task's environment, and
hand back cluster values as data."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[4]
ENV = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_LOCALHOST_WARNING": "0"}
HOSTILE = "{{ lookup('pipe', 'touch /tmp/k8sedge-action-injected') }}"


def manifests(path: Path) -> Path:
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "shop", "annotations": {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": "web.example"}},
               "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}
    hostile = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "evil", "namespace": "shop", "annotations": {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": HOSTILE}},
               "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}], "conditions": [{"type": "Ready", "status": "True"}]}}
    path.write_text(yaml.safe_dump_all([service, hostile, node]))
    return path


def run(tmp_path: Path, tasks: list[dict], extra: dict | None = None) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    return subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={REPO / '.venv/bin/python'}", str(playbook)],
                          cwd=REPO, env={**ENV, **(extra or {})}, capture_output=True, text=True, timeout=120)


def results(tmp_path: Path, *names: str) -> dict[str, dict]:
    return {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in names}


def read_and_keep(tmp_path: Path, name: str, args: dict, **task: object) -> list[dict]:
    """edge_info registered as `name`, the result written to tmp_path/<name>.json."""
    return [{"name": name, "k8sedge.lb.edge_info": args, "register": name, "ignore_errors": True, **task},
            {"ansible.builtin.copy": {"content": f"{{{{ {name} | to_json }}}}", "dest": str(tmp_path / f"{name}.json"), "mode": "0600"}}]


def test_in_process_and_module_give_the_same_model(tmp_path):
    src = str(manifests(tmp_path / "cluster.yaml"))
    done = run(tmp_path, read_and_keep(tmp_path, "here", {"src": src})
               + read_and_keep(tmp_path, "module", {"src": src}, **{"async": 60, "poll": 1}))
    assert done.returncode == 0, done.stdout + done.stderr
    found = results(tmp_path, "here", "module")
    assert found["here"]["generation"] == found["module"]["generation"]
    assert found["here"]["model"] == found["module"]["model"]
    assert [b["name"] for b in found["here"]["model"]["backends"]] == ["shop_web_80"]
    assert "ansible_job_id" in found["module"] and "ansible_job_id" not in found["here"], "async took the module path"


def test_the_task_environment_reaches_the_options_on_both_paths(tmp_path):
    environment = {"K8S_AUTH_KUBECONFIG": str(tmp_path / "from-task-env")}
    run(tmp_path, read_and_keep(tmp_path, "here", {}, environment=environment)
        + read_and_keep(tmp_path, "module", {}, environment=environment, **{"async": 60, "poll": 1}))
    found = results(tmp_path, "here", "module")
    for name in ("here", "module"):
        assert found[name]["failed"] and found[name]["msg"] == f"kubeconfig {tmp_path}/from-task-env: no such file", found[name]


def test_bad_options_fail_by_name(tmp_path):
    run(tmp_path, read_and_keep(tmp_path, "here", {"src": "x", "model_format": "xml", "colour": "blue"}))
    message = results(tmp_path, "here")["here"]["msg"]
    assert "model_format must be one of: dict, json, got: xml" in message and "colour" in message


def test_cluster_values_in_findings_are_never_templated(tmp_path):
    marker = Path("/tmp/k8sedge-action-injected")
    marker.unlink(missing_ok=True)
    done = run(tmp_path, [{"k8sedge.lb.edge_info": {"src": str(manifests(tmp_path / "cluster.yaml"))}, "register": "read"},
                          {"ansible.builtin.debug": {"msg": "{{ read.model.errors }}"}}])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lb.k8sedge.io/hosts" in done.stdout and "lookup" in done.stdout, "the finding shows the refused value"
    assert not marker.exists()
