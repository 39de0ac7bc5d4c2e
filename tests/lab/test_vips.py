"""No path that serves a proven or an endpoint-only change moves a VIP off a healthy edge, and a
planned move of them (drain, undrain) breaks no connection.

For each path that changes the edges (site.yml, endpoints.yml, the watcher's fast path followed by
endpoints.yml, a rollback on the canary, a check-mode run), the lab's client sends a request every
100 ms through both VIPs while the path runs and for longer than keepalived's config grace after
it ends (the lab sets it to 20 s: inventory/lab/group_vars/edges.yml). Every request must answer,
and no VRRP instance may change state on either edge in that time (the notify script records each
change in /run/k8sedge-keepalived/<instance>.state).

The drain test sends requests that each take SLOW_MS to answer through both VIPs, so connections
are in flight on the drained edge when its VIP moves; every one of them must answer, and the drain
must have waited for some (else the handoff proved nothing).

The rollback test is also the gate's: a Service whose `health-check: http` lands on a port that
speaks TLS (the targets answer a TCP connection, haproxy's HTTP check never passes) is refused on
the canary once haproxy's first checks have finished, rolled back there, and edge2 never changes.
"""
from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from lab import credentials, pki
from lab.testlib import converge as c
from lab.topology import REPO, host
from tests.lab.conftest import ansible_playbook, in_host, kubectl, succeeded

pytestmark = pytest.mark.usefixtures("lab")

GROUP_VARS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())
VIPS = tuple(GROUP_VARS["k8sedge_pool_vips"]["default"])
GRACE = float(GROUP_VARS["edge_keepalived_config_grace"])
AFTER = GRACE + 5  # watched after the path ends: past the grace and a few of keepalived's 1 s checks
PRIMARY = {VIPS[0]: "edge1", VIPS[1]: "edge2"}
PROBE_SECONDS = 120  # the request loop's own bound (lab/testlib/pod_probe.py)
SLOW_MS = 1500  # each request under load is answered this late (the echo pods' /delay/<ms>): about 75 in flight per VIP
LOAD_SECONDS = 150  # the drain test's load, at most (lab/testlib/vip_client.py stops it earlier)
STATE = "/var/lib/k8sedge/state.json"
RAW_TLS = """
apiVersion: v1
kind: Service
metadata:
  name: vip-raw-tls
  namespace: default
  annotations:
    lb.k8sedge.io/expose: "true"
    lb.k8sedge.io/tcp-ports: "9443:https"
    lb.k8sedge.io/health-check: http
spec:
  type: NodePort
  selector:
    app: tls-echo
  ports:
    - name: https
      protocol: TCP
      port: 8443
      targetPort: https
"""


def vrrp_states() -> dict[tuple[str, str], tuple[str, float]]:
    """(edge, VIP) -> (state, epoch of the last change), from the notify script's records (none
    on an edge whose keepalived never ran: a rebuilt one)."""
    states = {}
    for edge in c.EDGES:
        for vip in VIPS:
            read = in_host(edge, "cat", f"/run/k8sedge-keepalived/k8sedge_default_{vip}.state", check=False)
            if read.returncode == 0:
                text = read.stdout.split()
                states[(edge, vip)] = (text[0], float(text[1]))
    return states


def record(edge: str) -> dict:
    """The edge's state record."""
    return json.loads(in_host(edge, "cat", STATE).stdout)


def held_by(expected: dict[str, str], seconds: float = 10) -> None:
    """Wait until each VIP is on the edge `expected` names, as its keepalived recorded it."""
    until = time.monotonic() + seconds
    while {vip: edge for (edge, vip), (state, _) in vrrp_states().items() if state == "MASTER"} != expected:
        if time.monotonic() > until:
            pytest.fail(f"expected the VIPs on {expected} within {seconds:g} s, keepalived says {vrrp_states()}")
        time.sleep(0.2)


def converged() -> None:
    """The lab's model on both edges, each VIP on its primary: where every test starts and ends."""
    succeeded(ansible_playbook("site.yml"))
    held_by(PRIMARY, seconds=30)


