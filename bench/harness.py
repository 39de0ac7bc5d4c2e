"""What every benchmark shares: samples in, statistics, verdicts and result files out.

A benchmark module (bench/<name>.py) defines TITLE, GOAL, TIME_BOUND (seconds, full and quick)
and `run(quick, workdir, deadline) -> Measurement`, optionally RUN_FIRST (see discover()). The
harness runs it, derives the figures and writes bench/results/<name>.json; SUMMARY.md is rebuilt
from every result file in the directory, so running one benchmark keeps the others' lines.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import os
import pkgutil
import platform
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
QUICK_RESULTS = RESULTS / "quick"
SCHEMA = 1
SUMMARY_COLUMNS = ("benchmark", "ours", "baseline", "ratio", "goal", "result")


@dataclass(frozen=True)
class Goal:
    """What a benchmark must show; a figure left None is not part of the goal."""

    text: str
    max_ours: float | None = None  # ours' median at most this (in the benchmark's unit)
    min_ratio: float | None = None  # baseline median / ours median at least this


@dataclass(frozen=True)
class Sample:
    """One run of one side. `value` is None when the run failed or timed out."""

    value: float | None
    timed_out_after: float | None = None  # the bound it hit: a lower bound of its value
    peak_rss_mb: float | None = None
    error: str = ""


@dataclass
class Measurement:
    """What a benchmark's run() returns; the harness derives everything else."""

    parameters: dict[str, Any]
    ours: list[Sample]
    baseline: list[Sample]
    ours_label: str
    baseline_label: str
    unit: str = "s"
    versions: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Parts of the goal beyond ours' median that this run missed, each in words (a miss verdict).
    misses: list[str] = field(default_factory=list)


# --- statistics -------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 1]."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def side_stats(samples: list[Sample]) -> dict[str, Any]:
    """Median and p95 of a side. A timed-out sample counts as its bound, so the figures become
    lower bounds ("censored"); failed samples are left out."""
    values = [s.value if s.value is not None else s.timed_out_after for s in samples]
    usable = [v for v in values if v is not None]
    rss = [s.peak_rss_mb for s in samples if s.peak_rss_mb is not None]
    return {
        "samples": [asdict(s) for s in samples],
        "n": len(usable),
        "median": percentile(usable, 0.5) if usable else None,
        "p95": percentile(usable, 0.95) if usable else None,
        "censored": any(s.value is None and s.timed_out_after is not None for s in samples),
        "failed": sum(1 for s in samples if s.value is None and s.timed_out_after is None),
        "peak_rss_mb": max(rss) if rss else None,
    }


def ratio(ours: dict[str, Any], baseline: dict[str, Any]) -> tuple[float | None, str]:
    """baseline median / ours median and what kind of figure it is: "=" exact, ">=" when the
    baseline timed out, "<=" when ours did, "?" when it cannot be told."""
    if not ours["median"] or baseline["median"] is None or (ours["censored"] and baseline["censored"]):
        return None, "?"
    bound = ">=" if baseline["censored"] else "<=" if ours["censored"] else "="
    return baseline["median"] / ours["median"], bound


def verdict(goal: Goal, ours: dict[str, Any], value: float | None, bound: str, errors: list[str],
            misses: list[str]) -> str:
    """pass, miss, or unknown (a bound that cannot decide) or error."""
    if errors or ours["median"] is None:
        return "error"
    checks = ["miss"] if misses else []
    if goal.max_ours is not None:
        checks.append("miss" if ours["median"] > goal.max_ours else "unknown" if ours["censored"] else "pass")
    if goal.min_ratio is not None:
        if value is None:
            checks.append("unknown")
        elif value >= goal.min_ratio:
            checks.append("unknown" if bound == "<=" else "pass")
        else:
            checks.append("unknown" if bound == ">=" else "miss")
    for outcome in ("miss", "unknown"):
        if outcome in checks:
            return outcome
    return "pass"


# --- machine facts ----------------------------------------------------------------------------

