#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vip_handoff
short_description: Hand VIPs from one edge to another without breaking a connection
version_added: 0.2.0
description:
  - keepalived moves a VIP by gratuitous ARP, after which the packets of the connections the old
    holder still serves reach the new holder, which resets them. For a planned move (a drain, an
    undrain) the two hosts hand the VIP over with this module, before keepalived moves it.
  - O(state=accept) on the host that gives the VIPs up puts each VIP as a /32 on C(lo), not announced
    (C(net.ipv4.conf.all.arp_ignore=1), C(arp_announce=2), which stay set), so its connections
    keep their packets once the VIP has moved.
  - O(state=forward) on the host that takes them loads an nftables table (C(k8sedge_handoff)) that sends
    every TCP packet to a VIP that belongs to no connection this host knows to the VIP's giver,
    unchanged, and drops this host's copy; new connections stay here.
  - The taker forgets, first, what its connection tracking remembers of earlier connections to the
    VIPs (C(conntrack --delete)); it holds none of them before it takes the VIP, and a stale entry
    would make it take a packet of the giver's connection for one of its own, and reset it.
  - O(state=absent) removes both, once the giver has no connection on the VIPs left
    (M(k8sedge.lb.vip_status) waits for that).
author:
  - k8sedge developers (@k8sedge)
requirements:
  - iproute2 (C(ip)), nftables (C(nft)) and conntrack on the host; role C(edge_keepalived) installs them
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  state:
    description: What this host does in the handoff.
    type: str
    choices: [accept, forward, absent]
    required: true
  vips:
    description: With O(state=accept) and O(state=absent), the VIPs this host accepts on C(lo).
    type: list
    elements: str
    default: []
  forward_to:
    description: With O(state=forward), VIP -> the address of the host that gives it up.
    type: dict
    default: {}
  interface:
    description: With O(state=forward), the interface the givers are reached through.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Keep serving the connections on the VIPs after they move
  k8sedge.lb.vip_handoff:
    state: accept
    vips: [10.213.0.200]

- name: Send the packets of connections this host does not know to the VIP's old holder
  k8sedge.lb.vip_handoff:
    state: forward
    forward_to:
      10.213.0.200: 10.213.0.11
    interface: eth0

- name: End the handoff
  k8sedge.lb.vip_handoff:
    state: absent
    vips: [10.213.0.200]
"""

RETURN = r"""
accepting:
  description: The VIPs of O(vips) this host accepts on C(lo) after the task.
  returned: always
  type: list
  elements: str
forwarding:
  description: Whether this host forwards the VIPs' unknown connections after the task.
  returned: always
  type: bool
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._handoff import SYSCTLS, TABLE, forward_ruleset, remove_ruleset, vips


def _on_lo(module: AnsibleModule, ip: str) -> set[str]:
    _rc, out, _err = module.run_command([ip, "-j", "-4", "address", "show", "dev", "lo"], check_rc=True)
    return {entry["local"] for link in json.loads(out or "[]") for entry in link.get("addr_info", [])
            if entry.get("prefixlen") == 32}


def _table(module: AnsibleModule, nft: str) -> str:
    rc, out, _err = module.run_command([nft, "list", "table", "ip", TABLE])
    return out if rc == 0 else ""


def _sysctl(name: str) -> str:
    with open(os.path.join("/proc/sys", name), encoding="ascii") as handle:
        return handle.read().strip()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["accept", "forward", "absent"], "required": True},
            "vips": {"type": "list", "elements": "str", "default": []},
            "forward_to": {"type": "dict", "default": {}},
            "interface": {"type": "str", "default": ""},
        },
        required_if=[("state", "forward", ("forward_to", "interface"))],
        supports_check_mode=True,
    )
    params = module.params
    ip = module.get_bin_path("ip", required=True)
    # A host that never had nftables (a fresh one) has no table to remove.
    nft = module.get_bin_path("nft", required=params["state"] == "forward")
    conntrack = module.get_bin_path("conntrack", required=params["state"] == "forward")
    try:
        wanted = vips(params["vips"])
        script = forward_ruleset(params["forward_to"], params["interface"]) if params["state"] == "forward" else ""
    except EdgeError as exc:
        module.fail_json(msg=str(exc))
    accepting = _on_lo(module, ip)
    table = _table(module, nft) if nft else ""
    changed = False
    if params["state"] == "accept":
        add = [vip for vip in wanted if vip not in accepting]
        unset = {name: value for name, value in SYSCTLS.items() if _sysctl(name) != value}
        changed = bool(add or unset)
        if not module.check_mode:
            # Not announced before it is there: the sysctls first.
            for name, value in unset.items():
                with open(os.path.join("/proc/sys", name), "w", encoding="ascii") as handle:
                    handle.write(value)
            for vip in add:
                module.run_command([ip, "address", "add", f"{vip}/32", "dev", "lo"], check_rc=True)
        accepting |= set(add)
    elif params["state"] == "forward":
        changed = True  # the table is replaced in one transaction; comparing nft's listing is not worth it
        if not module.check_mode:
            module.run_command([nft, "-f", "-"], data=script, check_rc=True)
            # After the table: from here on it tracks. Exit status 1: there was nothing to forget.
            for vip in vips(params["forward_to"]):
                rc, _out, err = module.run_command([conntrack, "--delete", "--orig-dst", vip])
                if rc not in (0, 1):
                    module.fail_json(msg=f"conntrack --delete --orig-dst {vip}: {err.strip()}")
    else:
        drop = [vip for vip in wanted if vip in accepting]
        changed = bool(drop or table)
        if not module.check_mode:
            for vip in drop:
                module.run_command([ip, "address", "del", f"{vip}/32", "dev", "lo"], check_rc=True)
            if table:
                module.run_command([nft, "-f", "-"], data=remove_ruleset(), check_rc=True)
        accepting -= set(drop)
        table = ""
    module.exit_json(changed=changed, accepting=sorted(accepting & set(wanted)),
                     forwarding=params["state"] == "forward" or bool(table))


if __name__ == "__main__":
    main()
