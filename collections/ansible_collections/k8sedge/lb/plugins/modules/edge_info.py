#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: edge_info
short_description: Decide what the edge must serve, from the Kubernetes API or manifests
version_added: 0.1.0
description:
  - Reads Services, EndpointSlices (Endpoints when the cluster has no C(discovery.k8s.io/v1)),
    Nodes, Ingresses of one class and the ingress-nginx C(tcp-services) and C(udp-services)
    ConfigMaps, and builds one normalized, sorted, deterministic model of the edge's frontends,
    backends and pod routes.
  - Which Services are exposed, and how, is decided by the C(lb.k8sedge.io/) annotations
    documented in the project's C(docs/annotations.md).
  - A failed, partial or timed-out read fails the module; it never returns an empty or partial
    model. Objects with bad input are reported in RV(model.errors) and skipped, the rest goes on.
  - Reads only; safe in check mode.
author:
  - k8sedge developers (@k8sedge)
requirements:
  - PyYAML, to read a kubeconfig, or manifests in YAML in O(src)
extends_documentation_fragment:
  - k8sedge.lb.k8s_auth
  - k8sedge.lb.model_options
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  action:
    description: An action plugin of the same name runs the module inside Ansible's process on the controller.
    support: full
  async:
    description: With C(async), the module runs as a module (not inside Ansible's process).
    support: full
  platform:
    platforms: posix
options:
  pool:
    description:
      - Keep only the frontends and backends of this pool. Default is every pool.
    type: str
  src:
    description:
      - A file or directory of manifests (YAML or JSON, including the C(List) that
        C(kubectl get svc,endpointslices,nodes -A -o yaml) writes) to read instead of the API.
      - The connection options are ignored when this is set.
    type: path
  model_format:
    description:
      - V(dict) returns the model as RV(model).
      - V(json) returns it as one JSON text in RV(model_json) instead, which the C(haproxy_view) and
        C(nginx_view) filters and the roles take as they take RV(model). Use it for large clusters;
        Ansible handles one long string far faster than a million small values (see the project's
        benchmarks).
    type: str
    choices: [dict, json]
    default: dict
notes:
  - Run it on the controller (C(delegate_to=localhost) with C(run_once=true)). There, with the
    C(local) connection and without C(async), its action plugin builds the model inside Ansible's
    own process, which saves starting a module (about half a second a call). On any other
    connection the module runs on the target host as usual.
  - What each C(lb.k8sedge.io/) annotation means and accepts is in the project's C(docs/annotations.md).
"""

EXAMPLES = r"""
- name: Read the edge model of the default pool
  k8sedge.lb.edge_info:
    kubeconfig: "{{ k8sedge_kubeconfig }}"
    pool: default
  delegate_to: localhost
  run_once: true
  register: edge

- name: Show what would be served
  ansible.builtin.debug:
    msg: "{{ edge.model.frontends | map(attribute='name') }}"

- name: A large cluster's model, handed to the proxy role as JSON text
  k8sedge.lb.edge_info:
    kubeconfig: "{{ k8sedge_kubeconfig }}"
    model_format: json
  delegate_to: localhost
  run_once: true
  register: edge

- name: Build the model from manifests exported with kubectl (air-gapped)
  k8sedge.lb.edge_info:
    src: exported/cluster.yaml
  delegate_to: localhost
  register: edge
"""

RETURN = r"""
generation:
  description: The model's RV(model.generation), whatever the O(model_format).
  returned: success
  type: str
  sample: 0c3f9e5d6f1b2a7c4e8d9b0a1f2e3d4c5b6a79808f7e6d5c4b3a291807f6e5d4
gates:
  description:
    - The model's C(gates), whatever the O(model_format) - the Pods that wait for the readiness
      gate C(lb.k8sedge.io/edge-ready) (O(readiness_gates)), each with its pod targets per backend
      and pool and the node port backends that select it; empty unless Pods are read. What
      M(k8sedge.lb.gate_evidence) and M(k8sedge.lb.pod_gates) take.
  returned: success
  type: list
  elements: dict
  sample:
    - namespace: shop
      name: web-7d4b9-x2x1q
      uid: 0b2f6a62-3e0c-4c9b-9d51-2a3c7e9f6b10
      nodeport_backends: []
      targets: [{backend: shop_web_80, pools: [default], address: 10.244.1.6, port: 8080, protocol: TCP,
                 check: {type: http, path: /healthz}}]
model_json:
  description: The model of RV(model) as one compact JSON text, keys sorted.
  returned: when O(model_format=json)
  type: str
model:
  description:
    - The edge model. The same cluster content gives the same model, byte for byte.
  returned: when O(model_format=dict)
  type: dict
  contains:
    generation:
      description: SHA-256 of the served content (frontends, backends, routes); errors and warnings do not count.
      type: str
      sample: 3f0a9c...
    frontends:
      description:
        - What the edge listens on, sorted by pool, protocol and port (docs/annotations.md).
        - HTTP frontends carry C(routes) (host, path, C(path_type) prefix or exact, backend,
          C(certificate) and C(redirect_https) for TLS termination) and the C(certificates) they
          need; TCP and UDP frontends name one C(backend), TLS passthrough frontends route by C(sni)
          instead.
        - C(accept_proxy) says the frontend expects a PROXY protocol header from its clients.
      type: list
      elements: dict
      sample:
        - name: default-http-80
          pool: default
          protocol: http
          port: 80
          tls: false
          accept_proxy: false
          certificates: []
          routes:
            - {host: s2.pctest, path: /, path_type: prefix, backend: default_s2_80, certificate: "", redirect_https: false}
        - name: default-tcp-9999
          pool: default
          protocol: tcp
          port: 9999
          tls: false
          accept_proxy: false
          sni: []
          backend: default_s2_80_tcp
    backends:
      description:
        - Pools of targets, sorted by name; targets sorted by address and port.
        - C(mode) is C(nodeport) (node InternalIPs on the nodePort) or C(pod) (EndpointSlice addresses).
        - C(frontend_protocol) is how frontends use it (http, tcp or udp); one Service port used both
          ways gives two backends.
        - Target C(state) is C(ready) or C(draining) (serving but terminating).
        - "C(health_check) is C({type: tcp}), C({type: http, path, port}) or C({type: none})."
      type: list
      elements: dict
      sample:
        - name: default_s2_80
          namespace: default
          service: s2
          port: 80
          port_name: http
          protocol: TCP
          frontend_protocol: http
          mode: nodeport
          balance: roundrobin
          health_check: {type: tcp}
          proxy_protocol: none
          timeouts: {connect_ms: 5000, server_ms: 60000}
          targets:
            - {address: 10.213.0.21, port: 31780, node: node1, zone: lab-a, state: ready}
            - {address: 10.213.0.22, port: 31780, node: node2, zone: lab-b, state: ready}
    routes:
      description: What an edge needs to reach pod networks, one per node, sorted by CIDR.
      type: list
      elements: dict
      sample:
        - {cidr: 10.244.1.0/24, via: 10.213.0.21, node: node1}
    errors:
      description: Objects or claims that were refused, each naming the object, the field and what was expected.
      type: list
      elements: dict
      sample:
        - kind: Service
          namespace: default
          name: web
          field: metadata.annotations[lb.k8sedge.io/hosts]
          message: expected RFC 1123 host names, got "bad_host"
    warnings:
      description: Objects served in a degraded way, in the same shape as RV(model.errors).
      type: list
      elements: dict
read:
  description: How the model was read.
  returned: success
  type: dict
  contains:
    counts:
      description: Objects read, per kind.
      type: dict
    resource_versions:
      description: The resourceVersion of each list read from the API.
      type: dict
    requests:
      description: HTTP requests made.
      type: int
    api_seconds:
      description: Time spent waiting for the API.
      type: float
    build_seconds:
      description: Time spent building the model.
      type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import EDGE_INFO_ARGUMENT_SPEC, edge_info
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError


def main() -> None:
    module = AnsibleModule(argument_spec=EDGE_INFO_ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = edge_info(module.params)
    except EdgeError as err:
        module.fail_json(msg=str(err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
