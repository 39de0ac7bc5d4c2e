"""The benchmarks' figures as PNG files beside their results: drawn from bench/results/<name>.json
only, so a figure shows what the file records. Ours against the baseline wherever both exist."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from statistics import StatisticsError, median
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines that draw them
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

OURS, BASELINE = "#1565c0", "#9e9e9e"


def _values(side: dict[str, Any]) -> list[float]:
    return [s["value"] for s in side.get("samples", []) if s.get("value") is not None]


def convergence(result: dict[str, Any], ax: Any) -> None:
    """Endpoint-only changes through the fast path against endpoints.yml, per kind of change."""
    p = result["parameters"]
    changes = sorted(p["ours_by_change"])
    x = range(len(changes))
    ours = [p["ours_by_change"][c]["median_s"] for c in changes]
    base = [p["baseline_by_change"][c]["median_s"] for c in changes]
    ax.bar([i - 0.2 for i in x], ours, 0.4, color=OURS, label="watcher fast path")
    ax.bar([i + 0.2 for i in x], base, 0.4, color=BASELINE, label="endpoints.yml")
    ax.set_xticks(list(x), changes)
    ax.set_yscale("log")
    ax.set_ylabel("API change to traffic through both edges, median (s)")
    ax.axhline(1.0, color="#c62828", linestyle="--", linewidth=1, label="goal: 1 s")
    ax.legend()


def rollout_scale(result: dict[str, Any], ax: Any) -> None:
    """One new Service through site.yml: through the VIP and on both edges, by cluster size."""
    p = result["parameters"]
    sizes = [int(s) for s in p["sizes"]]
    for engine, color, style in (("haproxy", OURS, "-"), ("nginx", "#6a1b9a", ":")):
        runs = [p[str(s)]["structural"] if engine == "haproxy" else p[str(s)].get("nginx", {}).get("structural", [])
                for s in sizes]
        if not all(runs):
            continue
        ax.plot(sizes, [median(r["vip_s"] for r in rs) for rs in runs], style, marker="o", color=color,
                label=f"{engine}: through the VIP")
        ax.plot(sizes, [median(r["edges_s"] for r in rs) for rs in runs], style, marker="s", color=color, alpha=0.5,
                label=f"{engine}: both edges")
    ax.plot(sizes, [p[str(s)]["baseline_s"] for s in sizes], "--", marker="x", color=BASELINE,
            label="baseline: k8s_info + Jinja + reload, no probes")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.set_xlabel("exposed Services")
    ax.set_ylabel("site.yml start to the new Service answering (s)")
    ax.legend(fontsize=8)


def failover(result: dict[str, Any], ax: Any) -> None:
    """A timeline per run: from the fault (0 s) the requests are lost until traffic is back through
    the VIP on the backup (the bar); the dot is the VIP appearing there."""
    p = result["parameters"]
    labels = []
    for side, color in (("baseline", BASELINE), ("ours", OURS)):
        for fault in reversed(p["faults"]):
            for n, run in enumerate(r for r in p[side]["runs"] if r["fault"] == fault):
                y = len(labels)
                labels.append(f"{side} {fault.replace('_', ' ')} #{n + 1}")
                ax.barh(y, run["traffic_back_s"] - run["first_lost_s"], left=run["first_lost_s"], color=color, alpha=0.6)
                ax.plot(run["takeover_s"], y, "o", color=color)
                ax.annotate(f"{run['lost']} lost", (run["traffic_back_s"], y), xytext=(4, -3), textcoords="offset points",
                            fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("seconds after the fault on the VIP's master (bar: requests lost; dot: VIP on the backup)")
    ax.axvline(1.0, color="#c62828", linestyle="--", linewidth=1)


def reloads(results: dict[str, dict[str, Any]], ax: Any) -> None:
    """Failed requests per run under load with 5 reloads in 10 s, per engine."""
    names = [n for n in ("reloads_haproxy", "reloads_nginx") if n in results]
    for i, name in enumerate(names):
        for offset, side, color in ((-0.15, "ours", OURS), (0.15, "baseline", BASELINE)):
            values = _values(results[name][side])
            ax.scatter([i + offset] * len(values), values, color=color, s=40,
                       label=("ours" if side == "ours" else "baseline") if i == 0 else None)
    ax.set_xticks(range(len(names)), [n.split("_")[1] for n in names])
    ax.set_ylabel("failed requests in a run")
    ax.legend()


def rolling_update(result: dict[str, Any], ax: Any) -> None:
    """Failed requests through the VIP during kubectl rollout restart, per way of running."""
    values = {"readiness gates + fast path": _values(result["ours"]), "without gates (fast path and endpoints.yml)":
              _values(result["baseline"])}
    for i, (label, found) in enumerate(values.items()):
        ax.scatter([i] * len(found), found, color=OURS if i == 0 else BASELINE, s=40)
    ax.set_xticks(range(len(values)), list(values), fontsize=8)
    ax.set_ylabel("failed requests in a sample")


FIGURES: dict[str, tuple[str, Callable[..., None]]] = {
    "convergence": ("Convergence: endpoint-only changes", convergence),
    "rollout_scale": ("The whole rollout by cluster size", rollout_scale),
    "failover": ("VIP failover: ours (VRRPv3 0.2 s, watching check) against VRRPv2 1 s", failover),
    "rolling_update": ("Rolling update under load", rolling_update),
}


def draw(out: Path) -> list[Path]:
    """The figures of the results in `out` that are there, as out/<name>.png. A quick run records
    less (no baseline for some, one size): a figure its file cannot fill is left out, and said."""
    results = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))}
    drawn = []
    jobs: list[tuple[str, str, Callable[[Any], None]]] = [
        (name, title, lambda ax, f=function, r=results[name]: f(r, ax))
        for name, (title, function) in FIGURES.items() if name in results]
    if "reloads_haproxy" in results or "reloads_nginx" in results:
        jobs.append(("reloads", "Reloads under load (wrk keep-alive, 5 reloads in 10 s)", lambda ax: reloads(results, ax)))
    for name, title, plot in jobs:
        figure, ax = plt.subplots(figsize=(8, 6 if name == "failover" else 4), dpi=100)
        try:
            try:
                plot(ax)
            except (KeyError, ValueError, StatisticsError) as exc:
                print(f"bench: {name}.png not drawn: its results lack {exc}")
                continue
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
            figure.tight_layout()
            path = out / f"{name}.png"
            figure.savefig(path, metadata={"Software": None})  # no version stamp: a redraw of the same data is the same file
            drawn.append(path)
        finally:
            plt.close(figure)
    return drawn
