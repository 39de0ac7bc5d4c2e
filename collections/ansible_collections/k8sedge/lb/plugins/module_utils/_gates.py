# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness gates: which of the Pods that wait for the edge the edge has proven, and the write
that tells Kubernetes so.

The model lists the Pods that wait (`gates`: each with its pod targets per backend and pool, and
the node port backends that select it). Each edge host answers for the targets of its pools
(`evidence()`: the target is in service in the engine's own view, and a probe sent from that host
answered). `verdicts()` acknowledges a Pod once every edge host of every pool it is served in
answered yes for each of its targets there; a Pod served only through node ports is acknowledged
at once, since the edge sends to nodes, not to it. `condition_patch()` is the body of the
`pods/status` write, a strategic merge patch of one condition with the Pod's uid as its
precondition, so a Pod replaced under the same name is never acknowledged by mistake.

Pure, and free of the Kubernetes client: it runs on the edge hosts too (`gate_evidence`).
`_gate_writes` sends the patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.k8sedge.lb.plugins.module_utils._annotations import READINESS_GATE
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import CHECK_INI, OP_STOPPED, Server

__all__ = ["Verdict", "condition_patch", "evidence", "haproxy_checked", "haproxy_serves", "host_targets", "probe_name",
           "probe_spec", "verdicts"]

SERVED = "ServedByEdge"
NODE_PORTS = "NodePortBackend"
UDP_PROBE = "k8sedge-probe\n"


def host_targets(gates: list[dict[str, Any]], pools: list[str]) -> list[dict[str, Any]]:
    """The pod targets an edge host of these pools serves, each with its Pod's identity."""
    mine = set(pools)
    return [{"namespace": gate["namespace"], "name": gate["name"], "uid": gate["uid"], **target}
            for gate in gates for target in gate["targets"] if mine & set(target["pools"])]


def probe_name(target: dict[str, Any]) -> str:
    return f"gate {target['namespace']}/{target['name']} {target['backend']} {target['address']}:{target['port']}"


def probe_spec(target: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A probe of one pod target from the edge host, shaped as its health check is: an HTTP GET of
    the check's path (any answer below 500: the engine's HTTP check would call it up at 2xx/3xx,
    and the point here is that the Pod answers from this host), a datagram for UDP, else a TCP
    connection."""
    name = probe_name(target)
    check = target.get("check") or {}
    if target.get("protocol") == "UDP":
        return {"name": name, "type": "udp", "address": target["address"], "port": target["port"], "timeout": timeout,
                "send": UDP_PROBE, "expect": "."}
    if check.get("type") == "http":
        return {"name": name, "type": "http", "address": target["address"], "port": target["port"], "timeout": timeout,
                "path": check.get("path") or "/", "status_code": ["100-499"]}
    return {"name": name, "type": "tcp", "address": target["address"], "port": target["port"], "timeout": timeout}


def _server_of(target: dict[str, Any], servers: dict[tuple[str, str], Server]) -> Server | None:
    """The running server that holds the target in its backend, if any."""
    return next((s for (backend, _name), s in servers.items()
                 if backend == target["backend"] and s.address == target["address"] and s.port == target["port"]), None)


def haproxy_serves(target: dict[str, Any], servers: dict[tuple[str, str], Server]) -> str:
    """"" when the running haproxy has the target in service in its backend (ready, not down, its
    first check done where it has one); else why not."""
    server = _server_of(target, servers)
    if server is None:
        return f"haproxy has no server {target['address']}:{target['port']} in {target['backend']}"
    if server.state != "ready":
        return f"haproxy has {target['backend']}/{server.name} in {server.state}"
    if server.checked and server.check_status == CHECK_INI:
        return f"haproxy has not finished its first check of {target['backend']}/{server.name}"
    if server.operational == OP_STOPPED:
        return f"haproxy counts {target['backend']}/{server.name} down"
    return ""


def haproxy_checked(target: dict[str, Any], servers: dict[tuple[str, str], Server]) -> str:
    """"" when haproxy's own health check of the target, sent from this edge host, has passed (the
    watcher's fast path takes it as the probe from the host); else why not."""
    server = _server_of(target, servers)
    if server is None or not server.checked:
        return f"haproxy does not check {target['address']}:{target['port']} in {target['backend']}: a probe must answer"
    if server.check_status == CHECK_INI or server.operational == OP_STOPPED:
        return f"haproxy's check of {target['address']}:{target['port']} in {target['backend']} has not passed"
    return ""


