"""Hitless reloads: wrk with keep-alive from the lab's client through haproxy on edge1 while
haproxy is reloaded five times in ten seconds; not one request may fail.

The role puts haproxy on edge1 first (the lab's real model); haproxy is purged again at the end
if this test installed it, so the VM is left as found.
"""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from lab.topology import REPO, host
from tests.lab.conftest import in_host

pytestmark = pytest.mark.usefixtures("lab")

EDGE = "edge1"
DURATION_S = 10
RELOADS = 5
PLAYBOOK = """
- name: Read the model
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the edge model
      k8sedge.lb.edge_info:
        kubeconfig: {kubeconfig}
      register: edge
- name: Apply it with haproxy
  hosts: {edge}
  gather_facts: false
  tasks:
    - name: Apply the edge_haproxy role
      ansible.builtin.include_role:
        name: edge_haproxy
      vars:
        edge_haproxy_model: "{{{{ hostvars.localhost.edge.model }}}}"
        edge_haproxy_udp_frontends: skip
"""
MASTER_PROC = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy-master.sock');"
               " s.sendall(b'show proc\\n'); print(s.recv(65536).decode())")


def _installed() -> bool:
    return in_host(EDGE, "dpkg-query", "-W", "-f=${Status}", "haproxy", check=False).stdout.startswith("install ok installed")


def _master_reloads() -> int:
    out = in_host(EDGE, "python3", "-c", MASTER_PROC).stdout
    match = re.search(r"^\d+\s+master\s+(\d+)", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


@pytest.fixture(scope="module")
def haproxy_edge(tmp_path_factory):
    was_installed = _installed()
    playbook = tmp_path_factory.mktemp("haproxy") / "apply.yml"
    playbook.write_text(PLAYBOOK.format(kubeconfig=REPO / ".lab" / "kubeconfig", edge=EDGE))
    result = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), str(playbook)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    yield host(EDGE).ip
    if not was_installed:
        in_host(EDGE, "systemctl", "stop", "haproxy", check=False)
        in_host(EDGE, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-q", "haproxy", check=False, timeout=120)
        in_host(EDGE, "rm", "-rf", "/etc/haproxy", "/var/lib/k8sedge/haproxy", "/run/haproxy", check=False)


def _wrk_summary(out: str) -> dict[str, int]:
    requests = re.search(r"(\d+) requests in", out)
    assert requests, out
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(requests.group(1)), "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


@pytest.mark.parametrize("out, expected", [
    ("  20118 requests in 10.03s, 12.75MB read\n", {"requests": 20118, "socket_errors": 0, "non_2xx": 0}),
    ("  16826 requests in 10.06s, 10.66MB read\n  Socket errors: connect 0, read 1, write 0, timeout 0\n"
     "  Non-2xx or 3xx responses: 3\n", {"requests": 16826, "socket_errors": 1, "non_2xx": 3}),
])
def test_wrk_summary_counts_every_kind_of_failure(out, expected):
    assert _wrk_summary(out) == expected


def test_no_request_fails_during_five_reloads_under_keep_alive_load(haproxy_edge):
    url = f"http://{haproxy_edge}/"
    before = _master_reloads()
    wrk = subprocess.Popen([str(REPO / "lab" / "labctl"), "exec", "client", "--", "wrk", "-t2", "-c20", f"-d{DURATION_S}s",
                            "-H", "Host: s2.pctest", url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        for _ in range(RELOADS):
            in_host(EDGE, "systemctl", "reload", "haproxy")
            time.sleep((DURATION_S - 2) / RELOADS)
        out, _ = wrk.communicate(timeout=DURATION_S + 30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    summary = _wrk_summary(out)
    print(f"wrk through {EDGE} during {RELOADS} reloads: {summary}")
    assert _master_reloads() - before == RELOADS, out
    assert summary["requests"] > 1000, out
    assert summary == {**summary, "socket_errors": 0, "non_2xx": 0}, out
