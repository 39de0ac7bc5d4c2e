"""The AWX path without AWX: playbooks/site.yml through ansible-runner (what AWX runs inside an
execution environment), from a private data directory laid out like an AWX job's:

    project/      the project as AWX syncs it (playbooks, roles, collections, ansible.cfg)
    inventory/    the inventory source k8sedge.lb.k8s (credentials from the environment, no
                  kubeconfig) and the edges with their variables, as an AWX inventory holds them
    env/envvars   what AWX injects for a "Kubernetes or OpenShift API Bearer Token" credential:
                  K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT, K8S_AUTH_VERIFY_SSL
                  (the lab's read-only token and CA)
    env/extravars the answers of the rollout's survey (docs/awx.md), typed as AWX passes them

Before the job, the inventory update AWX runs for the source (`ansible-inventory --list --export`
on the source file) with the same variables: it gives the edges' group the model, and fails with a
wrong token.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import ansible_runner
import pytest
import yaml

from lab.topology import KUBECONFIG, REPO, host
from tests.lab.conftest import in_host

pytestmark = pytest.mark.usefixtures("lab")

EDGES = ("edge1", "edge2")
SURVEY = {  # AWX survey answers: text, multiple choice (a string, also for true/false), float
    "k8sedge_edge_group": "edges",
    "k8sedge_engine": "haproxy",
    "k8sedge_fail_static_max_removed": 0.3,
    "k8sedge_fail_static_override": "false",
    # The lab's VIPs are keepalived's (site.yml's last plays): left out to keep the job short.
    "k8sedge_pool_vips": {},
}


def credential() -> dict[str, str]:
    """The variables of AWX's Kubernetes bearer-token credential, from the lab's read-only kubeconfig."""
    config = yaml.safe_load(KUBECONFIG.read_text())
    return {"K8S_AUTH_HOST": config["clusters"][0]["cluster"]["server"], "K8S_AUTH_API_KEY": config["users"][0]["user"]["token"],
            "K8S_AUTH_SSL_CA_CERT": config["clusters"][0]["cluster"]["certificate-authority"], "K8S_AUTH_VERIFY_SSL": "True"}


def private_data_dir(root: Path) -> Path:
    job = root / "job"
    project = job / "project"
    project.mkdir(parents=True)
    for name in ("playbooks", "roles", "collections", "ansible.cfg"):
        (project / name).symlink_to(REPO / name)
    inventory = job / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "k8s.yml").write_text(yaml.safe_dump({"plugin": "k8sedge.lb.k8s", "edge_group": "edges"}))
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"edges": {"hosts": {e: {"ansible_host": host(e).ip} for e in EDGES}}}))
    # The lab's edge variables as an AWX inventory would hold them: paths absolute, and no
    # kubeconfig, so that every read of the cluster takes the credential's variables.
    for name in ("all", "edges"):
        variables = yaml.safe_load((REPO / "inventory/lab/group_vars" / f"{name}.yml").read_text())
        variables.pop("k8sedge_kubeconfig", None)
        variables.pop("k8sedge_status_kubeconfig", None)
        if "k8sedge_lab_dir" in variables:
            variables["k8sedge_lab_dir"] = str(REPO / ".lab")
        (inventory / "group_vars" / f"{name}.yml").write_text(yaml.safe_dump(variables))
    env = job / "env"
    env.mkdir()
    (env / "envvars").write_text(yaml.safe_dump(credential()))
    (env / "extravars").write_text(yaml.safe_dump(SURVEY))
    return job


def inventory_update(job: Path, **override: str) -> subprocess.CompletedProcess[str]:
    """What AWX runs to sync the source: ansible-inventory --list on the source file in the project,
    the credential's variables set, a source that does not parse an error."""
    env = {"PATH": f"{REPO / '.venv/bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", **credential(), **override}
    return subprocess.run([str(REPO / ".venv/bin/ansible-inventory"), "-i", str(job / "inventory/k8s.yml"), "--list", "--export"],
                          cwd=job / "project", env=env, capture_output=True, text=True, timeout=120)


def keepalived_config(edge: str) -> str:
    return in_host(edge, "sh", "-c", "sha256sum /etc/keepalived/keepalived.conf 2>/dev/null || echo none").stdout


def answers(edge: str, header: str = "Host: s2.pctest") -> str:
    return in_host("client", "curl", "-sS", "-m", "5", "-H", header, f"http://{host(edge).ip}/", check=False).stdout


def test_site_yml_runs_through_ansible_runner_as_an_awx_job(tmp_path, monkeypatch):
    job = private_data_dir(tmp_path)

    refused = inventory_update(job, K8S_AUTH_API_KEY="not-a-token")
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    synced = inventory_update(job)
    assert synced.returncode == 0, synced.stderr
    inventory = json.loads(synced.stdout)
    assert inventory["k8s_nodes"]["hosts"] == ["node1", "node2"] and inventory["edges"]["vars"]["k8sedge_model_read"]

    monkeypatch.setenv("PATH", f"{REPO / '.venv/bin'}:{os.environ['PATH']}")  # ansible-playbook, as in an EE
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # where edge_probe writes its report
    keepalived = {edge: keepalived_config(edge) for edge in EDGES}
    try:
        result = ansible_runner.run(private_data_dir=str(job), playbook="playbooks/site.yml", quiet=True, timeout=900)
        stdout = result.stdout.read()
        assert (result.status, result.rc) == ("successful", 0), stdout[-4000:]
        assert set(result.stats["ok"]) >= set(EDGES) and not result.stats["failures"] and not result.stats["dark"]
        # What AWX keeps of the run after its execution environment is gone: the job's artifacts.
        [stats] = [e for e in result.events if e.get("event") == "playbook_on_stats"]
        artifacts = stats["event_data"]["artifact_data"]["k8sedge_probe_report"]
        assert artifacts["passed"] is True and artifacts["summary"]["probes"] > 0, artifacts
    finally:
        shutil.rmtree(job, ignore_errors=True)  # env/envvars and the artifacts hold the token
    # The survey's answers reached the plays: no VIPs, so nothing was probed through a VIP (the last
    # probe report is of the edges themselves: the last one rolled out, or all those with nothing to
    # change) and keepalived's config is as it was.
    report = json.loads((tmp_path / "state/k8sedge/probe-report.json").read_text())
    # Each report written is kept, dated, beside it: the last one is this one.
    dated = sorted((tmp_path / "state/k8sedge/reports").glob("*.json"))
    assert dated and json.loads(dated[-1].read_text())["generation"] == report["generation"] == artifacts["generation"]
    assert report["passed"] and report["hosts"] and EDGES[-1] in report["hosts"] and set(report["hosts"]) <= set(EDGES), report["summary"]
    assert not [p["via"] for p in report["probes"] if p["kind"] == "vip"]
    assert {edge: keepalived_config(edge) for edge in EDGES} == keepalived
    for edge in EDGES:
        assert answers(edge).startswith("Hostname: s2-"), edge
