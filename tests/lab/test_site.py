"""playbooks/site.yml on the lab: converge from nothing, a run that changes nothing still probes,
a change that breaks traffic is rolled back on the canary and stops the rollout, the fail-static
guard holds back a backend the change would empty and lets the rest through, a cluster API that
cannot be read stops the run before anything changes, and so does the rollout's lease held by
another rollout.

The tests run in order and share the edges; each leaves them converged on the lab's model.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lab.testlib import converge as c
from lab.topology import KUBECONFIG, MODEL_OPTIONS, REPO, host
from tests.lab.conftest import in_host, kubectl

pytestmark = pytest.mark.usefixtures("lab")

EDGES = ("edge1", "edge2")
PLAYBOOK = str(REPO / "playbooks" / "site.yml")
STATE = "/var/lib/k8sedge/state.json"
LIVE_CONFIG = "/etc/haproxy/haproxy.cfg"
SEED_CURL = ("curl", "-sS", "-m", "5", "-H", "Host: s2.pctest")
VIPS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]["default"]


def site(*extra: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    command = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(REPO / "inventory/lab"), PLAYBOOK, *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": f"{REPO / '.venv/bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "ANSIBLE_FORCE_COLOR": "0",
                               "HOME": "/root"})


def recap(output: str) -> dict[str, dict[str, int]]:
    counts = {}
    for name, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        counts[name] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return counts


def outcomes(output: str, task: str) -> dict[str, set[str]]:
    """{host: its outcomes (ok, changed, skipping, ...; one per item of a loop)} of one task of an
    ansible-playbook output."""
    found: dict[str, set[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line[len("TASK ["):line.rindex("]")]
        elif current == task and (match := re.match(r"^(\w+): \[(\w+)", line)):
            found.setdefault(match[2], set()).add(match[1])
    return found


def lease() -> dict | None:
    """The rollout's Lease (None before the first run took it)."""
    found = kubectl("get", "lease", "-n", "k8sedge", "k8sedge-rollout", "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def record(edge: str) -> dict:
    """The edge's state record ({} before the first run)."""
    result = in_host(edge, "cat", STATE, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def every_probe_report(directory: Path) -> str:
    """Extra vars that keep each probe pass's report, a passing one too, in directory, one file per
    batch of hosts: edge1.json and edge2.json (the rollout's probe of each edge it changes),
    edge1-edge2.json (the edges it has nothing to change on, at once), edge1-edge2-vips.json (the VIPs)."""
    name = "{{ ansible_play_batch | join('-') }}{{ '-vips' if edge_probe_through == ['vip'] else '' }}"
    return json.dumps({"edge_probe_report_path": f"{directory}/{name}.json", "edge_probe_report_when": "always"})


def served(host_header: str, edge: str) -> str:
    return in_host("client", "curl", "-sS", "-m", "5", "-H", f"Host: {host_header}", f"http://{host(edge).ip}/", check=False).stdout


def servers(edge: str, backend: str) -> list[str]:
    """The slots of a backend in the edge's live haproxy config that hold a target (an empty slot
    is `0.0.0.0:0 disabled`)."""
    config = in_host(edge, "cat", LIVE_CONFIG).stdout
    section = config[config.index(f"backend {backend}\n"):].split("\nbackend ", 1)[0]
    return [slot for slot, where in re.findall(r"^ +server (s\d+) (\S+)", section, re.M) if where != "0.0.0.0:0"]


def checksum(edge: str, path: str = LIVE_CONFIG) -> str:
    return in_host(edge, "sh", "-c", f"sha256sum {path} 2>/dev/null || echo none").stdout.split()[0]


def model() -> dict:
    result = subprocess.run([str(REPO / ".venv/bin/ansible"), "localhost", "-m", "k8sedge.lb.edge_info", "-a",
                             " ".join([f"kubeconfig={KUBECONFIG}", *(f"{k}={v}" for k, v in MODEL_OPTIONS.items())])], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": f"{REPO / '.venv/bin'}:/usr/bin:/bin", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
                                 "HOME": "/root"})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout[result.stdout.index("{"):])["model"]


def seed_check(address: str) -> str:
    return in_host("client", *SEED_CURL, f"http://{address}/").stdout


