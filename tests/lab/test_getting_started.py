"""docs/getting-started.md, followed literally where the lab API server answers as a cluster:
step 2, least-privilege access. Its shell blocks are taken from the guide as written and run with
bash, with only the values the guide asks you to set (K8SEDGE_SITE, K8SEDGE_API,
K8SEDGE_ADMIN_KUBECONFIG): docs/rbac.yaml applied with kubectl (its ServiceAccount, token Secret
and RBAC objects stored by the API, the token filled in as the token controller does), a
kubeconfig built from that token, and `kubectl auth can-i` answering what the guide says it
answers. A step that stops working as written fails here."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.topology import REPO
from tests.lab.kubeapi_fixtures import kubeapi, kubectl  # noqa: F401  pylint: disable=unused-import
from lab.testlib.apiserver import LabApi

GUIDE = REPO / "docs" / "getting-started.md"
SITE = "guide"


def section(number: int) -> str:
    text = GUIDE.read_text()
    found = re.search(rf"^## {number}\. .*?(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert found, f"{GUIDE}: no section {number}"
    return found.group(0)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the guide's commands read and write of the repository, in a copy of their own."""
    root = tmp_path_factory.mktemp("k8sedge")
    for part in ("docs", "inventory/example"):
        shutil.copytree(REPO / part, root / part)
    return root


def run(block: str, api: LabApi, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{REPO / '.venv/bin'}:/usr/bin:/bin", "HOME": str(cwd), "K8SEDGE_SITE": SITE,
           "K8SEDGE_API": api.url, "K8SEDGE_ADMIN_KUBECONFIG": str(api.admin_kubeconfig)}
    return subprocess.run(["bash", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_step_2_least_privilege_access_as_written(kubeapi: LabApi, checkout: Path) -> None:  # noqa: F811
    apply, build, check = shell_blocks(section(2))
    applied = run("set -euo pipefail\n" + apply, kubeapi, checkout)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "namespace/k8sedge created", "serviceaccount/edge-reader created", "secret/edge-reader-token created",
        "clusterrole.rbac.authorization.k8s.io/k8sedge:edge-reader created",
        "clusterrolebinding.rbac.authorization.k8s.io/k8sedge:edge-reader created",
        "role.rbac.authorization.k8s.io/k8sedge:rollout-lease created",
        "rolebinding.rbac.authorization.k8s.io/k8sedge:rollout-lease created"]
    built = run("set -euo pipefail\n" + build, kubeapi, checkout)
    assert built.returncode == 0, built.stderr
    reader = checkout / "inventory" / SITE / "reader.kubeconfig"
    assert reader.stat().st_mode & 0o777 == 0o600
    # Each `auth can-i` line answers what its comment says.
    for line in check.strip().splitlines():
        command, _, expected = line.partition("#")
        answer = run(command, kubeapi, checkout)
        assert answer.stdout.strip() == expected.strip(), (line, answer.stdout, answer.stderr)
    # The kubeconfig it built reads what the model reads, with the token the cluster made.
    env = dict(os.environ, KUBECONFIG=str(reader))
    listed = subprocess.run([str(REPO / ".venv/bin/kubectl"), "get", "services", "-A", "-o", "name"], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert listed.returncode == 0 and "service/kubernetes" in listed.stdout, listed.stderr
    # A token is the cluster's only while its Secret exists: deleting the Secret revokes it.
    kubectl(kubeapi, "-n", "k8sedge", "delete", "secret", "edge-reader-token")
    refused = subprocess.run([str(REPO / ".venv/bin/kubectl"), "get", "services", "-A"], env=env,
                             capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 1 and "Unauthorized" in refused.stderr, refused.stderr
