"""Integration: the lab API server, lab.cluster.controllers and two kubelets in private network
namespaces, with real pods, EndpointSlices, NodePorts and health checks. Needs root and iproute2.

Layout (all in namespaces named k8sedge-t-<id>-*, nothing in the machine's own namespace):

    hub    bridge br0 10.219.0.1/24, the API server and the controllers; the test's main thread
           enters it, so the test (and the curl it runs) reaches every address below
    node1  10.219.0.21, pods 10.244.1.0/24, zone lab-a, its kubelet
    node2  10.219.0.22, pods 10.244.2.0/24, zone lab-b, its kubelet

Teardown stops every process by PID: those started here, then whatever still runs in the
namespaces (the pods the kubelets started), and deletes the namespaces, also after a failure.
"""
from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from lab import pki
from lab.cluster._endpoints import SERVICE_NAME_LABEL

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(REPO / ".venv" / "bin" / "kubectl")
HUB_IP = "10.219.0.1"
API_PORT = 6443
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class LabNode:
    name: str
    ip: str
    pod_cidr: str
    zone: str


NODES = (
    LabNode("node1", "10.219.0.21", "10.244.1.0/24", "lab-a"),
    LabNode("node2", "10.219.0.22", "10.244.2.0/24", "lab-b"),
)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@contextlib.contextmanager
def thread_in_netns(name: str) -> Iterator[None]:
    """Move the calling thread into a network namespace (sockets and children follow), and back."""
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
        yield
    finally:
        libc.setns(original, CLONE_NEWNET)
        os.close(original)
        os.close(target)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (AssertionError, subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


@dataclass
class MiniCluster:
    workdir: Path
    prefix: str = field(default_factory=lambda: f"k8sedge-t-{secrets.token_hex(3)}")
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    kubeconfig: Path | None = None

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    def netns(self, node: LabNode) -> str:
        return f"{self.prefix}-{node.name}"

    @property
    def namespaces(self) -> list[str]:
        return [self.hub, *(self.netns(n) for n in NODES)]

    # Setup.

    def create_network(self) -> None:
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{HUB_IP}/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, node in enumerate(NODES, 1):
            ns = self.netns(node)
            _ip("netns", "add", ns)
            _ip("-n", self.hub, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _spawn(self, name: str, netns: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", netns, *argv], cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        w = self.workdir
        pki.create_ca(w / "ca.crt", w / "ca.key")
        pki.create_server_cert(w / "api.crt", w / "api.key", w / "ca.crt", w / "ca.key", ["localhost"], [HUB_IP])
        token = secrets.token_hex(16)
        (w / "tokens.csv").write_text(f'{token},lab-admin,1000,"system:masters"\n')
        self.kubeconfig = w / "admin.kubeconfig"
        pki.write_kubeconfig(self.kubeconfig, f"https://{HUB_IP}:{API_PORT}", w / "ca.crt", token, "lab-admin", "t")
        self._spawn("kubeapi", self.hub, [
            sys.executable, "-m", "lab.kubeapi", "--bind", HUB_IP, "--port", str(API_PORT),
            "--tls-cert", str(w / "api.crt"), "--tls-key", str(w / "api.key"),
            "--token-auth-file", str(w / "tokens.csv"), "--authorization-policy", str(REPO / "lab" / "rbac.yaml"),
            "--authorization-policy", str(REPO / "docs" / "rbac.yaml"),
            "--log-file", str(w / "kubeapi-access.log")])
        wait_for(lambda: "listening on" in (w / "kubeapi.log").read_text(), 20, "the API server to listen")

    def start_controllers(self) -> None:
        self._spawn("controllers", self.hub, [
            sys.executable, "-m", "lab.cluster.controllers", "--kubeconfig", str(self.kubeconfig),
            "--node-monitor-grace-period", "40"])

    def start_kubelet(self, node: LabNode) -> None:
        self._spawn(f"kubelet-{node.name}", self.netns(node), [
            sys.executable, "-m", "lab.cluster.kubelet", "--kubeconfig", str(self.kubeconfig),
            "--node-name", node.name, "--node-ip", node.ip, "--pod-cidr", node.pod_cidr, "--zone", node.zone,
            "--state-dir", str(self.workdir / f"state-{node.name}")])

    # Use.

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        result = subprocess.run([KUBECTL, f"--kubeconfig={self.kubeconfig}", *args], input=input_text,
                                capture_output=True, text=True, timeout=20)
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def in_node(self, node: LabNode, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.netns(node), *argv], capture_output=True, text=True,
                              timeout=timeout)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # Teardown: by PID only.

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):  # kubelets and controllers before the API server
            _stop(proc.pid, proc)
        for ns in self.namespaces:
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        for ns in self.namespaces:
            _ip("netns", "delete", ns, check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def _stop(pid: int, proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        proc.wait()


MANIFESTS = ("10-s2.yaml", "20-local-web.yaml", "40-udp-echo.yaml")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniCluster]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("curl") is None:
        pytest.skip("needs root, iproute2 and curl")
    mc = MiniCluster(tmp_path_factory.mktemp("cluster"))
    with contextlib.ExitStack() as stack:
        stack.callback(mc.close)
        mc.create_network()
        stack.enter_context(thread_in_netns(mc.hub))
        mc.start_api()
        mc.start_controllers()
        for node in NODES:
            mc.start_kubelet(node)
        try:
            wait_for(lambda: _ready_nodes(mc) == {n.name for n in NODES}, 20, "both nodes Ready")
            for name in MANIFESTS:
                mc.kubectl("apply", "-f", str(REPO / "lab" / "manifests" / name))
            yield mc
        except BaseException:
            for name in mc.procs:
                print(f"--- {name} ---\n{mc.log_tail(name)}")
            raise


def _ready_nodes(mc: MiniCluster) -> set[str]:
    mc.check_alive()
    nodes = mc.get("nodes")["items"]
    return {n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}


def _pods(mc: MiniCluster, app: str) -> list[dict]:
    return mc.get("pods", "-n", "default", "-l", f"app={app}")["items"]


def _ready_pods(mc: MiniCluster, app: str, count: int) -> list[dict] | None:
    mc.check_alive()
    pods = [p for p in _pods(mc, app) if not p["metadata"].get("deletionTimestamp")]
    ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in p.get("status", {}).get("conditions", []))]
    return ready if len(ready) == count == len(pods) else None


