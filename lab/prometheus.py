"""Debian's Prometheus server in the lab: it scrapes the watcher and each edge's exporter, and a
test asks it PromQL through its HTTP API, as Grafana would.

It runs on the machine (the lab's controller side), on loopback, as a lab process: stopped by its
PID here or by `labctl down`. Its data lives under .lab/run and goes with the lab.
"""
from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

from lab import procs
from lab.topology import RUN_DIR

NAME = "prometheus"
LISTEN = "127.0.0.1:19090"
URL = f"http://{LISTEN}"
DATA_DIR = RUN_DIR / NAME
# Every second: a test waits for the state it checks, and a short interval keeps that wait short.
SCRAPE_INTERVAL = "1s"


class PrometheusError(RuntimeError):
    pass


def config(watcher: str, edges: dict[str, str]) -> dict[str, Any]:
    """The scrape config: the watcher at `watcher` (host:port), each edge's exporter at edges[name]."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": "k8sedge-watch", "static_configs": [{"targets": [watcher]}]},
            {"job_name": "edge", "static_configs": [{"targets": [target], "labels": {"edge": name}}
                                                    for name, target in sorted(edges.items())]},
        ],
    }


def start(watcher: str, edges: dict[str, str], seconds: float = 60) -> str:
    """Start the server with a fresh store; its URL once it is ready."""
    stop()
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    config_file = DATA_DIR / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(watcher, edges), sort_keys=False))
    procs.start(NAME, [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={config_file}",
                       f"--storage.tsdb.path={DATA_DIR / 'data'}", f"--web.listen-address={LISTEN}"])
    procs.wait_until(_ready, seconds, f"Prometheus on {URL}")
    return URL


def stop() -> None:
    procs.stop(NAME)


def _ready() -> bool:
    try:
        with urllib.request.urlopen(f"{URL}/-/ready", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def query(expr: str) -> list[dict[str, Any]]:
    """An instant query's result (a vector: each {metric, value}); an error Prometheus reports raises."""
    url = f"{URL}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as error:  # 400/422: PromQL it cannot parse or evaluate
        body = json.load(error)
    if body.get("status") != "success":
        raise PrometheusError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


def values(expr: str, label: str) -> dict[str, float]:
    """The query's samples by the value of one label."""
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in query(expr)}


def wait_for(expr: str, label: str, done, seconds: float) -> dict[str, float]:
    """Until done(values(expr, label)) holds; bounded, and the last answer is in the error."""
    until = time.monotonic() + seconds
    while True:
        found = values(expr, label)
        if done(found):
            return found
        if time.monotonic() > until:
            raise PrometheusError(f"{expr} still answered {found} after {seconds:.0f} s")
        time.sleep(0.5)