@contextmanager
def vips_watched() -> Iterator[None]:
    """Requests every 100 ms through both VIPs while the body runs and AFTER seconds past it;
    then: every one answered, and no VRRP instance changed state since the start."""
    states = vrrp_states()
    started, clock = time.time(), time.monotonic()
    probe = c.Probe(host_header="s2.pctest", edges=(), vips=VIPS, seconds=PROBE_SECONDS, every=0.1)
    try:
        yield
        path_ended = time.monotonic()
        assert path_ended - clock + AFTER < PROBE_SECONDS, f"the path took {path_ended - clock:.0f} s: too long to watch past the grace"
        time.sleep(path_ended + AFTER - time.monotonic())
    finally:
        probe.stop()
    answers = probe.answers()
    failed = [a for a in answers if not a.pod]
    per_vip = {vip: sum(a.edge == vip for a in answers) for vip in VIPS}
    assert all(count > 0 for count in per_vip.values()), per_vip
    assert not failed, f"{len(failed)} of {len(answers)} requests through the VIPs failed, first at {failed[0].sent - started:.1f} s"
    moved = {key: value for key, value in vrrp_states().items() if value != states[key] or value[1] >= started}
    assert not moved, (f"VRRP instances changed state while watched ({len(answers)} requests, 0 failed): {moved};"
                       f" why, as the track scripts logged it: {check_verdicts()}")


def check_verdicts() -> dict[str, str]:
    """What each edge's keepalived track scripts said, with the times, from its syslog."""
    return {edge: in_host(edge, "sh", "-c", "grep -h k8sedge-vrrp-check /var/log/syslog /var/log/messages 2>/dev/null"
                          " | tail -n 12; journalctl -q -t k8sedge-vrrp-check -n 12 --no-pager 2>/dev/null",
                          check=False).stdout for edge in c.EDGES}


def watched(path: Callable[[], None]) -> None:
    with vips_watched():
        path()


@pytest.fixture(scope="module", autouse=True)
def lab_model() -> Iterator[None]:
    converged()
    yield
    kubectl("delete", "service", "vip-raw-tls", "--ignore-not-found")
    c.scale(c.REPLICAS)
    converged()


def test_site_yml_with_a_structural_change_moves_no_vip():
    kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest,vip-extra.pctest")
    try:
        watched(lambda: succeeded(ansible_playbook("site.yml")))
        assert all(record(edge)["rollout"]["status"] == "passed" for edge in c.EDGES)
    finally:
        kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest")
    converged()


def test_endpoints_yml_moves_no_vip():
    """The issue's reproduction: scale s2, run endpoints.yml, watch past the grace."""
    c.scale(c.REPLICAS + 1)
    c.wait_pods(c.REPLICAS + 1)
    before = {edge: record(edge) for edge in c.EDGES}
    watched(lambda: succeeded(ansible_playbook("endpoints.yml")))
    generation = c.model_generation()
    for edge in c.EDGES:
        after = record(edge)
        # The record says it serves the new generation; the rollout keeps its status and start,
        # and last-known-good stays the last probed rollout.
        assert after["serving"]["generation"] == generation != before[edge]["serving"]["generation"], (edge, after)
        assert (after["rollout"], after["last_good"]) == (before[edge]["rollout"], before[edge]["last_good"]), edge
    c.scale(c.REPLICAS)
    c.wait_pods(c.REPLICAS)
    succeeded(ansible_playbook("endpoints.yml"))


