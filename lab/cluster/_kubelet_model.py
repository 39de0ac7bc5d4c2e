"""Pure logic of the lab kubelet: the Node it registers, pod status, pod IPs, routes, processes.

A pod runs as one echo-server process (``lab.cluster.echo``) whatever its image says; all of its
containers are reported as backed by that process. The ports the echo server opens come from
the first container's ports named ``http``, ``tcp-echo``, ``udp-echo`` and ``https`` (0 = not
opened; ``https`` also needs ECHO_TLS_CERT and ECHO_TLS_KEY in the container's env).
"""
from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

from lab.cluster._model import Obj, node_internal_ip, node_is_ready

KUBELET_VERSION = "v1.37.0+k8sedge.lab"  # build metadata says: not a real kubelet
ECHO_PORT_NAMES = {"http": "--http-port", "tcp-echo": "--tcp-port", "udp-echo": "--udp-port", "https": "--https-port"}
HEARTBEAT_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True)
class NodeConfig:
    name: str
    ip: str
    pod_cidr: str
    zone: str | None = None


def node_labels(cfg: NodeConfig) -> dict[str, str]:
    out = {
        "kubernetes.io/hostname": cfg.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    if cfg.zone:
        out["topology.kubernetes.io/zone"] = cfg.zone
    return out


def new_node(cfg: NodeConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.name, "labels": node_labels(cfg)},
        "spec": {"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]},
    }


def node_patch(cfg: NodeConfig, node: Obj) -> Obj | None:
    """A merge patch bringing an existing Node's labels and podCIDR in line; None if none needed.

    spec.unschedulable and other labels are left alone (an operator may have cordoned the node);
    podCIDR is only set when empty, as the API makes it immutable once set.
    """
    patch: Obj = {}
    current = node["metadata"].get("labels") or {}
    wanted = {k: v for k, v in node_labels(cfg).items() if current.get(k) != v}
    if wanted:
        patch["metadata"] = {"labels": wanted}
    spec = node.get("spec") or {}
    if not spec.get("podCIDR"):
        patch["spec"] = {"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]}
    elif spec["podCIDR"] != cfg.pod_cidr:
        raise ValueError(f"node {cfg.name}: spec.podCIDR is {spec['podCIDR']}, this kubelet was given {cfg.pod_cidr}")
    return patch or None


def node_status(cfg: NodeConfig, node: Obj | None, now_text: str, node_info: dict[str, str], memory_ki: int) -> Obj:
    """The status a kubelet posts with each heartbeat."""
    old = {c.get("type"): c for c in ((node or {}).get("status") or {}).get("conditions") or []}
    conditions = []
    for kind, status, reason, message in HEARTBEAT_CONDITIONS:
        prev = old.get(kind) or {}
        transition = prev.get("lastTransitionTime") if prev.get("status") == status else None
        conditions.append({
            "type": kind,
            "status": status,
            "lastHeartbeatTime": now_text,
            "lastTransitionTime": transition or now_text,
            "reason": reason,
            "message": message,
        })
    capacity = {"cpu": "2", "memory": f"{memory_ki}Ki", "pods": "110", "ephemeral-storage": "10Gi"}
    return {
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": cfg.ip}, {"type": "Hostname", "address": cfg.name}],
        "capacity": capacity,
        "allocatable": capacity,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": node_info,
    }


def node_info(cfg: NodeConfig, kernel: str, os_image: str, boot_id: str) -> dict[str, str]:
    # All lab nodes share one machine: give each its own stable identity.
    ident = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{cfg.name}.k8sedge.lab"))
    return {
        "machineID": ident.replace("-", ""),
        "systemUUID": ident,
        "bootID": boot_id,
        "kernelVersion": kernel,
        "osImage": os_image,
        "containerRuntimeVersion": "lab://1.0.0",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": "amd64",
    }


def desired_routes(nodes: list[Obj], self_name: str) -> dict[str, str]:
    """{podCIDR: InternalIP} of every other Ready node: host-gw routing."""
    routes = {}
    for node in nodes:
        spec = node.get("spec") or {}
        via = node_internal_ip(node)
        if node["metadata"]["name"] == self_name or not node_is_ready(node) or not via:
            continue
        for cidr in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
            if ":" not in cidr:
                routes[str(ipaddress.ip_network(cidr, strict=False))] = via
    return routes


def allocate_ip(pod_cidr: str, used: set[str], last: str | None) -> str:
    """The next free pod address after last (like host-local IPAM, so a freed address is not
    handed out again at once); the network's first address (the node's) and broadcast are skipped.
    """
    net = ipaddress.ip_network(pod_cidr, strict=False)
    hosts = [str(h) for h in net.hosts()][1:]
    start = hosts.index(last) + 1 if last in hosts else 0
    for candidate in hosts[start:] + hosts[:start]:
        if candidate not in used:
            return candidate
    raise RuntimeError(f"pod CIDR {pod_cidr} is full ({len(used)} addresses in use)")


def _container_port(container: Obj, name_or_number: str | int) -> int | None:
    if isinstance(name_or_number, int):
        return name_or_number
    if str(name_or_number).isdigit():
        return int(name_or_number)
    for port in container.get("ports") or []:
        if port.get("name") == name_or_number:
            return int(port["containerPort"])
    return None


def echo_ports(pod: Obj) -> dict[str, int]:
    """{echo option: port} from the first container's named ports; unnamed echo ports are off."""
    containers = pod["spec"].get("containers") or [{}]
    return {option: _container_port(containers[0], name) or 0 for name, option in ECHO_PORT_NAMES.items()}


@dataclass(frozen=True)
class Probe:
    """How readiness is checked: an HTTP GET (path set) or a TCP connect to port."""

    port: int
    path: str | None = None


def readiness_probe(pod: Obj) -> Probe | None:
    """The first container's readinessProbe; without one, a TCP connect to its first port.

    A real kubelet calls a container without a probe ready once it runs; the lab checks that the
    process actually listens, so a slow start never shows as ready.
    """
    container = (pod["spec"].get("containers") or [{}])[0]
    probe = container.get("readinessProbe") or {}
    if "httpGet" in probe:
        port = _container_port(container, probe["httpGet"].get("port", 80))
        return Probe(port, probe["httpGet"].get("path") or "/") if port else None
    if "tcpSocket" in probe:
        port = _container_port(container, probe["tcpSocket"].get("port", 0))
        return Probe(port) if port else None
    tcp_ports = [p for p in container.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
    return Probe(int(tcp_ports[0]["containerPort"])) if tcp_ports else None


def container_env(pod: Obj, node_name: str, node_ip: str, pod_ip: str) -> dict[str, str]:
    """The first container's env: literal values and the downward-API fields a pod can ask for."""
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.hostIP": node_ip,
        "status.podIP": pod_ip,
    }
    env = {}
    for item in (pod["spec"].get("containers") or [{}])[0].get("env") or []:
        ref = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        env[item["name"]] = fields.get(ref, "") if ref else str(item.get("value", ""))
    return env


@dataclass(frozen=True)
class Runtime:
    """What the kubelet knows about a pod's process at one moment."""

    pod_ip: str
    started_at: str | None = None  # set while the process runs
    ready: bool = False
    restart_count: int = 0
    last_exit: tuple[int, str, str] | None = None  # exit code, started, finished
    container_id: str = ""
    waiting_reason: str = "ContainerCreating"


KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def readiness_gates(pod: Obj) -> list[str]:
    return [g.get("conditionType", "") for g in pod["spec"].get("readinessGates") or []]


def unmet_gates_message(pod: Obj) -> str:
    """Why the pod's readiness gates keep it from Ready, in the kubelet's words; "" when they do not."""
    found = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    unmet = []
    for gate in readiness_gates(pod):
        if gate not in found:
            unmet.append(f'corresponding condition of pod readiness gate "{gate}" does not exist.')
        elif found[gate].get("status") != "True":
            unmet.append(f'the status of pod readiness gate "{gate}" is not "True", but {found[gate].get("status")}')
    return ", ".join(unmet)


def pod_status(pod: Obj, rt: Runtime, node_ip: str, now_text: str) -> Obj:
    """The status the kubelet wants the pod to show; timestamps of unchanged conditions are kept.

    Its conditions are the kubelet's own (KUBELET_CONDITIONS); a readiness gate's condition is
    another writer's, and only read: the pod is Ready when its containers are and every gate is
    True. Post it as a strategic merge patch, which leaves the other conditions in place.
    """
    current = pod.get("status") or {}
    old = {c.get("type"): c for c in current.get("conditions") or []}
    running = rt.started_at is not None
    gates_unmet = unmet_gates_message(pod)
    containers_unready = "containers with unready status: [" + " ".join(_container_names(pod)) + "]"
    flags = {
        "PodReadyToStartContainers": (True, "", ""),
        "Initialized": (True, "", ""),
        "Ready": ((False, "ContainersNotReady", containers_unready) if not rt.ready
                  else (False, "ReadinessGatesNotReady", gates_unmet) if gates_unmet else (True, "", "")),
        "ContainersReady": (True, "", "") if rt.ready else (False, "ContainersNotReady", containers_unready),
        "PodScheduled": (True, "", ""),
    }
    conditions = []
    for kind, (ok, reason, message) in flags.items():
        status = "True" if ok else "False"
        prev = old.get(kind) or {}
        cond = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status else now_text,
        }
        if not ok:
            cond["reason"] = reason
            cond["message"] = message
        conditions.append(cond)
    if running:
        state: Obj = {"running": {"startedAt": rt.started_at}}
    else:
        state = {"waiting": {"reason": rt.waiting_reason}}
    last_state: Obj = {}
    if rt.last_exit:
        code, started, finished = rt.last_exit
        last_state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                     "startedAt": started, "finishedAt": finished}}
    statuses = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": c.get("image", ""),
            "containerID": rt.container_id,
            "ready": rt.ready,
            "started": running,
            "restartCount": rt.restart_count,
            "state": state,
            "lastState": last_state,
        }
        for c in pod["spec"].get("containers") or []
    ]
    return {
        "phase": "Running" if running or rt.restart_count else "Pending",
        "conditions": conditions,
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "podIP": rt.pod_ip,
        "podIPs": [{"ip": rt.pod_ip}],
        "startTime": current.get("startTime") or now_text,
        "qosClass": current.get("qosClass") or "BestEffort",
        "containerStatuses": statuses,
    }


def _container_names(pod: Obj) -> list[str]:
    return [c["name"] for c in pod["spec"].get("containers") or []]


def status_differs(pod: Obj, desired: Obj) -> bool:
    """Whether the pod shows another status than desired; of its conditions, only the kubelet's count."""
    current = dict(pod.get("status") or {})
    current["conditions"] = [c for c in current.get("conditions") or [] if c.get("type") in KUBELET_CONDITIONS]
    return any(current.get(k) != v for k, v in desired.items())
