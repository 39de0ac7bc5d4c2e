# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: certificate_fingerprints
short_description: The SHA-256 fingerprint of each certificate a proxy role serves
version_added: 0.2.0
description:
  - Takes the certificates a proxy role serves (name to C({cert, key}) PEM text, as
    C(edge_haproxy_certificates) and C(edge_nginx_certificates) hold them, vaulted values included)
    and returns name to the SHA-256 fingerprint (lowercase hex) of the first certificate of each.
  - Role C(edge_probe) gives them to P(k8sedge.lb.probe_plan#filter), so that every HTTPS probe
    checks that the edge presents the certificate it was given, a rotated one included.
requirements:
  - cryptography, on the controller
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: Name to C({cert, key}).
    type: dict
    required: true
  variable:
    description: The variable the certificates came from, named in errors.
    type: str
    default: certificates
"""

EXAMPLES = r"""
- name: Say which certificate each name is
  ansible.builtin.debug:
    msg: "{{ edge_haproxy_certificates | k8sedge.lb.certificate_fingerprints }}"
"""

RETURN = r"""
_value:
  description: Name to the SHA-256 fingerprint of its certificate, lowercase hex.
  type: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._certificates import fingerprints
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError


def certificate_fingerprints(certificates: Any, variable: str = "certificates") -> dict[str, str]:
    try:
        return fingerprints(certificates, str(variable))
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.certificate_fingerprints: {exc}") from None


class FilterModule:
    """Which certificate each name is."""

    def filters(self) -> dict[str, Any]:
        return {"certificate_fingerprints": certificate_fingerprints}
