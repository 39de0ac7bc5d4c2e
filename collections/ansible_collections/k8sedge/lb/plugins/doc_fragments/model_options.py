# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to read and how to build the edge model; shared by edge_info and the inventory plugin."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  namespaces:
    description:
      - Read only these namespaces. Empty reads all namespaces.
      - Nodes are always read cluster-wide.
    type: list
    elements: str
    default: []
  label_selector:
    description:
      - Read only Services that match this label selector.
    type: str
  ingress_class:
    description:
      - Ingress objects of this class give HTTP routes.
    type: str
    default: k8sedge
  read_ingresses:
    description:
      - Whether to read Ingress objects at all (for readers that may not list them).
    type: bool
    default: true
  readiness_gates:
    description:
      - Read Pods too, for the readiness gate C(lb.k8sedge.io/edge-ready) - a Pod that lists it
        and whose containers are ready is served before Kubernetes calls it ready, and listed in
        the model's C(gates) for M(k8sedge.lb.pod_gates) to acknowledge. Only Pods that list the
        gate are kept. The reader then needs C(list) on pods (C(docs/rbac-gates.yaml)).
    type: bool
    default: false
  tcp_services_configmap:
    description:
      - The ConfigMap, C(namespace/name), in the ingress-nginx C(tcp-services) format.
      - Empty reads none. Exposure is opt-in - on a cluster that still runs ingress-nginx, its
        entries are exposed on the edge only when the operator names its ConfigMap here.
    type: str
    default: ""
  udp_services_configmap:
    description:
      - The ConfigMap, C(namespace/name), in the ingress-nginx C(udp-services) format.
      - Empty reads none.
    type: str
    default: ""
  reserved_ports:
    description:
      - Edge ports the edge keeps for itself - the roles' admin listeners (edge_haproxy_admin_port
        8404, edge_nginx_admin_port 8405) and anything else the edge hosts listen on.
      - A TCP or UDP claim on one of them is refused on its object (an error naming it), and the
        rest of the model is served.
    type: list
    elements: int
    default: [8404, 8405]
  http_port:
    description:
      - The edge port of the HTTP frontends.
    type: int
    default: 80
  https_port:
    description:
      - The edge port of TLS frontends (termination and passthrough).
    type: int
    default: 443
  nodeport_subset_size:
    description:
      - How many nodes carry each C(nodeport) backend whose Service has C(externalTrafficPolicy) C(Cluster).
      - kube-proxy forwards from any node to any endpoint, so more node targets only add config and
        health checks. Each Service takes the nodes that follow it on a hash ring of node names,
        deterministic, spread evenly, and a node joining or leaving changes at most one member of a subset.
      - V(0) uses every eligible node. Services with C(externalTrafficPolicy) C(Local) always use every
        node that hosts an endpoint.
    type: int
    default: 25
  timeout:
    description:
      - Seconds the whole read may take before it fails.
    type: float
    default: 30
  page_size:
    description:
      - Items per page of each list request.
    type: int
    default: 500
"""
