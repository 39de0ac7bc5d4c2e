"""The benchmark harness: known samples give known figures, verdicts and files."""
from __future__ import annotations

import json
import shutil

import pytest

from bench import _plots, harness
from bench.harness import Goal, Measurement, Sample
from bench.model_build import baseline_targets, compare, ours_targets

GOAL = Goal("ours < 2 s, >= 10x faster", max_ours=2.0, min_ratio=10.0)
MACHINE = {"cpu_model": "Test CPU", "cores": 2, "memory_gb": 4.0, "kernel": "6.1", "python": "3.11.7",
           "date": "2025-01-01T00:00:00+00:00"}


def samples(*values: float) -> list[Sample]:
    return [Sample(v, peak_rss_mb=100.0 + i) for i, v in enumerate(values)]


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([3, 1, 2, 5, 4], 0.5, 3),
    ([3, 1, 2, 5, 4], 0.95, 4.8),
    ([1, 2, 3, 4], 0.5, 2.5),
    ([7], 0.95, 7),
    ([10, 20], 0.95, 19.5),
])
def test_percentile_interpolates_between_closest_ranks(values, q, expected):
    assert harness.percentile(values, q) == pytest.approx(expected)


def test_side_stats_of_plain_samples():
    stats = harness.side_stats(samples(1.0, 2.0, 3.0, 4.0, 5.0))
    assert (stats["n"], stats["median"], stats["censored"], stats["failed"]) == (5, 3.0, False, 0)
    assert stats["p95"] == pytest.approx(4.8)
    assert stats["peak_rss_mb"] == 104.0
    assert stats["samples"][0] == {"value": 1.0, "timed_out_after": None, "peak_rss_mb": 100.0, "error": ""}


def test_a_timed_out_sample_counts_as_its_bound_and_censors_the_side():
    stats = harness.side_stats([Sample(100.0), Sample(None, timed_out_after=600.0), Sample(None, timed_out_after=600.0)])
    assert (stats["median"], stats["censored"], stats["failed"]) == (600.0, True, 0)


def test_a_failed_sample_is_left_out_of_the_figures():
    stats = harness.side_stats([Sample(1.0), Sample(None, error="exited 2"), Sample(3.0)])
    assert (stats["n"], stats["median"], stats["failed"]) == (2, 2.0, 1)


@pytest.mark.parametrize(("ours", "baseline", "ratio", "bound", "verdict"), [
    (samples(1.0, 1.5, 2.0), samples(20.0, 30.0, 40.0), 20.0, "=", "pass"),
    (samples(1.0, 1.5, 2.0), samples(10.0, 12.0, 14.0), 8.0, "=", "miss"),
    (samples(2.5, 3.0, 3.5), samples(60.0, 60.0, 60.0), 20.0, "=", "miss"),  # too slow, though 20x
    # The baseline timed out at 600 s: at least 400x, which is enough.
    (samples(1.0, 1.5, 2.0), [Sample(None, timed_out_after=600.0)] * 3, 400.0, ">=", "pass"),
    # Timed out at 6 s: at least 4x, which cannot tell whether 10x is reached.
    (samples(1.0, 1.5, 2.0), [Sample(None, timed_out_after=6.0)] * 3, 4.0, ">=", "unknown"),
])
def test_ratio_and_verdict(ours, baseline, ratio, bound, verdict):
    result = harness.result_of("model_build", "Model build", GOAL, False,
                               Measurement({}, ours, baseline, "ours", "baseline"), MACHINE, 1.0)
    assert result["ratio"] == pytest.approx(ratio)
    assert (result["ratio_bound"], result["verdict"]) == (bound, verdict)


def test_a_missed_part_of_the_goal_is_a_miss_and_is_said_in_the_summary():
    measured = Measurement({}, samples(1.0), samples(20.0), "ours", "baseline", misses=["structural 36 s > 15 s"])
    result = harness.result_of("b", "B", GOAL, False, measured, MACHINE, 1.0)
    assert (result["verdict"], result["misses"]) == ("miss", ["structural 36 s > 15 s"])
    assert harness.summary_row(result)[-1] == "miss; structural 36 s > 15 s"


def test_an_error_or_no_sample_of_ours_is_an_error_verdict():
    measured = Measurement({}, samples(1.0), samples(20.0), "ours", "baseline", errors=["outputs differ"])
    assert harness.result_of("b", "B", GOAL, False, measured, MACHINE, 1.0)["verdict"] == "error"
    failed = Measurement({}, [Sample(None, error="exited 2")], samples(20.0), "ours", "baseline")
    result = harness.result_of("b", "B", GOAL, False, failed, MACHINE, 1.0)
    assert (result["verdict"], result["ratio"]) == ("error", None)
    assert result["errors"] == ["ours sample 1: exited 2"]


