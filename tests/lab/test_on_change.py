"""bin/k8sedge-watch --fast-path against the lab, end to end: a cluster change -> the right path ->
traffic from the lab's client follows, through both edges.

- scale default/s2 up through the API: an endpoint-only change; the fast path puts the new pod
  into both haproxys' runtime API, the client reaches it through each edge, and endpoints.yml
  follows (the config on disk names the pod, the recorded generation is the watcher's);
- a new Service: structural; site.yml rolls it out and its host answers through each edge, and
  (status write-back on) publishes the VIPs in default/local-web's status.

The watcher is bounded (--exit-after) and stopped by its PID; the Service is deleted and s2 scaled
back through the same watcher, so the edges end on the lab's model.
"""
from __future__ import annotations

import pytest

import yaml

from lab.testlib import converge as c
from lab.testlib import steps
from lab.topology import REPO
from tests.lab.conftest import in_host

pytestmark = pytest.mark.usefixtures("lab")

INVENTORY = "inventory/lab/hosts.yml"
SERVICE = "conv-e2e"
VIPS = yaml.safe_load((REPO / "inventory/lab/group_vars/edges.yml").read_text())["k8sedge_pool_vips"]


def edges_serve(generation: str) -> bool:
    for edge in c.EDGES:
        result = in_host(edge, "sh", "-c", f"systemctl is-active --quiet haproxy && {steps.SERVED_GENERATION}", check=False)
        if result.stdout.strip() != generation:
            return False
    return True


def runs(watch: c.Watch, path: str) -> list[dict]:
    return [line for line in watch.lines() if line["path"] == path]


def wait_run(watch: c.Watch, playbook: str, after: int, seconds: float) -> dict:
    """The first run of `playbook` past the first `after` playbook runs, once it ended."""
    found = c._wait(lambda: [r for r in runs(watch, "playbook")[after:] if r["playbook"] == playbook], seconds,
                    f"no {playbook} run within {seconds:.0f} s:\n{watch.tail()}")
    return found[0]


def test_a_scale_takes_the_fast_path_and_a_new_service_runs_site_yml(tmp_path):
    current = edges_serve(c.model_generation())
    c.wait_pods(c.REPLICAS)
    watch = c.Watch.start(tmp_path, "-i", INVENTORY, "-e", "k8sedge_status_writeback=true", "--fast-path", "--exit-after", "900",
                          skip_first=current)
    try:
        watch.wait_log("fast path: runtime API of edge1, edge2", 60)
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