def _endpoints(mc: MiniCluster, service: str) -> list[dict]:
    slices = mc.get("endpointslices", "-n", "default", "-l", f"{SERVICE_NAME_LABEL}={service}")["items"]
    return [e for s in slices for e in s.get("endpoints") or []]


def _curl(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-m", "3", *extra, url], capture_output=True, text=True, timeout=10)


def _node(name: str) -> LabNode:
    return next(n for n in NODES if n.name == name)


def test_nodes_register_like_kubelets(cluster: MiniCluster) -> None:
    for node in NODES:
        obj = cluster.get("node", node.name)
        assert obj["spec"]["podCIDR"] == node.pod_cidr
        assert obj["metadata"]["labels"]["topology.kubernetes.io/zone"] == node.zone
        assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == node.name
        assert {"type": "InternalIP", "address": node.ip} in obj["status"]["addresses"]


def test_pods_run_ready_with_ips_in_their_node_pod_cidr(cluster: MiniCluster) -> None:
    pods = wait_for(lambda: _ready_pods(cluster, "s2", 2), 30, "2 ready s2 pods")
    for pod in pods:
        node = _node(pod["spec"]["nodeName"])
        assert re.fullmatch(r"s2-[bcdfghjklmnpqrstvwxz2456789]+-[bcdfghjklmnpqrstvwxz2456789]{5}", pod["metadata"]["name"])
        assert pod["status"]["phase"] == "Running"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(node.pod_cidr)
        assert pod["status"]["hostIP"] == node.ip
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert {p["spec"]["nodeName"] for p in pods} == {"node1", "node2"}, "the scheduler spreads pods"
    deploy = wait_for(lambda: (d := cluster.get("deployment", "-n", "default", "s2"))["status"].get("readyReplicas") == 2 and d,
                      10, "deployment status readyReplicas 2")
    assert deploy["status"]["observedGeneration"] == deploy["metadata"]["generation"]


def test_endpointslice_lists_the_ready_pods(cluster: MiniCluster) -> None:
    pods = wait_for(lambda: _ready_pods(cluster, "s2", 2), 30, "2 ready s2 pods")
    want = sorted((p["status"]["podIP"], p["metadata"]["name"], p["spec"]["nodeName"]) for p in pods)

    def slice_matches() -> bool:
        got = sorted((e["addresses"][0], e["targetRef"]["name"], e["nodeName"]) for e in _endpoints(cluster, "s2")
                     if e["conditions"] == {"ready": True, "serving": True, "terminating": False})
        return got == want

    wait_for(slice_matches, 10, "the s2 EndpointSlice to list both pods ready")
    [eps] = cluster.get("endpointslices", "-n", "default", "-l", f"{SERVICE_NAME_LABEL}=s2")["items"]
    assert eps["metadata"]["name"].startswith("s2-")
    assert eps["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert {e["zone"] for e in eps["endpoints"]} == {"lab-a", "lab-b"}
    legacy = cluster.get("endpoints", "-n", "default", "s2")
    assert sorted(a["ip"] for a in legacy["subsets"][0]["addresses"]) == sorted(w[0] for w in want)


def test_nodeport_answers_with_the_echo_page_from_every_node(cluster: MiniCluster) -> None:
    pods = wait_for(lambda: _ready_pods(cluster, "s2", 2), 30, "2 ready s2 pods")
    names = {p["metadata"]["name"] for p in pods}
    for node in NODES:
        seen = set()
        for _ in range(4):
            result = _curl(f"http://{node.ip}:31780/hello?x=1", "-H", "Host: s2.pctest")
            assert result.returncode == 0, result.stderr
            first = result.stdout.splitlines()[0]
            assert first.startswith("Hostname: s2-")
            assert "\treal path=/hello\n" in result.stdout and "\thost=s2.pctest\n" in result.stdout
            seen.add(first.split()[1])
        assert seen == names, f"round robin over both pods (one on the other node) from {node.name}"


def test_scaling_up_adds_a_pod_and_an_endpoint(cluster: MiniCluster) -> None:
    cluster.kubectl("scale", "-n", "default", "deployment/s2", "--replicas=3")
    pods = wait_for(lambda: _ready_pods(cluster, "s2", 3), 30, "3 ready s2 pods")
    ips = sorted(p["status"]["podIP"] for p in pods)
    wait_for(lambda: sorted(e["addresses"][0] for e in _endpoints(cluster, "s2") if e["conditions"]["ready"]) == ips,
             10, "3 ready endpoints")


def test_deleted_pod_is_terminating_then_gone(cluster: MiniCluster) -> None:
    pods = wait_for(lambda: _ready_pods(cluster, "s2", 3), 30, "3 ready s2 pods")
    victim = pods[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", "-n", "default", victim, "--wait=false")

    def victim_conditions() -> dict | None:
        return next((e["conditions"] for e in _endpoints(cluster, "s2") if e["targetRef"]["name"] == victim), None)

    assert wait_for(lambda: (c := victim_conditions()) and c["terminating"] and c, 10, "a terminating endpoint") == {
        "ready": False, "serving": True, "terminating": True}
    wait_for(lambda: victim_conditions() is None, 20, "the deleted pod's endpoint to go")
    wait_for(lambda: victim not in {p["metadata"]["name"] for p in _pods(cluster, "s2")}, 10, "the pod to be gone")
    wait_for(lambda: _ready_pods(cluster, "s2", 3), 30, "a replacement pod")


def test_external_traffic_policy_local_health_check(cluster: MiniCluster) -> None:
    [pod] = wait_for(lambda: _ready_pods(cluster, "local-web", 1), 30, "the local-web pod")
    home = pod["spec"]["nodeName"]
    wait_for(lambda: any(e["conditions"]["ready"] for e in _endpoints(cluster, "local-web")), 10, "its endpoint")
    for node in NODES:
        local = node.name == home

        def check() -> bool:
            result = _curl(f"http://{node.ip}:31791/healthz", "-i")
            return result.returncode == 0 and (" 200 " if local else " 503 ") in result.stdout.splitlines()[0]

        wait_for(check, 10, f"health check of {node.name} to say {'200' if local else '503'}")
        body = json.loads(_curl(f"http://{node.ip}:31791/healthz").stdout)
        assert body == {"service": {"namespace": "default", "name": "local-web"},
                        "localEndpoints": 1 if local else 0, "serviceProxyHealthy": True}
        result = _curl(f"http://{node.ip}:31781/")
        if local:
            assert result.returncode == 0 and result.stdout.startswith("Hostname: local-web-")
        else:
            assert result.returncode != 0, "no local endpoint: the node must not forward"


def test_udp_echo_through_a_nodeport(cluster: MiniCluster) -> None:
    wait_for(lambda: _ready_pods(cluster, "udp-echo", 2), 30, "2 ready udp-echo pods")
    wait_for(lambda: len([e for e in _endpoints(cluster, "udp-echo") if e["conditions"]["ready"]]) == 2, 10, "2 endpoints")
    for node in NODES:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(b"hi", (node.ip, 31784))
            reply, _ = sock.recvfrom(1024)
        name, _, rest = reply.decode().partition(": ")
        assert name.startswith("udp-echo-") and rest == "hi"


def _pod_records(cluster: MiniCluster, node: LabNode) -> dict[str, dict]:
    return {f.stem: json.loads(f.read_text()) for f in (cluster.workdir / f"state-{node.name}").glob("*.json")}


def test_dead_pod_process_is_restarted(cluster: MiniCluster) -> None:
    pod = wait_for(lambda: _ready_pods(cluster, "s2", 3), 30, "3 ready s2 pods")[0]
    node = _node(pod["spec"]["nodeName"])
    record = _pod_records(cluster, node)[pod["metadata"]["uid"]]
    os.kill(record["pid"], signal.SIGKILL)

    def restarted() -> dict | None:
        status = cluster.get("pod", "-n", "default", pod["metadata"]["name"])["status"]["containerStatuses"][0]
        return status if status["restartCount"] == 1 and status["ready"] else None

    status = wait_for(restarted, 20, "the pod's process to be restarted and ready")
    assert status["lastState"]["terminated"]["exitCode"] == 137


def test_restarted_kubelet_adopts_running_pods(cluster: MiniCluster) -> None:
    node = NODES[0]
    before = {uid: r["pid"] for uid, r in _pod_records(cluster, node).items()}
    assert before, "node1 runs pods"
    proc = cluster.procs[f"kubelet-{node.name}"]
    _stop(proc.pid, proc)
    assert proc.returncode == 0
    assert all(os.path.exists(f"/proc/{pid}") for pid in before.values()), "pods outlive their kubelet"
    cluster.start_kubelet(node)
    wait_for(lambda: "running (" in cluster.log_tail(f"kubelet-{node.name}"), 15, "the kubelet to run again")
    time.sleep(1.5)
    assert {uid: r["pid"] for uid, r in _pod_records(cluster, node).items()} == before
    assert "started pid" not in cluster.log_tail(f"kubelet-{node.name}")
    assert _curl(f"http://{node.ip}:31780/").stdout.startswith("Hostname: s2-")


def test_kube_proxy_healthz(cluster: MiniCluster) -> None:
    for node in NODES:
        result = _curl(f"http://{node.ip}:10256/healthz")
        assert result.returncode == 0 and json.loads(result.stdout)["nodeEligible"] is True
    cluster.check_alive()
