# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: keepalived_view
short_description: Check the VIP inventory against a host's interface and build its keepalived view
version_added: 0.1.0
description:
  - Takes a host's facts (C(ansible_facts), network subset) and the inventory of the hosts that share
    the VIPs, checks them and returns what the C(edge_keepalived) role's template loops over, one
    VRRP instance per VIP with every decision made (virtual_router_id, priority, peers, the track
    script command lines).
  - Refuses, naming the host, the VIP and the variable, an interface the host does not have or that
    has no IPv4 address, a VIP outside that interface's subnet or listed twice, a virtual_router_id
    used twice, priorities outside 1-254, an advertisement interval the VRRP version cannot send
    and authentication with VRRPv3.
  - The VIPs of a pool take turns across the hosts that serve it, in the order of O(hosts), so two
    hosts and two VIPs are active/active.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The host's C(ansible_facts), with the network facts gathered.
    type: dict
    required: true
  host:
    description: The host the view is for (C(inventory_hostname)).
    type: str
    required: true
  hosts:
    description: The hosts that share the VIPs, in the order that splits them (a group's hosts).
    type: list
    elements: str
    required: true
  hostvars:
    description:
      - C(hostvars), to read the other hosts' pools (default C([default])) and VRRP address (else
        the primary IPv4 of their interface from their facts, else C(ansible_host)), from the
        variables O(peer_vars) names.
    type: dict
    required: true
  peer_vars:
    description:
      - Which variable of another host holds its C(pools), its VRRP C(address) and its C(interface)
        (role C(edge_keepalived) passes its own C(edge_keepalived_pools), ...).
    type: dict
    required: true
  interface:
    description: The interface that carries the VIPs and the VRRP advertisements.
    type: str
    required: true
  pool_vips:
    description: Pool name to the list of its VIPs (IPv4 addresses, no prefix).
    type: dict
    required: true
  pools:
    description: The pools this host holds VIPs for.
    type: list
    elements: str
    default: [default]
  address:
    description: This host's VRRP source address; empty for the interface's primary IPv4 address.
    type: str
    default: ""
  version:
    description: VRRP version.
    type: int
    choices: [2, 3]
    default: 3
  advert_int:
    description: Advertisement interval in seconds (whole seconds for VRRPv2, hundredths for VRRPv3).
    type: float
    default: 0.2
  preempt:
    description: Whether a host with a higher priority takes a VIP back.
    type: bool
    default: true
  unicast:
    description: Send advertisements to the peers' addresses instead of multicast.
    type: bool
    default: false
  auth_file:
    description: The file with the VRRPv2 authentication block to include; empty for none.
    type: str
    default: ""
  router_id_base:
    description: The virtual_router_id of the first VIP; the others follow in pool order.
    type: int
    default: 50
  router_ids:
    description: VIP to virtual_router_id, for VIPs whose id is pinned.
    type: dict
    default: {}
  priority:
    description: The priority of a VIP's primary host.
    type: int
    default: 250
  priority_step:
    description: How much lower each next host's priority is.
    type: int
    default: 10
  primaries:
    description:
      - VIP to the host it is primary on, for VIPs whose primary is pinned; the others take turns
        in inventory order (a host appended to the inventory changes no primary of the first n VIPs of a pool).
    type: dict
    default: {}
  check:
    description:
      - Track script settings, the fields of C(CheckOptions) in C(module_utils/_keepalived_view.py)
        (C(program), C(proxy), C(admin_address), C(admin_port), C(interval), C(poll), C(timeout),
        C(fall), C(rise), C(track_config), C(state_file), C(grace),
        C(config_weight), C(status_dir)).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Build the keepalived view of this host
  ansible.builtin.set_fact:
    view: >-
      {{ ansible_facts | k8sedge.lb.keepalived_view(host=inventory_hostname, hosts=groups['edges'],
         hostvars=hostvars, interface='eth0', pool_vips={'default': ['10.213.0.200', '10.213.0.201']}) }}
