#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: probe
short_description: Send real traffic and check what comes back (HTTP, HTTPS, TCP, UDP)
version_added: 0.1.0
description:
  - Runs a list of probes at once, at most O(concurrency) in parallel, from the host the task runs
    on (the controller, an edge host or a client, wherever it is delegated).
  - HTTP and HTTPS work like C(curl --resolve) - connect to O(probes[].address), send
    O(probes[].host) as the Host header and as the TLS server name (SNI), check the status code,
    response headers and the body.
  - TCP works like the telnet session of the design note - connect, optionally send bytes and wait
    for a regular expression (C(HEAD / HTTP/1.1) and C(HTTP/1.1 200)). With O(probes[].tls) it
    completes a TLS handshake (TLS passthrough). O(probes[].send_proxy) sends a PROXY protocol
    header first, for frontends that expect one.
  - UDP sends a datagram (again, up to three times within the timeout) and waits for an answer.
  - Reports the latency of each probe. A probe never runs longer than its timeout and the module
    never longer than O(deadline); what did not finish is reported as failed.
  - Probes only read; the module runs them in check mode too and never reports a change.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Probes are read-only, so they run in check mode as well.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  probes:
    description: The probes to run. Results come back in the same order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unique name of the probe; results and failures are reported by it.
        type: str
        required: true
      type:
        description: What to speak.
        type: str
        choices: [http, https, tcp, udp]
        default: http
      address:
        description: The IP address (or name) to connect to, like the address of C(curl --resolve).
        type: str
        required: true
      port:
        description: The port to connect to.
        type: int
        required: true
      timeout:
        description: Seconds the whole probe may take, connect to last byte.
        type: float
        default: 5
      method:
        description: HTTP method.
        type: str
        default: GET
      path:
        description: HTTP request target.
        type: str
        default: /
      host:
        description:
          - HTTP Host header, and the TLS server name unless O(probes[].sni) is set. Defaults to the
            address (with the port when it is not the protocol's default).
        type: str
      sni:
        description: TLS server name, when it must differ from the Host header. None is sent for an IP address.
        type: str
      headers:
        description: Extra request headers.
        type: dict
      status_code:
        description: Accepted status codes, each a code (C(200)) or an inclusive range (C(200-399)).
        type: list
        elements: str
        default: ['200']
      body_regex:
        description: A regular expression the body must match (Python C(re.search)).
        type: str
      body_not_regex:
        description: A regular expression the body must not match, e.g. the proxy's own error page.
        type: str
      expect_headers:
        description: Response headers that must be present, name to a regular expression of the value.
        type: dict
      tls:
        description: For O(probes[].type=tcp), complete a TLS handshake after connecting (TLS passthrough).
        type: bool
        default: false
      validate_certs:
        description: Check the server's certificate and name (HTTPS and TCP with TLS). C(false) is C(curl --insecure).
        type: bool
        default: true
      ca_path:
        description: A PEM file of CA certificates to check the server's certificate with, instead of the system's.
        type: path
      certificate_sha256:
        description:
          - HTTPS and TCP with TLS - the SHA-256 fingerprints (hex) of which the server's certificate must
            be one, whether or not O(probes[].validate_certs) checks its chain. The rollout gives each
            HTTPS probe the certificate the edge was given, so an edge that serves another (a rotation
            that did not take) fails its probe.
        type: list
        elements: str
      send:
        description: TCP and UDP - the bytes to send (YAML escapes such as C(\r\n) give the control characters).
        type: str
      expect:
        description: TCP and UDP - a regular expression the bytes received must match. Without it a UDP
          probe accepts any answer and a TCP probe only connects.
        type: str
      half_close:
        description: TCP - close the sending side after O(probes[].send), as C(socat) does at the end of its input.
        type: bool
        default: false
      hold:
        description:
          - TCP without O(probes[].expect) - seconds the peer must keep the connection open or send
            something. A proxy with no working backend closes the client's connection at once.
        type: float
        default: 0
      send_proxy:
        description: Send a PROXY protocol header (v1 text or v2 binary) with the real addresses before anything else.
        type: str
        choices: [none, v1, v2]
        default: none
  concurrency:
    description: How many probes run at the same time.
    type: int
    default: 16
  deadline:
    description: Seconds the module may take in all; probes not finished by then are failed.
    type: float
    default: 60
  fail_on_failure:
    description: Fail the task when a probe fails. C(false) returns every result and leaves the verdict to the caller.
    type: bool
    default: true
notes:
  - Uses only the Python standard library, so it runs on any host with Python.
  - Send traffic only to addresses you are allowed to probe; the module does not pace or repeat probes.
  - The project's C(edge_probe) role derives these probes from the edge model and runs them through
    every VIP, edge and target.
"""

EXAMPLES = r"""
- name: The design note's two checks, through an edge
  k8sedge.lb.probe:
    probes:
      - name: s2 over HTTP
        address: 10.213.0.11
        port: 80
        host: s2.pctest
        body_regex: "Hostname: s2-"
        expect_headers:
          Content-Type: ^text/plain
      - name: s2 over raw TCP
        type: tcp
        address: 10.213.0.11
        port: 9999
        send: "HEAD / HTTP/1.1\r\nHost: s2.pctest\r\n\r\n"
        expect: ^HTTP/1.1 200
  delegate_to: localhost

- name: HTTPS with SNI, like curl --resolve shop.example:443:10.0.0.10 --cacert ca.pem
  k8sedge.lb.probe:
    probes:
      - name: shop
        type: https
        address: 10.0.0.10
        port: 443
        host: shop.example
        ca_path: /etc/k8sedge/ca.pem
        status_code: ["200-399"]

- name: A TLS passthrough handshake, a PROXY-protocol frontend and UDP
  k8sedge.lb.probe:
    concurrency: 8
    deadline: 20
    fail_on_failure: false
    probes:
      - {name: passthrough, type: tcp, tls: true, sni: db.example, validate_certs: false, address: 10.0.0.10, port: 443}
      - {name: proxy, type: tcp, send_proxy: v1, address: 10.0.0.10, port: 9998,
         send: "HEAD / HTTP/1.1\r\n\r\n", expect: ^HTTP/}
      - {name: dns-ish, type: udp, address: 10.0.0.10, port: 5353, send: ping, expect: ping}
  register: probed
"""

RETURN = r"""
probes:
  description: One result per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
    ok:
      description: Whether what came back is what was expected.
      type: bool
    target:
      description: The address and port connected to.
      type: str
      sample: 10.213.0.11:80
    latency_ms:
      description: Milliseconds from the start of the connect to the verdict.
      type: float
    connect_ms:
      description: Milliseconds until the connection was established (UDP - until the socket was ready).
      type: float
    error:
      description: Why the probe failed, with what came back; empty when it passed.
      type: str
      sample: "expected status 200, got 503; body: '<html><body><h1>503 Service Unavailable</h1>...'"
    status:
      description: HTTP status code, when a response head arrived.
      type: int
    headers:
      description: HTTP response headers, names lower-cased.
      type: dict
    body:
      description: The start of the HTTP body (300 characters).
      type: str
    received:
      description: TCP and UDP - the start of what came back.
      type: str
    tls:
      description: TLS C(version) and C(cipher) when a handshake was made.
      type: dict
summary:
  description: Counts of probes.
  returned: always
  type: dict
  contains:
    total:
      description: Probes run.
      type: int
    passed:
      description: Probes that passed.
      type: int
    failed:
      description: Probes that failed.
      type: int
    seconds:
      description: Wall time of the whole call.
      type: float
failures:
  description: The failed probes, C(name) and C(error), in the order given.
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._probe import ProbeSpecError, parse, run_all

PROBE_OPTIONS = {
    "name": {"type": "str", "required": True},
    "type": {"type": "str", "choices": ["http", "https", "tcp", "udp"], "default": "http"},
    "address": {"type": "str", "required": True},
    "port": {"type": "int", "required": True},
    "timeout": {"type": "float", "default": 5},
    "method": {"type": "str", "default": "GET"},
    "path": {"type": "str", "default": "/"},
    "host": {"type": "str"},
    "sni": {"type": "str"},
    "headers": {"type": "dict"},
    "status_code": {"type": "list", "elements": "str", "default": ["200"]},
    "body_regex": {"type": "str"},
    "body_not_regex": {"type": "str"},
    "expect_headers": {"type": "dict"},
    "tls": {"type": "bool", "default": False},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "certificate_sha256": {"type": "list", "elements": "str"},
    "send": {"type": "str"},
    "expect": {"type": "str"},
    "half_close": {"type": "bool", "default": False},
    "hold": {"type": "float", "default": 0},
    "send_proxy": {"type": "str", "choices": ["none", "v1", "v2"], "default": "none"},
}

ARGUMENT_SPEC = {
    "probes": {"type": "list", "elements": "dict", "required": True, "options": PROBE_OPTIONS},
    "concurrency": {"type": "int", "default": 16},
    "deadline": {"type": "float", "default": 60},
    "fail_on_failure": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    started = time.monotonic()
    try:
        probes = [parse(spec) for spec in module.params["probes"]]
        names = [p.name for p in probes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ProbeSpecError(f"probe names must be unique; given more than once: {', '.join(twice)}")
        if not 1 <= module.params["concurrency"] <= 256:
            raise ProbeSpecError(f"concurrency: expected 1-256, got {module.params['concurrency']}")
        if not 0 < module.params["deadline"] <= 3600:
            raise ProbeSpecError(f"deadline: expected seconds between 0 and 3600, got {module.params['deadline']}")
    except EdgeError as err:
        module.fail_json(msg=str(err))
    results = [r.as_dict() for r in run_all(probes, module.params["concurrency"], module.params["deadline"])]
    failures = [{"name": r["name"], "error": r["error"]} for r in results if not r["ok"]]
    summary = {"total": len(results), "passed": len(results) - len(failures), "failed": len(failures),
               "seconds": round(time.monotonic() - started, 3)}
    if failures and module.params["fail_on_failure"]:
        detail = "; ".join(f"{f['name']}: {f['error']}" for f in failures)
        module.fail_json(msg=f"{len(failures)} of {len(results)} probes failed: {detail}", probes=results,
                         summary=summary, failures=failures)
    module.exit_json(changed=False, probes=results, summary=summary, failures=failures)


if __name__ == "__main__":
    main()
