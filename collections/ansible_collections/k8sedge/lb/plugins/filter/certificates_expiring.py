# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: certificates_expiring
short_description: The certificates that expire within a number of days, soonest first
version_added: 0.1.0
description:
  - Takes the certificates a proxy role serves (name to C({cert, key}) PEM text, as
    C(edge_haproxy_certificates) and C(edge_nginx_certificates) hold them, vaulted values included)
    and returns the ones whose certificate expires within O(days), or has expired.
  - The rollout (C(site.yml), C(endpoints.yml)) reports them on every run.
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
  days:
    description: The threshold in days.
    type: int
    default: 30
  variable:
    description: The variable the certificates came from, named in errors.
    type: str
    default: certificates
"""

EXAMPLES = r"""
- name: Say which certificates expire within 30 days
  ansible.builtin.debug:
    msg: "{{ edge_haproxy_certificates | k8sedge.lb.certificates_expiring(days=30) | map(attribute='message') }}"
"""

RETURN = r"""
_value:
  description: Each certificate that expires within O(days) - C(name), C(not_after), C(days_left), C(subject), C(message).
  type: list
  elements: dict
"""

import datetime
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._certificates import expiring
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError


def certificates_expiring(certificates: Any, days: Any = 30, variable: str = "certificates") -> list[dict[str, Any]]:
    try:
        return expiring(certificates, int(days), datetime.datetime.now(datetime.timezone.utc), str(variable))
    except (EdgeError, ValueError) as exc:
        raise AnsibleFilterError(f"k8sedge.lb.certificates_expiring: {exc}") from None


class FilterModule:
    """When certificates expire."""

    def filters(self) -> dict[str, Any]:
        return {"certificates_expiring": certificates_expiring}
