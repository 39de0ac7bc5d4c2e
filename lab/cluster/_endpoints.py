"""What the EndpointSlice and Endpoints controllers want to exist for one Service: pure logic.

Follows kube-controller-manager's endpointslice and endpoints controllers:

- Only Services with a selector (and not ExternalName) are managed.
- A pod counts when it matches the selector, is not Succeeded/Failed and has a podIP.
- Each Service port resolves per pod (a named targetPort against the pod's container ports with
  the same protocol); a port that does not resolve is left out for that pod, so pods can end up
  with different port sets, and each port set gets its own slices.
- Conditions: serving = pod Ready; terminating = deletionTimestamp set;
  ready = serving and not terminating (always true with publishNotReadyAddresses).
- At most 100 endpoints per slice. Existing slices are filled before new ones are created, and an
  endpoint stays in the slice it is in, so a change touches as few slices as possible.
- A Service without endpoints keeps one empty placeholder slice.
- The legacy Endpoints object leaves terminating pods out (unless publishNotReadyAddresses) and
  puts not-ready pods under notReadyAddresses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lab.cluster._model import (
    ZONE_LABEL,
    Obj,
    labels,
    owner_reference,
    pod_is_finished,
    pod_is_ready,
    pod_is_terminating,
    selector_matches,
)

MAX_ENDPOINTS_PER_SLICE = 100
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def service_is_managed(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def resolve_target_port(service_port: Obj, pod: Obj) -> int | None:
    """The pod port a Service port points to, or None when a named targetPort is not found."""
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    ports = []
    for sp in service["spec"].get("ports") or []:
        number = resolve_target_port(sp, pod)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name", ""), "protocol": sp.get("protocol", "TCP"), "port": number}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return sorted(ports, key=_port_key)


def _port_key(port: Obj) -> tuple[str, str, int]:
    return (port.get("name") or "", port.get("protocol") or "TCP", int(port.get("port") or 0))


def _port_set(ports: list[Obj] | None) -> tuple[tuple[str, str, int], ...]:
    return tuple(sorted(_port_key(p) for p in ports or []))


def selected_pods(service: Obj, pods: list[Obj]) -> list[Obj]:
    """Pods of the Service that have an address, sorted by name."""
    ns, selector = service["metadata"]["namespace"], service["spec"].get("selector")
    chosen = [
        p for p in pods
        if p["metadata"].get("namespace") == ns
        and selector_matches(selector, labels(p))
        and not pod_is_finished(p)
        and (p.get("status") or {}).get("podIP")
    ]
    return sorted(chosen, key=lambda p: p["metadata"]["name"])


def pod_endpoint(service: Obj, pod: Obj, nodes: dict[str, Obj]) -> Obj:
    serving = pod_is_ready(pod)
    terminating = pod_is_terminating(pod)
    publish = bool(service["spec"].get("publishNotReadyAddresses"))
    node_name = pod["spec"].get("nodeName")
    endpoint: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": _target_ref(pod),
    }
    if node_name:
        endpoint["nodeName"] = node_name
        zone = labels(nodes[node_name]).get(ZONE_LABEL) if node_name in nodes else None
        if zone:
            endpoint["zone"] = zone
    return endpoint


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid", "")}


@dataclass(frozen=True)
class SliceAction:
    """One write: create (body has generateName), update (name set) or delete (name only)."""

    verb: str
    name: str = ""
    body: Obj = field(default_factory=dict)


def slice_labels(service: Obj) -> dict[str, str]:
    out = {k: v for k, v in labels(service).items() if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    if service["spec"].get("clusterIP") == "None":
        out[HEADLESS_LABEL] = ""
    out[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    out[MANAGED_BY_LABEL] = MANAGED_BY
    return out


def service_key(obj: Obj) -> tuple[str, str]:
    """(namespace, name) of a Service, the key slices_by_service files its slices under."""
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def slices_by_service(slices: list[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """{(namespace, Service name): its slices}, in one pass: a scan of every slice per Service
    took the lab's controllers and node proxies seconds at thousands of Services."""
    found: dict[tuple[str, str], list[Obj]] = {}
    for eps in slices:
        found.setdefault((eps["metadata"].get("namespace"), labels(eps).get(SERVICE_NAME_LABEL)), []).append(eps)
    return found


