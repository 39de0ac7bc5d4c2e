"""What the tests (tests/) and the benchmarks (bench/) both use to drive the lab: plain functions
and classes, no pytest fixtures (those stay in tests/). Neither tests nor bench import the other.

- apiserver: the lab's API server started on its own, with a fresh CA and tokens;
- steps: bounded steps on the lab's hosts, a proxy role on one edge, wrk while its proxy reloads;
- converge: cluster changes, the watcher, and which pod answers through each edge (pod_probe);
- role_render: a proxy role's path from the model to files, run outside a play.
"""
