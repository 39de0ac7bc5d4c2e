"""Faults on the lab, each with its figure in the assertion messages (docs/reliability.md):

- the API server dies in the middle of the model read, after it (mid-rollout) and during a watch;
- an edge becomes unreachable over SSH in the middle of a rollout;
- the edge's disk is full while the new config is staged;
- VRRP between the edges is cut (both become master);
- the watcher is killed and restarted during a burst of changes.

Each test leaves the edges converged on the cluster as it leaves it; the module ends on the lab's
model. The API server "dies" as its clients
see it: a relay in front of it (tests/lab/api_proxy.py) cuts every connection and refuses new ones;
the lab's API server itself keeps the cluster's objects, as a real control plane keeps them in etcd.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import vm
from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import MODEL_OPTIONS, REPO, host
from tests.lab.api_proxy import ApiProxy
from tests.lab.conftest import ansible_playbook, in_host, kubectl, succeeded

pytestmark = pytest.mark.usefixtures("lab")

EDGES = ("edge1", "edge2")
VIPS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]["default"]
LIVE_CONFIG = "/etc/haproxy/haproxy.cfg"
LAST_GOOD = "/var/lib/k8sedge/haproxy/last-good/haproxy.cfg"
BURST = [f"fault-burst-{i}" for i in range(5)]  # Services of the watcher test, each on <name>.pctest


def drop_on_edge(match: str) -> str:
    """A shell command that drops what an edge sends on eth0 matching the u32 `match`: a class whose
    queue holds nothing (pfifo limit 0), as the lab's kernel has no tc actions to load."""
    return ("tc qdisc add dev eth0 root handle 1: htb default 10 && tc class add dev eth0 parent 1: classid 1:10 htb rate 10gbit"
            " && tc class add dev eth0 parent 1: classid 1:20 htb rate 10gbit && tc qdisc add dev eth0 parent 1:20 pfifo limit 0"
            f" && tc filter add dev eth0 parent 1: protocol ip prio 1 u32 {match} flowid 1:20")


def figure(text: str) -> None:
    """The test's figure, for docs/reliability.md (pytest -s shows it; a failure shows it too)."""
    print(f"FIGURE {text}")


def stop(run: subprocess.Popen[str]) -> None:
    """A playbook a failed test leaves running would go on changing the edges under the next one."""
    if run.poll() is None:
        run.kill()
        run.wait()


def checksums() -> dict[str, str]:
    return {edge: in_host(edge, "sha256sum", LIVE_CONFIG).stdout.split()[0] for edge in EDGES}


def last_good(edge: str) -> str:
    return in_host(edge, "sha256sum", LAST_GOOD).stdout.split()[0]


def records() -> dict[str, str]:
    return {edge: in_host(edge, "cat", steps.STATE_RECORD).stdout for edge in EDGES}


def answers(edge: str, host_header: str) -> bool:
    return "Hostname: multi-" in in_host("client", "curl", "-sS", "-m", "5", "-H", f"Host: {host_header}",
                                         f"http://{host(edge).ip}/", check=False).stdout


def add_host(name: str) -> str:
    """A new route on default/multi: a structural change, and the test's own (no converge between tests)."""
    kubectl("annotate", "service", "multi", "--overwrite", f"lb.k8sedge.io/hosts=multi.pctest,{name}")
    return name


def recap(output: str) -> dict[str, dict[str, int]]:
    return {name: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
            for name, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE)}


@pytest.fixture(scope="module", autouse=True)
def lab_model() -> Iterator[None]:
    """The module starts on the lab's model and ends on it. Each test leaves the edges converged on
    the cluster it leaves (a host of its own, a scale, Services): no converge between tests."""
    succeeded(ansible_playbook("site.yml"))
    yield
    kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest")
    kubectl("delete", "service", *BURST, "--ignore-not-found")
    c.scale(c.REPLICAS)
    c.wait_pods(c.REPLICAS)
    # Removing the tests' Services at once takes more than the guard's 30% of targets: intended.
    succeeded(ansible_playbook("site.yml", "-e", "k8sedge_fail_static_override=true"))


