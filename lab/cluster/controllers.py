"""The lab's kube-controller-manager and kube-scheduler in one process.

    python -m lab.cluster.controllers --kubeconfig .lab/kubeconfig-admin

Level-triggered, like the real controllers: informers (list+watch) keep caches of pods, nodes,
services, endpoints, endpointslices and deployments; every change, and a resync every 2 s, runs
each controller over the whole cache. Whole-cache passes leave no per-object queue to get wrong.
The Service-wide ones (EndpointSlices, Endpoints, garbage collection) pass over thousands of
Services in a scale test, so they pass only when what they read changed (a node's heartbeat is no
change to them) or every 30 s, like an informer's resync. Our own writes go into the caches at
once, so a pass never acts twice on a change whose watch event has not arrived yet.

Controllers: node lifecycle, scheduler, deployments (see ``_deployments`` for how they differ
from the real one), garbage collection of pods and EndpointSlices whose owner is gone,
EndpointSlices and legacy Endpoints (see ``_endpoints``).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Callable

from lab.cluster import _deployments, _endpoints, _scheduling
from lab.cluster._kube import Cluster, Informer, call, conflict, merge_patch, not_found, strategic_patch
from lab.cluster._model import (
    Obj,
    condition,
    format_time,
    key,
    now,
    parse_time,
    pod_is_ready,
    pod_is_terminating,
)

log = logging.getLogger("lab.cluster.controllers")

RESYNC_SECONDS = 2.0
SERVICE_RESYNC_SECONDS = 30.0
RESOURCES = ("pods", "nodes", "services", "endpoints", "endpointslices", "deployments")


def stale_nodes(nodes: list[Obj], grace: float) -> list[Obj]:
    """Nodes whose kubelet has not posted a heartbeat within grace seconds, not yet Unknown."""
    limit = now() - timedelta(seconds=grace)
    out = []
    for node in nodes:
        ready = condition(node, "Ready")
        if ready is None or ready.get("status") == "Unknown":
            continue
        beat = parse_time(ready.get("lastHeartbeatTime"))
        if beat is None or beat < limit:
            out.append(node)
    return out


def node_unknown_conditions(node: Obj, now_text: str) -> list[Obj]:
    """The node's conditions with every kubelet-owned one set to Unknown, as the real controller does."""
    out = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        cond = dict(cond)
        if cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.", lastTransitionTime=now_text)
        out.append(cond)
    return out


def pod_not_ready_conditions(pod: Obj, now_text: str) -> list[Obj]:
    """The pod's Ready condition set to False, for a strategic merge patch: the other conditions
    (a readiness gate's among them) are left as they are."""
    ready = dict(condition(pod, "Ready") or {"type": "Ready"})
    ready.update(status="False", reason="NodeNotReady", message="", lastTransitionTime=now_text)
    return [ready]


def orphaned(objs: list[Obj], owner_kind: str, owners: list[Obj]) -> list[Obj]:
    """Objects whose controller reference of owner_kind names an owner that no longer exists."""
    uids = {o["metadata"].get("uid") for o in owners}
    return [
        o for o in objs
        if any(
            ref.get("controller") and ref.get("kind") == owner_kind and ref.get("uid") not in uids
            for ref in o["metadata"].get("ownerReferences") or []
        )
    ]