def test_the_fast_path_and_the_endpoints_yml_that_follows_move_no_vip(tmp_path: Path):
    watch = c.Watch.start(tmp_path, "-i", "inventory/lab/hosts.yml", "--fast-path", "--exit-after", "600", skip_first=True)
    try:
        watch.wait_log("fast path: runtime API of edge1, edge2", 60)

        def scale_through_the_watcher() -> None:
            c.scale(c.REPLICAS + 1)
            c.wait_pods(c.REPLICAS + 1)
            c._wait(lambda: [line for line in watch.lines() if line["path"] == "runtime" and line["ok"]], 60,
                    f"no fast-path apply within 60 s:\n{watch.tail()}")
            c._wait(lambda: [line for line in watch.lines() if line["path"] == "playbook"], 300,
                    f"no playbook run after the fast path within 300 s:\n{watch.tail()}")
            watch.wait_idle(300)

        watched(scale_through_the_watcher)
        runs = [line for line in watch.lines() if line["path"] == "playbook"]
        assert [r["playbook"] for r in runs] == ["endpoints.yml"] and runs[0]["rc"] == 0, watch.tail()
        c.scale(c.REPLICAS)
        c.wait_pods(c.REPLICAS)
        watch.wait_idle(300)
    finally:
        watch.stop()


def test_a_change_that_breaks_traffic_is_rolled_back_on_the_canary_and_moves_no_vip(tmp_path: Path):
    before = {edge: record(edge) for edge in c.EDGES}
    edge2_config = in_host("edge2", "sha256sum", "/etc/haproxy/haproxy.cfg").stdout
    report = tmp_path / "probe-report.json"  # the canary's, written as its probes fail
    c.kubectl("apply", "-f", "-", stdin=RAW_TLS)
    outcome: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        watched(lambda: outcome.setdefault("run", ansible_playbook("site.yml", "-e", f"edge_probe_report_path={report}")))
    finally:
        kubectl("delete", "service", "vip-raw-tls", "--ignore-not-found")
    run = outcome["run"]
    assert run.returncode != 0, run.stdout[-3000:]
    probed = json.loads(report.read_text())
    # Whatever a probe saw right after the reload, haproxy's own verdict refuses it: all the new
    # backend's servers down while its targets answer.
    assert ("engine", "edge1") in {(f["kind"], f["via"]) for f in probed["blocking"] if f["backend"] == "default_vip-raw-tls_8443_tcp"}, \
        probed["messages"]
    edge1 = record("edge1")
    assert edge1["rollout"]["status"] == "rolled-back" and edge1["rollout"]["failed_generation"] == probed["generation"], edge1["rollout"]
    assert edge1["serving"] == edge1["last_good"] == before["edge1"]["serving"]
    assert record("edge2") == before["edge2"]
    assert in_host("edge2", "sha256sum", "/etc/haproxy/haproxy.cfg").stdout == edge2_config
    converged()
    assert record("edge1")["rollout"]["status"] == "passed"


def test_a_check_mode_run_with_a_change_is_a_plan_that_changes_nothing_and_moves_no_vip():
    before = {edge: record(edge) for edge in c.EDGES}
    configs = {edge: in_host(edge, "sha256sum", "/etc/haproxy/haproxy.cfg").stdout for edge in c.EDGES}
    # A new host, and a typo the run must not pass over in silence.
    kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest,vip-check.pctest",
            "lb.k8sedge.io/helth-check=http")
    runs = []
    try:
        watched(lambda: runs.append(ansible_playbook("site.yml", "--check", "--diff")))
    finally:
        kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest", "lb.k8sedge.io/helth-check-")
    output = succeeded(runs[0])  # a valid plan exits 0
    assert {edge: record(edge) for edge in c.EDGES} == before
    assert {edge: in_host(edge, "sha256sum", "/etc/haproxy/haproxy.cfg").stdout for edge in c.EDGES} == configs
    # The diff shows the new host on each edge; no probe was sent, nothing was rolled back.
    assert len(re.findall(r"^\+vip-check\.pctest\S* default_multi_80", output, re.M)) == 2, output[-4000:]
    assert "probes planned, none sent" in output and "rolled back" not in output
    assert ("warning: Service default multi metadata.annotations[lb.k8sedge.io/helth-check] not an annotation of this"
            " object's contract, ignored") in output, output[-4000:]
    # The summary: each edge would change its config (a new host: its map), validated by haproxy -c; each VIP stays.
    for edge in c.EDGES:
        assert f"{edge} (haproxy): serves {before[edge]['serving']['generation'][:12]}; would apply" in output, output[-4000:]
    assert len(re.findall(r"\(haproxy\): serves \w+; would apply \w+; config structural \([^)]*maps/[^)]*\); haproxy -c:"
                          r" Configuration file is valid", output)) == 2, output[-4000:]
    for vip, edge in PRIMARY.items():
        assert f"VIP {vip} (k8sedge_default_{vip}): held by {edge}, stays" in output, output[-4000:]