def read_bytes(proxy: ApiProxy, kubeconfig: Path) -> int:
    """How many bytes the API server sends for one whole model read through the relay."""
    options = " ".join(f"{k}={v}" for k, v in MODEL_OPTIONS.items())
    result = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-m", "k8sedge.lb.edge_info", "-a",
                             f"kubeconfig={kubeconfig} {options}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    return proxy.sent


def test_an_api_server_that_dies_in_the_middle_of_the_read_changes_nothing(tmp_path):
    whole = ApiProxy().start()
    total = read_bytes(whole, whole.kubeconfig(tmp_path / "whole"))
    whole.kill()
    new_host = add_host("fault-read.pctest")
    before = (checksums(), records())
    dying = ApiProxy(die_after=total // 2).start()
    run = ansible_playbook("site.yml", "-e", f"k8sedge_kubeconfig={dying.kubeconfig(tmp_path / 'dying')}")
    dying.kill()
    cut = f"the API server died after {total // 2} of the {total} bytes of a read"
    assert run.returncode != 0, f"{cut}, and site.yml went on:\n{run.stdout[-3000:]}"
    assert not [edge for edge in EDGES if answers(edge, new_host)], f"{cut}: something was rolled out from a partial read"
    assert re.search(r"fatal: \[edge1 -> localhost\]: FAILED!", run.stdout), run.stdout[-3000:]
    assert (checksums(), records()) == before, f"{cut}: an edge changed"
    figure(f"read cut: {cut}; nothing applied")
    # The next run, with the API back, converges.
    succeeded(ansible_playbook("site.yml"))
    assert all(answers(edge, new_host) for edge in EDGES)


def test_an_api_server_that_dies_mid_rollout_does_not_stop_it(tmp_path):
    """The model is read once, whole, before anything changes: the rollout needs no API after it."""
    proxy = ApiProxy().start()
    new_host = add_host("fault-rollout.pctest")
    command = [str(REPO / ".venv/bin/ansible-playbook"), "-i", "inventory/lab", "playbooks/site.yml",
               "-e", f"k8sedge_kubeconfig={proxy.kubeconfig(tmp_path / 'kubeconfig')}"]
    before = checksums()["edge1"]
    log = tmp_path / "site.log"
    with log.open("w") as out:
        run = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"})
    try:
        # The rollout has begun once the canary's live config changes: the API server dies then.
        c._wait(lambda: run.poll() is not None or checksums()["edge1"] != before, 600, "edge1's config did not change")
        mid_rollout = run.poll() is None
        proxy.kill()
        assert run.wait(timeout=600) == 0, log.read_text()[-4000:]
    finally:
        stop(run)
    assert mid_rollout, "site.yml ended before edge1's config changed: the API server did not die mid-rollout"
    assert all(answers(edge, new_host) for edge in EDGES), "the API server died once the rollout began; the rollout did not finish"
    again = succeeded(ansible_playbook("site.yml"))
    assert {edge: recap(again)[edge]["changed"] for edge in EDGES} == {"edge1": 0, "edge2": 0}
    figure("API gone mid-rollout: the run finished, rc 0; the next run changed=0 on both edges")


def test_a_watch_whose_api_server_dies_applies_nothing_and_catches_up_when_it_returns(tmp_path):
    proxy = ApiProxy().start()
    kubeconfig = proxy.kubeconfig(tmp_path / "kubeconfig")
    watch = c.Watch.start(tmp_path, "-i", "inventory/lab/hosts.yml", "--exit-after", "600", kubeconfig=kubeconfig)
    try:
        watch.wait_log("first generation", 60)
        proxy.kill()
        watch.wait_log("Kubernetes API unreachable", 60)
        died = time.time()
        c.scale(c.REPLICAS + 1)  # a change the watcher cannot see yet
        new = c.wait_pods(c.REPLICAS + 1)
        assert not [line for line in watch.lines() if line["path"] == "playbook"], "a playbook ran while the API was away"
        away = time.time() - died
        proxy.start()  # the API server is back, at the same address
        back = time.monotonic()
        watch.wait_log("Kubernetes API reachable again", 120)
        generation = c.model_generation()
        c._wait(lambda: all(in_host(edge, "sh", "-c", steps.SERVED_GENERATION, check=False).stdout.strip() == generation
                             for edge in EDGES), 300, f"the edges did not serve generation {generation[:12]}")
        figure(f"watch: API away {away:.1f} s, 0 playbook runs meanwhile; both edges served the change"
               f" {time.monotonic() - back:.1f} s after it returned")
        watch.wait_idle(300)
        runs = [line for line in watch.lines() if line["path"] == "playbook"]
        assert runs and all(r["started"] > died and r["rc"] == 0 for r in runs), watch.tail()
        address = c.kubectl("get", "pod", sorted(new)[-1], "-o", "jsonpath={.status.podIP}")
        assert address and all(address in in_host(edge, "cat", LIVE_CONFIG).stdout for edge in EDGES)
    finally:
        watch.stop()
        proxy.kill()


def test_an_edge_unreachable_over_ssh_mid_rollout_stops_the_run_and_the_next_run_converges(tmp_path):
    new_host = add_host("fault-ssh.pctest")
    promoted = last_good("edge1")
    # A connection per task and a 5 s connect timeout: an edge that stops answering is unreachable
    # at its next task, not after TCP gives up on a connection kept open since play 1.
    command = [str(REPO / ".venv/bin/ansible-playbook"), "-i", "inventory/lab", "playbooks/site.yml"]
    log = tmp_path / "site.log"
    with log.open("w") as out:
        run = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_TIMEOUT": "5",
                                    "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ServerAliveInterval=1 -o ServerAliveCountMax=3"})
    cut = 0.0
    try:
        # edge1 (the canary) has been proven and promoted, its last-known-good config is the new
        # one: edge2's SSH goes silent before its turn (its answers are dropped on the way out; the
        # open connection of play 1 dies with them).
        c._wait(lambda: run.poll() is not None or last_good("edge1") != promoted, 600, "edge1 was not promoted")
        if run.poll() is None:
            in_host("edge2", "sh", "-c", drop_on_edge("match ip protocol 6 0xff match ip sport 22 0xffff"))
            cut = time.monotonic()
        code = run.wait(timeout=600)
        text = log.read_text()
        assert cut and code != 0, text[-4000:]
        assert re.search(r"UNREACHABLE.*edge2|edge2.*UNREACHABLE", text), text[-4000:]
        stopped = time.monotonic() - cut
        assert answers("edge1", new_host), "edge1 does not serve the change it was proven with"
        # The other edge keeps serving: both VIPs answer.
        for vip in VIPS:
            answer = in_host("client", "curl", "-sS", "-m", "5", "-H", "Host: s2.pctest", f"http://{vip}/", check=False)
            holders = {edge: in_host(edge, "ip", "-4", "-br", "addr", "show", "eth0").stdout.split()[2:] for edge in EDGES}
            assert "Hostname: s2-" in answer.stdout, f"{vip}: {answer.stderr.strip()}; addresses {holders}"
    finally:
        in_host("edge2", "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        stop(run)
    c._wait(lambda: vm.ssh_ready(host("edge2")), 60, "edge2's SSH did not come back")
    succeeded(ansible_playbook("site.yml"))
    assert all(answers(edge, new_host) for edge in EDGES), f"the run stopped {stopped:.1f} s after edge2's SSH went silent; the next did not converge"
    figure(f"SSH: the run stopped {stopped:.1f} s after edge2's SSH went silent (UNREACHABLE); both VIPs answered; the next run"
           " converged both edges")


def test_a_full_disk_while_staging_leaves_the_live_config_and_says_so():
    staging = "/var/lib/k8sedge/haproxy/staging"
    new_host = add_host("fault-disk.pctest")
    before = checksums()
    # A 64 KiB file system, full, where the new config is staged on the canary.
    in_host("edge1", "sh", "-c", f"mkdir -p {staging} && mount -t tmpfs -o size=64k k8sedge-full {staging}"
            f" && (dd if=/dev/zero of={staging}/.fill bs=4k 2>/dev/null || true)")
    try:
        run = ansible_playbook("site.yml")
    finally:
        in_host("edge1", "umount", staging)
    assert run.returncode != 0, run.stdout[-3000:]
    assert "No space left on device" in run.stdout, run.stdout[-3000:]
    assert checksums() == before, "a live config changed although staging failed"
    assert not [edge for edge in EDGES if answers(edge, new_host)], "the change went live although staging failed"
    assert json.loads(records()["edge2"])["rollout"]["status"] == "passed"
    succeeded(ansible_playbook("site.yml"))
    assert all(answers(edge, new_host) for edge in EDGES)
    figure("disk full: No space left on device on edge1, rolled back; live configs unchanged; the next run converged")




def drift() -> subprocess.CompletedProcess[str]:
    return ansible_playbook("drift.yml", "-e", "k8sedge_drift_fail=true")


def test_vrrp_cut_between_the_edges_is_reported_as_split_brain_and_heals():
    assert drift().returncode == 0
    for edge in EDGES:  # every advertisement an edge sends is dropped on its way out
        in_host(edge, "sh", "-c", drop_on_edge("match ip protocol 112 0xff"))
    cut = time.monotonic()
    try:
        both = c._wait(lambda: all("10.213.0.200/" in in_host(e, "ip", "-4", "-br", "addr").stdout
                                    and "10.213.0.201/" in in_host(e, "ip", "-4", "-br", "addr").stdout for e in EDGES)
                        and time.monotonic() - cut, 30, "both edges did not take both VIPs")
        report = drift()
        assert report.returncode != 0
        assert "VRRP k8sedge_default_10.213.0.200: MASTER on edge1, edge2 (split brain" in report.stdout, report.stdout[-3000:]
        # Traffic still answers: whichever edge the client's ARP cache names serves every route.
        assert "Hostname: s2-" in in_host("client", "curl", "-sS", "-m", "5", "-H", "Host: s2.pctest", "http://10.213.0.200/").stdout
    finally:
        for edge in EDGES:
            in_host(edge, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
    healed = time.monotonic()
    c._wait(lambda: "10.213.0.200/" not in in_host("edge2", "ip", "-4", "-br", "addr").stdout
             and "10.213.0.201/" not in in_host("edge1", "ip", "-4", "-br", "addr").stdout, 30,
             f"the split brain (both masters {both:.1f} s after the cut) did not heal")
    took = time.monotonic() - healed
    assert drift().returncode == 0, f"split brain {both:.1f} s after the cut; healed in {took:.1f} s"
    figure(f"VRRP cut: both edges MASTER of both VIPs {both:.1f} s after the cut, reported by drift.yml; one holder each"
           f" {took:.1f} s after the link returned")


def test_a_watcher_killed_in_a_burst_of_changes_catches_up_when_restarted(tmp_path):
    names = BURST
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
    first = c.Watch.start(tmp_path / "first", "-i", "inventory/lab/hosts.yml", "--exit-after", "600")
    try:
        first.wait_log("first generation", 60)
        for index, name in enumerate(names):
            c.kubectl("apply", "-f", "-", stdin=c.SERVICE.format(name=name, prefix="fault-burst"))
            if index == 1:  # a playbook is under way when the watcher dies
                first.wait_log("running site.yml", 60)
                os.killpg(first.process.pid, signal.SIGKILL)
                first.process.wait()
    finally:
        first.stop()
    second = c.Watch.start(tmp_path / "second", "-i", "inventory/lab/hosts.yml", "--exit-after", "600", skip_first=False)
    restarted = time.monotonic()
    try:
        generation = c.model_generation()
        c._wait(lambda: all(in_host(edge, "sh", "-c", steps.SERVED_GENERATION, check=False).stdout.strip() == generation
                             for edge in EDGES), 300, f"the edges did not reach generation {generation[:12]} after the restart")
        second.wait_idle(300)
        missing = [(edge, name) for edge in EDGES for name in names
                   if "Hostname: s2-" not in in_host("client", "curl", "-sS", "-m", "5", "-H", f"Host: {name}.pctest",
                                                     f"http://{host(edge).ip}/", check=False).stdout]
        assert not missing, f"lost after the watcher was killed mid-burst: {missing}\n{second.tail()}"
        figure(f"watcher killed mid-burst: restarted, {len(names)} of {len(names)} Services served through both edges"
               f" {time.monotonic() - restarted:.1f} s after the restart")
    finally:
        second.stop()