RUNTIME_STEP = "edge_haproxy : Apply target changes through the runtime API, and keep the stats socket root-only"
# haproxy's socket on an edge: with no argument, puts the first server in service into
# maintenance and prints its backend/server; with one, prints that server's admin state.
SERVER_ADMIN = """
import socket, sys
def cli(command):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect("/run/haproxy/admin.sock")
        sock.sendall(command.encode() + b"\\n")
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode()
for line in cli("show servers state").splitlines()[2:]:
    fields = line.split()
    if len(fields) < 7:
        continue
    if len(sys.argv) > 1 and f"{fields[1]}/{fields[3]}" == sys.argv[1]:
        print(fields[6])
    elif len(sys.argv) == 1 and fields[4] != "0.0.0.0" and fields[6] == "0":
        cli(f"set server {fields[1]}/{fields[3]} state maint")
        print(f"{fields[1]}/{fields[3]}")
        break
"""


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


def fresh_edge(edge: str) -> str:
    """What shows that nothing was installed or written on an edge."""
    return in_host(edge, "sh", "-c", "dpkg-query -W -f='${Status}\\n' haproxy keepalived 2>&1; ls /etc/haproxy /var/lib/k8sedge"
                   " /etc/keepalived /var/lib/apt/lists 2>&1; ip -4 addr show; ip route show proto 213", check=False).stdout


def test_converge_from_nothing_after_a_plan_and_a_failed_first_rollout_then_a_run_changes_nothing_and_still_probes(tmp_path: Path):
    for edge in EDGES:  # as a new VM would be: no proxy, no keepalived, no state, no package lists
        in_host(edge, "sh", "-c", "systemctl stop haproxy nginx keepalived 2>/dev/null; "
                "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q haproxy nginx nginx-common libnginx-mod-stream keepalived"
                " >/dev/null; rm -rf /etc/haproxy /etc/nginx /etc/keepalived /usr/local/lib/k8sedge /var/lib/k8sedge"
                " /run/haproxy /run/k8sedge-keepalived /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp"
                # as the image has them: no lists, and an old stamp on their directory (lab/image.py)
                " && mkdir /var/lib/apt/lists/partial && touch -d @0 /var/lib/apt/lists /var/lib/apt/lists/partial",
                timeout=300)
    # First the plan, as a careful operator runs it: valid (rc 0), changes nothing, says what it would do.
    fresh = {edge: fresh_edge(edge) for edge in EDGES}
    plan = ok(site("--check", "--diff"))
    assert {edge: fresh_edge(edge) for edge in EDGES} == fresh
    generation = model()["generation"]
    for edge in EDGES:
        assert (f"{edge} (haproxy): serves nothing; would apply {generation[:12]}; install haproxy; config structural"
                in plan), plan[-5000:]
    assert plan.count("haproxy -c: not validated: /usr/sbin/haproxy is not installed on this host yet") == 2
    assert "probes planned, none sent" in plan and "rolled back" not in plan
    for vip in VIPS:
        assert re.search(rf"VIP {re.escape(vip)} \(k8sedge_default_{re.escape(vip)}\): held by no edge now, edge\d would take it",
                         plan), plan[-3000:]

    # A first rollout that fails on the canary has nothing to roll back to: the host records
    # `failed` (keepalived keeps VIPs off it), the run stops, edge2 is untouched. The runbook's way
    # to clear it (docs/operations.md): fix what failed and run site.yml, which the next run does.
    extra = tmp_path / "broken.yml"  # not *.json: the reports below are
    broken = broken_model()
    extra.write_text(json.dumps({"k8sedge_model": broken}))
    failing = site("-e", f"@{extra}")
    assert failing.returncode != 0
    assert "edge1: generation" in failing.stdout and "there is no last-known-good config to roll back to" in failing.stdout, \
        failing.stdout[-3000:]
    failed = record("edge1")
    assert failed["rollout"] == {**failed["rollout"], "status": "failed", "failed_generation": broken["generation"]}
    assert "last_good" not in failed
    assert fresh_edge("edge2") == fresh["edge2"]

    held_before = lease()["spec"].get("renewTime", "") if lease() else ""
    first = ok(site())
    assert all(recap(first)[edge]["failed"] == 0 for edge in EDGES)
    # The run held the rollout's lease (renewed when it took it) and gave it up at its end.
    assert "holderIdentity" not in lease()["spec"] and lease()["spec"]["renewTime"] > held_before
    for edge in EDGES:
        assert record(edge)["rollout"]["status"] == "passed"
        assert record(edge)["serving"]["generation"] == record(edge)["last_good"]["generation"] == generation
        assert "Hostname: s2-" in seed_check(host(edge).ip)

    second = ok(site("-e", every_probe_report(tmp_path)))  # tmp_path is there: no directory to create
    assert {edge: recap(second)[edge]["changed"] for edge in EDGES} == {"edge1": 0, "edge2": 0}
    # Nothing to change on either edge: both probed at once, this generation, s2's route through
    # each of them, then through every VIP.
    reports = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert sorted(reports) == ["edge1-edge2", "edge1-edge2-vips"], sorted(reports)
    for batch, kind, through in (("edge1-edge2", "edge", set(EDGES)), ("edge1-edge2-vips", "vip", set(VIPS))):
        report = reports[batch]
        answered = {p["via"] for p in report["probes"] if (p["kind"], p["label"]) == (kind, "s2.pctest/") and p["ok"]}
        assert (report["generation"], report["passed"], answered) == (generation, True, through), (batch, report["failures"])
    assert {p["kind"] for p in reports["edge1-edge2"]["probes"]} == {"edge", "target"}
    # The run's report, the VIP pass's, says what the edges' pass probed too.
    assert reports["edge1-edge2-vips"]["earlier_passes"] == {
        "edge1-edge2": {"summary": reports["edge1-edge2"]["summary"], "coverage": reports["edge1-edge2"]["coverage"]}}
    # keepalived's files and unit were as the run would make them: its install and writes did not run.
    rendered = outcomes(second, "edge_keepalived : Render keepalived.conf, validated by keepalived -t before it goes live")
    assert rendered == {"edge1": {"skipping"}, "edge2": {"skipping"}}
    # haproxy already served it and the records said so: the host-by-host rollout had no host.
    for task in ("Record that this host is applying the new generation", "edge_haproxy : Stage the configuration, validate it and put it in place",
                 RUNTIME_STEP, "edge_haproxy : Record what this host serves as last-known-good"):
        assert outcomes(second, task) == {}, task

    # A hand change on one host takes that host down the full path, which puts it right: a track
    # script's mode on edge2, a server taken out through haproxy's socket on edge1.
    script = "/usr/local/lib/k8sedge/vrrp-check"
    in_host("edge2", "chmod", "0700", script)
    taken_out = in_host("edge1", "python3", "-c", SERVER_ADMIN).stdout.strip()
    assert in_host("edge1", "python3", "-c", SERVER_ADMIN, taken_out).stdout.strip() == "1"
    third = ok(site())
    assert {edge: recap(third)[edge]["changed"] for edge in EDGES} == {"edge1": 1, "edge2": 1}
    scripts = outcomes(third, "edge_keepalived : Install the track and notify scripts")
    assert scripts == {"edge1": {"skipping"}, "edge2": {"changed", "ok"}}
    assert in_host("edge2", "stat", "--format=%a", script).stdout.strip() == "755"
    # edge2 had nothing to change in haproxy: it was only probed.
    assert outcomes(third, RUNTIME_STEP) == {"edge1": {"changed"}}
    assert in_host("edge1", "python3", "-c", SERVER_ADMIN, taken_out).stdout.strip() == "0"


