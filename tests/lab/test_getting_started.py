"""docs/getting-started.md, followed literally: step 1, the install on the controller (a clone of
this repository, its venv from requirements.txt), and step 2, least-privilege access, against the
lab API server. The shell blocks are taken from the guide as written and run with bash, with only
the values the guide asks you to set (the repository's URL, K8SEDGE_SITE, K8SEDGE_API,
K8SEDGE_ADMIN_KUBECONFIG): docs/rbac.yaml applied with kubectl (its ServiceAccount, token Secret
and RBAC objects stored by the API, the token filled in as the token controller does), a
kubeconfig built from that token, and `kubectl auth can-i` answering what the guide says it
answers. A step that stops working as written fails here. The later steps need the edges; they
are not run here yet."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from lab.topology import KUBECTL, REPO
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


def environment(home: Path, api: LabApi | None = None) -> dict[str, str]:
    """A controller's shell: the system's Python and tools, and kubectl (the guide's "What you need"
    assumes it), nothing else of ours."""
    tools = home / "bin"
    if not tools.exists():
        tools.mkdir()
        (tools / "kubectl").symlink_to(KUBECTL)
    env = {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", "/root/.cache/pip")}
    if api:
        env.update(K8SEDGE_SITE=SITE, K8SEDGE_API=api.url, K8SEDGE_ADMIN_KUBECONFIG=str(api.admin_kubeconfig))
    return env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Step 1 as written, in a directory of its own, with this repository's URL: the clone, with
    its venv."""
    (block,) = shell_blocks(section(1))
    url = re.search(r"git clone (\S+)", block)
    assert url, block
    home = tmp_path_factory.mktemp("controller")
    (home / "origin").mkdir()
    (home / "origin" / "k8sedge.git").symlink_to(REPO)  # cloned as the guide's URL would be, into k8sedge/
    script = block.replace(url.group(1), f"file://{home}/origin/k8sedge.git") + "\nansible-doc -t module k8sedge.lb.edge_info | head -1\nbin/k8sedge-watch --help | head -1\n"
    installed = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=home, env=environment(home),
                               capture_output=True, text=True, timeout=600, check=False)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    # What later steps run: the collection's modules from the clone, and the watcher, whose
    # shebang finds the system's Python and starts again in the clone's venv.
    assert "k8sedge.lb.edge_info" in installed.stdout and "usage: k8sedge-watch" in installed.stdout, installed.stdout[-2000:]
    return home / "k8sedge"


def run(block: str, api: LabApi, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = environment(cwd.parent, api)
    env["PATH"] = f"{cwd / '.venv/bin'}:{env['PATH']}"  # step 1's `export PATH`
    return subprocess.run(["bash", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_steps_1_and_2_install_and_least_privilege_access_as_written(kubeapi: LabApi, checkout: Path) -> None:  # noqa: F811
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
