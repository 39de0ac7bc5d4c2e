"""Per-kind defaulting and validation, as the real registry strategies do them
(only the fields the lab's clients rely on)."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Callable

from .errors import FieldError, not_supported
from .resources import Resource

Obj = dict[str, Any]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_RULES = {
    "label": (_LABEL, 63, "a lowercase RFC 1123 label must consist of lower case alphanumeric "
              "characters or '-', and must start and end with an alphanumeric character (e.g. "
              "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    "label1035": (_LABEL_1035, 63, "a DNS-1035 label must consist of lower case alphanumeric "
                  "characters or '-', start with an alphabetic character, and end with an "
                  "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                  "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
    "subdomain": (_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain must consist of lower case "
                  "alphanumeric characters, '-' or '.', and must start and end with an "
                  "alphanumeric character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    "path": (re.compile(r"^(?!\.\.?$)[^/%]+$"), 253, "may not contain '/' or '%', and may not be '.' or '..'"),
}


_METADATA_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields"})


def drop_unknown_fields(res: Resource, obj: Obj) -> list[str]:
    """Remove and name the unknown top-level and metadata fields (the decoder drops them;
    nested fields are not checked: this server has no schemas)."""
    known = {"kind", "apiVersion", "metadata", *res.fields}
    unknown = [k for k in obj if k not in known]
    meta = obj.get("metadata")
    meta_unknown = [k for k in meta if k not in _METADATA_FIELDS] if isinstance(meta, dict) else []
    for key in unknown:
        del obj[key]
    for key in meta_unknown:
        del meta[key]
    return unknown + [f"metadata.{k}" for k in meta_unknown]


def validate_name(res: Resource, name: str) -> list[FieldError]:
    pattern, limit, wording = _NAME_RULES[res.name_rule]
    errors = []
    if len(name) > limit:
        errors.append(FieldError("Invalid", "metadata.name", name,
                                 f"must be no more than {limit} characters"))
    if not pattern.match(name):
        errors.append(FieldError("Invalid", "metadata.name", name, wording))
    return errors


def _validate_metadata_maps(meta: Obj) -> list[FieldError]:
    errors = []
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            errors.append(FieldError("Invalid", f"metadata.{field}", value,
                                     "must be a map of string keys to string values"))
    return errors


# --- pods -------------------------------------------------------------------------------------

def _default_container(container: Obj) -> None:
    image = container.get("image", "")
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    container.setdefault("imagePullPolicy",
                         "Always" if tagless or image.endswith(":latest") else "IfNotPresent")
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: Obj) -> None:
    for container in spec.get("containers") or []:
        _default_container(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)


def validate_pod_spec(spec: Obj, path: str) -> list[FieldError]:
    containers = spec.get("containers")
    if not containers:
        return [FieldError("Required", f"{path}.containers")]
    errors = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        name = container.get("name", "")
        if not name:
            errors.append(FieldError("Required", f"{path}.containers[{i}].name"))
        elif name in seen:
            errors.append(FieldError("Duplicate", f"{path}.containers[{i}].name", name))
        seen.add(name)
        if not container.get("image"):
            errors.append(FieldError("Required", f"{path}.containers[{i}].image"))
    return errors


def _pod_defaults(pod: Obj) -> None:
    default_pod_spec(pod.setdefault("spec", {}))


def _pod_initial_status(pod: Obj) -> None:
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _pod_validate(pod: Obj, old: Obj | None) -> list[FieldError]:
    errors = validate_pod_spec(pod.get("spec") or {}, "spec")
    if old is not None:
        old_node = (old.get("spec") or {}).get("nodeName")
        if old_node and pod["spec"].get("nodeName") != old_node:
            errors.append(FieldError("Forbidden", "spec", None,
                                     "pod updates may not change fields other than "
                                     "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                                     "`spec.activeDeadlineSeconds`, `spec.tolerations` (only "
                                     "additions to existing tolerations), "
                                     "`spec.terminationGracePeriodSeconds` (allow it to be set "
                                     "to 1 if it was previously negative)"))
    return errors


# --- deployments ------------------------------------------------------------------------------

def _deployment_defaults(dep: Obj) -> None:
    spec = dep.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a metav1.LabelSelector selects a set of labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _deployment_validate(dep: Obj, old: Obj | None) -> list[FieldError]:
    spec = dep.get("spec") or {}
    errors = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        errors.append(FieldError("Invalid", "spec.replicas", replicas,
                                 "must be greater than or equal to 0"))
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errors.append(FieldError("Required", "spec.selector"))
    elif not selector_matches(selector, labels):
        errors.append(FieldError("Invalid", "spec.template.metadata.labels", labels,
                                 "`selector` does not match template `labels`"))
    if old is not None and selector and selector != (old.get("spec") or {}).get("selector"):
        errors.append(FieldError("Invalid", "spec.selector", _selector_text(selector),
                                 "field is immutable"))
    errors += validate_pod_spec((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    return errors


def _selector_text(selector: Obj) -> str:
    return "&LabelSelector{MatchLabels:map[string]string{" + ",".join(
        f"{k}: {v}," for k, v in sorted((selector.get("matchLabels") or {}).items())) + "}}"


# --- services ---------------------------------------------------------------------------------

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]


def _service_defaults(svc: Obj) -> None:
    spec = svc.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if kind != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def _service_prepare_for_update(svc: Obj, old: Obj) -> None:
    """dropTypeDependentFields: on a type change, clear what the old type needed and
    the user left as it was."""
    spec, old_spec = svc.setdefault("spec", {}), old.get("spec") or {}
    kind, old_kind = spec.get("type", "ClusterIP"), old_spec.get("type", "ClusterIP")
    if kind == old_kind:
        return
    external = ("NodePort", "LoadBalancer")
    if old_kind in external and kind not in external:
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        for port in spec.get("ports") or []:
            if port.get("nodePort") == old_ports.get((port.get("port"), port.get("protocol", "TCP"))):
                port.pop("nodePort", None)
        for field in ("externalTrafficPolicy", "healthCheckNodePort"):
            if spec.get(field) == old_spec.get(field):
                spec.pop(field, None)
    if old_kind == "LoadBalancer" and kind != "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") == old_spec.get("allocateLoadBalancerNodePorts"):
            spec.pop("allocateLoadBalancerNodePorts", None)
    if kind == "ExternalName":
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if spec.get(field) == old_spec.get(field):
                spec.pop(field, None)


def _service_initial_status(svc: Obj) -> None:
    svc["status"] = {"loadBalancer": {}}


def _service_validate(svc: Obj, old: Obj | None) -> list[FieldError]:
    spec = svc.get("spec") or {}
    kind = spec.get("type")
    errors: list[FieldError] = []
    if kind not in SERVICE_TYPES:
        return [not_supported("spec.type", kind, SERVICE_TYPES)]
    ports = spec.get("ports") or []
    if kind == "ExternalName":
        if not spec.get("externalName"):
            errors.append(FieldError("Required", "spec.externalName"))
    elif not ports and spec.get("clusterIP") != "None":
        errors.append(FieldError("Required", "spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            errors.append(FieldError("Required", f"{path}.name"))
        elif name and name in names:
            errors.append(FieldError("Duplicate", f"{path}.name", name))
        names.add(name)
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(FieldError("Invalid", f"{path}.port", number,
                                     "must be between 1 and 65535, inclusive"))
        if port.get("protocol") not in PROTOCOLS:
            errors.append(not_supported(f"{path}.protocol", port.get("protocol"), PROTOCOLS))
        target = port.get("targetPort")
        if isinstance(target, int) and not 1 <= target <= 65535:
            errors.append(FieldError("Invalid", f"{path}.targetPort", target,
                                     "must be between 1 and 65535, inclusive"))
        if port.get("nodePort") and kind == "ClusterIP":
            errors.append(FieldError("Forbidden", f"{path}.nodePort", None,
                                     "may not be used when `type` is 'ClusterIP'"))
    policy = spec.get("externalTrafficPolicy")
    if policy is not None and policy not in ("Cluster", "Local"):
        errors.append(not_supported("spec.externalTrafficPolicy", policy, ["Cluster", "Local"]))
    if policy and kind not in ("NodePort", "LoadBalancer"):
        errors.append(FieldError("Invalid", "spec.externalTrafficPolicy", policy,
                                 "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
    if spec.get("sessionAffinity") not in ("None", "ClientIP"):
        errors.append(not_supported("spec.sessionAffinity", spec.get("sessionAffinity"),
                                    ["ClientIP", "None"]))
    return errors


# --- the rest ---------------------------------------------------------------------------------

def _endpointslice_defaults(eps: Obj) -> None:
    for port in eps.get("ports") or []:
        port.setdefault("protocol", "TCP")


def _endpointslice_validate(eps: Obj, old: Obj | None) -> list[FieldError]:
    kind = eps.get("addressType")
    if not kind:
        return [FieldError("Required", "addressType")]
    if kind not in ("IPv4", "IPv6", "FQDN"):
        return [not_supported("addressType", kind, ["FQDN", "IPv4", "IPv6"])]
    errors = []
    if old is not None and old.get("addressType") != kind:
        errors.append(FieldError("Invalid", "addressType", kind, "field is immutable"))
    for i, endpoint in enumerate(eps.get("endpoints") or []):
        addresses = endpoint.get("addresses") or []
        if len(addresses) != 1:
            errors.append(FieldError("Invalid" if addresses else "Required",
                                     f"endpoints[{i}].addresses", len(addresses) if addresses else None,
                                     "must contain exactly 1 address" if addresses else ""))
    for i, port in enumerate(eps.get("ports") or []):
        number = port.get("port")
        if number is not None and (not isinstance(number, int) or not 1 <= number <= 65535):
            errors.append(FieldError("Invalid", f"ports[{i}].port", number,
                                     "must be between 1 and 65535, inclusive"))
    return errors


def _endpoints_defaults(ep: Obj) -> None:
    for subset in ep.get("subsets") or []:
        for port in subset.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _namespace_defaults(ns: Obj) -> None:
    name = ns["metadata"]["name"]
    ns["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


def _namespace_initial_status(ns: Obj) -> None:
    ns["status"] = {"phase": "Active"}


def _ingress_initial_status(ing: Obj) -> None:
    ing["status"] = {"loadBalancer": {}}


def _deployment_initial_status(dep: Obj) -> None:
    dep["status"] = {}


def _ingressclass_validate(ic: Obj, old: Obj | None) -> list[FieldError]:
    if not (ic.get("spec") or {}).get("controller"):
        return [FieldError("Required", "spec.controller")]
    return []


def _lease_validate(lease: Obj, old: Obj | None) -> list[FieldError]:
    spec = lease.get("spec") or {}
    errors = []
    duration, transitions = spec.get("leaseDurationSeconds"), spec.get("leaseTransitions")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errors.append(FieldError("Invalid", "spec.leaseDurationSeconds", duration, "must be greater than 0"))
    if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
        errors.append(FieldError("Invalid", "spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return errors


# --- secrets and RBAC ---------------------------------------------------------------------------

SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"


def _secret_defaults(secret: Obj) -> None:
    """type defaults to Opaque; stringData is write-only, merged into data (base64) as the API does."""
    secret.setdefault("type", "Opaque")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict):
        data = secret.setdefault("data", {})
        if isinstance(data, dict):
            data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})


def _secret_validate(secret: Obj, old: Obj | None) -> list[FieldError]:
    errors = []
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        return [FieldError("Invalid", "data", data, "must be a map of keys to base64 values")]
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (TypeError, ValueError, binascii.Error):
            errors.append(FieldError("Invalid", f"data[{key}]", value, "must be base64 encoded"))
    if secret.get("type") == SERVICE_ACCOUNT_TOKEN:
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        if not annotations.get(SERVICE_ACCOUNT_NAME):
            errors.append(FieldError("Required", f"metadata.annotations[{SERVICE_ACCOUNT_NAME}]"))
    if old is not None and old.get("type") != secret.get("type"):
        errors.append(FieldError("Invalid", "type", secret.get("type"), "field is immutable"))
    return errors


def _rules_validate(obj: Obj, old: Obj | None) -> list[FieldError]:
    errors = []
    for index, rule in enumerate(obj.get("rules") or []):
        if not isinstance(rule, dict) or not rule.get("verbs"):
            errors.append(FieldError("Required", f"rules[{index}].verbs", None, "verbs must contain at least one value"))
        elif not rule.get("nonResourceURLs") and not rule.get("resources"):
            errors.append(FieldError("Required", f"rules[{index}].resources", None,
                                     "resource rules must supply at least one resource"))
    return errors


def _binding_validate(binding: Obj, old: Obj | None) -> list[FieldError]:
    ref = binding.get("roleRef")
    if not isinstance(ref, dict) or not ref.get("name") or ref.get("kind") not in ("Role", "ClusterRole"):
        return [FieldError("Required", "roleRef", None, "roleRef needs kind Role or ClusterRole and a name")]
    if old is not None and old.get("roleRef") != ref:
        return [FieldError("Invalid", "roleRef", ref, "cannot change roleRef")]
    errors = []
    for index, subject in enumerate(binding.get("subjects") or []):
        if not isinstance(subject, dict) or subject.get("kind") not in ("User", "Group", "ServiceAccount"):
            errors.append(not_supported(f"subjects[{index}].kind", (subject or {}).get("kind") if isinstance(subject, dict)
                                        else subject, ["Group", "ServiceAccount", "User"]))
        elif not subject.get("name"):
            errors.append(FieldError("Required", f"subjects[{index}].name"))
    return errors


def _none(obj: Obj) -> None:
    return None


def _valid(obj: Obj, old: Obj | None) -> list[FieldError]:
    return []


Defaulter = Callable[[Obj], None]
Validator = Callable[[Obj, "Obj | None"], list[FieldError]]

DEFAULTS: dict[str, Defaulter] = {
    "pods": _pod_defaults, "deployments": _deployment_defaults, "services": _service_defaults,
    "endpointslices": _endpointslice_defaults, "endpoints": _endpoints_defaults,
    "namespaces": _namespace_defaults, "secrets": _secret_defaults,
}
INITIAL_STATUS: dict[str, Defaulter] = {
    "pods": _pod_initial_status, "services": _service_initial_status,
    "namespaces": _namespace_initial_status, "ingresses": _ingress_initial_status,
    "deployments": _deployment_initial_status,
}
VALIDATORS: dict[str, Validator] = {
    "pods": _pod_validate, "deployments": _deployment_validate, "services": _service_validate,
    "endpointslices": _endpointslice_validate, "ingressclasses": _ingressclass_validate,
    "leases": _lease_validate, "secrets": _secret_validate, "clusterroles": _rules_validate, "roles": _rules_validate,
    "clusterrolebindings": _binding_validate, "rolebindings": _binding_validate,
}


def prepare_for_update(res: Resource, obj: Obj, old: Obj) -> None:
    if res.plural == "services":
        _service_prepare_for_update(obj, old)


def apply_defaults(res: Resource, obj: Obj) -> None:
    DEFAULTS.get(res.plural, _none)(obj)


def initial_status(res: Resource, obj: Obj) -> None:
    INITIAL_STATUS.get(res.plural, _none)(obj)


def validate(res: Resource, obj: Obj, old: Obj | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errors = _validate_metadata_maps(meta)
    if old is None:
        errors = validate_name(res, meta.get("name", "")) + errors
    return errors + VALIDATORS.get(res.plural, _valid)(obj, old)
