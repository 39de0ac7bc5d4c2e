#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lb_status
short_description: Publish the edge VIPs in the status of the Services of the k8sedge load balancer class
version_added: 0.1.0
description:
  - For every Service of type C(LoadBalancer) with C(loadBalancerClass=lb.k8sedge.io/edge) in one
    of O(pools), writes the VIPs of its pool (O(pool_vips)) into C(status.loadBalancer.ingress),
    so that C(kubectl get svc) shows them as EXTERNAL-IP, the way a cloud load balancer does.
  - A Service of the class that the model does not serve (refused, opted out with
    C(lb.k8sedge.io/expose=false)), or whose pool has no VIPs, gets an empty ingress (EXTERNAL-IP
    C(<pending>)). Services of other pools belong to another edge group and are left alone.
  - Writes through the C(services/status) subresource (a merge patch of the ingress list). The
    credentials need their own RBAC, C(docs/rbac-status.yaml) in the project (get and list on
    services, patch on services/status); the reader of M(k8sedge.lb.edge_info) cannot write.
  - Run it on the controller (C(delegate_to=localhost), C(run_once=true)), after the rollout.
author:
  - k8sedge developers (@k8sedge)
requirements:
  - PyYAML, to read a kubeconfig
extends_documentation_fragment:
  - k8sedge.lb.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the Services whose status would change; writes nothing.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  model:
    description: The edge model, as M(k8sedge.lb.edge_info) returns it under C(model) (or its JSON text, C(model_json)).
    type: raw
    required: true
  pool_vips:
    description: Pool name to the list of its VIP addresses (the project's C(k8sedge_pool_vips)).
    type: dict
    required: true
  pools:
    description: The pools this edge group serves; Services of other pools are left alone.
    type: list
    elements: str
    default: [default]
  timeout:
    description: Seconds for the whole read and each write.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Publish the VIPs in the Services' status
  k8sedge.lb.lb_status:
    kubeconfig: "{{ k8sedge_status_kubeconfig }}"
    model: "{{ edge.model }}"
    pool_vips: "{{ k8sedge_pool_vips }}"
    pools: [default]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
services:
  description: Every Service of the class in O(pools), sorted by namespace and name, with its ingress before and after.
  returned: always
  type: list
  elements: dict
  sample:
    - namespace: default
      name: local-web
      pool: default
      before: []
      after: [{ip: 10.213.0.200}, {ip: 10.213.0.201}]
      changed: true
      reason: served by pool default
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC, auth_options
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._lb_status import desired, patch, read_services
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document


def _lines(statuses: list, side: str) -> str:
    return "".join(f"{s.namespace}/{s.name}: {', '.join(i.get('ip') or i.get('hostname') or '?' for i in getattr(s, side)) or '<pending>'}\n"
                   for s in statuses)


def run(module: AnsibleModule) -> dict:
    params = module.params
    connection = k8s.connect(auth_options(params))
    statuses = desired(read_services(connection, params["timeout"]), model_document(params["model"]), params["pool_vips"], params["pools"])
    changed = [s for s in statuses if s.changed]
    if not module.check_mode:
        for status in changed:
            patch(connection, status, params["timeout"])
    result = {"changed": bool(changed), "services": [s.result() for s in statuses]}
    if module._diff:
        result["diff"] = {"before": _lines(changed, "before"), "after": _lines(changed, "after")}
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **AUTH_ARGUMENT_SPEC,
            "model": {"type": "raw", "required": True},
            "pool_vips": {"type": "dict", "required": True},
            "pools": {"type": "list", "elements": "str", "default": ["default"]},
            "timeout": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except EdgeError as err:
        module.fail_json(msg=str(err))


if __name__ == "__main__":
    main()
