# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: haproxy_view
short_description: Turn the edge model into render-ready data for haproxy
version_added: 0.1.0
description:
  - Takes the model that M(k8sedge.lb.edge_info) returns (its C(model) key) and returns what the
    C(edge_haproxy) role's template loops over, with every decision already made; the frontends
    of the pools this host serves, map files and their lookup order, backends with their server
    slots, the redirect backends, certificate files, the pod routes and the digest of what needs
    a reload.
  - Every value is checked again against a grammar that cannot break a config line; a value that
    fails, a backend that is missing, a port the admin listener or two served pools share, or a
    UDP frontend with O(udp_frontends=fail) raise an error naming the frontend or backend, the
    field and what to change.
  - A tenant's claim haproxy cannot serve is left out with a finding in RV(_value.findings), so
    that one object never stops the edge for everybody. This is a UDP frontend
    (O(udp_frontends=skip)) or a TLS route whose certificate is not in O(certificates), with its
    redirect from plain HTTP; a TLS frontend left with no route is left out too.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - k8sedge.lb.haproxy_view
positional: _input
options:
  _input:
    description: The model, as C(edge_info) returns it under C(model), or its JSON text under C(model_json).
    type: raw
    required: true
  previous:
    description:
      - The slots of the running haproxy, C(servers) as M(k8sedge.lb.haproxy_runtime) returns
        it, so that targets keep their slot.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Build the haproxy view of the default pool
  ansible.builtin.set_fact:
    view: "{{ edge.model | k8sedge.lb.haproxy_view(pools=['default'], slots=10) }}"

- name: With TLS certificates from vault and the running slots
  ansible.builtin.set_fact:
    view: >-
      {{ edge.model | k8sedge.lb.haproxy_view(certificates=vault_certificates,
         previous=running.servers, admin_address='10.213.0.11') }}
"""

RETURN = r"""
_value:
  description: Render-ready data; lists are sorted, names are haproxy-safe.
  type: dict
  contains:
    frontends:
      description: Frontends with C(name), C(mode), C(bind), C(bind_options), C(lookups) (map lookups in order) and C(backend).
      type: list
      elements: dict
    backends:
      description: Backends with C(balance), timeouts, C(default_server) keywords and C(servers) slots.
      type: list
      elements: dict
    redirects:
      description: Backends that redirect HTTP routes of TLS hosts to HTTPS.
      type: list
      elements: dict
    maps:
      description: Map files, C(path) relative to the config and C(lines).
      type: list
      elements: dict
    certificates:
      description: Certificate files the config names, C(name), C(path) and C(sha256).
      type: list
      elements: dict
    routes:
      description: Pod routes (C(cidr), C(via)) when a served backend is in pod mode, else empty.
      type: list
      elements: dict
    runtime:
      description: Per backend, the desired state of each server slot, for M(k8sedge.lb.haproxy_runtime).
      type: list
      elements: dict
    structure:
      description: SHA-256 of everything that needs a reload to change (not server addresses or states).
      type: str
    generation:
      description: The model's generation.
      type: str
    findings:
      description: What was left out, and why, C(where) (the frontend), C(field) and C(message).
      type: list
      elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewOptions, haproxy_view
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document
from ansible_collections.k8sedge.lb.plugins.module_utils._view import plain_certificates


def _haproxy_view(model: Any, pools: Any = ("default",), certificates: Any = None, slots: Any = 10, admin_address: Any = "127.0.0.1",
                  admin_port: Any = 8404, bind_address: Any = "", udp_frontends: Any = "skip", previous: Any = None) -> dict[str, Any]:
    options = ViewOptions(
        pools=tuple(pools) if isinstance(pools, list) else pools,
        certificates=plain_certificates(certificates or {}),
        slots=slots,
        admin_address=admin_address,
        admin_port=admin_port,
        bind_address=bind_address or "",
        udp_frontends=udp_frontends,
        previous=previous or {},
    )
    try:
        return haproxy_view(model_document(model), options)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.haproxy_view: {exc}") from None


class FilterModule:
    """haproxy view of the edge model."""

    def filters(self) -> dict[str, Any]:
        return {"haproxy_view": _haproxy_view}
