# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of the haproxy view; shared by the haproxy_view filter and the haproxy_render action."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  pools:
    description: The pools this host serves.
    type: list
    elements: str
    default: [default]
  certificates:
    description:
      - Certificates the TLS frontends may use, name to C({cert, key}) PEM strings.
      - Only the names and a digest of the contents go into the view.
      - A TLS route naming a certificate that is not here is left out with a finding.
    type: dict
    default: {}
  slots:
    description:
      - Server slots per backend. A backend with more targets gets the next multiple of this.
    type: int
    default: 10
  admin_address:
    description: The address of the admin listener (stats and Prometheus).
    type: str
    default: 127.0.0.1
  admin_port:
    description: The port of the admin listener.
    type: int
    default: 8404
  bind_address:
    description: The address the frontends bind to; empty for every address.
    type: str
    default: ""
  udp_frontends:
    description:
      - What to do with UDP frontends of the served pools, which haproxy cannot serve.
      - C(skip) leaves them out with a finding; C(fail) refuses the model.
    type: str
    choices: [fail, skip]
    default: skip
"""
