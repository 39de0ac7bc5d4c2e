# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A probe report as one self-contained HTML page: each route and frontend against each VIP and
edge host, with latency, failures marked and the reasons listed. Every value comes from the
cluster or the network, so every value is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f23; }
h1 { font-size: 1.3em; } .verdict { padding: .2em .6em; border-radius: 4px; color: #fff; }
.pass { background: #2e7d32; } .fail { background: #c62828; } .planned { background: #546e7a; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #d0d7de; padding: .3em .6em; }
th { background: #f6f8fa; text-align: left; } td.ok { background: #e8f5e9; } td.bad { background: #ffebee; }
td.plan { background: #eceff1; } td.none { color: #8c959f; } small { color: #57606a; }
"""


class HtmlReportError(EdgeError):
    """The input is not a probe report."""


def html_report(report: Mapping[str, Any]) -> str:
    """The page for a report as k8sedge.lb.probe_report returns it (or the role writes it as JSON)."""
    if not isinstance(report, Mapping) or not isinstance(report.get("probes"), list):
        raise HtmlReportError("report: expected what k8sedge.lb.probe_report returns (with its probes)")
    probes = [p for p in report["probes"] if isinstance(p, Mapping)]
    columns = _columns(probes)
    rows: dict[tuple[str, str], dict[tuple[str, str], list[Mapping[str, Any]]]] = {}
    for probe in probes:
        key = (str(probe.get("frontend", "")), str(probe.get("label", "")))
        column = (str(probe.get("kind", "")), str(probe.get("via", "")))
        rows.setdefault(key, {}).setdefault(column, []).append(probe)
    sent = report.get("sent", True) is not False
    passed = bool(report.get("passed"))
    verdict = ("planned", "plan: no probe sent") if not sent else ("pass", "passed") if passed else ("fail", "failed")
    summary = report.get("summary") if isinstance(report.get("summary"), Mapping) else {}
    title = f"k8sedge probe report, generation {str(report.get('generation', ''))[:12]}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f'<h1>{escape(title)} <span class="verdict {verdict[0]}">{escape(verdict[1])}</span></h1>',
        f"<p>{escape(str(report.get('time', '')))} &middot; {_count(summary, 'probes')} probes, "
        f"{_count(summary, 'passed')} passed, {_count(summary, 'failed')} failed, {_count(summary, 'skipped')} skipped</p>",
        '<table id="probes"><thead><tr><th>frontend</th><th>check</th>',
        *(f"<th>{escape(kind)}<br><small>{escape(via)}</small></th>" for kind, via in columns),
        "</tr></thead><tbody>",
    ]
    for (frontend, check), cells in rows.items():
        parts.append(f"<tr><td>{escape(frontend)}</td><td>{escape(check)}</td>")
        parts += [_cell(cells.get(column, [])) for column in columns]
        parts.append("</tr>")
    parts.append("</tbody></table>")
    failures = [f for f in report.get("failures") or [] if isinstance(f, Mapping)]
    if failures:
        parts.append('<h2>Failures</h2><ul id="failures">')
        parts += [f"<li><b>{escape(str(f.get('class', '')))}</b> {escape(str(f.get('name', '')))} "
                  f"&rarr; {escape(str(f.get('target', '')))}: {escape(str(f.get('error', '')))}</li>" for f in failures]
        parts.append("</ul>")
    notes = [str(n) for n in report.get("notes") or []]
    if notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{escape(n)}</li>" for n in notes), "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _columns(probes: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """VIPs first, then edge hosts, then targets (by the host that probed them), each sorted."""
    order = {"vip": 0, "edge": 1, "target": 2}
    found = {(str(p.get("kind", "")), str(p.get("via", ""))) for p in probes}
    return sorted(found, key=lambda c: (order.get(c[0], 3), c))


def _cell(probes: list[Mapping[str, Any]]) -> str:
    if not probes:
        return '<td class="none">&ndash;</td>'
    if any(p.get("ok") is None for p in probes):
        return '<td class="plan">plan</td>'
    failed = [p for p in probes if not p.get("ok")]
    latencies = [float(p["latency_ms"]) for p in probes if p.get("ok") and isinstance(p.get("latency_ms"), (int, float))]
    latency = f"<br><small>{max(latencies):.1f} ms</small>" if latencies else ""
    if not failed:
        return f'<td class="ok">ok{latency}</td>'
    reason = str(failed[0].get("error", ""))
    return (f'<td class="bad" title="{escape(reason)}">FAIL {len(failed)}/{len(probes)}'
            f"<br><small>{escape(reason[:80])}</small></td>")


def _count(summary: Mapping[str, Any], key: str) -> int:
    value = summary.get(key)
    return value if isinstance(value, int) else 0
