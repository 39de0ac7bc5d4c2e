#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_gates
short_description: Set the edge's readiness gate on the Pods every edge host has proven
version_added: 0.2.0
description:
  - A Pod that lists C(readinessGates) with C(conditionType=lb.k8sedge.io/edge-ready) is Ready
    only once this condition is C(True). This module sets it, with a reason and a message
    (C(kubectl get pod -o yaml) shows them), on the Pods that wait for it (the model's C(gates)) once every
    edge host of every pool the Pod is served in answered for each of its targets that the engine
    serves it and that a probe from that host answered (M(k8sedge.lb.gate_evidence), O(evidence)).
  - A Pod served only through node ports (C(lb.k8sedge.io/backend=nodeport)) is acknowledged at
    once, with the reason C(NodePortBackend) - the edge does not send to it, so it never waits for
    nothing. A pool with no host in O(host_pools) is another edge group's to prove.
  - Writes through the C(pods/status) subresource, a strategic merge patch of this one condition
    with the Pod's uid as precondition (a Pod replaced under the same name is left alone). The
    credentials need their own RBAC, C(docs/rbac-gates.yaml) in the project (patch on
    pods/status, nothing else).
  - Run it on the controller (C(delegate_to=localhost), C(run_once=true)), after the edge hosts
    have served the model and given their evidence.
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
    details: Reports the Pods it would acknowledge; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  gates:
    description: The model's C(gates), as M(k8sedge.lb.edge_info) returns them.
    type: list
    elements: dict
    required: true
  generation:
    description: The model generation the gates come from (named in each condition's message).
    type: str
    required: true
  host_pools:
    description:
      - Every edge host of the run (a failed one too) and the pools it serves.
    type: dict
    required: true
  evidence:
    description:
      - Per edge host, the rows M(k8sedge.lb.gate_evidence) returned on it (RV(k8sedge.lb.gate_evidence#module:evidence)).
        A host of O(host_pools) missing here gave none, and the Pods it serves keep waiting.
    type: dict
    required: true
  timeout:
    description: Seconds for each write.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Acknowledge the Pods the edge serves
  k8sedge.lb.pod_gates:
    kubeconfig: "{{ k8sedge_gates_kubeconfig }}"
    gates: "{{ edge.gates }}"
    generation: "{{ edge.generation }}"
    host_pools: {edge1: [default], edge2: [default]}
    evidence:
      edge1: "{{ hostvars['edge1'].gate_evidence.evidence }}"
      edge2: "{{ hostvars['edge2'].gate_evidence.evidence }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
pods:
  description: One verdict per Pod that waits, sorted by namespace and name.
  returned: always
  type: list
  elements: dict
  sample:
    - namespace: shop
      name: web-7d4b9-x2x1q
      uid: 0b2f6a62-3e0c-4c9b-9d51-2a3c7e9f6b10
      acknowledge: true
      reason: ServedByEdge
      message: "in service and answering on edge1, edge2 (shop_web_80); model generation 3f1c0a9d2b7e"
      outcome: written
      error: ""
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils import _gates as gates
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._gate_writes import patch_pods
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC, auth_options


def run(module: AnsibleModule) -> dict:
    params = module.params
    hosts = [{"name": name, "pools": pools, "evidence": params["evidence"].get(name)} for name, pools in sorted(params["host_pools"].items())]
    verdicts = gates.verdicts(params["gates"], hosts, params["generation"])
    acknowledged = [v for v in verdicts if v.acknowledge]
    outcomes = {}
    if acknowledged and not module.check_mode:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = patch_pods(k8s.connect(auth_options(params)), acknowledged, now, params["timeout"])
        outcomes = {(r["namespace"], r["name"]): r for r in rows}
    pods = []
    for verdict in verdicts:
        row = outcomes.get((verdict.namespace, verdict.name), {})
        pending = "would write" if verdict.acknowledge else "waits"
        pods.append(verdict.result() | {"outcome": row.get("outcome", pending), "error": row.get("error", "")})
    failed = [p for p in pods if p["outcome"] == "failed"]
    result = {"changed": any(p["outcome"] in ("written", "would write") for p in pods), "pods": pods}
    if failed:
        module.fail_json(msg=f"{len(failed)} of {len(acknowledged)} readiness gates could not be written: "
                             + "; ".join(p["error"] for p in failed[:5]), **result)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **AUTH_ARGUMENT_SPEC,
            "gates": {"type": "list", "elements": "dict", "required": True},
            "generation": {"type": "str", "required": True},
            "host_pools": {"type": "dict", "required": True},
            "evidence": {"type": "dict", "required": True},
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
