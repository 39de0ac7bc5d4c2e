"""docs/getting-started.md, followed literally: step 1, the install on the controller (a clone of
this repository, its venv from requirements.txt), and step 2, least-privilege access, against the
lab API server. The shell blocks are taken from the guide as written and run with bash, with only
the values the guide asks you to set (the repository's URL, K8SEDGE_SITE, K8SEDGE_API,
K8SEDGE_ADMIN_KUBECONFIG): docs/rbac.yaml applied with kubectl (its ServiceAccount, token Secret
and RBAC objects stored by the API, the token filled in as the token controller does), a
kubeconfig built from that token, and `kubectl auth can-i` answering what the guide says it
answers. Then steps 2 to 4 against the lab, on its edges as fresh VMs: the access again, on the
lab's API; the inventory copied from inventory/example and set as step 3 says (the edges'
addresses, a group the lab has no VMs for dropped, the VIPs, the interface), its vault filled and
encrypted, the edges' host keys recorded, Ansible reaching them as the login user with sudo; then
the plan, the rollout and the curl through the VIP. A step that stops working as written fails
here."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from lab.topology import API_URL, KUBECONFIG_ADMIN, KUBECTL, REPO, SSH_KEY, host
from tests.lab.conftest import ansible_playbook, succeeded
from tests.lab.conftest import kubectl as lab_kubectl
from tests.lab.kubeapi_fixtures import kubeapi, kubectl  # noqa: F401  pylint: disable=unused-import
from lab.testlib.apiserver import LabApi

GUIDE = REPO / "docs" / "getting-started.md"
SITE = "prod"  # the guide's own example value, so that its unit file's inventory/prod is ours


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


# --- steps 2 to 4 on the lab's edges ---------------------------------------------------------------

VAULT_PASSWORD = "guide-vault-pass\n"
# Step 3's substitutions: the example's addresses -> the lab's (edges_dns has no VMs in the lab).
ADDRESSES = {"192.0.2.11": host("edge1").ip, "192.0.2.12": host("edge2").ip, "192.0.2.200": "10.213.0.200",
             "192.0.2.201": "10.213.0.201"}
SHOP = """\
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: default
  annotations: {lb.k8sedge.io/expose: "true", lb.k8sedge.io/hosts: shop.example.com}
spec:
  type: NodePort
  selector: {app: s2}
  ports: [{name: http, protocol: TCP, port: 80, targetPort: http}]
"""


def substituted(block: str) -> str:
    for example, lab in ADDRESSES.items():
        block = block.replace(example, lab)
    return re.sub(r" 192\.0\.2\.2[12]", "", block)  # the DNS edges' addresses: no such VMs here


def set_inventory(site: Path) -> None:
    """Step 3's prose: the edges' addresses, the groups you have, the VIPs, the interface."""
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    del hosts["edges"]["children"]["edges_dns"]
    for edge in hosts["edges"]["children"]["edges_web"]["hosts"].values():
        edge["ansible_host"] = ADDRESSES[edge["ansible_host"]]
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts))
    text = (site / "group_vars/edges/main.yml").read_text()
    text = text.replace("edge_keepalived_interface: ens18", "edge_keepalived_interface: eth0")
    text = re.sub(r"\n  dns:\n    - 192\.0\.2\.210", "", text)
    (site / "group_vars/edges/main.yml").write_text(substituted(text))


def as_controller_user(home: Path, argv: list[str]) -> list[str]:
    """argv in a mount namespace of its own where `home`/.ssh is root's: ssh reads ~/.ssh from the
    user's passwd entry, not $HOME, and the guide's steps write there (the edges' host keys) and
    read the key to reach them. The machine's own /root/.ssh is neither read nor written."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mkdir -p -m 700 /root/.ssh && mount --bind "$0/.ssh" /root/.ssh && exec "$@"', str(home), *argv]


