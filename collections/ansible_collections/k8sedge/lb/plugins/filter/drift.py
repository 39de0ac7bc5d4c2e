# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: drift
short_description: Compare what each edge host runs with the model and with the other hosts
version_added: 0.1.0
description:
  - Takes the model the cluster asks for and, per edge host, the generation its engine applied (on
    disk) and, for haproxy, the servers of the running worker (M(k8sedge.lb.haproxy_runtime)'s
    RV(k8sedge.lb.haproxy_runtime#module:servers)).
  - A host drifts when its applied generation is not the model's, or when a backend it serves runs
    other servers than the model's targets (UDP backends are left out).
  - With O(served), the results of the probes P(k8sedge.lb.certificate_probes#filter) plans, it also
    drifts when it presents another certificate than the one it was given (C(expected)) or cannot
    be asked for one, and when a certificate differs between the edges; each certificate's lines
    say when it expires.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The model, as M(k8sedge.lb.edge_info) returns it under C(model).
    type: dict
    required: true
  hosts:
    description:
      - Host name to C(engine), C(generation) (empty when nothing was applied), C(pools) and
        C(servers) (haproxy's running servers; omit or null when not read) and C(vrrp) (optional,
        the lines C(grep -r --include=*.state . /run/k8sedge-keepalived) prints, the records of
        role edge_keepalived's notify script).
      - Optional C(maintenance), the state record's when the host is drained (reported, not drift),
        and C(expected), certificate name to the SHA-256 fingerprint the host was given
        (P(k8sedge.lb.certificate_fingerprints#filter)).
    type: dict
    required: true
  served:
    description: The results of M(k8sedge.lb.probe) for the probes of P(k8sedge.lb.certificate_probes#filter).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Compare the edges with the model
  ansible.builtin.set_fact:
    drift: >-
      {{ edge.model | k8sedge.lb.drift(
           hosts={'edge1': {'engine': 'haproxy', 'generation': gen, 'servers': running.servers}}) }}
"""

RETURN = r"""
_value:
  description: The report.
  type: dict
  contains:
    ok:
      description: Whether every host runs the model and every VIP has exactly one holder.
      type: bool
    vrrp:
      description: One line per VIP held by more than one edge (split brain) or by none.
      type: list
      elements: str
    certificates:
      description: One line per certificate a host presents that it was not given, cannot present, or that differs between hosts.
      type: list
      elements: str
    model:
      description: The model's generation.
      type: str
    hosts:
      description: Per host - C(engine), C(generation), C(current) (applied the model's generation), C(runtime) (backends that differ).
      type: dict
    lines:
      description: The report as lines to print.
      type: list
      elements: str
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._drift import certificates_of, report


def drift(model: Any, hosts: Any, served: Any = None) -> dict[str, Any]:
    try:
        presented = certificates_of(served or [])
        if isinstance(hosts, dict):
            hosts = {name: {**host, "certificates": presented.get(name, {})} if isinstance(host, dict) else host
                     for name, host in hosts.items()}
        return report(model, hosts)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.drift: {exc}") from None


class FilterModule:
    """The drift report."""

    def filters(self) -> dict[str, Any]:
        return {"drift": drift}