def managed_slices(slices: list[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """slices_by_service of the slices this controller manages, each Service's sorted by name."""
    found = slices_by_service([eps for eps in slices if labels(eps).get(MANAGED_BY_LABEL) == MANAGED_BY])
    for mine in found.values():
        mine.sort(key=lambda s: s["metadata"]["name"])
    return found


def _slice_body(service: Obj, ports: list[Obj], endpoints: list[Obj], name: str = "") -> Obj:
    meta: Obj = {
        "namespace": service["metadata"]["namespace"],
        "labels": slice_labels(service),
        "ownerReferences": [owner_reference(service, "Service", "v1")],
    }
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = service["metadata"]["name"] + "-"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": "IPv4",
        "endpoints": sorted(endpoints, key=_endpoint_id),
        "ports": ports,
    }


def _endpoint_id(endpoint: Obj) -> tuple[str, str]:
    return (endpoint["addresses"][0], (endpoint.get("targetRef") or {}).get("name", ""))


def _same_slice(existing: Obj, desired: Obj) -> bool:
    def norm(s: Obj) -> tuple:
        eps = sorted((s.get("endpoints") or []), key=_endpoint_id)
        refs = s["metadata"].get("ownerReferences") or []
        return (labels(s), refs, s.get("addressType"), eps, _port_set(s.get("ports")))

    return norm(existing) == norm(desired)


def desired_endpoints_by_port_set(service: Obj, pods: list[Obj], nodes: dict[str, Obj]) -> dict[tuple, tuple[list[Obj], list[Obj]]]:
    """{port set: (ports, endpoints)} for the Service's pods."""
    groups: dict[tuple, tuple[list[Obj], list[Obj]]] = {}
    for pod in selected_pods(service, pods):
        ports = endpoint_ports(service, pod)
        if service["spec"].get("ports") and not ports:
            continue  # no Service port resolves on this pod
        groups.setdefault(_port_set(ports), (ports, []))[1].append(pod_endpoint(service, pod, nodes))
    return groups


def plan_slices(service: Obj, pods: list[Obj], nodes: dict[str, Obj], existing: list[Obj]) -> list[SliceAction]:
    """The writes that make the Service's EndpointSlices match its pods; [] when in sync."""
    groups = desired_endpoints_by_port_set(service, pods, nodes)
    actions: list[SliceAction] = []
    if not groups:
        return _reuse_deleted(service, _plan_placeholder(service, existing))
    used: set[str] = set()
    for port_set, (ports, endpoints) in sorted(groups.items()):
        mine = [s for s in existing if _port_set(s.get("ports")) == port_set]
        used.update(s["metadata"]["name"] for s in mine)
        actions += _plan_port_set(service, ports, endpoints, mine)
    actions += [SliceAction("delete", s["metadata"]["name"]) for s in existing if s["metadata"]["name"] not in used]
    return _reuse_deleted(service, actions)


def _reuse_deleted(service: Obj, actions: list[SliceAction]) -> list[SliceAction]:
    """Turn a create plus a delete into an update of the slice that would be deleted, as the real
    controller does to save API writes (e.g. the placeholder becomes the first real slice)."""
    deletes = [a for a in actions if a.verb == "delete"]
    out = []
    for action in actions:
        if action.verb == "create" and deletes:
            name = deletes.pop(0).name
            body = _slice_body(service, action.body["ports"], action.body["endpoints"], name)
            out.append(SliceAction("update", name, body))
        elif action.verb != "delete":
            out.append(action)
    return out + deletes


def _plan_placeholder(service: Obj, existing: list[Obj]) -> list[SliceAction]:
    keep = next((s for s in existing if not s.get("endpoints") and not s.get("ports")), None)
    actions = [SliceAction("delete", s["metadata"]["name"]) for s in existing if s is not keep]
    desired = _slice_body(service, [], [], keep["metadata"]["name"] if keep else "")
    if keep is None:
        actions.append(SliceAction("create", body=desired))
    elif not _same_slice(keep, desired):
        actions.append(SliceAction("update", keep["metadata"]["name"], desired))
    return actions


def _plan_port_set(service: Obj, ports: list[Obj], endpoints: list[Obj], mine: list[Obj]) -> list[SliceAction]:
    wanted = {_endpoint_id(e): e for e in endpoints}
    placed: set[tuple[str, str]] = set()
    contents: list[tuple[Obj, list[Obj]]] = []
    for current in mine:
        kept = []
        for e in current.get("endpoints") or []:
            eid = _endpoint_id(e)
            if eid in wanted and eid not in placed:
                kept.append(wanted[eid])
                placed.add(eid)
        contents.append((current, kept))
    fresh = [e for eid, e in sorted(wanted.items()) if eid not in placed]
    for _, kept in contents:
        room = MAX_ENDPOINTS_PER_SLICE - len(kept)
        if room > 0 and fresh:
            kept += fresh[:room]
            fresh = fresh[room:]
    actions = []
    for current, kept in contents:
        name = current["metadata"]["name"]
        if not kept:
            actions.append(SliceAction("delete", name))
            continue
        desired = _slice_body(service, ports, kept, name)
        if not _same_slice(current, desired):
            actions.append(SliceAction("update", name, desired))
    for start in range(0, len(fresh), MAX_ENDPOINTS_PER_SLICE):
        chunk = fresh[start:start + MAX_ENDPOINTS_PER_SLICE]
        actions.append(SliceAction("create", body=_slice_body(service, ports, chunk)))
    return actions


def desired_legacy_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    """The core/v1 Endpoints object of the Service."""
    publish = bool(service["spec"].get("publishNotReadyAddresses"))
    subsets: dict[tuple, Obj] = {}
    for pod in selected_pods(service, pods):
        if pod_is_terminating(pod) and not publish:
            continue
        ports = endpoint_ports(service, pod)
        if service["spec"].get("ports") and not ports:
            continue
        address: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
        if pod["spec"].get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        subset = subsets.setdefault(_port_set(ports), {"ports": ports})
        bucket = "addresses" if publish or pod_is_ready(pod) else "notReadyAddresses"
        subset.setdefault(bucket, []).append(address)
    for subset in subsets.values():
        for bucket in ("addresses", "notReadyAddresses"):
            if bucket in subset:
                subset[bucket].sort(key=lambda a: (_ip_sort_key(a["ip"]), a["targetRef"]["name"]))
        if not subset["ports"]:
            del subset["ports"]
    meta_labels = {k: v for k, v in labels(service).items()}
    if service["spec"].get("clusterIP") == "None":
        meta_labels[HEADLESS_LABEL] = ""
    meta: Obj = {"name": service["metadata"]["name"], "namespace": service["metadata"]["namespace"]}
    if meta_labels:
        meta["labels"] = meta_labels
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": meta,
        "subsets": [subsets[k] for k in sorted(subsets)],
    }


def _ip_sort_key(ip: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ip.split("."))


def same_legacy_endpoints(existing: Obj, desired: Obj) -> bool:
    return labels(existing) == labels(desired) and (existing.get("subsets") or []) == desired["subsets"]
