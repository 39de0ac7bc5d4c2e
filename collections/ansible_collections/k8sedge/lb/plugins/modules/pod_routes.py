#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_routes
short_description: Keep the edge's routes to the pod networks equal to the model's
version_added: 0.1.0
description:
  - Installs each of the model's C(routes) (pod CIDR via a node's IP) with
    C(ip route replace <cidr> via <via> proto <protocol>) and removes the routes of that
    protocol number that the model no longer has, so pod-mode backends are reachable.
  - Only routes tagged with O(protocol) are ever read or removed.
  - With O(prune=false) nothing is removed. A role adds the routes a new config needs before it
    goes live, and removes the others (O(prune=true)) only once the new config serves, so a config
    that is refused never loses the routes the live one still uses.
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
    support: full
  platform:
    platforms: linux
options:
  routes:
    description: The routes, C([{cidr, via}]), as C(edge_info) returns them under C(model.routes).
    type: list
    elements: dict
    required: true
  protocol:
    description: The route protocol number that marks the routes this module manages.
    type: int
    default: 213
  prune:
    description: Remove the routes of O(protocol) that O(routes) does not have.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Route the pod networks through their nodes
  k8sedge.lb.pod_routes:
    routes: "{{ edge.model.routes }}"

- name: Add the routes a new config needs, keep the ones the live config may still use
  k8sedge.lb.pod_routes:
    routes: "{{ edge.model.routes }}"
    prune: false

- name: Remove every pod route this module installed
  k8sedge.lb.pod_routes:
    routes: []
"""

RETURN = r"""
replaced:
  description: Routes added or changed, C(<cidr> via <via>).
  returned: always
  type: list
  elements: str
deleted:
  description: Routes removed.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._pod_routes import desired, installed, plan


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "routes": {"type": "list", "elements": "dict", "required": True},
            "protocol": {"type": "int", "default": 213},
            "prune": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    protocol = str(module.params["protocol"])
    if not 1 <= module.params["protocol"] <= 255:
        module.fail_json(msg=f"protocol: expected 1-255, got {protocol}")
    ip = module.get_bin_path("ip", required=True)
    try:
        wanted = desired(module.params["routes"])
    except EdgeError as exc:
        module.fail_json(msg=str(exc))
    current = {}
    for family in ("-4", "-6"):
        _rc, out, _err = module.run_command([ip, "-j", family, "route", "show", "proto", protocol], check_rc=True)
        current.update(installed(out))
    replace, delete = plan(wanted, current, module.params["prune"])
    result = {"changed": bool(replace or delete), "replaced": [f"{c} via {v}" for c, v in replace], "deleted": delete}
    if module._diff:
        after = {**{c: v for c, v in current.items() if c not in delete}, **wanted}
        result["diff"] = {"before": "".join(f"{c} via {v}\n" for c, v in sorted(current.items())),
                          "after": "".join(f"{c} via {v}\n" for c, v in sorted(after.items()))}
    if not module.check_mode:
        for cidr, via in replace:
            module.run_command([ip, "route", "replace", cidr, "via", via, "proto", protocol], check_rc=True)
        for cidr in delete:
            module.run_command([ip, "route", "del", cidr, "proto", protocol], check_rc=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