def test_results_and_summary_are_written_and_pass_the_check(tmp_path):
    for name, baseline in (("model_build", samples(20.0, 30.0)), ("other", [Sample(None, timed_out_after=60.0)])):
        measured = Measurement({"services": 5}, samples(1.0, 2.0), baseline, "ours", "baseline")
        harness.write_result(tmp_path, harness.result_of(name, name.title(), GOAL, True, measured, MACHINE, 3.0))
    harness.write_summary(tmp_path)

    written = json.loads((tmp_path / "model_build.json").read_text())
    assert written["parameters"] == {"services": 5}
    assert [s["value"] for s in written["ours"]["samples"]] == [1.0, 2.0]
    assert written["machine"] == MACHINE
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "| Model_Build (`model_build`) | 1.5 s (p95 1.95 s), 101 MB peak | 25 s (p95 29.5 s), 101 MB peak | 16.7x |" in summary
    assert "| >= 40.0x | ours < 2 s, >= 10x faster | pass |" in summary
    assert harness.check_results(tmp_path, ["model_build", "other"]) == []
    assert not list(tmp_path.glob("*.tmp"))


def test_the_check_finds_missing_and_malformed_results(tmp_path):
    (tmp_path / "model_build.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"name": "other"}))
    problems = harness.check_results(tmp_path, ["model_build", "other", "absent"])
    assert len(problems) == 6  # bad JSON, missing keys, no file, and no SUMMARY line for each


def test_a_run_that_raises_becomes_an_error_result():
    class Broken:
        TITLE, GOAL, TIME_BOUND = "Broken", GOAL, {"full": 10, "quick": 10}

        @staticmethod
        def run(quick, workdir, deadline):
            raise RuntimeError("seeding failed")

    result = harness.run_one("broken", Broken, True, MACHINE)
    assert result["verdict"] == "error"
    assert "RuntimeError: seeding failed" in result["errors"][0]


def test_benchmark_modules_are_discovered_and_helpers_are_not():
    found = harness.discover()
    assert "model_build" in found
    assert not [name for name in found if name.startswith("_") or name == "harness"]
    for module in found.values():
        assert {"full", "quick"} <= set(module.TIME_BOUND) and module.TITLE and module.GOAL
    first = [name for name, module in found.items() if getattr(module, "RUN_FIRST", False)]
    assert first == ["site_noop"] and list(found)[:1] == first
    assert list(found)[1:] == sorted(set(found) - set(first))


def test_the_sides_are_compared_per_service_with_node_subsets():
    ours = ours_targets({"backends": [
        {"namespace": "a", "service": "web", "targets": [{"address": "10.0.0.1", "port": 30080}]},
        {"namespace": "a", "service": "web", "targets": [{"address": "10.0.0.2", "port": 30080}]},
        {"namespace": "a", "service": "api", "targets": [{"address": "10.0.0.1", "port": 30081}]},
    ]})
    def baseline(web: list[str], api: list[str]) -> dict:
        return baseline_targets({"ansible_facts": {"bench_backends": {"a/web": web, "a/api": api}}})
    every = ["10.0.0.1:30081", "10.0.0.2:30081", "10.0.0.3:30081"]
    assert compare(ours, baseline(["10.0.0.1:30080", "10.0.0.2:30080"], every), subset_size=1) == []
    # api has a subset of the right size; with every node expected (0) it disagrees.
    [error] = compare(ours, baseline(["10.0.0.1:30080", "10.0.0.2:30080"], every), subset_size=0)
    assert error.startswith("the two sides disagree on 1 Services, e.g. a/api: ours ['10.0.0.1:30081']")
    # A subset of the wrong size, or a target the baseline does not have, is a disagreement.
    assert compare(ours, baseline(["10.0.0.1:30080", "10.0.0.2:30080"], every), subset_size=2)
    assert compare(ours, baseline(["10.0.0.1:30080"], every), subset_size=1)


def test_readme_shows_the_table_the_recorded_full_runs_give():
    """README's benchmark figures have one source: bench/results/<name>.json (python -m bench writes them)."""
    readme = harness.README.read_text(encoding="utf-8")
    assert readme == harness.readme_with_table(readme, harness.load_results(harness.RESULTS)), \
        "README's benchmark table differs from bench/results: run `python -m bench` or write it with harness.readme_with_table"


def test_the_figures_are_drawn_from_the_recorded_results(tmp_path):
    for name in ("convergence", "rollout_scale", "failover", "rolling_update", "reloads_haproxy", "reloads_nginx"):
        shutil.copy(harness.RESULTS / f"{name}.json", tmp_path)
    drawn = _plots.draw(tmp_path)
    assert sorted(p.name for p in drawn) == ["convergence.png", "failover.png", "reloads.png", "rolling_update.png",
                                             "rollout_scale.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in drawn)
    # The committed figures are these: README shows them.
    readme = harness.README.read_text(encoding="utf-8")
    assert all(f"](bench/results/{p.name})" in readme and (harness.RESULTS / p.name).exists() for p in drawn)
