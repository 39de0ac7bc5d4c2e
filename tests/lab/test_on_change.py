"""bin/k8sedge-watch --fast-path against the lab, end to end: a cluster change -> the right path ->
traffic from the lab's client follows, through both edges.

- scale default/s2 up through the API: an endpoint-only change; the fast path puts the new pod
  into both haproxys' runtime API, the client reaches it through each edge, and endpoints.yml
  follows (the config on disk names the pod, the recorded generation is the watcher's);
- a new Service: structural; site.yml rolls it out and its host answers through each edge, and
  (status write-back on) publishes the VIPs in default/local-web's status;
- meanwhile Debian's Prometheus scrapes the watcher's metrics and each edge's haproxy exporter;
  every endpoint passes `promtool check metrics`, and the dashboard's own queries
  (docs/grafana/k8sedge.json) answer through Prometheus's HTTP API what the watcher recorded: each
  edge fell behind and caught up, and the convergence histogram counted each change by path;
- another rollout holds the rollout's lease: an endpoint change waits for it (no fast path, no
  playbook run, the edges keep the older model) and goes through once it is given up.

The watcher is bounded (--exit-after) and stopped by its PID; the Service is deleted and s2 scaled
back through the same watcher, so the edges end on the lab's model.
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

import yaml

from lab import prometheus
from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import REPO
from tests.lab.conftest import in_host

pytestmark = pytest.mark.usefixtures("lab")

INVENTORY = "inventory/lab/hosts.yml"
SERVICE = "conv-e2e"
VIPS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]
METRICS = "127.0.0.1:19100"  # the watcher's --metrics-address
# haproxy's exporter on its admin listener, which inventory/lab binds to each edge's address.
EXPORTERS = {name: f"{host['ansible_host']}:8404"
             for name, host in yaml.safe_load((REPO / INVENTORY).read_text())["edges"]["hosts"].items()}
DASHBOARD = REPO / "docs/grafana/k8sedge.json"
# haproxy 2.6's exporter names one counter without the _total suffix, and promtool says so: that
# finding is haproxy's own; any other one, and any on the watcher's metrics, fails the test.
SCRAPED = dict.fromkeys([METRICS, *EXPORTERS.values()], 1.0)  # up, by instance
HAPROXY_OWN_FINDINGS = ['haproxy_process_failed_resolutions counter metrics should have "_total" suffix']


def edges_serve(generation: str) -> bool:
    for edge in c.EDGES:
        result = in_host(edge, "sh", "-c", f"systemctl is-active --quiet haproxy && {steps.SERVED_GENERATION}", check=False)
        if result.stdout.strip() != generation:
            return False
    return True


def held_lease(holder: str) -> dict:
    """The rollout's Lease as another rollout holds it, from now for 900 s."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "k8sedge-rollout", "namespace": "k8sedge"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 900, "acquireTime": stamp, "renewTime": stamp}}


def runs(watch: c.Watch, path: str) -> list[dict]:
    return [line for line in watch.lines() if line["path"] == path]


def wait_run(watch: c.Watch, playbook: str, after: int, seconds: float) -> dict:
    """The first run of `playbook` past the first `after` playbook runs, once it ended."""
    found = c._wait(lambda: [r for r in runs(watch, "playbook")[after:] if r["playbook"] == playbook], seconds,
                    f"no {playbook} run within {seconds:.0f} s:\n{watch.tail()}")
    return found[0]


def promtool_findings(target: str) -> list[str]:
    """What `promtool check metrics` says of the metrics served at target (host:port)."""
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False)
    return (result.stdout + result.stderr).splitlines() or ([] if result.returncode == 0 else [f"exit {result.returncode}"])


def dashboard_queries() -> dict[str, str]:
    return {target["expr"]: panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]}


