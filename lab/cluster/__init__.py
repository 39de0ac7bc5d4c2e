"""The parts of a Kubernetes cluster that the lab API server does not do.

- ``python -m lab.cluster.controllers``: deployment, scheduler, EndpointSlice/Endpoints and
  node-lifecycle controllers in one process (like kube-controller-manager + kube-scheduler).
- ``python -m lab.cluster.kubelet``: one per node, run inside the node's network namespace:
  registers the Node, runs pods as echo-server processes on host-gw pod networking, and
  proxies NodePorts like kube-proxy.
- ``python -m lab.cluster.echo``: the workload every pod runs.

The pure logic lives in the ``_``-prefixed modules; the entry points do the I/O.
"""
