# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: certificate_probes
short_description: The probes that ask each edge which certificate it presents
version_added: 0.2.0
description:
  - Takes the model and the edges (name to address) and returns one M(k8sedge.lb.probe) probe per
    edge and certificate the model's TLS-terminated routes use, a TLS handshake with the name of
    the first such route (a wildcard's stand-in under it). The certificate is not validated here,
    P(k8sedge.lb.drift#filter) compares what each edge presents, the rollout's probes judge it.
  - C(drift.yml) runs them, and its report says which certificates differ between edges and when each expires.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The model, as M(k8sedge.lb.edge_info) returns it under C(model).
    type: dict
    required: true
  hosts:
    description: Edge host name to the address to ask.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Ask each edge for its certificates
  k8sedge.lb.probe:
    probes: "{{ edge.model | k8sedge.lb.certificate_probes(hosts={'edge1': '10.213.0.11'}) }}"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: Probe specifications for M(k8sedge.lb.probe), named C(certificate <name> on <host>).
  type: list
  elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._drift import certificate_probes as probes
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError


def certificate_probes(model: Any, hosts: Any) -> list[dict[str, Any]]:
    try:
        return probes(model, hosts)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.certificate_probes: {exc}") from None


class FilterModule:
    """Which certificate each edge presents."""

    def filters(self) -> dict[str, Any]:
        return {"certificate_probes": certificate_probes}