def test_a_run_probes_what_changed_since_the_last_proven_config_in_full_and_a_sample_of_the_rest(tmp_path: Path):
    """What every edge proved with its last rollout and that did not change since is probed as a
    seeded sample; a backend that changed is probed in full, on every path (edges, VIPs, targets)."""
    def reports(name: str, *extra: str) -> dict[str, dict]:
        ok(site("-e", every_probe_report(tmp_path / name), *extra))
        return {path.stem: json.loads(path.read_text()) for path in (tmp_path / name).glob("*.json")}

    def checks_of(report: dict, backend: str | None = None) -> set[tuple[str, str]]:
        return {(p["frontend"], p["label"]) for p in report["probes"]
                if p["kind"] in ("edge", "vip") and backend in (None, p["backend"])}

    # The test before left every edge serving the lab's model, proven: nothing to change, the edges
    # are probed in one pass, then the VIPs.
    swept = reports("swept", "-e", "k8sedge_probe_sweep=true")
    sampled = reports("sampled", "-e", "edge_probe_sample=3")
    assert sorted(swept) == sorted(sampled) == ["edge1-edge2", "edge1-edge2-vips"]
    for batch, report in sampled.items():
        coverage = report["coverage"]
        assert coverage == {**coverage, "changed": 0, "unchanged_probed": 3,
                            "checks": swept[batch]["coverage"]["checks"]}, (batch, coverage)
        assert coverage["unchanged"] > 3 and coverage["unchanged_chosen_by"].startswith("random sample of 3, seed ")
        assert swept[batch]["coverage"]["unchanged_chosen_by"] == "full sweep"
        assert len(checks_of(report)) <= 3 < len(checks_of(swept[batch]))
    # s2's backend balanced differently: every check that reaches it changed, nothing else did.
    changed = model()
    for backend in changed["backends"]:
        if backend["name"] == "default_s2_80":
            backend["balance"] = "leastconn"
    changed["generation"] = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()
    extra = tmp_path / "changed.json"
    extra.write_text(json.dumps({"k8sedge_model": changed}))
    after = reports("changed", "-e", f"@{extra}", "-e", "edge_probe_sample=0")
    assert sorted(after) == ["edge1", "edge1-edge2-vips", "edge2"]  # a change: each edge in turn
    for batch, report in after.items():
        expected = checks_of(swept["edge1-edge2-vips" if batch.endswith("-vips") else "edge1-edge2"], "default_s2_80")
        assert expected and checks_of(report) == expected, batch
        assert report["coverage"]["changed"] == len(expected), (batch, report["coverage"])
        # The rollout's pass over each edge probes targets too, the VIP pass only the VIPs.
        assert {p["backend"] for p in report["probes"] if p["kind"] == "target"} == ({"default_s2_80"} if batch in EDGES else set())
    ok(site())  # the real model again


