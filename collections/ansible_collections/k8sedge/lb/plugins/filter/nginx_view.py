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
    role's templates render; every decision is made here, the templates spell the nginx syntax.
  - HTTP frontends become one C(server) per host name plus a default server (the routes of host
    C(*), else a plain 404); Kubernetes Prefix paths match whole path elements (C(= /foo) and
    C(/foo/)), Exact paths are C(= /foo).
  - TCP and UDP frontends become C(stream) servers; TLS passthrough routes by SNI through a
    C(map) (C(ssl_preread)); an unknown name is closed.
  - Open-source nginx has only passive health checks; each server gets C(max_fails) and
    C(fail_timeout) (C(max_fails=0) for health check C(none)). Draining targets are used only when
    a backend has no ready target.
  - What open-source nginx cannot do is left out and reported in RV(_value.findings) - PROXY
    protocol toward an HTTP backend, PROXY protocol v2 - and so is a TLS route whose certificate is
    not in O(certificates), so that one tenant's object never stops the edge for everybody.
  - Every value is checked again against a grammar narrower than nginx syntax; anything that could
    break a config line raises an error naming the frontend or backend and the field.
  - The view does not depend on the release directory. RV(_value.digest) names the release, and
    the role's templates put the directory into the certificate paths.
options:
  _input:
    description: The C(model) returned by M(k8sedge.lb.edge_info), or its JSON text C(model_json).
    type: raw
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
        HTTP, and reported in RV(_value.findings); a TLS frontend left with no route is left out too.
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
    view: "{{ model | k8sedge.lb.nginx_view(pools=['default']) }}"
"""

RETURN = r"""
_value:
  description: Render-ready data; lists are sorted, names are nginx-safe.
  type: dict
  contains:
    generation:
      description: The model's generation.
      type: str
    admin:
      description: C(listen) of the admin server.
      type: dict
    http:
      description:
        - C(upstreams) (C(name), C(balance), C(servers), the passive check C(checked), C(max_fails), C(fail_timeout)).
        - C(servers) (C(listen), C(ssl), C(default), C(name), C(certificate), C(reject_handshake) and C(locations), each
          C(path), C(exact) and its C(answer) - C(proxy) to C(upstream), C(redirect) to C(https_port), C(no_targets),
          C(no_path) or C(no_host)).
      type: dict
    stream:
      description:
        - C(upstreams) as in RV(_value.http), C(refuse) (the upstream that closes connections, or empty when unused),
          C(maps) (C(variable), C(entries) of C(host) and C(upstream), C(default)) and C(servers) (C(frontend), C(listen),
          C(udp), C(accept_proxy), C(ssl_preread), C(target), C(connect_ms), C(server_ms), C(half_close), C(proxy_protocol)).
      type: dict
    certificates:
      description: Certificates the config uses, C(name) and C(sha256); their PEM text is not repeated.
      type: list
      elements: dict
    routes:
      description: Pod network routes (cidr, via), present when a served backend is in C(pod) mode.
      type: list
      elements: dict
    findings:
      description: What was left out or changed because nginx cannot serve it, C(where) (the frontend), C(field) and C(message).
      type: list
      elements: dict
    digest:
      description: SHA-256 of everything above; the release is named after it.
      type: str
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document
from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_view import ViewOptions, nginx_view
from ansible_collections.k8sedge.lb.plugins.module_utils._view import plain_certificates


def _nginx_view(model: Any, pools: Any = ("default",), certificates: Any = None, admin_address: Any = "127.0.0.1", admin_port: Any = 8405,
                pool_addresses: Any = None, max_fails: Any = 2, fail_timeout: Any = 10) -> dict[str, Any]:
    options = ViewOptions(
        pools=tuple(pools) if isinstance(pools, list) else pools, certificates=plain_certificates(certificates or {}),
        admin_address=admin_address, admin_port=_integer(admin_port), pool_addresses={} if pool_addresses is None else pool_addresses,
        max_fails=_integer(max_fails), fail_timeout_s=_integer(fail_timeout),
    )
    try:
        return nginx_view(model_document(model), options)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.nginx_view: {exc}") from None


def _integer(value: Any) -> Any:
    """An integer given as text (extra vars, INI inventories) as the integer; anything else as is,
    for the view to refuse."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10 else value


class FilterModule:
    """The nginx view of the edge model."""

    def filters(self) -> dict[str, Any]:
        return {"nginx_view": _nginx_view}
