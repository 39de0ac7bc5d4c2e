# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: probe_plan
short_description: Derive the traffic probes that prove an edge model
version_added: 0.1.0
description:
  - Takes the model that M(k8sedge.lb.edge_info) returns and derives, with no hand-written list,
    one check per HTTP route, TLS passthrough name, TCP and UDP frontend, and sends each through
    every VIP of its pool, through every edge host directly and to every ready backend target
    directly, so a failure says where it is.
  - "HTTP routes expect a status from O(http_status) whose body is not the edge's own
    no-route page (O(http_not_regex)); routes of TLS hosts on the HTTP port expect a redirect to
    C(https://<host>); HTTPS and passthrough use the host as SNI and check the certificate
    against O(ca_path). PROXY-accepting frontends get a PROXY v1 header first; targets of a
    backend the edge sends PROXY to get one too."
  - TCP frontends send the operator's payload for the Service port (O(payloads)), else the design
    note's C(HEAD / HTTP/1.1) for a port named C(http), else connect and hold the connection for
    O(tcp_hold) seconds. UDP frontends send O(udp_send) and accept any answer unless a payload says
    what to expect.
  - What an engine does not serve is skipped with the reason (haproxy - UDP; nginx - PROXY from
    HTTP, PROXY v2), and so is a backend without ready targets.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The model, as C(edge_info) returns it under C(model) (or its JSON text, C(model_json)).
    type: raw
    required: true
  hosts:
    description:
      - The edge hosts, each C({name, address, engine, pools}); C(engine) is C(haproxy) or C(nginx).
      - Optional C(certificates), the names its engine was given, or those names to the SHA-256
        fingerprint of each (P(k8sedge.lb.certificate_fingerprints#filter)); with fingerprints, every
        HTTPS probe through the host (or a VIP of its pool) checks that it presents that certificate.
      - Optional C(listen), pool name to the one
        address the host listens on for that pool (C(edge_nginx_pool_addresses)). A pool it listens
        for on one of the pool's VIPs is not probed through the host (only the VIP's holder answers),
        but through the VIPs; another address is probed instead of C(address).
    type: list
    elements: dict
    required: true
  pool_vips:
    description: Pool name to its VIP addresses.
    type: dict
    default: {}
  through:
    description: Which paths to probe - C(vip), C(edge) (each host directly), C(target) (each backend target directly).
    type: list
    elements: str
    default: [vip, edge, target]
  targets_from:
    description: Where target probes run - C(edge) (each edge host probes the targets of its pools) or C(controller).
    type: str
    default: edge
  timeout:
    description: Seconds each probe may take.
    type: float
    default: 5
  validate_certs:
    description: Check certificates of HTTPS routes and passthrough names.
    type: bool
    default: true
  ca_path:
    description: CA file the certificates are checked with (system CAs when empty).
    type: str
    default: ""
  http_status:
    description: Status codes (or ranges such as C(200-499)) that prove an HTTP route reached its backend.
    type: list
    elements: str
    default: ["200-499"]
  http_not_regex:
    description: A body an HTTP route must not answer with through the edge (the edge's own no-route page).
    type: str
    default: "^k8sedge: no route"
  payloads:
    description: C(namespace/service:port) to C({send, expect}) for TCP and UDP Service ports.
    type: dict
    default: {}
  udp_send:
    description: What UDP probes send when no payload is given.
    type: str
    default: "k8sedge-probe\n"
  tcp_hold:
    description: Seconds a TCP frontend with no known payload must keep a connection open.
    type: float
    default: 0.3
  proven:
    description:
      - Edge host to the check digests its last-known-good config passed (the state record's
        C(last_good.checks)), as a list or as one text of digests separated by spaces
        (RV(k8sedge.lb.edge_state#module:proven_checks)). A check every host of its pool proved, with the same route and the
        same backend (targets included), is unchanged; every other check is changed and probed in full.
      - A host not here proved nothing; all its checks are changed.
    type: dict
    default: {}
  settings:
    description:
      - Edge host to the digest of the settings its engine runs now (the proxy role's answer,
        C(edge_haproxy_settings) or C(edge_nginx_settings)). A check proven under other settings
        is changed.
    type: dict
    default: {}
  sample:
    description:
      - How many unchanged checks to probe, chosen at random with the model's generation as the
        seed (so the same run again probes the same ones). RV(_value.coverage) says how many and how.
    type: int
    default: 32
  sweep:
    description: Probe every unchanged check too. What a scheduled job should run.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Plan the probes of the edges in this play
  ansible.builtin.set_fact:
    plan: >-
      {{ edge.model | k8sedge.lb.probe_plan(
           hosts=[{'name': 'edge1', 'address': '10.213.0.11', 'engine': 'haproxy', 'pools': ['default']}],
           pool_vips={'default': ['10.213.0.200']}, ca_path='/etc/k8sedge/ca.pem') }}
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    generation:
      description: The model's generation.
      type: str
    probes:
      description:
        - One entry per probe - C(kind) (vip, edge or target), C(via), C(runner) (C(controller) or an
          edge host), C(frontend), C(label), C(pool), C(backend), and C(probe), the options of one
          M(k8sedge.lb.probe) probe.
      type: list
      elements: dict
    skipped:
      description: Checks not probed - C(frontend), C(label), C(via) and the C(reason).
      type: list
      elements: dict
    hosts:
      description: The edge host names, in the order given.
      type: list
      elements: str
    coverage:
      description:
        - C(checks) in all, C(changed) (probed in full), C(unchanged), C(unchanged_probed) and
          C(unchanged_chosen_by) (a full sweep, all of them, or a random sample and its seed).
      type: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document
from ansible_collections.k8sedge.lb.plugins.module_utils._probe_plan import PlanError, PlanOptions, hosts_of, plan
from ansible_collections.k8sedge.lb.plugins.module_utils._view import Checker


def _texts(c: Checker, what: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise c.fail(what, "a list", value)
    return tuple(str(item) for item in value)


def _digests(c: Checker, what: str, value: Any) -> tuple[str, ...]:
    """Check digests as a list, or as the one text edge_state returns (proven_checks)."""
    return tuple(value.split()) if isinstance(value, str) else _texts(c, what, value or [])


def _seconds(c: Checker, what: str, value: Any) -> float:
    """Seconds as a number or its text (extra vars arrive as text)."""
    try:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
    except ValueError:
        pass
    raise c.fail(what, "seconds", value)


def _flag(c: Checker, what: str, value: Any) -> bool:
    """A boolean, or its text (extra vars arrive as text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise c.fail(what, "true or false", value)


def _count(c: Checker, what: str, value: Any) -> int:
    """A count of 0 or more, or its text."""
    try:
        if isinstance(value, (int, str)) and not isinstance(value, bool) and int(value) >= 0:
            return int(value)
    except ValueError:
        pass
    raise c.fail(what, "a count of 0 or more", value)


def probe_plan(model: Any, hosts: Any, pool_vips: Any = None, through: Any = ("vip", "edge", "target"), targets_from: str = "edge",
               timeout: Any = 5.0, validate_certs: Any = True, ca_path: Any = "", http_status: Any = ("200-499",),
               http_not_regex: Any = "^k8sedge: no route", payloads: Any = None, udp_send: Any = "k8sedge-probe\n",
               tcp_hold: Any = 0.3, proven: Any = None, settings: Any = None, sample: Any = 32, sweep: Any = False) -> dict[str, Any]:
    c = Checker("options", PlanError)
    try:
        options = PlanOptions(
            hosts=hosts_of(hosts),
            pool_vips={str(pool): list(_texts(c, f"pool_vips.{pool}", vips)) for pool, vips in c.mapping("pool_vips", pool_vips or {}).items()},
            through=_texts(c, "through", through), targets_from=str(targets_from), timeout=_seconds(c, "timeout", timeout),
            validate_certs=bool(validate_certs), ca_path=str(ca_path or ""), http_status=_texts(c, "http_status", http_status),
            http_not_regex=str(http_not_regex or ""),
            payloads={str(key): dict(c.mapping(f"payloads.{key}", value)) for key, value in c.mapping("payloads", payloads or {}).items()},
            udp_send=str(udp_send), tcp_hold=_seconds(c, "tcp_hold", tcp_hold),
            proven={str(host): frozenset(_digests(c, f"proven.{host}", digests)) for host, digests in c.mapping("proven", proven or {}).items()},
            settings={str(host): str(value or "") for host, value in c.mapping("settings", settings or {}).items()},
            sample=_count(c, "sample", sample), sweep=_flag(c, "sweep", sweep))
        return plan(model_document(model), options)
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.probe_plan: {exc}") from None


class FilterModule:
    """Probes derived from the edge model."""

    def filters(self) -> dict[str, Any]:
        return {"probe_plan": probe_plan}
