# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: handoff_moves
short_description: The VIPs a drain or an undrain of an edge moves, and between which hosts
version_added: 0.2.0
description:
  - Takes every edge that shares VIPs, in inventory order (keepalived's priorities follow it, as
    role C(edge_keepalived) sets them), with what M(k8sedge.lb.vip_status) read there, and says
    which VIPs the drain or undrain of O(edge) moves, from which host to which.
  - A drain moves each VIP the edge holds to the healthy host (BACKUP, not drained) keepalived
    ranks next, and fails naming the VIP when there is none. An undrain moves back the VIPs the
    edge ranks first for, from the host that holds each now (none without O(preempt)).
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: Host name to C(pools), C(address) (its VRRP address), C(held) (VIPs), C(vrrp) (VIP to C({state})) and C(drained).
    type: dict
    required: true
  edge:
    description: The edge to drain or undrain.
    type: str
    required: true
  action:
    description: C(drain) or C(undrain).
    type: str
    required: true
  pool_vips:
    description: Pool to its VIPs (C(k8sedge_pool_vips)).
    type: dict
    required: true
  preempt:
    description: Whether keepalived takes a VIP back to its higher-priority host (C(edge_keepalived_preempt)).
    type: bool
    default: true
  primaries:
    description: VIP to the host it is pinned to (C(edge_keepalived_primaries)).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Say which VIPs draining edge1 moves
  ansible.builtin.debug:
    msg: "{{ edges | k8sedge.lb.handoff_moves(edge='edge1', action='drain', pool_vips=k8sedge_pool_vips) }}"
"""

RETURN = r"""
_value:
  description: One per VIP that moves - C(vip), C(giver), C(giver_address), C(taker).
  type: list
  elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._handoff import moves


def handoff_moves(hosts: Any, edge: Any, action: Any, pool_vips: Any, preempt: Any = True,
                  primaries: Any = None) -> list[dict[str, str]]:
    try:
        return moves(str(edge), str(action), pool_vips, hosts, bool(preempt), primaries or {})
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.handoff_moves: {exc}") from None


class FilterModule:
    """Where a planned VIP move goes."""

    def filters(self) -> dict[str, Any]:
        return {"handoff_moves": handoff_moves}
