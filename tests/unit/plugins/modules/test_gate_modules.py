"""gate_evidence and pod_gates run as Ansible runs them: nginx's evidence is the live generation in
the state record and an answer from the target; pod_gates in check mode says what it would write
and writes nothing (no API is reached)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[4]
ENV = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_LOCALHOST_WARNING": "0"}


def play(tmp_path: Path, tasks: list[dict], *options: str) -> dict:
    """Run the tasks on localhost; what each registered, by name."""
    out = tmp_path / "out.json"
    names = [task["register"] for task in tasks]
    tasks = tasks + [{"ansible.builtin.copy": {"content": "{{ " + "{" + ", ".join(f"'{n}': {n}" for n in names) + "}" + " | to_json }}",
                                               "dest": str(out), "mode": "0600"}, "check_mode": False}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local", *options,
                           "-e", f"ansible_python_interpreter={REPO / '.venv/bin/python'}", str(playbook)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def test_nginx_evidence_is_the_live_generation_and_an_answer(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: [listener.accept()[0].close() for _ in range(4)], daemon=True).start()
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "serving": {"generation": "aa11", "routes": [], "backends": [], "checks": []}}))
    gates = [{"namespace": "shop", "name": "web-1", "uid": "u1", "nodeport_backends": [],
              "targets": [{"backend": "shop_web_80", "pools": ["default"], "address": "127.0.0.1", "port": port, "protocol": "TCP",
                           "check": {"type": "tcp"}}]}]
    common = {"gates": gates, "engine": "nginx", "state_path": str(state), "wait_seconds": 0, "timeout": 1}
    found = play(tmp_path, [
        {"k8sedge.lb.gate_evidence": {**common, "generation": "aa11"}, "register": "live"},
        {"k8sedge.lb.gate_evidence": {**common, "generation": "bb22"}, "register": "behind"},
        {"k8sedge.lb.gate_evidence": {**common, "generation": "aa11", "pools": ["other"]}, "register": "not_mine"},
    ])
    assert [(r["ok"], r["why"]) for r in found["live"]["evidence"]] == [(True, "")]
    assert [(r["ok"], r["why"]) for r in found["behind"]["evidence"]] == [(False, "nginx serves generation aa11, not bb22")]
    assert found["not_mine"]["evidence"] == []
    listener.close()


def test_pod_gates_in_check_mode_says_what_it_would_write(tmp_path):
    gates = [{"namespace": "shop", "name": "np-1", "uid": "u1", "targets": [], "nodeport_backends": ["shop_np_80"]},
             {"namespace": "shop", "name": "web-1", "uid": "u2", "nodeport_backends": [],
              "targets": [{"backend": "shop_web_80", "pools": ["default"], "address": "10.244.1.6", "port": 8080, "protocol": "TCP",
                           "check": {"type": "tcp"}}]}]
    found = play(tmp_path, [{"k8sedge.lb.pod_gates": {
        "gates": gates, "generation": "aa11", "host_pools": {"edge1": ["default"], "edge2": ["default"]},
        "evidence": {"edge1": [{"namespace": "shop", "name": "web-1", "uid": "u2", "backend": "shop_web_80", "address": "10.244.1.6",
                                "port": 8080, "ok": True, "why": ""}]},
        "kubeconfig": str(tmp_path / "no-such-kubeconfig")}, "register": "planned"}], "--check")
    pods = {p["name"]: p for p in found["planned"]["pods"]}
    assert found["planned"]["changed"]
    assert (pods["np-1"]["outcome"], pods["np-1"]["reason"]) == ("would write", "NodePortBackend")
    assert (pods["web-1"]["outcome"], pods["web-1"]["message"]) == ("waits", "edge2: gave no answer in this run")