def slow_load(vip: str, start: float, https: bool = False) -> subprocess.Popen[str]:
    """A request every 20 ms through `vip`, each answered SLOW_MS late. HTTPS:
    to secure.pctest, whose certificate the edges terminate, checked against the lab CA."""
    where = ["--host-header", "secure.pctest", "--port", "443", "--ca", str(credentials.CA_CERT)] if https \
        else ["--host-header", "s2.pctest"]
    return subprocess.Popen(["ip", "netns", "exec", host("client").netns, sys.executable, "-m", "lab.testlib.vip_client",
                             "--address", vip, *where, "--path", f"/delay/{SLOW_MS}",
                             "--start", f"{start:.6f}", "--seconds", str(LOAD_SECONDS), "--every", "0.02",
                             "--timeout", str(SLOW_MS / 1000 + 5)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def slow_loads(what: str, https: bool = False) -> Iterator[float]:
    """Slow requests through both VIPs while the body runs (yields when they started); then every
    one of them must have answered. Prints the figure (pytest -s)."""
    start = time.monotonic() + 1.0
    loads = [slow_load(vip, start, https) for vip in VIPS]
    try:
        time.sleep(max(0.0, start + SLOW_MS / 1000 + 1 - time.monotonic()))  # connections in flight on both edges
        yield start
        time.sleep(SLOW_MS / 1000 + 1)  # what was sent until the end answers too
    finally:
        for load in loads:
            load.terminate()
    results = []
    for load in loads:
        out, err = load.communicate(timeout=SLOW_MS / 1000 + 30)
        assert load.returncode == 0, err[-2000:]
        results.extend(json.loads(out))
    failed = [sent for sent, ok, _ in results if not ok]
    print(f"FIGURE {what}: {len(failed)} of {len(results)} requests failed ({SLOW_MS} ms each, one every 20 ms per VIP),"
          f" over {time.monotonic() - start:.0f} s")
    assert len(results) > 500 and not failed, f"{len(failed)} of {len(results)} requests failed, the first at {min(failed) - start:.1f} s"


def drained(edge: str) -> bool:
    """Whether the edge's state record says it is drained (a fresh edge has no record)."""
    text = in_host(edge, "cat", STATE, check=False).stdout
    return bool(text.strip()) and "maintenance" in json.loads(text)


def haproxy_version(edge: str) -> str:
    return in_host(edge, "dpkg-query", "--show", "--showformat=${Version}", "haproxy").stdout.strip()


def test_a_drain_an_upgrade_and_an_undrain_under_load_fail_no_request():
    installed = haproxy_version("edge1")
    versions = re.findall(r"^\s*haproxy \| (\S+) \|", in_host("edge1", "apt-cache", "madison", "haproxy").stdout, re.M)
    other = [version for version in versions if version != installed]
    assert other, f"the lab mirror must carry two haproxy versions (lab/image.py VERSIONED_PACKAGES), it has {versions}"
    try:
        with slow_loads("drain, upgrade, undrain"):
            drain = succeeded(ansible_playbook("drain.yml", "-e", "k8sedge_edge=edge1",
                                               "-e", '{"k8sedge_drain_reason": "lab test"}'))
            held_by({VIPS[0]: "edge2", VIPS[1]: "edge2"})
            assert record("edge1")["maintenance"]["reason"] == "lab test"
            waited = re.search(r"edge1 is drained \(lab test\): 10.213.0.200 -> edge2; its connections on them finished"
                               r" within ([0-9.]+) s", drain)
            assert waited and float(waited.group(1)) > 0, drain[-3000:]  # connections were in flight when the VIP moved
            # The handoff is over: nothing of it is left on either edge.
            assert in_host("edge2", "nft", "list", "tables").stdout.strip() == ""
            assert "10.213.0.200/32" not in in_host("edge1", "ip", "-4", "address", "show", "dev", "lo").stdout
            # The upgrade drains what is drained already (nothing moves), pins the other version, undrains.
            upgraded = succeeded(ansible_playbook("upgrade.yml", "-e", "k8sedge_edge=edge1",
                                                  "-e", f"edge_haproxy_package=haproxy={other[0]}"))
            assert "edge1 is drained: it held no VIP; no connection to wait for" in upgraded, upgraded[-3000:]
            assert f"edge1: haproxy {installed} -> haproxy {other[0]}" in upgraded, upgraded[-3000:]
            assert "edge1 serves again: edge2 -> 10.213.0.200 -> edge1" in upgraded, upgraded[-3000:]
            held_by(PRIMARY)
            assert "maintenance" not in record("edge1") and haproxy_version("edge1") == other[0]
    finally:
        if drained("edge1"):  # the lab as the other tests expect it
            succeeded(ansible_playbook("undrain.yml", "-e", "k8sedge_edge=edge1"))


def test_a_rebuilt_edge_is_accepted_and_converged_and_takes_its_vips_back_under_load_failing_no_request(tmp_path: Path):
    """docs/operations.md, "Rebuild an edge", step by step: edge1 dies and comes back as a fresh OS."""
    subprocess.run([str(REPO / "lab/labctl"), "rebuild", "edge1"], check=True, capture_output=True, timeout=180)
    held_by({VIPS[0]: "edge2", VIPS[1]: "edge2"})
    # Its new host key is refused until the operator accepts it.
    refused = ansible_playbook("drift.yml", "--check")
    assert refused.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stdout + refused.stderr
    known_hosts = REPO / ".lab/ssh/known_hosts"
    console = in_host("edge1", "ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    for name in ("10.213.0.11", "edge1"):
        subprocess.run(["ssh-keygen", "-R", name, "-f", str(known_hosts)], check=True, capture_output=True)
    scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", "10.213.0.11"], check=True, capture_output=True,
                             text=True, timeout=30).stdout
    (tmp_path / "edge1.key").write_text(scanned)
    offered = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "edge1.key")], check=True, capture_output=True,
                             text=True).stdout.split()[1]
    assert offered == console  # the key the network offers is the one the console shows
    with known_hosts.open("a") as handle:
        handle.write(scanned)
    try:
        with slow_loads("rebuilt edge: drain, site.yml, undrain"):
            succeeded(ansible_playbook("drain.yml", "-e", "k8sedge_edge=edge1", "-e", '{"k8sedge_drain_reason": "rebuilt"}'))
            site = succeeded(ansible_playbook("site.yml"))
            # Converged and proven, but drained: keepalived runs on it and keeps its VIPs off it.
            held_by({VIPS[0]: "edge2", VIPS[1]: "edge2"})
            assert record("edge1")["rollout"]["status"] == "passed" and "maintenance" in record("edge1"), site[-3000:]
            assert re.search(r"edge2\s+: ok=\d+\s+changed=0 ", site), site[-2000:]  # nothing else changed
            undrained = succeeded(ansible_playbook("undrain.yml", "-e", "k8sedge_edge=edge1"))
            assert "edge1 serves again: edge2 -> 10.213.0.200 -> edge1" in undrained, undrained[-3000:]
            held_by(PRIMARY)
    finally:
        if drained("edge1"):
            succeeded(ansible_playbook("undrain.yml", "-e", "k8sedge_edge=edge1"))