def _first_line_with(path: str, prefix: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        return ""


def machine_facts() -> dict[str, Any]:
    mem_kb = _first_line_with("/proc/meminfo", "MemTotal").split()
    return {
        "cpu_model": _first_line_with("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem_kb[0]) / 2**20, 1) if mem_kb else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "ansible_core": _version("ansible-core"),
        "kubernetes_client": _version("kubernetes"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --- results ----------------------------------------------------------------------------------

def result_of(name: str, title: str, goal: Goal, quick: bool, measurement: Measurement,
              machine: dict[str, Any], seconds: float) -> dict[str, Any]:
    ours, baseline = side_stats(measurement.ours), side_stats(measurement.baseline)
    errors = list(measurement.errors)
    errors += [f"ours sample {i + 1}: {s.error}" for i, s in enumerate(measurement.ours) if s.error]
    errors += [f"baseline sample {i + 1}: {s.error}" for i, s in enumerate(measurement.baseline) if s.error]
    value, bound = ratio(ours, baseline)
    return {
        "schema": SCHEMA,
        "name": name,
        "title": title,
        "quick": quick,
        "unit": measurement.unit,
        "parameters": measurement.parameters,
        "ours": {"label": measurement.ours_label, **ours},
        "baseline": {"label": measurement.baseline_label, **baseline},
        "ratio": value,
        "ratio_bound": bound,
        "goal": asdict(goal),
        "verdict": verdict(goal, ours, value, bound, errors, measurement.misses),
        "errors": errors,
        "misses": measurement.misses,
        "versions": measurement.versions,
        "machine": machine,
        "benchmark_seconds": round(seconds, 1),
    }


def failed_result(name: str, title: str, goal: Goal, quick: bool, error: str, machine: dict[str, Any],
                  seconds: float) -> dict[str, Any]:
    """The result of a benchmark that could not measure at all: reported, never hidden."""
    empty = Measurement(parameters={}, ours=[], baseline=[], ours_label="", baseline_label="", errors=[error])
    return result_of(name, title, goal, quick, empty, machine, seconds)


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"


def _side_cell(side: dict[str, Any], unit: str) -> str:
    if side["median"] is None:
        return "n/a"
    prefix = ">= " if side["censored"] else ""
    cell = f"{prefix}{_figure(side['median'], unit)} (p95 {prefix}{_figure(side['p95'], unit)})"
    if side["peak_rss_mb"] is not None:
        cell += f", {side['peak_rss_mb']:.0f} MB peak"
    return cell


def summary_row(result: dict[str, Any]) -> tuple[str, ...]:
    unit = result["unit"]
    bound = "" if result["ratio_bound"] == "=" else result["ratio_bound"] + " "
    ratio_cell = "n/a" if result["ratio"] is None else f"{bound}{result['ratio']:.1f}x"
    return (
        f"{result['title']} (`{result['name']}`)",
        _side_cell(result["ours"], unit),
        _side_cell(result["baseline"], unit),
        ratio_cell,
        result["goal"]["text"],
        "; ".join([result["verdict"], *result.get("misses", [])]),
    )


README = BENCH.parent / "README.md"
README_START, README_END = "<!-- bench-summary: start -->", "<!-- bench-summary: end (python -m bench writes it) -->"


def summary_table(results: list[dict[str, Any]]) -> list[str]:
    """The table of SUMMARY.md, and of README's performance section."""
    return (["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
            + ["| " + " | ".join(summary_row(r)) + " |" for r in results])


def readme_with_table(readme: str, results: list[dict[str, Any]]) -> str:
    """README with the full run's table between its markers: the one source of its figures."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[:start] + "\n" + "\n".join(summary_table(results)) + "\n" + readme[end:]


def summary_markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Benchmarks", ""]
    if results:
        machine = results[0]["machine"]
        lines += [f"Measured on {machine['cpu_model']} ({machine['cores']} cores, {machine['memory_gb']} GB), "
                  f"Linux {machine['kernel']}, Python {machine['python']}, {machine['date']}"
                  f"{' (quick: small parameters, figures not comparable)' if results[0]['quick'] else ''}.", ""]
    lines += summary_table(results)
    errors = [(r["name"], e) for r in results for e in r["errors"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- `{name}`: {error}" for name, error in errors]
    lines += ["", "Raw samples, parameters and machine facts: `<benchmark>.json` beside this file.", ""]
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def write_result(out: Path, result: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result['name']}.json"
    _write_atomic(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


def load_results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))]


def write_summary(out: Path) -> Path:
    """SUMMARY.md beside the results; for the full results, README's table too."""
    path = out / "SUMMARY.md"
    results = load_results(out)
    _write_atomic(path, summary_markdown(results))
    if out.resolve() == RESULTS.resolve():
        _write_atomic(README, readme_with_table(README.read_text(encoding="utf-8"), results))
    return path


REQUIRED_KEYS = {"schema", "name", "title", "quick", "unit", "parameters", "ours", "baseline", "ratio",
                 "ratio_bound", "goal", "verdict", "errors", "machine"}


def check_results(out: Path, names: list[str]) -> list[str]:
    """Problems with the files a run should have written (shape only, never speed)."""
    problems = []
    for name in names:
        path = out / f"{name}.json"
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        missing = REQUIRED_KEYS - set(result)
        if missing:
            problems.append(f"{path}: missing {sorted(missing)}")
            continue
        if result["verdict"] not in ("pass", "miss", "unknown", "error"):
            problems.append(f"{path}: verdict {result['verdict']!r}")
        for side in ("ours", "baseline"):
            if not isinstance(result[side].get("samples"), list):
                problems.append(f"{path}: {side} has no samples list")
    summary = out / "SUMMARY.md"
    text = summary.read_text(encoding="utf-8") if summary.exists() else ""
    for name in names:
        if f"(`{name}`)" not in text:
            problems.append(f"{summary}: no line for {name}")
    return problems


# --- running ----------------------------------------------------------------------------------

def discover() -> dict[str, ModuleType]:
    """Benchmark modules: bench/<name>.py that define run(); helpers start with `_`."""
    found = {}
    for info in pkgutil.iter_modules([str(BENCH)]):
        if info.ispkg or info.name.startswith("_") or info.name == "harness":
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    # RUN_FIRST: needs the edges as site.yml left them, before others install configs of their own.
    return dict(sorted(found.items(), key=lambda item: (not getattr(item[1], "RUN_FIRST", False), item[0])))


def run_one(name: str, module: ModuleType, quick: bool, machine: dict[str, Any]) -> dict[str, Any]:
    """Run one benchmark within its time bound; an exception becomes an error result."""
    bound = module.TIME_BOUND["quick" if quick else "full"]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
        try:
            measurement = module.run(quick, Path(workdir), started + bound)
        except Exception:  # a broken benchmark is reported in its result, the others still run
            return failed_result(name, module.TITLE, module.GOAL, quick, traceback.format_exc(limit=5),
                                 machine, time.monotonic() - started)
    elapsed = time.monotonic() - started
    if elapsed > bound:
        measurement.errors.append(f"took {elapsed:.0f} s, over its time bound of {bound} s")
    return result_of(name, module.TITLE, module.GOAL, quick, measurement, machine, elapsed)
