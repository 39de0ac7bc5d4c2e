# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: probe_report_html
short_description: A probe report as one self-contained HTML page
version_added: 0.1.0
description:
  - Takes what P(k8sedge.lb.probe_report#filter) returns and gives one HTML page without external
    resources - a table of each route and frontend against each VIP, edge host and the targets
    probed from each host, with the latency of what answered, the failures marked with their
    reason, the verdict and the counts.
  - Every value is escaped; the values come from the cluster and the network.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The report.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write the report as a page
  ansible.builtin.copy:
    content: "{{ verdict | k8sedge.lb.probe_report_html }}"
    dest: /var/tmp/probe-report.html
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The HTML page.
  type: str
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._probe_html import html_report


def probe_report_html(report: Any) -> str:
    try:
        return html_report(report)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.probe_report_html: {exc}") from None


class FilterModule:
    """A probe report as a page."""

    def filters(self) -> dict[str, Any]:
        return {"probe_report_html": probe_report_html}