class ControllerManager:
    def __init__(self, cluster: Cluster, node_grace: float) -> None:
        self.cluster = cluster
        self.node_grace = node_grace
        self.wake = threading.Event()
        self.informers = {r: Informer(r, cluster.lister(r), self.wake.set) for r in RESOURCES}
        self._endpoints_owned: set[str] = set()  # Services whose Endpoints object we maintain
        self.failed = False  # a step of the current pass failed for some object

    def items(self, resource: str) -> list[Obj]:
        return self.informers[resource].list()

    def run(self) -> None:
        for informer in self.informers.values():
            informer.start()
        for informer in self.informers.values():
            informer.synced.wait()
        log.info("caches synced; controllers running")
        steps: list[Callable[[], None]] = [self.node_lifecycle, self.schedule, self.deployments]
        service_steps: list[Callable[[], None]] = [self.garbage_collect, self.endpoint_slices, self.legacy_endpoints]
        passed: tuple | None = None  # the inputs of the last Service-wide pass that failed for no object
        passed_at = 0.0
        while True:
            self.wake.wait(RESYNC_SECONDS)
            self.wake.clear()
            self._run_steps(steps)
            inputs = self.service_inputs()
            if inputs != passed or time.monotonic() - passed_at > SERVICE_RESYNC_SECONDS:
                self.failed = False
                self._run_steps(service_steps)
                # A pass with a failure passes again at the next wake, like a requeue.
                passed, passed_at = (None if self.failed else inputs), time.monotonic()

    def _run_steps(self, steps: list[Callable[[], None]]) -> None:
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - one failing controller must not stop the others
                log.exception("%s failed", step.__name__)
                self.failed = True

    def service_inputs(self) -> tuple:
        """What the Service-wide controllers read: the caches' versions, and of the nodes only
        what an endpoint says of them (a heartbeat changes neither)."""
        nodes = sorted((n["metadata"]["name"], sorted((n["metadata"].get("labels") or {}).items()),
                        (condition(n, "Ready") or {}).get("status")) for n in self.items("nodes"))
        versions = tuple(self.informers[r].version for r in ("pods", "services", "endpoints", "endpointslices", "deployments"))
        return versions, nodes

    # Writes: each returns after putting its result in the cache.

    def _observe(self, resource: str, result: Obj) -> None:
        if result.get("kind") == "Status":
            return
        self.informers[resource].observe(result)

    def _delete(self, resource: str, method: Callable, obj: Obj) -> None:
        meta = obj["metadata"]
        args = (meta["name"], meta["namespace"]) if meta.get("namespace") else (meta["name"],)
        try:
            result = call(method, *args)
        except Exception as exc:
            if not not_found(exc):
                raise
            result = {"kind": "Status"}
        if result.get("kind") == "Status" or not result.get("metadata"):
            self.informers[resource].forget(obj)
        else:
            self.informers[resource].observe(result)

    # Controllers.

    def node_lifecycle(self) -> None:
        now_text = format_time(now())
        for node in stale_nodes(self.items("nodes"), self.node_grace):
            log.info("node %s: no heartbeat for %.0f s, marking Unknown", key(node), self.node_grace)
            body = {"status": {"conditions": node_unknown_conditions(node, now_text)}}
            self._observe("nodes", merge_patch(self.cluster.core.patch_node_status, node["metadata"]["name"], body))
        down = {n["metadata"]["name"] for n in self.items("nodes") if (condition(n, "Ready") or {}).get("status") != "True"}
        for pod in self.items("pods"):
            if pod["spec"].get("nodeName") in down and pod_is_ready(pod):
                log.info("pod %s: node %s is not ready, marking the pod not ready", key(pod), pod["spec"]["nodeName"])
                body = {"status": {"conditions": pod_not_ready_conditions(pod, now_text)}}
                self._observe("pods", strategic_patch(
                    self.cluster.core.patch_namespaced_pod_status, pod["metadata"]["name"], pod["metadata"]["namespace"], body))

    def schedule(self) -> None:
        for pod, node in _scheduling.plan_bindings(self.items("pods"), self.items("nodes")):
            log.info("pod %s: scheduled to %s", key(pod), node)
            try:
                result = merge_patch(self.cluster.core.patch_namespaced_pod, pod["metadata"]["name"],
                                     pod["metadata"]["namespace"], {"spec": {"nodeName": node}})
            except Exception as exc:
                if not (not_found(exc) or conflict(exc)):
                    raise
                continue
            self._observe("pods", result)

    def deployments(self) -> None:
        pods = self.items("pods")
        now_text = format_time(now())
        for deploy in self.items("deployments"):
            try:
                self._sync_deployment(deploy, pods, now_text)
            except Exception:  # noqa: BLE001 - the other Deployments still get synced
                log.exception("deployment %s: sync failed", key(deploy))

    def _sync_deployment(self, deploy: Obj, pods: list[Obj], now_text: str) -> None:
        ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
        plan = _deployments.plan_deployment(deploy, pods, now_text)
        pod_hash = _deployments.template_hash(deploy["spec"]["template"], (deploy.get("status") or {}).get("collisionCount", 0))
        for _ in range(plan.create):
            created = call(self.cluster.core.create_namespaced_pod, ns, _deployments.pod_from_template(deploy, pod_hash))
            log.info("deployment %s/%s: created pod %s", ns, name, created["metadata"]["name"])
            self._observe("pods", created)
        for pod in plan.delete:
            log.info("deployment %s/%s: deleting pod %s", ns, name, pod["metadata"]["name"])
            self._delete("pods", self.cluster.core.delete_namespaced_pod, pod)
        if plan.create or plan.delete:
            # Status from the pods as they are after this pass's writes.
            plan = _deployments.plan_deployment(deploy, self.items("pods"), now_text)
        if _deployments.status_differs(deploy, plan.status):
            self._observe("deployments", merge_patch(
                self.cluster.apps.patch_namespaced_deployment_status, name, ns, {"status": plan.status}))

    def garbage_collect(self) -> None:
        for pod in orphaned(self.items("pods"), "Deployment", self.items("deployments")):
            if not pod_is_terminating(pod):
                log.info("pod %s: owner Deployment is gone, deleting", key(pod))
                self._delete("pods", self.cluster.core.delete_namespaced_pod, pod)
        for eps in orphaned(self.items("endpointslices"), "Service", self.items("services")):
            log.info("endpointslice %s: owner Service is gone, deleting", key(eps))
            self._delete("endpointslices", self.cluster.discovery.delete_namespaced_endpoint_slice, eps)

    def endpoint_slices(self) -> None:
        pods, slices = self.items("pods"), _endpoints.managed_slices(self.items("endpointslices"))
        nodes = {n["metadata"]["name"]: n for n in self.items("nodes")}
        for svc in self.items("services"):
            if not _endpoints.service_is_managed(svc):
                continue
            try:
                self._sync_slices(svc, pods, nodes, slices.get(_endpoints.service_key(svc), []))
            except Exception:  # noqa: BLE001 - the other Services still get synced
                log.exception("service %s: endpointslice sync failed", key(svc))
                self.failed = True

    def _sync_slices(self, svc: Obj, pods: list[Obj], nodes: dict[str, Obj], mine: list[Obj]) -> None:
        ns = svc["metadata"]["namespace"]
        api = self.cluster.discovery
        by_name = {s["metadata"]["name"]: s for s in mine}
        for action in _endpoints.plan_slices(svc, pods, nodes, mine):
            if action.verb == "create":
                result = call(api.create_namespaced_endpoint_slice, ns, action.body)
                log.info("service %s: created endpointslice %s", key(svc), result["metadata"]["name"])
                self._observe("endpointslices", result)
            elif action.verb == "update":
                body = dict(action.body)
                body["metadata"] = {**body["metadata"], "resourceVersion": by_name[action.name]["metadata"]["resourceVersion"]}
                try:
                    result = call(api.replace_namespaced_endpoint_slice, action.name, ns, body)
                except Exception as exc:
                    if conflict(exc) or not_found(exc):
                        self.failed = True  # the next pass retries, with the version the watch brings
                        continue
                    raise
                log.info("service %s: updated endpointslice %s", key(svc), action.name)
                self._observe("endpointslices", result)
            else:
                log.info("service %s: deleting endpointslice %s", key(svc), action.name)
                self._delete("endpointslices", api.delete_namespaced_endpoint_slice, by_name[action.name])

    def legacy_endpoints(self) -> None:
        pods = self.items("pods")
        services = {key(s): s for s in self.items("services")}
        existing = {key(e): e for e in self.items("endpoints")}
        for svc_key in sorted(self._endpoints_owned - services.keys()):
            if svc_key in existing:
                log.info("endpoints %s: Service is gone, deleting", svc_key)
                self._delete("endpoints", self.cluster.core.delete_namespaced_endpoints, existing[svc_key])
            self._endpoints_owned.discard(svc_key)
        for svc_key, svc in services.items():
            if not _endpoints.service_is_managed(svc):
                continue
            self._endpoints_owned.add(svc_key)
            desired = _endpoints.desired_legacy_endpoints(svc, pods)
            current = existing.get(svc_key)
            try:
                self._sync_legacy(desired, current)
            except Exception as exc:  # noqa: BLE001 - the other Services still get synced
                if not conflict(exc):
                    log.exception("service %s: endpoints sync failed", svc_key)
                self.failed = True

    def _sync_legacy(self, desired: Obj, current: Obj | None) -> None:
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if current is None:
            log.info("endpoints %s/%s: creating", ns, name)
            self._observe("endpoints", call(self.cluster.core.create_namespaced_endpoints, ns, desired))
        elif not _endpoints.same_legacy_endpoints(current, desired):
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            log.info("endpoints %s/%s: updating", ns, name)
            self._observe("endpoints", call(self.cluster.core.replace_namespaced_endpoints, name, ns, desired))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.cluster.controllers", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig with rights to write all managed resources")
    parser.add_argument("--node-monitor-grace-period", type=float, default=40.0, metavar="SECONDS",
                        help="heartbeat age after which a node is marked Ready=Unknown (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ControllerManager(Cluster(args.kubeconfig), args.node_monitor_grace_period).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
