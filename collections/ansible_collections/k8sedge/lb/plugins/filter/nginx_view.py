# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k8sedge.lb.nginx_view filter: the edge model as render-ready nginx blocks."""

from __future__ import annotations

DOCUMENTATION = r"""
name: nginx_view
author: k8sedge developers
version_added: 0.1.0
short_description: Turn the edge model into render-ready nginx blocks
description:
  - Takes the C(model) that M(k8sedge.lb.edge_info) returns and gives back what the C(edge_nginx)
    role's templates render, so templates only loop; every decision is made here.
  - HTTP frontends become one C(server) per host name plus a default server (the routes of host
    C(*), else a plain 404); Kubernetes Prefix paths match whole path elements (C(= /foo) and
    C(/foo/)), Exact paths are C(= /foo).
  - TCP and UDP frontends become C(stream) servers; TLS passthrough routes by SNI through a
    C(map) (C(ssl_preread)); an unknown name is closed.
  - Open-source nginx has only passive health checks; each server gets C(max_fails) and
    C(fail_timeout) (C(max_fails=0) for health check C(none)). Draining targets are used only when
    a backend has no ready target.
  - What open-source nginx cannot do is left out and reported in C(findings) - PROXY protocol
    toward an HTTP backend, PROXY protocol v2 - and so is a TLS route whose certificate is not in
    O(certificates), so that one tenant's object never stops the edge for everybody.
  - Every value is checked again against a grammar narrower than nginx syntax; anything that could
    break a config line raises an error naming the frontend or backend and the field.
options:
  _input:
    description: The C(model) returned by M(k8sedge.lb.edge_info), or its JSON text C(model_json).
    type: raw
    required: true
  directory:
    description: Absolute path of the release directory the config is rendered into (certificate paths).
    type: str
    required: true
  pools:
    description: The pools this edge serves.
    type: list
    elements: str
    default: [default]
  certificates:
    description:
      - Certificates the edge holds, name to C({cert, key}) PEM text.
      - A TLS route naming a certificate that is not here is left out, with its redirect from plain
        HTTP, and reported in C(findings); a TLS frontend left with no route is left out too.
    type: dict
    default: {}
  admin_address:
    description: Address of the admin listener (C(stub_status)).
    type: str
    default: 127.0.0.1
  admin_port:
    description: Port of the admin listener.
    type: int
    default: 8405
  pool_addresses:
    description: Address to listen on per pool; a pool not listed listens on every address.
    type: dict
    default: {}
  max_fails:
    description: Failed attempts before nginx takes a server out for O(fail_timeout) seconds (passive check).
    type: int
    default: 2
  fail_timeout:
    description: Seconds a failed server stays out, and the window in which failures count.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Build the nginx view of the default pool
  ansible.builtin.set_fact:
    view: "{{ model | k8sedge.lb.nginx_view(directory='/etc/nginx/k8sedge/releases/0123abcd') }}"
"""

RETURN = r"""
_value:
  description: Render-ready blocks; every C(directives) entry is one nginx directive without its C(;).
  type: dict
  contains:
    generation:
      description: The model's generation.
      type: str
    admin:
      description: C(listen) of the admin server.
      type: dict
    http:
      description: C(upstreams) (name, directives) and C(servers) (directives, locations of match and directives).
      type: dict
    stream:
      description: C(upstreams), C(maps) (variable, directives) and C(servers) (frontend, directives).
      type: dict
    certificates:
      description: Certificates the config uses, name and digest; their PEM text is not repeated.
      type: list
      elements: dict
    routes:
      description: Pod network routes (cidr, via), present when a served backend is in C(pod) mode.
      type: list
      elements: dict
    findings:
      description: What was left out or changed because nginx cannot serve it (frontend, backend, field, message).
        A frontend left out whole has an empty C(backend).
      type: list
      elements: dict
    digest:
      description: SHA-256 of everything above.
      type: str
"""

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._model import InvalidValue, model_document
from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_view import ViewError, ViewOptions, build_view


def nginx_view(model: Any, directory: str, pools: Any = ("default",), certificates: Any = None, admin_address: str = "127.0.0.1",
               admin_port: int = 8405, pool_addresses: Any = None, max_fails: int = 2, fail_timeout: int = 10) -> dict[str, Any]:
    try:
        if isinstance(pools, str) or not isinstance(pools, (list, tuple)):
            raise ViewError(f"option pools: expected a list of pool names, got {type(pools).__name__}")
        for name, value in (("certificates", certificates), ("pool_addresses", pool_addresses)):
            if value is not None and not isinstance(value, Mapping):
                raise ViewError(f"option {name}: expected a dict, got {type(value).__name__}")
        options = ViewOptions(
            directory=directory, pools=tuple(pools), certificates=dict(certificates or {}), admin_address=admin_address,
            admin_port=_integer(admin_port), pool_addresses=dict(pool_addresses or {}), max_fails=_integer(max_fails),
            fail_timeout_s=_integer(fail_timeout),
        )
        return build_view(model_document(model), options)
    except (ViewError, InvalidValue, TypeError) as exc:
        raise AnsibleFilterError(f"k8sedge.lb.nginx_view: {exc}") from None


def _integer(value: Any) -> Any:
    """An integer given as text (extra vars, INI inventories) as the integer; anything else as is,
    for the view to refuse."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10 else value


class FilterModule:
    """The nginx view of the edge model."""

    def filters(self) -> dict[str, Any]:
        return {"nginx_view": nginx_view}
