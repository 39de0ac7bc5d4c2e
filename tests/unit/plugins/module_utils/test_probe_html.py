"""k8sedge.lb.probe_report_html: the probe report as a page. Values from the cluster are escaped,
and the page renders in a real browser (headless Chromium, a screenshot taken)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.probe_report_html import probe_report_html

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def probe(kind, via, frontend="default-http-80", label="s2.pctest/", ok=True, latency=1.5, error=""):
    return {"kind": kind, "via": via, "frontend": frontend, "label": label, "ok": ok, "latency_ms": latency, "error": error,
            "name": f"{kind} {via} {frontend} {label}", "target": "10.213.0.21:31780", "backend": "default_s2_80"}


HOSTILE = '<script>alert(1)</script>"&'
REPORT = {
    "generation": "0123456789abcdef", "passed": False, "sent": True, "time": "2026-12-07T12:00:00+00:00",
    "summary": {"probes": 6, "passed": 4, "failed": 2, "skipped": 0, "blocking": 2},
    "probes": [probe("vip", "10.213.0.200"), probe("edge", "edge1", latency=2.25), probe("edge", "edge2"),
               probe("target", "edge1", latency=0.5),
               probe("vip", "10.213.0.200", "default-tcp-9999", "9999", ok=False, latency=None, error="connection refused"),
               probe("edge", "edge1", "default-http-80", HOSTILE, ok=False, latency=None, error=HOSTILE)],
    "failures": [{"class": "edge", "name": "edge edge1 default-http-80 x", "target": "10.213.0.11:80", "error": HOSTILE}],
    "notes": ["skipped default-udp-5353 via edge1: no UDP on haproxy"],
}


def test_each_check_against_each_vip_and_edge_with_latency_and_failures_marked():
    page = probe_report_html(REPORT)
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page and "&lt;script&gt;" in page
    assert '<span class="verdict fail">failed</span>' in page
    header = page[page.index("<thead>"):page.index("</thead>")]
    assert re.findall(r"<th>(\w+)", header) == ["frontend", "check", "vip", "edge", "edge", "target"]
    row = page[page.index("<tr><td>default-http-80</td><td>s2.pctest/</td>"):].split("</tr>")[0]
    assert row.count('class="ok"') == 4 and "2.2 ms" in row  # the edge1 cell: its latency
    assert 'FAIL 1/1<br><small>connection refused</small>' in page
    assert "no UDP on haproxy" in page and "http://" not in page and "https://" not in page  # self-contained


def test_a_plan_shows_what_would_be_probed():
    plan = {**REPORT, "sent": False, "passed": True, "failures": [],
            "probes": [{**p, "ok": None, "latency_ms": None} for p in REPORT["probes"]]}
    page = probe_report_html(plan)
    assert '<span class="verdict planned">plan: no probe sent</span>' in page and 'class="bad"' not in page
    assert page.count('<td class="plan">plan</td>') == 6


@pytest.mark.parametrize("report", [None, [], {"probes": "x"}])
def test_what_is_not_a_report_is_refused(report):
    with pytest.raises(AnsibleFilterError, match="k8sedge.lb.probe_report_html: report: expected what k8sedge.lb.probe_report returns"):
        probe_report_html(report)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs chromium-headless-shell)")
def test_the_page_renders_in_headless_chromium(tmp_path: Path):
    page = tmp_path / "probe-report.html"
    page.write_text(probe_report_html(REPORT))
    shot = tmp_path / "probe-report.png"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,700", page.as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    # What the browser built from it: the table with every row, and the hostile label as text.
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count("<tr>") == 1 + 3 and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
