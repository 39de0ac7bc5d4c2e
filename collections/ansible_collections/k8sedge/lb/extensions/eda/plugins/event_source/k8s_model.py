# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-rulebook event source: one event per new edge model generation."""

from __future__ import annotations

DOCUMENTATION = r"""
---
short_description: One event per new k8sedge model generation, endpoint-only or structural
description:
  - Watches what the k8sedge edge model reads (Services, EndpointSlices, Nodes, Ingresses and the
    tcp-services/udp-services ConfigMaps); it lists, then watches from the resourceVersion with
    bookmarks, re-lists on 410 Gone, reconnects with backoff.
  - Coalesces bursts (O(debounce), O(max_delay)), builds the model as M(k8sedge.lb.edge_info) does
    and puts one event per new generation, an object under C(k8sedge) with C(change),
    C(generation), C(previous), C(parts), C(backends), C(summary), C(first_event), C(built) and
    C(counts). C(change) is C(endpoints) when only backend
    targets differ from the previous generation, else C(structural); the first generation after
    the start is C(structural).
  - While the API is unreachable it logs so and emits nothing (the edges keep serving); it
    catches up by re-listing when the API returns.
  - Connection options as M(k8sedge.lb.edge_info), with the same C(K8S_AUTH_*) environment
    variables; model options as well (C(namespaces), C(label_selector), C(ingress_class), ...).
options:
  kubeconfig:
    description: Path to a kubeconfig (or C(K8S_AUTH_KUBECONFIG)); else O(host) and O(api_key).
    type: str
  host:
    description: API server URL (or C(K8S_AUTH_HOST)).
    type: str
  api_key:
    description: Bearer token (or C(K8S_AUTH_API_KEY)).
    type: str
  ca_cert:
    description: CA certificate file (or C(K8S_AUTH_SSL_CA_CERT)).
    type: str
  client_cert:
    description: Client certificate file (or C(K8S_AUTH_CERT_FILE)), with O(client_key).
    type: str
  client_key:
    description: Its key file (or C(K8S_AUTH_KEY_FILE)).
    type: str
  validate_certs:
    description: Verify the API server's certificate (or C(K8S_AUTH_VERIFY_SSL)).
    type: bool
    default: true
  pool:
    description: Build the model of this pool only; default every pool.
    type: str
  debounce:
    description: Seconds of quiet after a change before the model is built.
    type: float
    default: 0.1
  max_delay:
    description: Seconds after the first change at most before the model is built, quiet or not.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Keep the edges on the cluster's model
  hosts: edges
  sources:
    - k8sedge.lb.k8s_model:
        debounce: 0.1
        max_delay: 1
  rules:
    - name: Endpoint-only change
      condition: event.k8sedge.change == "endpoints"
      action:
        run_playbook:
          name: playbooks/endpoints.yml
"""

import asyncio
import concurrent.futures
import logging
import os
import sys
from pathlib import Path
from typing import Any

try:
    from ansible_collections.k8sedge.lb.plugins.module_utils import _watch
except ImportError:
    # ansible-rulebook runs this file by path, without Ansible's collection loader: make the
    # collection's own module_utils importable from where this file lies.
    sys.path.insert(0, str(Path(__file__).resolve().parents[7]))
    from ansible_collections.k8sedge.lb.plugins.module_utils import _watch

WATCH_ARGS = ("pool", "debounce", "max_delay", "backoff_initial", "backoff_max", "watch_seconds", "idle_timeout")


def watcher_from(args: dict[str, Any]) -> _watch.Watcher:
    """The watcher the rulebook's source arguments describe; ValueError names a bad one."""
    options = _watch.WatchOptions(**{k: args[k] for k in WATCH_ARGS if args.get(k) is not None})
    params = _watch.params_with_defaults({k: v for k, v in args.items() if k not in WATCH_ARGS}, dict(os.environ))
    return _watch.Watcher(params, options)


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """Put {"k8sedge": change} on the queue for every new model generation, until cancelled."""
    # urllib3 warns on each retry of a refused connection; the watcher says it once, with context.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    loop = asyncio.get_running_loop()
    watcher = watcher_from(args)

    def emit(change: _watch.Change) -> None:
        # The engine's queue holds one event: wait for room, which holds the next build back
        # (changes meanwhile are coalesced into it), and give up only when stopping.
        future = asyncio.run_coroutine_threadsafe(queue.put({"k8sedge": change.event()}), loop)
        while not watcher.stopping.is_set():
            try:
                future.result(timeout=1)
                return
            except concurrent.futures.TimeoutError:
                continue
        future.cancel()

    try:
        await asyncio.to_thread(watcher.run, emit)
    finally:
        watcher.stop()


if __name__ == "__main__":
    # Without ansible-rulebook: print the events (connection options from K8S_AUTH_*).
    class _Print(asyncio.Queue):
        async def put(self, item: Any) -> None:
            print(item, flush=True)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(_Print(), {}))