def served_certificate(address: str) -> str:
    """The SHA-256 of the certificate `address` presents for secure.pctest, seen from the client."""
    script = ("import hashlib, socket, ssl, sys; c = ssl.create_default_context(cafile=sys.argv[2]); "
              "s = c.wrap_socket(socket.create_connection((sys.argv[1], 443), timeout=5), server_hostname='secure.pctest'); "
              "print(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest())")
    return subprocess.run(["ip", "netns", "exec", host("client").netns, sys.executable, "-c", script, address,
                           str(credentials.CA_CERT)], check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def test_a_rotated_certificate_is_picked_up_by_the_watcher_rolled_out_and_proven_by_its_fingerprint_under_load(tmp_path: Path):
    """The operator replaces the certificate the inventory gives the edges (the lab's files behind
    k8sedge_lab_certificates). The running watcher reads the inventory again, sees it and runs
    site.yml, which rolls it out like any change, canary first; each HTTPS probe checks that the
    edge presents the new one. HTTPS requests through both VIPs meanwhile all answer."""
    cert, key = credentials.tls_files("secure.pctest")
    old = served_certificate(VIPS[0])
    report = tmp_path / "probe-report.json"
    watch = c.Watch.start(tmp_path, "-i", "inventory/lab", "--inventory-interval", "2", "--exit-after", "600",
                          "-e", json.dumps({"edge_probe_report_path": str(report)}))
    try:
        watch.wait_log("first generation", seconds=120)
        with slow_loads("certificate rotation picked up by the watcher (HTTPS)", https=True):
            pki.create_server_cert(cert, key, credentials.CA_CERT, credentials.CA_KEY, dns_names=["secure.pctest"],
                                   ip_addresses=[], common_name="secure.pctest")
            watch.wait_log("the inventory changed: certificates of edge1 (secure-pctest), edge2 (secure-pctest)", seconds=60)
            watch.wait_log("site.yml finished", seconds=300)
    finally:
        watch.stop()
    new = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()
    assert new != old
    assert all(record(edge)["rollout"]["status"] == "passed" for edge in c.EDGES)
    assert {served_certificate(host(edge).ip) for edge in c.EDGES} == {new}
    checked = [row for row in json.loads(report.read_text())["probes"] if row.get("certificate_expected")]
    # The VIP pass's report: each VIP's HTTPS probes had to see the new certificate, and did.
    assert checked and all(row["certificate_expected"] == [new] and row["certificate_sha256"] == new for row in checked), checked
    # drift.yml asks both edges from the controller: the same certificate, and when it expires.
    drift = succeeded(ansible_playbook("drift.yml", "--check"))
    assert re.search(rf"certificate secure-pctest: {new[:16]}\.\.\. on edge1, edge2; expires in \d+ days, on 20", drift), \
        drift[-3000:]


def test_a_third_edge_joins_the_pool_through_site_yml_proven_first_and_moving_no_vip_under_load():
    """edge3, appended to the inventory (inventory/lab-edge3), ranks first for none of the pool's
    VIPs: site.yml rolls it out like any edge with something to change (applied, probed, promoted)
    before the keepalived play, and there it becomes a backup of both VIPs; no VIP moves."""
    labctl = str(REPO / "lab/labctl")
    subprocess.run([labctl, "start", "edge3"], check=True, capture_output=True, timeout=180)
    try:
        before = {key: state for key, (state, _) in vrrp_states().items()}
        with slow_loads("a third edge joins through site.yml"):
            site = succeeded(ansible_playbook("site.yml", "-i", "inventory/lab-edge3"))
        assert {key: state for key, (state, _) in vrrp_states().items()} == before
        assert record("edge3")["rollout"]["status"] == "passed"
        for vip in VIPS:
            assert in_host("edge3", "cat", f"/run/k8sedge-keepalived/k8sedge_default_{vip}.state").stdout.split()[0] == "BACKUP"
        # Proven before it could take a VIP: rolled out, probed and promoted in the host-by-host play
        # (edge3 alone: edge1 and edge2 are converged), which ends before keepalived is configured.
        rollout, converged = site.index("PLAY [Roll out host by host"), site.index("PLAY [Probe the edges that have nothing")
        assert "[edge3]" in site[rollout:converged] and "[edge1]" not in site[rollout:converged], site[-3000:]
        assert converged < site.index("PLAY [Keep the VIPs on edges that serve]")
    finally:
        subprocess.run([labctl, "stop", "edge3"], check=True, capture_output=True, timeout=120)
