"""Server-side printing: meta.k8s.io/v1 Table rows with the real printers' columns."""
from __future__ import annotations

import datetime
from typing import Any, Callable

Obj = dict[str, Any]
Column = tuple[str, str, str, int, str]  # name, type, format, priority, description


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def human_duration(seconds: float) -> str:
    """apimachinery's HumanDuration, which kubectl shows in the AGE column."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    secs = int(seconds)
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years = hours // 24 // 365
        rest = hours // 24 % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{hours // 24 // 365}y"


def _age(obj: Obj, now: datetime.datetime) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration((now - parse_time(created)).total_seconds())


def _name(obj: Obj) -> str:
    return obj.get("metadata", {}).get("name", "")


def _selector(selector: dict[str, str] | None) -> str:
    if not selector:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _label_selector(selector: Obj | None) -> str:
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, values = expr.get("operator"), ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            parts.append(expr["key"])
        else:
            parts.append(f"!{expr['key']}")
    return ",".join(parts) or "<none>"


def _lb_ingress(status: Obj | None) -> list[str]:
    ingress = ((status or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i.get("ip") or i.get("hostname") or "" for i in ingress if i.get("ip") or i.get("hostname")]


def _service_external(svc: Obj) -> str:
    spec = svc.get("spec", {})
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        addresses = _lb_ingress(svc.get("status")) + external
        return ",".join(addresses) if addresses else "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_ports(spec: Obj) -> str:
    parts = []
    for port in spec.get("ports") or []:
        proto = port.get("protocol", "TCP")
        if port.get("nodePort"):
            parts.append(f"{port['port']}:{port['nodePort']}/{proto}")
        else:
            parts.append(f"{port['port']}/{proto}")
    return ",".join(parts) if parts else "<none>"


def _service_row(svc: Obj, now: datetime.datetime) -> list[Any]:
    spec = svc.get("spec", {})
    return [_name(svc), spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            _service_external(svc), _service_ports(spec), _age(svc, now),
            _selector(spec.get("selector"))]


def _first_three(items: list[str], empty: str) -> str:
    if not items:
        return empty
    text = ",".join(items[:3])
    return f"{text} + {len(items) - 3} more..." if len(items) > 3 else text


def _slice_row(eps: Obj, now: datetime.datetime) -> list[Any]:
    ports = eps.get("ports") or []
    port_text = ",".join(str(p["port"]) if p.get("port") is not None else "<unset>" for p in ports)
    addresses = [a for ep in eps.get("endpoints") or [] for a in ep.get("addresses") or []]
    return [_name(eps), eps.get("addressType", ""), port_text or "<unset>",
            _first_three(addresses, "<unset>"), _age(eps, now)]


def _endpoints_row(ep: Obj, now: datetime.datetime) -> list[Any]:
    pairs = []
    for subset in ep.get("subsets") or []:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = [p.get("port") for p in subset.get("ports") or []]
        for address in addresses:
            pairs.extend([f"{address}:{port}" for port in ports] or [address])
    return [_name(ep), _first_three(pairs, "<none>"), _age(ep, now)]


def _pod_row(pod: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in statuses:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    gate_text = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gate_text = f"{passed}/{len(gates)}"
    return [_name(pod), f"{ready}/{len(spec.get('containers') or [])}", reason, str(restarts),
            _age(pod, now), status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gate_text]


def _node_row(node: Obj, now: datetime.datetime) -> list[Any]:
    status, spec = node.get("status", {}), node.get("spec", {})
    ready = "Unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = "Ready" if cond.get("status") == "True" else "NotReady"
    state = ready + (",SchedulingDisabled" if spec.get("unschedulable") else "")
    labels = node.get("metadata", {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
    addresses = status.get("addresses") or []
    internal = [a["address"] for a in addresses if a.get("type") == "InternalIP"]
    external = [a["address"] for a in addresses if a.get("type") == "ExternalIP"]
    info = status.get("nodeInfo") or {}
    return [_name(node), state, ",".join(roles) or "<none>", _age(node, now),
            info.get("kubeletVersion", ""), internal[0] if internal else "<none>",
            external[0] if external else "<none>", info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _namespace_row(ns: Obj, now: datetime.datetime) -> list[Any]:
    return [_name(ns), ns.get("status", {}).get("phase", ""), _age(ns, now)]


def _deployment_row(dep: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = dep.get("spec", {}), dep.get("status", {})
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [_name(dep), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(dep, now),
            ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            _label_selector(spec.get("selector"))]


def _configmap_row(cm: Obj, now: datetime.datetime) -> list[Any]:
    return [_name(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), _age(cm, now)]


def _ingress_row(ing: Obj, now: datetime.datetime) -> list[Any]:
    spec = ing.get("spec", {})
    hosts = [r.get("host") or "*" for r in spec.get("rules") or []]
    host_text = ",".join(hosts[:4]) + (f" + {len(hosts) - 4} more..." if len(hosts) > 4 else "")
    ports = "80, 443" if spec.get("tls") else "80"
    return [_name(ing), spec.get("ingressClassName") or "<none>", host_text or "*",
            ",".join(_lb_ingress(ing.get("status"))), ports, _age(ing, now)]


def _ingressclass_row(ic: Obj, now: datetime.datetime) -> list[Any]:
    spec = ic.get("spec", {})
    params = spec.get("parameters")
    param_text = "<none>"
    if params:
        group = f".{params['apiGroup']}" if params.get("apiGroup") else ""
        param_text = f"{params.get('kind', '')}{group}/{params.get('name', '')}"
    return [_name(ic), spec.get("controller", ""), param_text, _age(ic, now)]


def _secret_row(secret: Obj, now: datetime.datetime) -> list[Any]:
    return [_name(secret), secret.get("type", ""), len(secret.get("data") or {}), _age(secret, now)]


def _serviceaccount_row(account: Obj, now: datetime.datetime) -> list[Any]:
    return [_name(account), len(account.get("secrets") or []), _age(account, now)]


def _binding_row(binding: Obj, now: datetime.datetime) -> list[Any]:
    ref = binding.get("roleRef") or {}
    return [_name(binding), f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(binding, now)]


def _lease_row(lease: Obj, now: datetime.datetime) -> list[Any]:
    return [_name(lease), (lease.get("spec") or {}).get("holderIdentity") or "", _age(lease, now)]


def _default_row(obj: Obj, now: datetime.datetime) -> list[Any]:
    return [_name(obj), obj.get("metadata", {}).get("creationTimestamp", "")]


_NAME: Column = ("Name", "string", "name", 0,
                 "Name must be unique within a namespace. Is required when creating resources, "
                 "although some resources may allow a client to request the generation of an "
                 "appropriate name automatically. Name is primarily intended for creation "
                 "idempotence and configuration definition. Cannot be updated.")
_AGE: Column = ("Age", "string", "", 0,
                "CreationTimestamp is a timestamp representing the server time when this object "
                "was created.")


def _col(name: str, type_: str = "string", priority: int = 0, description: str = "") -> Column:
    return (name, type_, "", priority, description)


PRINTERS: dict[str, tuple[tuple[Column, ...], Callable[[Obj, datetime.datetime], list[Any]]]] = {
    "services": ((_NAME, _col("Type", description="The type of service."),
                  _col("Cluster-IP", description="The cluster IP of the service."),
                  _col("External-IP", description="The external IP of the service."),
                  _col("Port(s)", description="The ports of the service."), _AGE,
                  _col("Selector", priority=1, description="The selector of the service.")),
                 _service_row),
    "endpointslices": ((_NAME, _col("AddressType", description="The type of addresses."),
                        _col("Ports", description="The ports of the endpoint slice."),
                        _col("Endpoints", description="The addresses of the endpoints."), _AGE),
                       _slice_row),
    "endpoints": ((_NAME, _col("Endpoints", description="Endpoints of the service."), _AGE),
                  _endpoints_row),
    "pods": ((_NAME, _col("Ready", description="The aggregate readiness state of this pod."),
              _col("Status", description="The aggregate status of the containers in this pod."),
              _col("Restarts", description="The number of times the containers in this pod "
                   "have been restarted and when the last container in this pod has restarted."),
              _AGE, _col("IP", priority=1, description="IP address allocated to the pod."),
              _col("Node", priority=1, description="Name of the node the pod is scheduled on."),
              _col("Nominated Node", priority=1, description="Nominated node name."),
              _col("Readiness Gates", priority=1, description="Pod readiness gates.")),
             _pod_row),
    "nodes": ((_NAME, _col("Status", description="The status of the node"),
               _col("Roles", description="The roles of the node"), _AGE,
               _col("Version", description="Kubelet Version reported by the node."),
               _col("Internal-IP", priority=1, description="List of internal IPs."),
               _col("External-IP", priority=1, description="List of external IPs."),
               _col("OS-Image", priority=1, description="OS Image reported by the node."),
               _col("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
               _col("Container-Runtime", priority=1, description="Container Runtime Version.")),
              _node_row),
    "namespaces": ((_NAME, _col("Status", description="The status of the namespace"), _AGE),
                   _namespace_row),
    "deployments": ((_NAME, _col("Ready", description="Number of the pod with ready state"),
                     _col("Up-to-date", "integer", description="Total number of non-terminated "
                          "pods targeted by this deployment that have the desired template spec."),
                     _col("Available", "integer", description="Total number of available pods "
                          "(ready for at least minReadySeconds) targeted by this deployment."),
                     _AGE,
                     _col("Containers", priority=1, description="Names of each container in the template."),
                     _col("Images", priority=1, description="Images referenced by each container in the template."),
                     _col("Selector", priority=1, description="Label selector for pods.")),
                    _deployment_row),
    "configmaps": ((_NAME, _col("Data", "integer", description="Data is the number of keys."),
                    _AGE), _configmap_row),
    "ingresses": ((_NAME, _col("Class", description="The name of the IngressClass resource."),
                   _col("Hosts", description="Hosts that incoming requests are matched against."),
                   _col("Address", description="Address is a list containing ingress points."),
                   _col("Ports", description="Ports of TLS configurations that open."), _AGE),
                  _ingress_row),
    "ingressclasses": ((_NAME, _col("Controller", description="Controller that implements the ingress."),
                        _col("Parameters", description="A reference to a resource with additional parameters."),
                        _AGE), _ingressclass_row),
    "leases": ((_NAME, _col("Holder", description="The holder identity of the lease."), _AGE), _lease_row),
    "secrets": ((_NAME, _col("Type", description="The type of the secret"),
                 _col("Data", "integer", description="The number of keys in the secret"), _AGE), _secret_row),
    "serviceaccounts": ((_NAME, _col("Secrets", "integer", description="The number of secrets"), _AGE), _serviceaccount_row),
    "rolebindings": ((_NAME, _col("Role", description="The role this binding grants"), _AGE), _binding_row),
    "clusterrolebindings": ((_NAME, _col("Role", description="The role this binding grants"), _AGE), _binding_row),
}

_DEFAULT = ((_NAME, ("Created At", "date", "", 0, "CreationTimestamp is a timestamp representing "
                     "the server time when this object was created.")), _default_row)


def column_definitions(plural: str) -> list[Obj]:
    columns, _ = PRINTERS.get(plural, _DEFAULT)
    return [{"name": n, "type": t, "format": f, "description": d, "priority": p}
            for n, t, f, p, d in columns]


def row_cells(plural: str, obj: Obj, now: datetime.datetime) -> list[Any]:
    _, printer = PRINTERS.get(plural, _DEFAULT)
    return printer(obj, now)


def partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def table(plural: str, objects: list[Obj], include_object: str, now: datetime.datetime,
          list_meta: Obj | None = None, headers: bool = True) -> Obj:
    """A Table of `objects`; include_object is None, Metadata or Object as in the API."""
    rows = []
    for obj in objects:
        row: Obj = {"cells": row_cells(plural, obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {}}
    if headers:
        out["columnDefinitions"] = column_definitions(plural)
    out["rows"] = rows
    return out
