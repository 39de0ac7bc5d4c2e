"""The edge_state module records the backends of the model it is given, as the model or as its
JSON text (what a large cluster's roles pass), names the option when the model is not one, and
answers them only as JSON text."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[4]
ENV = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_LOCALHOST_WARNING": "0"}
MODEL = {"generation": "a1b2", "frontends": [], "backends": [{"name": "default_web_80", "targets": []}]}


def record(tmp_path: Path, name: str, model: object) -> subprocess.CompletedProcess[str]:
    return play(tmp_path, [{"k8sedge.lb.edge_state": {"path": str(tmp_path / name),
                                                      "serving": {"generation": "a1b2", "routes": [], "model": model}}}])


def play(tmp_path: Path, tasks: list[dict]) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    return subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={REPO / '.venv/bin/python'}", str(playbook)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)


def test_the_model_and_its_json_text_record_the_same_backends(tmp_path):
    for name, model in (("as-object.json", MODEL), ("as-text.json", json.dumps(MODEL))):
        done = record(tmp_path, name, model)
        assert done.returncode == 0, done.stdout + done.stderr
    written = [json.loads((tmp_path / name).read_text()) for name in ("as-object.json", "as-text.json")]
    assert written[0]["serving"] == written[1]["serving"] == {"generation": "a1b2", "routes": [], "backends": MODEL["backends"], "checks": []}


def test_something_that_is_not_a_model_is_refused_naming_the_option(tmp_path):
    done = record(tmp_path, "state.json", {"backends": []})
    assert done.returncode != 0 and not (tmp_path / "state.json").exists()
    assert "serving: model: expected the model edge_info returns" in done.stdout, done.stdout


def test_the_backends_come_back_only_as_the_serving_json(tmp_path):
    assert record(tmp_path, "state.json", json.dumps(MODEL)).returncode == 0
    done = play(tmp_path, [
        {"k8sedge.lb.edge_state": {"path": str(tmp_path / "state.json"), "serving_json": True}, "register": "read"},
        {"k8sedge.lb.edge_state": {"path": str(tmp_path / "none.json"), "serving_json": True}, "register": "fresh"},
        {"ansible.builtin.copy": {"content": "{{ {'read': read, 'fresh': fresh} | to_json }}", "dest": str(tmp_path / "out.json"),
                                  "mode": "0644"}}])
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert json.loads(out["read"]["serving_json"])["backends"] == MODEL["backends"]
    assert "backends" not in out["read"]["record"]["serving"] and out["read"]["changed"] is False
    assert out["fresh"]["serving_json"] == "" and out["fresh"]["record"] == {}


def test_the_proven_checks_come_back_as_one_text(tmp_path):
    served = {"generation": "a1b2", "routes": [], "backends": MODEL["backends"], "checks": ["c1", "c2"]}
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "serving": served, "last_good": served,
                                                     "rollout": {"status": "passed", "since": 1}}))
    done = play(tmp_path, [
        {"k8sedge.lb.edge_state": {"path": str(tmp_path / "state.json")}, "register": "read"},
        {"k8sedge.lb.edge_state": {"path": str(tmp_path / "none.json")}, "register": "fresh"},
        {"ansible.builtin.copy": {"content": "{{ {'read': read, 'fresh': fresh} | to_json }}", "dest": str(tmp_path / "out.json"),
                                  "mode": "0644"}}])
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["read"]["proven_checks"] == "c1 c2" and out["fresh"]["proven_checks"] == ""
    assert not {"checks", "backends"} & (set(out["read"]["record"]["serving"]) | set(out["read"]["record"]["last_good"]))