def broken_model() -> dict:
    """The lab's model with s2's HTTP backend checked on a port nothing listens on: haproxy marks
    every server down and answers 503, while the targets themselves answer."""
    bad = model()
    for backend in bad["backends"]:
        if backend["name"] == "default_s2_80":
            backend["health_check"] = {"type": "http", "path": "/healthz", "port": 1}
    bad["generation"] = hashlib.sha256(json.dumps(bad, sort_keys=True).encode()).hexdigest()
    return bad


def test_a_change_that_breaks_traffic_is_rolled_back_on_the_canary_and_stops_the_rollout(tmp_path: Path):
    ok(site())  # a last-known-good on every edge, whatever ran on them before
    before = {edge: (checksum(edge), record(edge)) for edge in EDGES}
    extra = tmp_path / "broken.json"
    broken = broken_model()
    report = tmp_path / "probe-report.json"  # the canary's, written as its probes fail
    extra.write_text(json.dumps({"k8sedge_model": broken, "edge_probe_report_path": str(report)}))
    result = site("-e", f"@{extra}")
    assert result.returncode != 0
    output = result.stdout
    assert recap(output)["edge2"]["changed"] == 0
    probed = json.loads(report.read_text())
    assert (probed["generation"], probed["passed"]) == (broken["generation"], False)
    # s2's route answered 503 through edge1, and haproxy's own verdict (taken once its first checks
    # finished, whatever a probe saw before) counts all of s2's servers down while its targets answer.
    assert [p["status"] for p in probed["probes"]
            if (p["kind"], p["via"], p["frontend"], p["label"]) == ("edge", "edge1", "default-http-80", "s2.pctest/")] == [503]
    assert ("engine", "edge1") in {(f["kind"], f["via"]) for f in probed["blocking"] if f["backend"] == "default_s2_80"}
    # The canary is back on its last-known-good config, says so and keeps its VIPs; edge2 was never touched.
    assert checksum("edge1") == before["edge1"][0]
    edge1 = record("edge1")
    assert edge1["rollout"] == {**edge1["rollout"], "status": "rolled-back", "failed_generation": broken["generation"]}
    assert edge1["serving"] == edge1["last_good"] == before["edge1"][1]["serving"]
    assert (checksum("edge2"), record("edge2")) == before["edge2"]
    for edge in EDGES:
        assert "Hostname: s2-" in seed_check(host(edge).ip)
    # The run stopped before its last play, and gave up the rollout's lease as it ended (the
    # project's callback): another rollout need not wait for it to run out.
    assert "k8sedge: the run ended before its last play: gave up Lease k8sedge/k8sedge-rollout" in output
    assert "holderIdentity" not in lease()["spec"]
    ok(site())  # the real model again
    assert record("edge1")["rollout"]["status"] == "passed"


