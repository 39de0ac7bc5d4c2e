# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: plan_summary
short_description: Say what a rollout in check mode would do, per edge host and per VIP
version_added: 0.1.0
description:
  - The closing summary of C(playbooks/site.yml --check) - per edge host the generation it serves,
    what this run would apply there (install, config change and its files, what haproxy -c said,
    servers through the runtime API, pod routes, keepalived) or that it has nothing to change.
  - Per VIP, the edge that holds it now (the keepalived notify script's record on each host) and
    the one that would hold it after the run (its primary, or where it is when preempt is off).
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description:
      - Edge host to C(engine), C(serving) (the generation its state record says it serves),
        C(generation) (this run's), C(converged), C(changes) (the proxy role's answer
        C(edge_haproxy_changes) or C(edge_nginx_changes)) and C(keepalived) (the answer
        C(edge_keepalived_changes), empty without VIPs).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Say what the plan would do
  ansible.builtin.debug:
    msg: "{{ (hosts_answers | k8sedge.lb.plan_summary).lines }}"
"""

RETURN = r"""
_value:
  description: The summary.
  type: dict
  contains:
    lines:
      description: One line per edge host, then one per VIP.
      type: list
      elements: str
    vips:
      description: Per VIP - C(instance), C(vip), C(now) (the hosts that hold it), C(after), C(moves).
      type: list
      elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._plan_summary import summary


def plan_summary(hosts: Any) -> dict[str, Any]:
    try:
        return summary(hosts)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.plan_summary: {exc}") from None


class FilterModule:
    """The summary of a plan."""

    def filters(self) -> dict[str, Any]:
        return {"plan_summary": plan_summary}