def evidence(targets: list[dict[str, Any]], served: Callable[[dict[str, Any]], str],
             answered: dict[str, str]) -> list[dict[str, Any]]:
    """One row per target: whether the engine serves it (`served` says why not) and whether its
    probe answered (`answered`: probe name -> error, "" for an answer)."""
    rows = []
    for target in targets:
        why = served(target)
        error = answered.get(probe_name(target), "no probe was sent")
        if not why and error:
            why = f"no answer from {target['address']}:{target['port']}: {error}"
        rows.append({key: target[key] for key in ("namespace", "name", "uid", "backend", "address", "port")} | {"ok": not why, "why": why})
    return rows


@dataclass(frozen=True)
class Verdict:
    namespace: str
    name: str
    uid: str
    acknowledge: bool
    reason: str
    message: str

    def result(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid, "acknowledge": self.acknowledge,
                "reason": self.reason, "message": self.message}


def verdicts(gates: list[dict[str, Any]], hosts: list[dict[str, Any]], generation: str) -> list[Verdict]:
    """Per waiting Pod: acknowledge it, or why it still waits.

    hosts: [{name, pools, evidence: the rows `evidence()` gave on that host, or None if the host
    gave none (unreachable, failed)}]. A pool with no edge host in `hosts` is another edge group's
    to prove; a Pod served only in such pools is left alone (no verdict)."""
    out = []
    for gate in gates:
        identity = (gate["namespace"], gate["name"], gate["uid"])
        if not gate["targets"]:
            if gate["nodeport_backends"]:
                out.append(Verdict(*identity, True, NODE_PORTS, "the edge sends this Pod's traffic to node ports"
                                   f" ({', '.join(gate['nodeport_backends'])}), not to the Pod: nothing to wait for"))
            continue
        needed: list[tuple[str, dict[str, Any]]] = []
        for target in gate["targets"]:
            for host in hosts:
                if set(host["pools"]) & set(target["pools"]):
                    needed.append((host["name"], target))
        if not needed:
            continue
        waiting = []
        for host_name, target in needed:
            rows = next(h["evidence"] for h in hosts if h["name"] == host_name)
            row = None if rows is None else next(
                (r for r in rows if (r["uid"], r["backend"], r["address"], r["port"]) ==
                 (gate["uid"], target["backend"], target["address"], target["port"])), None)
            if rows is None:
                waiting.append(f"{host_name}: gave no answer in this run")
            elif row is None:
                waiting.append(f"{host_name}: did not look at {target['backend']} {target['address']}:{target['port']}")
            elif not row["ok"]:
                waiting.append(f"{host_name}: {row['why']}")
        if waiting:
            out.append(Verdict(*identity, False, "", "; ".join(waiting)))
            continue
        on = sorted({host for host, _target in needed})
        backends = sorted({target["backend"] for _host, target in needed})
        out.append(Verdict(*identity, True, SERVED, f"in service and answering on {', '.join(on)} ({', '.join(backends)});"
                           f" model generation {generation[:12]}"))
    return out


def condition_patch(verdict: Verdict, now: str) -> dict[str, Any]:
    """The strategic merge patch of pods/status that sets the gate: only our condition, merged by
    type, and the uid as precondition."""
    return {"metadata": {"uid": verdict.uid}, "status": {"conditions": [{
        "type": READINESS_GATE, "status": "True", "reason": verdict.reason, "message": verdict.message,
        "lastProbeTime": None, "lastTransitionTime": now}]}}
