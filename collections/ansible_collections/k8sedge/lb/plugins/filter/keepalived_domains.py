# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: keepalived_domains
short_description: Refuse virtual_router_ids that clash across hosts in one broadcast domain
version_added: 0.1.0
description:
  - Takes the C(domain) entries of several hosts' P(k8sedge.lb.keepalived_view#filter) views and
    fails, naming the id, the network, the VIPs and the hosts, when one virtual_router_id names two
    VIPs in the same IPv4 network, or one VIP has different ids on different hosts. Returns the
    entries unchanged otherwise.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The views' C(domain) entries (C(host), C(network), C(router_ids)).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse router ids that clash across the hosts of the play
  ansible.builtin.set_fact:
    checked: "{{ ansible_play_hosts | map('extract', hostvars, ['view', 'domain']) | k8sedge.lb.keepalived_domains }}"
"""

RETURN = r"""
_value:
  description: The entries given, once they agree.
  type: list
  elements: dict
"""

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._keepalived_view import domain_conflicts


def _keepalived_domains(domains: Any) -> Any:
    # A play hands over what `map` yields: read it once.
    entries = list(domains) if isinstance(domains, Iterable) and not isinstance(domains, (str, Mapping)) else domains
    try:
        problems = domain_conflicts(entries)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.keepalived_domains: {exc}") from None
    if problems:
        raise AnsibleFilterError("k8sedge.lb.keepalived_domains: " + "; ".join(problems))
    return entries


class FilterModule:
    """Cross-host check of the keepalived views."""

    def filters(self) -> dict[str, Any]:
        return {"keepalived_domains": _keepalived_domains}