def _wait_for_targets(backend: str, count: int) -> None:
    until = time.monotonic() + 60
    while time.monotonic() < until:
        found = next(b for b in model()["backends"] if b["name"] == backend)
        if len(found["targets"]) == count:
            return
        time.sleep(1)
    pytest.fail(f"{backend} did not get {count} targets within 60 s")


def vrrp_masters() -> dict[str, str]:
    """VIP -> the edges whose notify script last recorded MASTER for it."""
    masters: dict[str, str] = {}
    for edge in EDGES:
        found = in_host(edge, "sh", "-c", "grep -r --include=*.state . /run/k8sedge-keepalived", check=False).stdout
        for line in found.splitlines():
            path, _, state = line.partition(".state:")
            if state.startswith("MASTER"):
                vip = path.rsplit("_", 1)[-1]
                masters[vip] = f"{masters[vip]},{edge}" if vip in masters else edge
    return masters


def until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.2)


def test_the_rollout_switches_the_engine_to_nginx_and_back():
    """k8sedge_engine=nginx: the rollout stops haproxy on each edge and nginx serves the seed's
    check (from the plan made for every edge before the canary); a second run changes nothing.
    Under keepalived with unicast VRRP (networks without multicast): nginx stopped on edge1 moves
    its VIP to edge2, traffic goes on through it, and the VIP comes back once nginx runs again.
    Back to haproxy (and multicast) the same way. A last-known-good that haproxy served names no
    nginx release."""
    def active(edge: str, unit: str) -> bool:
        return in_host(edge, "systemctl", "is-active", "--quiet", unit, check=False).returncode == 0

    nginx_unicast = ("-e", "k8sedge_engine=nginx", "-e", "edge_keepalived_unicast=true")
    ok(site(*nginx_unicast))
    # A threshold past the lab certificate's expiry: every run says when it expires.
    again = ok(site(*nginx_unicast, "-e", "k8sedge_certificate_warn_days=36500"))
    assert {edge: recap(again)[edge]["changed"] for edge in EDGES} == {"edge1": 0, "edge2": 0}
    assert re.search(r"certificate secure-pctest \(CN=secure\.pctest[^)]*\) expires in \d+ days", again), again[-3000:]
    for edge in EDGES:
        assert (active(edge, "nginx"), active(edge, "haproxy")) == (True, False), edge
        assert "release" in record(edge)["serving"] and record(edge)["rollout"]["status"] == "passed"
        assert "Hostname: s2-" in seed_check(host(edge).ip)
    # A plan on nginx edges proves the release with nginx -t, on a scratch copy on each edge.
    plan = ok(site(*nginx_unicast, "--check", "--diff"))
    for edge in EDGES:
        assert re.search(rf"{edge} \(nginx\): serves \w+; would apply \w+; release \w+, already live; nginx -t: valid", plan), \
            plan[-3000:]
    assert not in_host("edge1", "sh", "-c", "ls -d /tmp/k8sedge-nginx-check-* 2>/dev/null", check=False).stdout
    config = in_host("edge1", "cat", "/etc/keepalived/keepalived.conf").stdout
    assert "unicast_peer {" in config and host("edge2").ip in config, config

    vip = VIPS[0]  # edge1 holds it while healthy
    until(lambda: vrrp_masters().get(vip) == "edge1", 30, f"{vip} on its primary, edge1 ({vrrp_masters()})")
    probe = c.Probe(host_header="s2.pctest", edges=(), vips=(vip,), seconds=90, every=0.1)
    try:
        in_host("edge1", "systemctl", "stop", "nginx")
        until(lambda: vrrp_masters().get(vip) == "edge2", 20, f"{vip} on edge2 once nginx stopped on edge1")
        moved = time.time()
        assert probe.wait(lambda answers: [a for a in answers if a.edge == vip and a.pod and a.sent > moved + 1], 15), \
            f"no answer through {vip} after it moved to edge2"
        in_host("edge1", "systemctl", "start", "nginx")
        until(lambda: vrrp_masters().get(vip) == "edge1", 30, f"{vip} back on edge1 once nginx runs again ({vrrp_masters()})")
        back = time.time()
        assert probe.wait(lambda answers: [a for a in answers if a.edge == vip and a.pod and a.sent > back + 1], 15), \
            f"no answer through {vip} after it came back to edge1"
    finally:
        probe.stop()

    ok(site())
    for edge in EDGES:
        assert (active(edge, "nginx"), active(edge, "haproxy")) == (False, True), edge
        assert "release" not in record(edge)["serving"] and record(edge)["rollout"]["status"] == "passed"
        assert "Hostname: s2-" in seed_check(host(edge).ip)