"""

RETURN = r"""
_value:
  description: Render-ready data.
  type: dict
  contains:
    interface:
      description: The interface name.
      type: str
    address:
      description: This host's VRRP source address.
      type: str
    network:
      description: The interface's IPv4 network, the broadcast domain of the VIPs.
      type: str
    version:
      description: VRRP version.
      type: int
    instances:
      description:
        - One per VIP of the pools this host serves, C(name), C(pool), C(vip), C(prefix),
          C(router_id), C(priority), C(primary) (the host that holds it when all are healthy)
          and C(unicast) (a list of zero or one C({source, peers})).
      type: list
      elements: dict
    includes:
      description: Files each instance includes (the authentication block).
      type: list
      elements: str
    scripts:
      description: The vrrp_script blocks, C(name), C(command), C(interval), C(timeout), C(fall), C(rise), C(weight).
      type: list
      elements: dict
    domain:
      description: C(host), C(network) and the C(router_ids) in use, for P(k8sedge.lb.keepalived_domains#filter).
      type: dict
    advert_int:
      description: The advertisement interval as keepalived.conf spells it.
      type: str
    preempt:
      description: Whether a host with a higher priority takes a VIP back.
      type: bool
    findings:
      description: Pools of this host without VIPs, C(where) (the pool), C(field) and C(message).
      type: list
      elements: dict
"""

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._keepalived_view import CheckOptions, Member, ViewOptions, keepalived_view
from ansible_collections.k8sedge.lb.plugins.module_utils._view import Checker

_CHECK_FIELDS = tuple(f.name for f in dataclasses.fields(CheckOptions))


def _is_ipv4(value: Any) -> bool:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def _peer(c: Checker, name: str, variables: Any, names: Mapping[str, str]) -> Member:
    """Another host's pools and VRRP address, as far as its variables and facts tell."""
    variables = c.mapping(f"hostvars.{name}", variables)
    pools = variables.get(names["pools"], ["default"])
    address = str(variables.get(names["address"]) or "")
    if not address:
        facts = variables.get("ansible_facts")
        interface = str(variables.get(names["interface"]) or "")
        entry = facts.get(re.sub(r"[-:]", "_", interface)) if isinstance(facts, Mapping) else None
        ipv4 = entry.get("ipv4") if isinstance(entry, Mapping) else None
        address = str(ipv4.get("address") or "") if isinstance(ipv4, Mapping) else ""
    if not address and _is_ipv4(variables.get("ansible_host")):
        address = str(variables["ansible_host"])
    return Member(str(name), tuple(pools) if isinstance(pools, (list, tuple)) else (pools,), address)


def _members(c: Checker, host: str, hosts: Any, hostvars: Any, peer_vars: Any, pools: Any) -> tuple[Member, ...]:
    if isinstance(pools, str) or not isinstance(pools, (list, tuple)):
        raise c.fail("pools", "a list of pool names", pools)
    names = c.mapping("peer_vars", peer_vars)
    for key in ("pools", "address", "interface"):
        c.text(f"peer_vars.{key}", names.get(key))
    members = []
    for i, name in enumerate(c.sequence("hosts", hosts)):
        if c.text(f"hosts[{i}]", name) == host:
            members.append(Member(host, tuple(pools)))
        elif not isinstance(hostvars, Mapping) or name not in hostvars:
            raise c.fail("hostvars", "the variables of every host that shares the VIPs", name)
        else:
            members.append(_peer(c, name, hostvars[name], names))
    return tuple(members)


def _check(c: Checker, check: Any) -> CheckOptions:
    given = c.mapping("check", {} if check is None else check)
    unknown = sorted(set(given) - set(_CHECK_FIELDS), key=str)
    if unknown:
        raise c.fail("check", f"track script settings ({', '.join(_CHECK_FIELDS)})", unknown[0])
    return CheckOptions(**given)


def _keepalived_view(facts: Any, host: Any, hosts: Any, hostvars: Any, peer_vars: Any, interface: Any, pool_vips: Any,
                     pools: Any = ("default",), address: Any = "", version: Any = 3, advert_int: Any = 0.2, preempt: Any = True, unicast: Any = False,
                     auth_file: Any = "", router_id_base: Any = 50, router_ids: Any = None, priority: Any = 250,
                     priority_step: Any = 10, check: Any = None, primaries: Any = None) -> dict[str, Any]:
    try:
        c = Checker(f"host {host}")
        options = ViewOptions(
            host=str(host), interface=interface, pool_vips=pool_vips, members=_members(c, str(host), hosts, hostvars, peer_vars, pools),
            address=address or "", version=version, advert_int=advert_int, preempt=preempt, unicast=unicast,
            auth_file=auth_file or "", router_id_base=router_id_base, router_ids=router_ids or {}, priority=priority,
            priority_step=priority_step, primaries=primaries or {}, check=_check(c, check),
        )
        return keepalived_view(facts, options)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.keepalived_view: {exc}") from None


class FilterModule:
    """keepalived view of the edge's VIPs."""

    def filters(self) -> dict[str, Any]:
        return {"keepalived_view": _keepalived_view}
