"""The lab's kubelet and kube-proxy for one node; run inside the node's network namespace, as root.

    ip netns exec k8sedge-node1 .venv/bin/python -m lab.cluster.kubelet \\
        --kubeconfig .lab/kubeconfig-admin --node-name node1 --node-ip 10.213.0.21 \\
        --pod-cidr 10.244.1.0/24 --zone lab-a --state-dir .lab/run/kubelet-node1

- Registers its Node (labels, podCIDR, addresses, nodeInfo) and posts Ready with a heartbeat
  every 10 s.
- Pod networking, host-gw style: pod addresses on the dummy link ``pods0``, routes to the other
  Ready nodes' pod CIDRs via their InternalIP (see ``_hostnet``).
- Runs the pods bound to it as echo-server processes and reports their status (see ``_pods``).
- NodePorts, health check node ports and :10256/healthz like kube-proxy (see ``_proxy``).

One asyncio loop does the work; informers (list+watch, in threads) wake it on every change, and
it also runs once a second. Stopping the kubelet leaves pods running, as a real one does; the
next run adopts them.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import platform
import signal
import sys
from pathlib import Path

from lab.cluster import _hostnet
from lab.cluster._kube import Cluster, Informer, call, conflict, merge_patch, not_found, strategic_patch
from lab.cluster._kubelet_model import (
    NodeConfig,
    allocate_ip,
    desired_routes,
    new_node,
    node_info,
    node_patch,
    node_status,
)
from lab.cluster._model import Obj, format_time, now
from lab.cluster._pods import PodRecord, PodWorker, StateDir, kill_recorded
from lab.cluster._proxy import NodeProxy
from lab.cluster._proxy_rules import health_checks, node_port_rules

log = logging.getLogger("lab.cluster.kubelet")

HEARTBEAT_SECONDS = 10.0
LOOP_SECONDS = 1.0
ROUTE_RESYNC_SECONDS = 30.0


def _read(path: str, default: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release", "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def _memory_ki() -> int:
    for line in _read("/proc/meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


class Kubelet:
    def __init__(self, cluster: Cluster, cfg: NodeConfig, state_dir: Path) -> None:
        self.cluster = cluster
        self.cfg = cfg
        self.state = StateDir(state_dir)
        self.workers: dict[str, PodWorker] = {}
        self.proxy = NodeProxy(cfg.ip)
        self._last_ip: str | None = None
        self._reserved: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.pods: Informer
        self.nodes: Informer
        self.services: Informer
        self.slices: Informer

    # Called by pod workers.

    def allocate_ip(self) -> str:
        used = {w.ip for w in self.workers.values() if w.ip} | self._reserved
        ip = allocate_ip(self.cfg.pod_cidr, used, self._last_ip)
        self._last_ip = ip
        return ip

    def forget_worker(self, uid: str) -> None:
        self.workers.pop(uid, None)

    async def patch_pod_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        try:
            result = await asyncio.to_thread(
                strategic_patch, self.cluster.core.patch_namespaced_pod_status, meta["name"], meta["namespace"], {"status": status})
        except Exception as exc:
            if not_found(exc):
                return
            raise
        self.pods.observe(result)

    async def delete_pod_now(self, pod: Obj) -> None:
        """The kubelet's last word on a pod: DELETE with gracePeriodSeconds=0, for this uid only.

        The pod leaves the cache at once, so no new worker is started for it meanwhile."""
        meta = pod["metadata"]
        try:
            await asyncio.to_thread(call, self.cluster.core.delete_namespaced_pod, meta["name"], meta["namespace"],
                                    grace_period_seconds=0, body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
            log.info("pod %s/%s: stopped and deleted", meta["namespace"], meta["name"])
        except Exception as exc:
            if not (not_found(exc) or conflict(exc)):
                raise
        self.pods.forget(pod)

    # The node.

    def register(self) -> None:
        core = self.cluster.core
        try:
            node = call(core.read_node, self.cfg.name)
        except Exception as exc:
            if not not_found(exc):
                raise
            node = call(core.create_node, new_node(self.cfg))
            log.info("node %s: registered", self.cfg.name)
        patch = node_patch(self.cfg, node)
        if patch:
            merge_patch(core.patch_node, self.cfg.name, patch)
        self.heartbeat_once(node)

    def heartbeat_once(self, node: Obj | None) -> None:
        info = node_info(self.cfg, platform.release(), _os_image(), _read("/proc/sys/kernel/random/boot_id", ""))
        status = node_status(self.cfg, node, format_time(now()), info, _memory_ki())
        try:
            merge_patch(self.cluster.core.patch_node_status, self.cfg.name, {"status": status})
        except Exception as exc:
            if not not_found(exc):
                raise
            log.warning("node %s: deleted from the API; registering again", self.cfg.name)
            self.register()

    async def _register_with_retry(self) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(self.register)
                return
            except ValueError:
                raise  # a configuration error: retrying cannot help
            except Exception as exc:  # noqa: BLE001 - the API server may not be up yet
                log.warning("node %s: registration failed (%s); retrying in %.1f s", self.cfg.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await asyncio.to_thread(self.heartbeat_once, self.nodes.get(self.cfg.name))
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("node %s: heartbeat failed: %s", self.cfg.name, exc)

    # Startup cleanup.

    def adopt_or_clean(self) -> dict[str, PodRecord]:
        """Records of pods to adopt; everything else an earlier run left is stopped and removed."""
        pods = {p["metadata"].get("uid"): p for p in self.pods.list()}
        adopted = {}
        for record in self.state.load():
            if record.uid in pods:
                adopted[record.uid] = record
                self._reserved.add(record.ip)
                continue
            log.info("pod %s/%s (uid %s): unknown to the API now; cleaning up", record.namespace, record.name, record.uid)
            kill_recorded(record)
            _hostnet.remove_pod_address(record.ip)
            self.state.remove(record.uid)
        known = {r.ip for r in adopted.values()}
        net = ipaddress.ip_network(self.cfg.pod_cidr, strict=False)
        for ip in _hostnet.pod_addresses() - known:
            if ipaddress.ip_address(ip) in net:
                log.info("address %s on %s belongs to no pod; removing", ip, _hostnet.POD_LINK)
                _hostnet.remove_pod_address(ip)
        return adopted

    # The loop.

    def _sync_pods(self, adopted: dict[str, PodRecord]) -> None:
        current = {p["metadata"]["uid"]: p for p in self.pods.list() if p["spec"].get("nodeName") == self.cfg.name}
        for uid, pod in current.items():
            if uid not in self.workers:
                worker = PodWorker(self, pod, adopted.pop(uid, None))
                self.workers[uid] = worker
                asyncio.get_running_loop().create_task(worker.run(), name=f"pod-{uid}")
        self._reserved = {r.ip for r in adopted.values()}
        for uid, worker in list(self.workers.items()):
            pod = current.get(uid)
            if pod is None or pod["metadata"].get("resourceVersion") != worker.seen_version:
                worker.changed.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        await asyncio.to_thread(_hostnet.setup)
        await self._register_with_retry()
        lister = self.cluster.lister
        self.pods = Informer("pods", lister("pods"), notify, field_selector=f"spec.nodeName={self.cfg.name}").start()
        self.nodes = Informer("nodes", lister("nodes"), notify).start()
        self.services = Informer("services", lister("services"), notify).start()
        self.slices = Informer("endpointslices", lister("endpointslices"), notify).start()
        for informer in (self.pods, self.nodes, self.services, self.slices):
            await asyncio.to_thread(informer.synced.wait)
        adopted = await asyncio.to_thread(self.adopt_or_clean)
        await self.proxy.start()
        heartbeat = loop.create_task(self._heartbeat())
        log.info("node %s: running (%s, pods %s)", self.cfg.name, self.cfg.ip, self.cfg.pod_cidr)
        routes: dict[str, str] | None = None
        routes_at = 0.0
        rules = None
        rules_from: tuple[int, int] | None = None
        while not self._stop.is_set():
            self._sync_pods(adopted)
            wanted = desired_routes(self.nodes.list(), self.cfg.name)
            if wanted != routes or loop.time() - routes_at > ROUTE_RESYNC_SECONDS:
                try:
                    for change in await asyncio.to_thread(_hostnet.sync_routes, wanted):
                        log.info("route %s", change)
                    routes, routes_at = wanted, loop.time()
                except _hostnet.NetError as exc:
                    log.error("routes: %s", exc)
            # The rules are derived again only when a Service or an EndpointSlice changed: at
            # thousands of Services, deriving them each second would keep a core busy.
            versions = (self.services.version, self.slices.version)
            if versions != rules_from:
                services, slices = self.services.list(), self.slices.list()
                new_rules = (node_port_rules(services, slices, self.cfg.name), health_checks(services, slices, self.cfg.name))
                if new_rules != rules:
                    await self.proxy.update(*new_rules)
                    rules = new_rules
                rules_from = versions
            self.proxy.expire_flows()
            try:
                await asyncio.wait_for(wake.wait(), LOOP_SECONDS)
            except asyncio.TimeoutError:
                pass
            wake.clear()
        heartbeat.cancel()
        self.proxy.close()
        log.info("node %s: kubelet stopping; pods keep running", self.cfg.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.cluster.kubelet", description="Kubelet and kube-proxy of one lab node.")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--node-ip", required=True, help="the node's InternalIP, also where NodePorts listen")
    parser.add_argument("--pod-cidr", required=True)
    parser.add_argument("--zone", help="value of the topology.kubernetes.io/zone label")
    parser.add_argument("--state-dir", type=Path, help="where pod records and logs are kept (default: /run/k8sedge-lab/kubelet-NODE)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = NodeConfig(args.node_name, str(ipaddress.ip_address(args.node_ip)),
                         str(ipaddress.ip_network(args.pod_cidr)), args.zone)
    except ValueError as exc:
        parser.error(str(exc))
    if os.geteuid() != 0:
        parser.error("must run as root (it manages links, addresses and routes of its network namespace)")
    state_dir = args.state_dir or Path(f"/run/k8sedge-lab/kubelet-{cfg.name}")

    async def _main() -> None:
        kubelet = Kubelet(Cluster(args.kubeconfig), cfg, state_dir)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, kubelet.request_stop)
        await kubelet.run()

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