def test_fail_static_holds_an_emptied_backend_lets_the_rest_through_and_the_override_empties_it():
    kubectl("scale", "deployment/local-web", "--replicas=0")
    kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest,held-other.pctest")
    try:
        _wait_for_targets("default_local-web_80", 0)  # externalTrafficPolicy Local: no pod, no node
        ok(site())
        for edge in EDGES:
            assert "s1" in servers(edge, "default_local-web_80"), edge  # held: still its last target
            # Every other change went through: the new host routes through each edge.
            assert "Hostname: multi-" in served("held-other.pctest", edge)

        ok(site("-e", "k8sedge_fail_static_override=true"))
        assert {edge: servers(edge, "default_local-web_80") for edge in EDGES} == {"edge1": [], "edge2": []}  # emptied
    finally:
        kubectl("scale", "deployment/local-web", "--replicas=1")
        kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest")
    _wait_for_targets("default_local-web_80", 1)
    ok(site())


@pytest.mark.parametrize(("server", "token", "message"), [
    ("https://10.213.0.1:6443", "not-a-token", "401"),
    ("https://10.213.0.1:6449", None, "6449"),
])
def test_an_api_that_cannot_be_read_stops_the_run_before_anything_changes(tmp_path: Path, server, token, message):
    config = yaml.safe_load(KUBECONFIG.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    if token:
        config["users"][0]["user"]["token"] = token
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    before = {edge: (checksum(edge), record(edge)) for edge in EDGES}
    # A change waits in the cluster: a run that went on past the read would roll it out.
    kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest,unread.pctest")
    try:
        result = site("-e", f"k8sedge_kubeconfig={kubeconfig}", timeout=300)
    finally:
        kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest")
    assert result.returncode != 0
    failed = re.search(r"fatal: \[edge1 -> localhost\]: FAILED! => (.*)", result.stdout)
    assert failed and message in failed.group(1), result.stdout[-3000:]
    assert {edge: (checksum(edge), record(edge)) for edge in EDGES} == before
    assert not [edge for edge in EDGES if "Hostname: multi-" in served("unread.pctest", edge)]


def test_a_rollout_waits_while_another_holds_the_lease_then_fails_naming_it_having_changed_nothing(tmp_path: Path):
    """The lock between the watcher and a scheduled AWX job: while another holder has the rollout's
    Lease, site.yml waits (k8sedge_lease_wait) and then fails naming the holder, before it reads the
    model: a change waiting in the cluster reaches no edge, and the holder keeps its Lease."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    held = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "k8sedge-rollout", "namespace": "k8sedge"},
            "spec": {"holderIdentity": "awx/nightly", "leaseDurationSeconds": 900, "acquireTime": stamp, "renewTime": stamp}}
    before = {edge: (checksum(edge), record(edge)) for edge in EDGES}
    kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest,unread.pctest")
    try:
        (tmp_path / "lease.json").write_text(json.dumps(held))
        kubectl("apply", "-f", str(tmp_path / "lease.json"))
        started = time.monotonic()
        result = site("-e", "k8sedge_lease_wait=3", timeout=300)
        waited = time.monotonic() - started
        assert result.returncode != 0
        failed = re.search(r"fatal: \[edge1 -> localhost\]: FAILED! => (.*)", result.stdout)
        assert failed and "Lease k8sedge/k8sedge-rollout is held by 'awx/nightly' until " in failed.group(1), result.stdout[-3000:]
        assert "waited 3 s for it" in failed.group(1) and waited >= 3
        assert "Read the edge model from the cluster" not in result.stdout
        assert lease()["spec"]["holderIdentity"] == "awx/nightly" and lease()["spec"]["renewTime"] == stamp
        assert {edge: (checksum(edge), record(edge)) for edge in EDGES} == before
        assert not [edge for edge in EDGES if "Hostname: multi-" in served("unread.pctest", edge)]
    finally:
        kubectl("delete", "lease", "-n", "k8sedge", "k8sedge-rollout", check=False)
        kubectl("annotate", "service", "multi", "--overwrite", "lb.k8sedge.io/hosts=multi.pctest")
