"""rollout_scale's pure parts: the Services it creates, its phases and what it calls a miss."""
from __future__ import annotations

import json

import yaml

from bench import rollout_scale as r


def test_the_first_half_are_node_port_services_and_the_rest_pod_mode_with_hosts_of_their_own():
    docs = list(yaml.safe_load_all(r.services(["scale10-00000", "scale10-00001", "scale10-00002"], 1)))
    assert [d["spec"]["type"] for d in docs] == ["NodePort", "ClusterIP", "ClusterIP"]
    annotations = [d["metadata"]["annotations"] for d in docs]
    assert [a["lb.k8sedge.io/backend"] for a in annotations] == ["nodeport", "pod", "pod"]
    assert [a["lb.k8sedge.io/hosts"] for a in annotations] == [f"scale10-0000{i}.pctest" for i in range(3)]
    assert {a["lb.k8sedge.io/health-check"] for a in annotations} == {"none"}
    assert {d["metadata"]["labels"]["app"] for d in docs} == {r.PREFIX}


def test_task_durations_are_summed_per_phase_and_the_rest_is_apply(tmp_path):
    timings = tmp_path / "t.json"
    timings.write_text(json.dumps({"tasks": [
        {"name": "Read the edge model from the cluster", "seconds": 1.0},
        {"name": "Compare the new model with what the edges serve", "seconds": 0.5},
        {"name": "Build the haproxy view of the model and render the config", "seconds": 2.0},
        {"name": "edge_haproxy : Build the haproxy view of the model and render the config", "seconds": 1.0},
        {"name": "edge_probe : Probe the backend targets from this edge host", "seconds": 3.0},
        {"name": "Probe this host and the targets it forwards to", "seconds": 0.5},
        {"name": "edge_keepalived : Render keepalived.conf", "seconds": 0.5},
        {"name": "Configure keepalived", "seconds": 0.25}, {"name": "Apply the model with haproxy", "seconds": None}]}))
    assert r.phases(timings) == {"read and guard": 1.5, "apply": 3.0, "probes": 3.5, "keepalived": 0.75}


def test_the_goal_s_limits_per_size():
    run = {"seconds": 5.0, "peak_rss_mb": 500.0}
    figures = {"structural": [{**run, "vip_s": 9.0, "edges_s": 25.0}], "first_run": run, "no_change": {**run, "seconds": 16.0}}
    assert r.misses(5000, figures) == ["5000 Services: edges_s median 25.0 s > 20.0 s", "5000 Services: no-change run 16.0 s > 15.0 s"]
    assert r.misses(1000, figures) == ["1000 Services: vip_s median 9.0 s > 6.0 s"]
    assert r.misses(300, figures) == []


def test_the_tasks_that_changed_are_named_with_their_hosts():
    output = ("TASK [Read the edge model] ***\nok: [edge1]\n\nTASK [Apply target changes through the runtime API] ***\n"
              "changed: [edge1]\nok: [edge2]\n\nRUNNING HANDLER [edge_haproxy : edge_haproxy reload] ***\nchanged: [edge2]\n")
    assert r.changed_tasks(output) == ["Apply target changes through the runtime API (edge1)",
                                       "edge_haproxy : edge_haproxy reload (edge2)"]
