"""The watcher's Prometheus metrics, folded from its --events records; promtool accepts them."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._watch_metrics import Metrics

PROMTOOL = shutil.which("promtool")
WATCH = {"lists": 5, "lost": 1, "events": 40, "builds": 7}


def runtime(generation, first, finished, **hosts):
    ok = all(h["status"] in ("applied", "current") for h in hosts.values())
    return {"event": {"generation": generation, "first_event": first}, "path": "runtime", "started": first + 0.05,
            "finished": finished, "ok": ok, "hosts": hosts}


def playbook(generation, first, finished, name="site.yml", rc=0):
    return {"event": {"generation": generation, "first_event": first}, "path": "playbook", "playbook": name,
            "started": first + 0.1, "finished": finished, "rc": rc}


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.findall(pattern, text, re.M)
    assert len(found) == 1, (name, labels, text)
    return float(found[0])


def test_staleness_rises_while_an_edge_is_behind_and_falls_back_once_it_serves_the_change():
    metrics = Metrics(["edge1", "edge2"])
    metrics.built("g1", 100.0)
    metrics.observe(playbook("g1", 100.0, 112.0))
    text = metrics.render(120.0, WATCH)
    assert sample(text, "k8sedge_edge_staleness_seconds", edge="edge1") == 0
    assert sample(text, "k8sedge_edge_last_apply_timestamp_seconds", edge="edge2") == 112.0
    metrics.built("g2", 200.0)
    assert sample(metrics.render(203.5, WATCH), "k8sedge_edge_staleness_seconds", edge="edge2") == 3.5
    # The fast path reaches edge1 only; edge2 waits for the playbook.
    metrics.observe(runtime("g2", 200.0, 200.3, edge1={"status": "applied", "commands": 4},
                            edge2={"status": "fallback", "reason": "fail-static: 3 of 4 targets"}))
    text = metrics.render(205.0, WATCH)
    assert sample(text, "k8sedge_edge_staleness_seconds", edge="edge1") == 0
    assert sample(text, "k8sedge_edge_staleness_seconds", edge="edge2") == 5.0
    assert sample(text, "k8sedge_edge_generation_info", edge="edge1", generation="g2") == 1
    assert sample(text, "k8sedge_fail_static_refusals_total") == 1
    assert sample(text, "k8sedge_reloads_avoided_total", edge="edge1") == 1
    assert sample(text, "k8sedge_fast_path_applies_total", result="partial") == 1
    metrics.observe(playbook("g2", 200.0, 214.0, name="endpoints.yml"))
    text = metrics.render(215.0, WATCH)
    assert sample(text, "k8sedge_edge_staleness_seconds", edge="edge2") == 0
    assert sample(text, "k8sedge_playbook_runs_total", playbook="endpoints.yml", result="ok") == 1


def test_the_convergence_histogram_counts_each_path_apart():
    metrics = Metrics(["edge1"])
    metrics.observe(runtime("g1", 10.0, 10.2, edge1={"status": "applied", "commands": 2}))
    metrics.observe(playbook("g2", 20.0, 32.0))
    metrics.observe(playbook("g3", 40.0, 41.0, rc=2))  # a failed run converged nothing
    text = metrics.render(50.0, WATCH)
    assert sample(text, "k8sedge_convergence_seconds_bucket", path="fast_path", le="0.25") == 1
    assert sample(text, "k8sedge_convergence_seconds_bucket", path="fast_path", le="0.1") == 0
    assert sample(text, "k8sedge_convergence_seconds_bucket", path="playbook", le="10") == 0
    assert sample(text, "k8sedge_convergence_seconds_bucket", path="playbook", le="15") == 1
    assert sample(text, "k8sedge_convergence_seconds_count", path="playbook") == 1
    assert sample(text, "k8sedge_convergence_seconds_sum", path="playbook") == 12.0
    assert sample(text, "k8sedge_playbook_runs_total", playbook="site.yml", result="failed") == 1
    assert sample(text, "k8sedge_watch_connection_losses_total") == 1 and sample(text, "k8sedge_watch_lists_total") == 5


def test_known_label_values_are_served_at_zero_before_their_first_event():
    text = Metrics(["edge1", "edge2"]).render(0.0, WATCH)
    for playbook_name in ("site.yml", "endpoints.yml"):
        for result in ("ok", "failed"):
            assert sample(text, "k8sedge_playbook_runs_total", playbook=playbook_name, result=result) == 0
    assert sample(text, "k8sedge_fast_path_applies_total", result="everywhere") == 0
    assert sample(text, "k8sedge_fast_path_applies_total", result="partial") == 0
    assert sample(text, "k8sedge_reloads_avoided_total", edge="edge2") == 0
    assert sample(text, "k8sedge_convergence_seconds_count", path="fast_path") == 0


def test_skip_first_takes_the_edges_as_current():
    metrics = Metrics(["edge1"])
    metrics.built("g1", 1.0)
    metrics.assume_served("g1", 2.0)
    assert sample(metrics.render(60.0, WATCH), "k8sedge_edge_staleness_seconds", edge="edge1") == 0


def test_hostile_label_values_are_escaped():
    metrics = Metrics(['edge"1\n'])
    metrics.observe(runtime("g", 1.0, 1.1, **{'edge"1\n': {"status": "applied", "commands": 1}}))
    assert 'edge="edge\\"1\\n"' in metrics.render(2.0, WATCH)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make setup installs prometheus)")
def test_promtool_accepts_every_family(tmp_path):
    metrics = Metrics(["edge1", "edge2"])
    metrics.built("g1", 100.0)
    metrics.observe(runtime("g1", 100.0, 100.2, edge1={"status": "applied", "commands": 4}, edge2={"status": "current"}))
    metrics.observe(playbook("g1", 100.0, 110.0, name="endpoints.yml"))
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics.render(111.0, WATCH), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stdout + result.stderr


DASHBOARD = Path(__file__).resolve().parents[4] / "docs/grafana/k8sedge.json"
METRICS_DOC = DASHBOARD.parents[1] / "metrics.md"


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_the_dashboard_asks_only_what_docs_metrics_md_lists_of_metrics_the_watcher_serves():
    documented = METRICS_DOC.read_text()
    served = set(re.findall(r"^# TYPE (\w+) ", Metrics(["edge1"]).render(0.0, WATCH), re.M))
    for query in dashboard_queries():
        # docs/metrics.md writes a p95 as "the same with 0.95": compare the p50 form.
        assert f"`{query.replace('histogram_quantile(0.95', 'histogram_quantile(0.5')}`" in documented, query
        names = {n.removesuffix("_bucket").removesuffix("_count") for n in re.findall(r"\bk8sedge_\w+", query)}
        assert names <= served, names - served


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make setup installs prometheus)")
def test_promtool_parses_every_query_of_the_dashboard(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"k8sedge:dashboard_{i}", "expr": q}
                                                          for i, q in enumerate(dashboard_queries())]}]}
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
