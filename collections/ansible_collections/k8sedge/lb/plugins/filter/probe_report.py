# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: probe_report
short_description: Judge the results of planned probes and say where a failure is
version_added: 0.1.0
description:
  - Takes a plan from P(k8sedge.lb.probe_plan#filter) and the C(probes) results of
    M(k8sedge.lb.probe) and returns a verdict per edge host, a table and the failures.
  - Each failure is classified - C(backend) (the backend's targets do not answer directly either,
    or a target itself failed), C(edge) (targets answer, this edge does not, or this edge's engine
    counts them all down), C(vip) (every edge answers, the VIP does not).
  - A planned probe without a result counts as failed.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The plan.
    type: dict
    required: true
  results:
    description: The C(probes) lists of the M(k8sedge.lb.probe) calls, concatenated.
    type: list
    elements: dict
    required: true
  engine_health:
    description:
      - Each edge host's engine verdict on its servers, edge host to backend to C({up, down})
        (role C(edge_haproxy)'s fact C(edge_haproxy_health)).
      - A backend whose targets answer directly but that an engine counts all down is an C(edge)
        failure of kind C(engine) on that host, whatever its probes saw.
    type: dict
    default: {}
  fail_on:
    description: The failure classes that fail the verdict.
    type: list
    elements: str
    default: [edge, backend, vip]
  sent:
    description:
      - V(false) when the probes were not sent (check mode - the edges still serve what they served
        before the run, so an answer would prove nothing about the plan). The report then lists the
        plan, marks each cell C(plan), judges nothing and passes; O(results) is ignored.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Judge the probes
  ansible.builtin.set_fact:
    verdict: "{{ plan | k8sedge.lb.probe_report(results=probed.probes) }}"

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ verdict.table }}"
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    passed:
      description: No failure of a class in O(fail_on).
      type: bool
    hosts:
      description: Edge host to C({passed, failures}), counting what went through it and the targets it probed.
      type: dict
    failures:
      description: Every failed probe - C(name), C(kind), C(class), C(frontend), C(label), C(via), C(runner), C(target), C(backend), C(error).
      type: list
      elements: dict
    blocking:
      description: The failures whose class is in O(fail_on).
      type: list
      elements: dict
    messages:
      description: One line per blocking failure - which probe, where, and what came back.
      type: list
      elements: str
    table:
      description: Fixed-width lines - frontend, check, VIP, one column per edge host, backends up/total, median latency.
      type: list
      elements: str
    rows:
      description: The table's data.
      type: list
      elements: dict
    probes:
      description: Every planned probe with its result.
      type: list
      elements: dict
    skipped:
      description: The plan's skipped checks.
      type: list
      elements: dict
    notes:
      description: One line per skipped check - what, through where, and why.
      type: list
      elements: str
    summary:
      description: Counts - C(probes), C(passed), C(failed), C(skipped), C(blocking).
      type: dict
    sent:
      description: Whether the probes were sent (O(sent)).
      type: bool
    generation:
      description: The model's generation.
      type: str
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._probe_plan import CLASSES, report


def probe_report(planned: Any, results: Any, fail_on: Any = CLASSES, engine_health: Any = None, sent: bool = True) -> dict[str, Any]:
    try:
        return report(planned, results, fail_on, engine_health, sent=bool(sent))
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.probe_report: {exc}") from None


class FilterModule:
    """Verdicts of probe results."""

    def filters(self) -> dict[str, Any]:
        return {"probe_report": probe_report}
