"""edge_info's options from the inventory: what every playbook that reads the model passes
(playbooks/vars/read_options.yml), and what bin/k8sedge-watch takes from the same inventory."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
ENV = {"PATH": f"{REPO / '.venv/bin'}:/usr/bin:/bin", "HOME": "/root", "ANSIBLE_FORCE_COLOR": "0"}


def inventory(tmp_path: Path, edge_vars: dict) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"edges": {"hosts": {"edge1": {"ansible_host": "192.0.2.1"}}, "vars": edge_vars}}))
    return path


def test_the_named_variables_win_over_k8sedge_read_options(tmp_path):
    hosts = inventory(tmp_path, {"k8sedge_read_options": {"namespaces": ["web", "shop"], "ingress_class": "edge",
                                                          "kubeconfig": "/ignored"},
                                 "k8sedge_kubeconfig": "{{ inventory_dir }}/reader.kubeconfig",
                                 "k8sedge_tcp_services_configmap": "ingress-nginx/tcp-services"})
    out = tmp_path / "options.json"
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", str(hosts), "playbooks/runtime_hosts.yml",
                             "-e", json.dumps({"k8sedge_read_options_file": str(out)})],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert json.loads(out.read_text()) == {"options": {"namespaces": ["web", "shop"], "ingress_class": "edge",
                                                       "kubeconfig": f"{tmp_path}/reader.kubeconfig",
                                                       "tcp_services_configmap": "ingress-nginx/tcp-services"},
                                           "edges": ["edge1"],
                                           "lease": {"enabled": True, "holder": "", "namespace": "k8sedge",
                                                     "name": "k8sedge-rollout", "duration": 900, "wait": 600.0},
                                           "certificates": {"edge1": {}}}
    assert out.stat().st_mode & 0o777 == 0o600


def test_the_rollout_lease_as_the_inventory_and_awx_set_it(tmp_path):
    """An AWX job template holds the lease under its own name, so its next run renews what a failed
    one left; the inventory's k8sedge_lease_* win over the defaults."""
    out = tmp_path / "options.json"

    def lease(edge_vars: dict, extra: dict) -> dict:
        result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory(tmp_path, edge_vars)),
                                 "playbooks/runtime_hosts.yml", "-e", json.dumps({"k8sedge_read_options_file": str(out), **extra})],
                                cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout[-3000:]
        return json.loads(out.read_text())["lease"]

    assert lease({}, {"awx_job_template_name": "edge rollout"})["holder"] == "awx/edge rollout"
    assert lease({"k8sedge_lease_holder": "ops", "k8sedge_lease_namespace": "edge-system", "k8sedge_lease_duration": "120",
                  "k8sedge_lease_wait": 30, "k8sedge_rollout_lease": "false"}, {"awx_job_template_name": "x"}) == {
        "enabled": False, "holder": "ops", "namespace": "edge-system", "name": "k8sedge-rollout", "duration": 120, "wait": 30.0}


def test_the_watcher_refuses_an_inventory_option_edge_info_does_not_have_by_name(tmp_path):
    hosts = inventory(tmp_path, {"k8sedge_read_options": {"namespace": "web"}})
    result = subprocess.run([str(REPO / "bin/k8sedge-watch"), "-i", str(hosts), "--exit-after", "1"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("k8sedge-watch: the inventory's edge_info options (k8sedge_read_options and the"
                                    " variables beside it): unknown option(s) namespace; expected some of"), result.stderr