def check_prometheus(watch: c.Watch) -> None:
    """What Prometheus scraped agrees with the watcher's own record of its runs."""
    assert promtool_findings(METRICS) == []
    for target in EXPORTERS.values():
        assert promtool_findings(target) == HAPROXY_OWN_FINDINGS, target
    queries = dashboard_queries()
    for expr in queries:  # each of the dashboard's queries evaluates (an error raises)
        prometheus.query(expr)
    fast = len([line for line in runs(watch, "runtime") if line["ok"]])
    played = len([line for line in runs(watch, "playbook") if line["rc"] == 0])
    # Prometheus holds the watcher's last count once it scraped after the last run (a second apart).
    counted = prometheus.wait_for("k8sedge_convergence_seconds_count", "path",
                                  lambda found: found == {"fast_path": fast, "playbook": played}, 30)
    converged = "sum by (path) (increase(k8sedge_convergence_seconds_count[1h]))"
    assert converged in queries
    increases = prometheus.values(converged, "path")
    assert all(increases[path] >= count for path, count in counted.items()), (increases, counted)
    assert fast >= 1 and played >= 2, watch.tail()  # the endpoint change, endpoints.yml after it, site.yml
    median = "histogram_quantile(0.5, sum by (le, path) (rate(k8sedge_convergence_seconds_bucket[15m])))"
    assert median in queries and 0 < prometheus.values(median, "path")["playbook"] < float("inf")
    behind = "max by (edge) (k8sedge_edge_staleness_seconds)"
    assert behind in queries
    # Each edge fell behind during the rollout of the new Service, and caught up.
    assert prometheus.wait_for(behind, "edge", lambda found: found == dict.fromkeys(EXPORTERS, 0.0), 30)
    peaks = prometheus.values("max by (edge) (max_over_time(k8sedge_edge_staleness_seconds[30m]))", "edge")
    assert set(peaks) == set(EXPORTERS) and min(peaks.values()) > 0, peaks
    avoided = "sum by (edge) (increase(k8sedge_reloads_avoided_total[1h]))"
    assert avoided in queries and min(prometheus.values(avoided, "edge").values()) >= 1
    # Every target is still scraped, and each edge's haproxy answers for its own servers.
    assert prometheus.values("up", "instance") == SCRAPED
    assert set(prometheus.values("count by (edge) (haproxy_backend_active_servers)", "edge")) == set(EXPORTERS)