def run_the_watcher_as_its_unit_says(clone: Path, home: Path, env: dict[str, str]) -> None:
    """Step 5: the unit file's WorkingDirectory, Environment and ExecStart (the clone in place of
    /opt/k8sedge, a file of ours for the vault password): the watcher starts, serves its metrics,
    runs site.yml for the first generation and stops cleanly on SIGTERM."""
    unit = re.search(r"^```ini\n(.*?)^```", section(5), re.MULTILINE | re.DOTALL)
    assert unit, section(5)
    settings = dict(line.split("=", 1) for line in unit.group(1).splitlines() if "=" in line)
    password = home / "vault-password"
    password.write_text(VAULT_PASSWORD)
    variable, _, path = settings["Environment"].partition("=")
    command = settings["ExecStart"].replace("/opt/k8sedge", str(clone)).split()
    log = home / "watch.log"
    with log.open("w") as out:
        watcher = subprocess.Popen(as_controller_user(home, command), cwd=settings["WorkingDirectory"].replace("/opt/k8sedge", str(clone)),
                                   env={**env, variable: str(password) if path else ""}, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        until = time.monotonic() + 600
        while "site.yml finished" not in log.read_text():
            assert watcher.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < until, f"no site.yml run within 600 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        address = command[command.index("--metrics-address") + 1]
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            assert b"k8sedge_playbook_runs_total" in answer.read()
    finally:
        watcher.terminate()
        assert watcher.wait(timeout=120) == 0, log.read_text()[-3000:]


def test_steps_2_to_5_on_the_lab_edges(lab: None, tmp_path: Path) -> None:
    """On the edges as the lab's inventory left them (test_site.py converges them from nothing):
    the guide's inventory changes their keepalived (unicast, a password) and adds a Service."""
    home = tmp_path
    (home / "origin").mkdir()
    (home / "origin" / "k8sedge.git").symlink_to(REPO)
    subprocess.run(["git", "clone", "-q", f"file://{home}/origin/k8sedge.git", str(home / "k8sedge")], check=True, timeout=120)
    clone = home / "k8sedge"
    (clone / ".venv").symlink_to(REPO / ".venv")  # step 1's venv, as test_steps_1_and_2 builds it from requirements.txt
    (home / ".ssh").mkdir(mode=0o700)
    shutil.copy(SSH_KEY, home / ".ssh" / "id_ed25519")  # "reachable from the controller over SSH with a key"
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    env = environment(home)
    env.update(PATH=f"{clone / '.venv/bin'}:{env['PATH']}", K8SEDGE_SITE=SITE, K8SEDGE_API=API_URL,
               K8SEDGE_ADMIN_KUBECONFIG=str(KUBECONFIG_ADMIN), ANSIBLE_FORCE_COLOR="0")

    def sh(block: str, stdin: str = "", timeout: float = 120) -> str:
        done = subprocess.run(as_controller_user(home, ["bash", "-c", "set -euo pipefail\n" + block]), cwd=clone, env=env,
                              input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"{block}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    try:
        apply, build, check = shell_blocks(section(2))
        sh(apply)
        sh(build)
        for line in check.strip().splitlines():
            command, _, expected = line.partition("#")
            answer = subprocess.run(as_controller_user(home, ["bash", "-c", command]), cwd=clone, env=env, capture_output=True,
                                    text=True, timeout=60)
            assert answer.stdout.strip() == expected.strip(), (line, answer.stdout, answer.stderr)

        vault, keys, reach = shell_blocks(section(3))
        set_inventory(clone / "inventory" / SITE)
        editor = home / "fill-vault"  # $EDITOR: the values the example asks for
        editor.write_text("#!/bin/sh\nprintf 'vault_k8sedge_vrrp_password: guide-12\\nvault_k8sedge_certificates: {}\\n' > \"$1\"\n")
        editor.chmod(0o755)
        env["EDITOR"] = str(editor)
        sh(vault, stdin=VAULT_PASSWORD * 2)
        assert (clone / "inventory" / SITE / "group_vars/edges/vault.yml").read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
        fingerprints = sh(substituted(keys))
        assert fingerprints.count("(ED25519)") == 2, fingerprints
        reached = sh(reach, stdin=VAULT_PASSWORD)
        assert reached.count("uid=0(root)") == 2, reached

        (home / "shop.yaml").write_text(SHOP)
        lab_kubectl("apply", "-f", str(home / "shop.yaml"))
        plan, rollout = shell_blocks(section(4))
        planned = sh(plan, stdin=VAULT_PASSWORD, timeout=600)
        assert planned.count("(haproxy): serves") == 2 and "would apply" in planned, planned[-3000:]
        served = sh(substituted(rollout), stdin=VAULT_PASSWORD, timeout=900)
        assert "Hostname: s2-" in served, served[-3000:]
        assert (home / ".local/state/k8sedge/probe-report.html").exists()
        run_the_watcher_as_its_unit_says(clone, home, env)
    finally:
        lab_kubectl("delete", "service", "shop", "--ignore-not-found")
        # The edges back on the lab's inventory and model, as the other tests expect them (the
        # override: the guard would hold the deleted Service's backend back).
        succeeded(ansible_playbook("site.yml", "-e", "k8sedge_fail_static_override=true", timeout=900))
