"""The lab stands up as a whole edge site: what issue 2's 'done when' lists, checked."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from lab.topology import HOSTS, KNOWN_HOSTS, LOGIN_USER, REPO, SSH_KEY, host
from tests.lab.conftest import in_host, kubectl, labctl

pytestmark = pytest.mark.usefixtures("lab")

NODE1, NODE2 = host("node1"), host("node2")


def test_client_reaches_s2_through_a_node_port():
    for node in (NODE1, NODE2):
        page = in_host("client", "curl", "-sS", "-m", "5", "-H", "Host: s2.pctest",
                       f"http://{node.ip}:31780/").stdout
        assert re.search(r"^Hostname: s2-[a-z0-9]+-[a-z0-9]{5}$", page, re.M), page
        assert "host=s2.pctest" in page


def test_seed_tcp_check_answers_head_on_the_node_port():
    request = "HEAD / HTTP/1.1\r\n\r\n"
    reply = in_host("client", "bash", "-c",
                    f"printf '{request}' | socat -t 2 - TCP:{NODE1.ip}:31780").stdout
    assert reply.startswith("HTTP/1.1 200 OK"), reply


def test_kubectl_lists_the_seed_services():
    out = kubectl("get", "svc", "-A").stdout
    for namespace, name in (("default", "s2"), ("default", "local-web"), ("default", "multi"),
                            ("default", "udp-echo"), ("default", "kubernetes")):
        assert re.search(rf"^{namespace}\s+{name}\s", out, re.M), out
    assert re.search(r"^default\s+s2\s+NodePort\s+10\.96\.\S+\s+<none>\s+80:31780/TCP\s", out, re.M), out


def test_reader_kubeconfig_reads_but_cannot_write():
    assert "s2" in kubectl("get", "endpointslices", "-n", "default", admin=False).stdout
    denied = kubectl("delete", "svc", "s2", admin=False, check=False)
    assert denied.returncode != 0
    assert 'User "system:serviceaccount:k8sedge:edge-reader" cannot delete resource "services"' in denied.stderr


def test_ansible_reaches_both_edges_over_ssh():
    result = subprocess.run(
        [str(REPO / ".venv/bin/ansible"), "-i", "inventory/lab", "edges", "-m", "ansible.builtin.ping",
         "-o"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("edge1", "edge2"):
        assert re.search(rf"^{name} \| SUCCESS", result.stdout, re.M), result.stdout


def test_a_login_user_with_sudo_becomes_root_on_both_edges():
    """As a real edge VM has one: inventory/example logs in as it and becomes root with sudo."""
    result = subprocess.run(
        [str(REPO / ".venv/bin/ansible"), "-i", "inventory/lab", "edges", "-e", f"ansible_user={LOGIN_USER}", "--become",
         "-m", "ansible.builtin.command", "-a", "id -un", "-o"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("edge1", "edge2"):
        assert re.search(rf"^{name} \| CHANGED \| rc=0 \| \(stdout\) root$", result.stdout, re.M), result.stdout


def test_edges_are_booted_systems_with_their_own_identity():
    for h in HOSTS:
        if not h.is_vm or h.on_demand:  # edge3 runs only while a test that needs it does
            continue
        assert in_host(h.name, "hostname").stdout.strip() == h.name
        assert in_host(h.name, "cat", "/proc/1/comm").stdout.strip() == "systemd"
        state = in_host(h.name, "systemctl", "is-system-running", check=False).stdout.strip()
        assert state in ("running", "degraded"), state
        ssh = subprocess.run(
            ["ssh", "-i", str(SSH_KEY), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{h.ip}", "hostname"],
            capture_output=True, text=True, timeout=30)
        assert ssh.stdout.strip() == h.name, ssh.stderr


def test_edges_install_real_packages_from_the_lab_mirror():
    in_host("edge1", "apt-get", "update", "-q", timeout=120)
    in_host("edge1", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "socat",
            timeout=180)
    assert "socat version" in in_host("edge1", "socat", "-V").stdout
    policy = in_host("edge1", "apt-cache", "policy", "haproxy", "keepalived", "libnginx-mod-stream").stdout
    assert "(none)" not in policy.split("Candidate:")[1].splitlines()[0], policy


def test_ansible_apt_on_a_fresh_edge_fetches_the_package_lists():
    # cache_valid_time must not take the image's empty lists for a fresh update.
    result = subprocess.run(
        [str(REPO / ".venv/bin/ansible"), "-i", "inventory/lab", "edge2", "-m", "ansible.builtin.apt",
         "-a", "name=socat update_cache=true cache_valid_time=3600"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "socat version" in in_host("edge2", "socat", "-V").stdout


def test_nothing_routes_out_of_the_lab():
    for h in HOSTS:
        if h.on_demand:
            continue
        routes = in_host(h.name, "ip", "route", "show").stdout
        assert "default" not in routes, f"{h.name}: {routes}"


def test_local_traffic_policy_health_check_follows_local_endpoints():
    svc = json.loads(kubectl("get", "svc", "local-web", "-o", "json").stdout)
    port = svc["spec"]["healthCheckNodePort"]
    codes = {}
    for node in (NODE1, NODE2):
        codes[node.name] = in_host("client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                   "-m", "5", f"http://{node.ip}:{port}/healthz").stdout
    assert sorted(codes.values()) == ["200", "503"], codes
    pods = json.loads(kubectl("get", "pods", "-l", "app=local-web", "-o", "json").stdout)["items"]
    [pod] = pods
    assert codes[pod["spec"]["nodeName"]] == "200"


def test_udp_service_echoes_through_the_node_port():
    svc = json.loads(kubectl("get", "svc", "udp-echo", "-o", "json").stdout)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    reply = in_host("client", "bash", "-c",
                    f"printf ping | socat -t 2 - UDP:{NODE2.ip}:{node_port}").stdout
    assert re.match(r"udp-echo-[a-z0-9]+-[a-z0-9]{5}: ping", reply), reply


def test_scaling_through_the_api_starts_and_stops_real_pods():
    kubectl("scale", "deployment", "s2", "--replicas=3")
    try:
        kubectl("wait", "--for=jsonpath={.status.readyReplicas}=3", "deployment/s2", "--timeout=60s")
        seen = set()
        for _ in range(12):
            page = in_host("client", "curl", "-sS", "-m", "5", f"http://{NODE1.ip}:31780/").stdout
            seen.add(re.search(r"^Hostname: (\S+)$", page, re.M).group(1))
        assert len(seen) == 3, seen
    finally:
        kubectl("scale", "deployment", "s2", "--replicas=2")
    kubectl("wait", "--for=jsonpath={.status.replicas}=2", "deployment/s2", "--timeout=60s")


def test_labctl_up_twice_is_safe_and_status_lists_everything():
    again = labctl("up")
    assert "already up" in again.stdout
    status = labctl("status").stdout
    for h in HOSTS:
        state = "down" if h.on_demand else "(running|up)"  # edge3 is off until a test starts it
        assert re.search(rf"^{h.name}\s+\w+\s+{re.escape(h.ip)}\s+{state}$", status, re.M), status
