#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gate_evidence
short_description: Whether this edge host serves the Pods that wait for the edge's readiness gate
version_added: 0.2.0
description:
  - For each pod target of the Pods that list the C(lb.k8sedge.io/edge-ready) readiness gate and
    wait for it (the model's C(gates), RV(k8sedge.lb.edge_info#module:gates)), in the pools this
    host serves, answers two questions. Does the engine serve it (haproxy, in its own view - the
    server is in its backend, ready, up, its first health check done; nginx, the release whose
    model generation is O(generation) is live per the state record)? And does a probe from this
    host to the target answer (shaped as the backend's health check - HTTP GET, TCP connect, or a
    UDP datagram)?
  - Waits up to O(wait_seconds) for targets that are not there yet (a health check needs a few
    rounds to count a new server up), then answers with what it saw.
  - Writes nothing. M(k8sedge.lb.pod_gates) on the controller judges the answers of all the hosts.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads and probes only; the same in check mode.
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
  pools:
    description: The pools this edge host serves.
    type: list
    elements: str
    default: [default]
  engine:
    description: The engine this host runs.
    type: str
    choices: [haproxy, nginx]
    default: haproxy
  generation:
    description: The model generation the gates come from. With nginx, the release of this generation must be live.
    type: str
    required: true
  socket:
    description: haproxy's admin-level stats socket.
    type: path
    default: /run/haproxy/admin.sock
  state_path:
    description: The edge's state record (with nginx, it says which generation is live).
    type: path
    default: /var/lib/k8sedge/state.json
  wait_seconds:
    description: How long to wait for targets that are not served or do not answer yet.
    type: float
    default: 10
  timeout:
    description: Seconds for each probe.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: See what this edge serves of the Pods that wait for the gate
  k8sedge.lb.gate_evidence:
    gates: "{{ edge.gates }}"
    generation: "{{ edge.generation }}"
    pools: "{{ k8sedge_pools }}"
    engine: haproxy
  register: gate_evidence
"""

RETURN = r"""
evidence:
  description: One row per pod target of this host's pools.
  returned: always
  type: list
  elements: dict
  sample:
    - {namespace: shop, name: web-7d4b9-x2x1q, uid: 0b2f6a62-3e0c-4c9b-9d51-2a3c7e9f6b10, backend: shop_web_80,
       address: 10.244.1.6, port: 8080, ok: true, why: ""}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils import _gates as gates
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_state import parse as parse_state
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import Cli
from ansible_collections.k8sedge.lb.plugins.module_utils._probe import parse as parse_probe, run_all

POLL_SECONDS = 0.5


def _nginx_serves(params: dict) -> str:
    """"" when the state record says nginx serves the generation; else why not."""
    try:
        with open(params["state_path"], "rb") as f:
            record = parse_state(f.read(), params["state_path"])
    except FileNotFoundError:
        return "nginx: no state record, nothing served yet"
    live = ((record or {}).get("serving") or {}).get("generation", "")
    return "" if live == params["generation"] else f"nginx serves generation {live[:12] or 'none'}, not {params['generation'][:12]}"


def look(params: dict, targets: list[dict]) -> list[dict]:
    if params["engine"] == "haproxy":
        servers = Cli(params["socket"]).servers()

        def served(target: dict) -> str:
            return gates.haproxy_serves(target, servers)
    else:
        live = _nginx_serves(params)

        def served(target: dict) -> str:
            return live
    probes = [parse_probe(gates.probe_spec(t, params["timeout"])) for t in targets]
    answered = {r.name: r.error for r in run_all(probes, concurrency=16, deadline=params["timeout"] + 1)}
    return gates.evidence(targets, served, answered)


def run(params: dict) -> dict:
    targets = gates.host_targets(params["gates"], params["pools"])
    deadline = time.monotonic() + params["wait_seconds"]
    rows = look(params, targets)
    while any(not row["ok"] for row in rows) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        rows = look(params, targets)
    return {"changed": False, "evidence": rows}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "gates": {"type": "list", "elements": "dict", "required": True},
            "pools": {"type": "list", "elements": "str", "default": ["default"]},
            "engine": {"type": "str", "choices": ["haproxy", "nginx"], "default": "haproxy"},
            "generation": {"type": "str", "required": True},
            "socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
            "state_path": {"type": "path", "default": "/var/lib/k8sedge/state.json"},
            "wait_seconds": {"type": "float", "default": 10},
            "timeout": {"type": "float", "default": 2},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module.params))
    except EdgeError as err:
        module.fail_json(msg=str(err))


if __name__ == "__main__":
    main()