def test_a_scale_takes_the_fast_path_and_a_new_service_runs_site_yml(tmp_path):
    current = edges_serve(c.model_generation())
    c.wait_pods(c.REPLICAS)
    prometheus.start(METRICS, EXPORTERS)
    watch = c.Watch.start(tmp_path, "-i", INVENTORY, "-e", "k8sedge_status_writeback=true", "--fast-path", "--exit-after", "900",
                          "--metrics-address", METRICS, skip_first=current)
    try:
        watch.wait_log("fast path: runtime API of edge1, edge2", 60)
        # Prometheus must have a sample from before the first change, or increase() cannot count it.
        prometheus.wait_for("up", "instance", lambda found: found == SCRAPED, 60)
        if not current:  # the edges did not serve the lab's model: the first generation rolls it out
            assert wait_run(watch, "site.yml", 0, 600)["rc"] == 0, watch.tail()
        else:
            watch.wait_log("first generation", 60)
        done = len(runs(watch, "playbook"))

        # Endpoint-only: the fast path carries it, endpoints.yml follows.
        before = c.wait_pods(c.REPLICAS)
        probe = c.Probe(seconds=120)
        try:
            c.scale(c.REPLICAS + 1)
            new = c._wait(lambda: c.pods()[0] - before, 60, "no new s2 pod became ready")
            assert probe.wait(lambda answers: c.first_seen(answers, probe.edges, before), 30), watch.tail()
        finally:
            probe.stop()
        # The watcher records its fast-path run once the run is over, which may be after the traffic moved.
        fast = c._wait(lambda: [line for line in runs(watch, "runtime") if line["event"]["change"] == "endpoints" and line["ok"]],
                       60, f"no fast-path run of the endpoint change:\n{watch.tail()}")
        assert all(h["status"] == "applied" for h in fast[-1]["hosts"].values()), watch.tail()
        followed = wait_run(watch, "endpoints.yml", done, 300)
        assert followed["rc"] == 0 and followed["event"]["change"] == "endpoints", watch.tail()
        watch.wait_idle(300)
        address = c.kubectl("get", "pod", sorted(new)[0], "-o", "jsonpath={.status.podIP}")
        for edge in c.EDGES:
            assert in_host(edge, "grep", "-c", f" {address}:8080", "/etc/haproxy/haproxy.cfg", check=False).stdout.strip() not in ("", "0")
        assert edges_serve(c.model_generation())
        done = len(runs(watch, "playbook"))

        # Structural: a new Service, rolled out by site.yml, which then publishes the VIPs.
        c.kubectl("patch", "service", "local-web", "--subresource=status", "--type=merge", "-p",
                  '{"status":{"loadBalancer":{"ingress":null}}}')
        probe = c.Probe(host_header=f"{SERVICE}.pctest", seconds=120)
        try:
            c.kubectl("apply", "-f", "-", stdin=c.SERVICE.format(name=SERVICE, prefix=c.STRUCTURAL_PREFIX))
            rolled = wait_run(watch, "site.yml", done, 600)
            assert rolled["rc"] == 0 and rolled["event"]["change"] == "structural", watch.tail()
            assert probe.wait(lambda answers: c.first_seen(answers, probe.edges, set()), 30), watch.tail()
        finally:
            probe.stop()
        published = c.kubectl("get", "service", "local-web", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}")
        assert published.split() == VIPS["default"]
        check_prometheus(watch)

        # One rollout at a time: while another rollout (a scheduled AWX job) holds the rollout's
        # lease, an endpoint change waits; the fast path leaves it to the playbook run, which waits
        # for the lease. Once the job gives it up, endpoints.yml carries it and the watcher gives the
        # lease up after the run.
        watch.wait_idle(300)
        done = len(runs(watch, "playbook"))
        c.kubectl("apply", "-f", "-", stdin=json.dumps(held_lease("awx/nightly")))
        before = c.wait_pods(c.REPLICAS + 1)
        c.scale(c.REPLICAS + 2)
        c._wait(lambda: c.pods()[0] - before, 60, "no new s2 pod became ready")
        watch.wait_log("is left to the playbook run: Lease k8sedge/k8sedge-rollout is held by 'awx/nightly'", 60)
        watch.wait_log("waiting for the rollout's lease before", 60)
        assert len(runs(watch, "playbook")) == done and not edges_serve(c.model_generation()), watch.tail()
        c.kubectl("delete", "lease", "-n", "k8sedge", "k8sedge-rollout")
        carried = wait_run(watch, "endpoints.yml", done, 300)
        assert carried["rc"] == 0, watch.tail()
        watch.wait_idle(300)
        assert edges_serve(c.model_generation())
        released = json.loads(c.kubectl("get", "lease", "-n", "k8sedge", "k8sedge-rollout", "-o", "json"))["spec"]
        assert "holderIdentity" not in released, released
    finally:
        done = len(runs(watch, "playbook"))
        changed = bool(c.kubectl("get", "service", "-l", f"app={c.STRUCTURAL_PREFIX}", "-o", "name").strip())
        changed |= c.kubectl("get", "deployment", c.DEPLOYMENT, "-o", "jsonpath={.spec.replicas}") != str(c.REPLICAS)
        c.delete_services()
        c.scale(c.REPLICAS)
        try:
            if changed:  # the watcher takes the edges back to the lab's model
                c._wait(lambda: len(runs(watch, "playbook")) > done, 600, f"no playbook run for the clean-up:\n{watch.tail()}")
                watch.wait_idle(600)
        finally:
            watch.stop()
            prometheus.stop()
