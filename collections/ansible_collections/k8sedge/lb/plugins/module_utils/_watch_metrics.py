# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher's Prometheus metrics (bin/k8sedge-watch --metrics-address), folded from the same
records it writes with --events: a change built, each fast-path apply, each playbook run. Pure:
the caller gives the clock, the watch's counters and the records; render() gives the text format."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

# API change to the edges serving it: from under a second (the fast path) to minutes (site.yml at scale).
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
PATHS = ("fast_path", "playbook")
# Label values known from the start are served at 0 before their first event: a series that
# appears at 1 has no earlier sample, and PromQL's increase() would not count that first event.
PLAYBOOKS = ("site.yml", "endpoints.yml")
RESULTS = ("ok", "failed")
FAST_PATH_RESULTS = ("everywhere", "partial")
# The watch's own counters (Watcher.stats) and what they are called here.
WATCH_COUNTERS = {
    "lists": ("k8sedge_watch_lists_total", "Full lists of a collection: the first, and each re-list after a lost watch or 410 Gone."),
    "lost": ("k8sedge_watch_connection_losses_total", "Times the API could not be read or watched: a reconnect with backoff and a re-list follow."),
    "events": ("k8sedge_watch_events_total", "Watch events received."),
    "builds": ("k8sedge_model_builds_total", "Models built from the watched collections."),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Thread-safe: the watch loop, the playbook thread and the HTTP server all touch it."""

    def __init__(self, edges: list[str]) -> None:
        self._lock = threading.Lock()
        self.edges = sorted(edges)
        self.newest = ""  # the newest generation built
        self.serving: dict[str, str] = {}  # edge -> generation it serves
        self.applied_at: dict[str, float] = {}  # edge -> last successful apply (epoch)
        self.behind_since: dict[str, float] = {}  # edge -> first event of the oldest change it does not serve
        self.histogram = {path: [0] * len(BUCKETS) for path in PATHS}
        self.sums = dict.fromkeys(PATHS, 0.0)
        self.counts = dict.fromkeys(PATHS, 0)
        self.playbook_runs = {(playbook, result): 0 for playbook in PLAYBOOKS for result in RESULTS}
        self.fast_path_applies = dict.fromkeys(FAST_PATH_RESULTS, 0)
        self.fail_static_refusals = 0
        self.reloads_avoided = dict.fromkeys(self.edges, 0)

    def built(self, generation: str, first_event: float) -> None:
        """A new generation of the model, from a change whose first watch event came at first_event."""
        with self._lock:
            if generation == self.newest:
                return
            self.newest = generation
            for edge in self.edges:
                if self.serving.get(edge) != generation:
                    self.behind_since.setdefault(edge, first_event)

    def assume_served(self, generation: str, when: float) -> None:
        """--skip-first: the edges are taken to serve the first generation already."""
        with self._lock:
            self._served(self.edges, generation, when)

    def observe(self, record: Mapping[str, Any]) -> None:
        """One --events record: path runtime (the fast path) or playbook; gates records are not counted."""
        with self._lock:
            event = record.get("event") or {}
            generation, first = str(event.get("generation", "")), float(event.get("first_event") or 0)
            finished = float(record.get("finished") or 0)
            if record.get("path") == "runtime":
                self._fast_path(record, generation, first, finished)
            elif record.get("path") == "playbook":
                ok = record.get("rc") == 0
                key = (str(record.get("playbook", "")), "ok" if ok else "failed")
                self.playbook_runs[key] = self.playbook_runs.get(key, 0) + 1
                if ok:  # the playbooks stop on any host's failure: a run that passed reached every edge
                    self._served(self.edges, generation, finished)
                    self._converged("playbook", finished - first)

    def _fast_path(self, record: Mapping[str, Any], generation: str, first: float, finished: float) -> None:
        result = "everywhere" if record.get("ok") else "partial"
        self.fast_path_applies[result] = self.fast_path_applies.get(result, 0) + 1
        hosts = record.get("hosts") or {}
        done = [h for h, o in hosts.items() if o.get("status") in ("applied", "current")]
        for host, outcome in hosts.items():
            if str(outcome.get("reason", "")).startswith("fail-static"):
                self.fail_static_refusals += 1
            if outcome.get("status") == "applied" and outcome.get("commands"):
                self.reloads_avoided[host] = self.reloads_avoided.get(host, 0) + 1
        self._served(done, generation, finished)
        if record.get("ok"):
            self._converged("fast_path", finished - first)

    def _served(self, edges: list[str], generation: str, when: float) -> None:
        for edge in edges:
            self.serving[edge] = generation
            self.applied_at[edge] = when
            if generation == self.newest:
                self.behind_since.pop(edge, None)

    def _converged(self, path: str, seconds: float) -> None:
        seconds = max(0.0, seconds)
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.histogram[path][i] += 1
        self.sums[path] += seconds
        self.counts[path] += 1

    def render(self, now: float, watch: Mapping[str, int]) -> str:
        """The Prometheus text format (0.0.4); `watch` is the watcher's stats."""
        with self._lock:
            out: list[str] = []

            def family(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
                out.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
                out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

            buckets = []
            for path in PATHS:
                buckets += [(f'{{path="{path}",le="{bound:g}"}}', count) for bound, count in zip(BUCKETS, self.histogram[path])]
                buckets.append((f'{{path="{path}",le="+Inf"}}', self.counts[path]))
            out.extend(["# HELP k8sedge_convergence_seconds From a change's first watch event to every edge serving it,"
                        " by path (fast_path: the runtime API; playbook: site.yml or endpoints.yml).",
                        "# TYPE k8sedge_convergence_seconds histogram"])
            out.extend(f"k8sedge_convergence_seconds_bucket{labels} {_number(value)}" for labels, value in buckets)
            out.extend(f'k8sedge_convergence_seconds_sum{{path="{p}"}} {_number(round(self.sums[p], 6))}' for p in PATHS)
            out.extend(f'k8sedge_convergence_seconds_count{{path="{p}"}} {self.counts[p]}' for p in PATHS)
            family("k8sedge_model_generation_info", "gauge", "The newest generation of the model the watcher built.",
                   [(f'{{generation="{_label(self.newest)}"}}', 1)] if self.newest else [])
            family("k8sedge_edge_generation_info", "gauge", "The generation each edge serves, as the watcher last saw it applied.",
                   [(f'{{edge="{_label(e)}",generation="{_label(self.serving[e])}"}}', 1) for e in self.edges if e in self.serving])
            family("k8sedge_edge_last_apply_timestamp_seconds", "gauge",
                   "When each edge last took a change (fast path or playbook); time() minus it is the age of its last apply.",
                   [(f'{{edge="{_label(e)}"}}', round(self.applied_at[e], 3)) for e in self.edges if e in self.applied_at])
            family("k8sedge_edge_staleness_seconds", "gauge",
                   "How long each edge has been behind the cluster: 0 when it serves the newest generation, else the"
                   " seconds since the first watch event of the oldest change it does not serve.",
                   [(f'{{edge="{_label(e)}"}}', round(max(0.0, now - self.behind_since[e]), 3) if e in self.behind_since else 0)
                    for e in self.edges])
            family("k8sedge_playbook_runs_total", "counter", "Playbook runs, by playbook and result.",
                   [(f'{{playbook="{_label(p)}",result="{r}"}}', n) for (p, r), n in sorted(self.playbook_runs.items())])
            family("k8sedge_fast_path_applies_total", "counter",
                   "Fast-path applies, by result (everywhere: every edge has the change; partial: a playbook takes the rest).",
                   [(f'{{result="{r}"}}', n) for r, n in sorted(self.fast_path_applies.items())])
            family("k8sedge_fail_static_refusals_total", "counter",
                   "Fast-path applies an edge refused because the change would remove too many targets.",
                   [("", self.fail_static_refusals)])
            family("k8sedge_reloads_avoided_total", "counter",
                   "Changes an edge took through haproxy's runtime API, without a reload.",
                   [(f'{{edge="{_label(e)}"}}', n) for e, n in sorted(self.reloads_avoided.items())])
            for key, (name, text) in WATCH_COUNTERS.items():
                family(name, "counter", text, [("", int(watch.get(key, 0)))])
            return "\n".join(out) + "\n"
