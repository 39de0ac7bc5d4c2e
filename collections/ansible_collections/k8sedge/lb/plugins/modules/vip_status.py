#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vip_status
short_description: Say which VIPs an edge holds and how many connections it serves on them, or wait for a change
version_added: 0.2.0
description:
  - Reads which of O(vips) are on O(interface) (keepalived holds them there), the state keepalived's
    notify script recorded for each (role C(edge_keepalived)) and how many TCP connections on each
    still expect packets from their clients (C(/proc/net/tcp)).
  - With O(wait_until), reads again every 0.2 s until the VIPs are held, released, or have no
    connection left, for at most O(timeout) seconds. Held and released that do not come are a
    failure naming the VIPs; connections that stay open are not (a drain reports them).
  - Reads only; the same in check mode.
author:
  - k8sedge developers (@k8sedge)
requirements:
  - iproute2 (C(ip)) on the host
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
  vips:
    description: The VIPs to look at.
    type: list
    elements: str
    required: true
  interface:
    description: The interface keepalived puts the VIPs on.
    type: str
    required: true
  status_dir:
    description: Where keepalived's notify script records each instance's state.
    type: path
    default: /run/k8sedge-keepalived
  wait_until:
    description: Wait until every VIP is C(held) here, C(released) (none is), or C(closed) (no connection left on any).
    type: str
    choices: [held, released, closed]
  timeout:
    description: Seconds to wait at most.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Wait until this host has given its VIPs up
  k8sedge.lb.vip_status:
    vips: [10.213.0.200]
    interface: eth0
    wait_until: released

- name: Wait up to five minutes for the connections on the VIPs to end
  k8sedge.lb.vip_status:
    vips: [10.213.0.200]
    interface: eth0
    wait_until: closed
    timeout: 300
"""

RETURN = r"""
address:
  description: The host's own IPv4 address on O(interface) (its first that is none of O(vips)), where a handoff reaches it.
  returned: always
  type: str
held:
  description: The VIPs on O(interface).
  returned: always
  type: list
  elements: str
vrrp:
  description: VIP -> C(instance), C(state) (MASTER, BACKUP, FAULT, STOP) and C(since) (epoch), as the notify script recorded them.
  returned: always
  type: dict
connections:
  description: VIP -> the TCP connections on it that still expect packets from their clients.
  returned: always
  type: dict
closed:
  description: Whether no connection is left on any of O(vips).
  returned: always
  type: bool
waited:
  description: Seconds waited.
  returned: always
  type: float
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._handoff import connections, vips, vrrp_states


def _read(module: AnsibleModule, ip: str, wanted: list[str]) -> dict:
    _rc, out, _err = module.run_command([ip, "-j", "-4", "address", "show", "dev", module.params["interface"]],
                                        check_rc=True)
    listed = [entry["local"] for link in json.loads(out or "[]") for entry in link.get("addr_info", [])]
    on_interface = set(listed)
    own = [address for address in listed if address not in wanted]
    with open("/proc/net/tcp", encoding="ascii") as handle:
        text = handle.read()
    directory = module.params["status_dir"]
    files = {}
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.endswith(".state"):
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    files[name[:-len(".state")]] = handle.read()
    states = vrrp_states(files)
    open_ = connections(text, wanted)
    return {"address": own[0] if own else "", "held": [vip for vip in wanted if vip in on_interface],
            "vrrp": {vip: states[vip] for vip in wanted if vip in states},
            "connections": open_, "closed": not any(open_.values())}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "vips": {"type": "list", "elements": "str", "required": True},
            "interface": {"type": "str", "required": True},
            "status_dir": {"type": "path", "default": "/run/k8sedge-keepalived"},
            "wait_until": {"type": "str", "choices": ["held", "released", "closed"]},
            "timeout": {"type": "float", "default": 30.0},
        },
        supports_check_mode=True,
    )
    ip = module.get_bin_path("ip", required=True)
    until = module.params["wait_until"]
    started = time.monotonic()
    try:
        wanted = vips(module.params["vips"])
        while True:
            found = _read(module, ip, wanted)
            done = {None: True, "held": len(found["held"]) == len(wanted), "released": not found["held"],
                    "closed": found["closed"]}[until]
            if done or time.monotonic() - started >= module.params["timeout"]:
                break
            time.sleep(0.2)
    except EdgeError as exc:
        module.fail_json(msg=str(exc))
    found["waited"] = round(time.monotonic() - started, 2)
    if not done and until in ("held", "released"):
        missing = sorted(set(wanted) - set(found["held"])) if until == "held" else found["held"]
        module.fail_json(msg=f"{', '.join(missing)}: not {until} after {module.params['timeout']:g} s"
                             f" (keepalived says: {json.dumps(found['vrrp'])})", **found)
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
