"""The one table of served resources: routing, discovery, RBAC naming and store
behaviour are all derived from it."""
from __future__ import annotations

from dataclasses import dataclass

_READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # "label" (RFC 1123), "label1035" (services), "subdomain" or "path" (RBAC: any path segment).
    name_rule: str = "subdomain"
    # Whether metadata.generation is kept (objects with a spec).
    has_generation: bool = False
    # Whether writes to the main resource leave .status alone.
    has_status: bool = False
    # Nodes accept status on create; everything else starts from a fresh status.
    status_on_create: bool = False
    # The real registry answers DELETE with the object for these, a Status otherwise.
    returns_deleted_object: bool = False
    # Field selector labels beyond metadata.name / metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # Top-level fields besides kind/apiVersion/metadata (fieldValidation checks these).
    fields: tuple[str, ...] = ("spec", "status")
    # A review (SelfSubjectAccessReview): created and answered at once, never stored.
    stored: bool = True
    served_verbs: tuple[str, ...] = _READ_WRITE

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The group-qualified plural used in error messages ("deployments.apps")."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def type_prefix(self) -> bytes:
        return f'{{"kind":"{self.kind}","apiVersion":"{self.api_version}",'.encode()

    @property
    def verbs(self) -> tuple[str, ...]:
        return self.served_verbs


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
             subresources=("status",), name_rule="label", has_status=True,
             returns_deleted_object=True, field_labels=("status.phase",)),
    Resource("", "v1", "nodes", "node", "Node", False, ("no",), subresources=("status",),
             has_status=True, status_on_create=True, field_labels=("spec.unschedulable",)),
    Resource("", "v1", "services", "service", "Service", True, ("svc",), ("all",),
             subresources=("status",), name_rule="label1035", has_generation=True,
             has_status=True, returns_deleted_object=True,
             field_labels=("spec.clusterIP", "spec.type")),
    Resource("", "v1", "endpoints", "endpoints", "Endpoints", True, ("ep",), fields=("subsets",)),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",),
             fields=("secrets", "imagePullSecrets", "automountServiceAccountToken")),
    Resource("", "v1", "secrets", "secret", "Secret", True, fields=("data", "stringData", "type", "immutable")),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",),
             fields=("data", "binaryData", "immutable")),
    Resource("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",), subresources=("status",),
             has_generation=True, has_status=True, returns_deleted_object=True,
             field_labels=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                           "spec.serviceAccountName", "status.phase", "status.podIP")),
    Resource("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True,
             fields=("addressType", "endpoints", "ports")),
    Resource("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True, ("ing",),
             subresources=("status",), has_generation=True, has_status=True),
    Resource("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", False,
             has_generation=True, fields=("spec",)),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), ("all",),
             subresources=("status", "scale"), has_generation=True, has_status=True),
    # RBAC as a cluster stores it: applied with kubectl, read by the authorizer as it changes.
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False,
             name_rule="path", fields=("rules", "aggregationRule")),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False,
             name_rule="path", fields=("subjects", "roleRef")),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, name_rule="path", fields=("rules",)),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True,
             name_rule="path", fields=("subjects", "roleRef")),
    # What the rollouts hold while they change the edges (the lock between the watcher and AWX).
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, fields=("spec",)),
    # What `kubectl auth can-i` asks: may I do this?
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "", "SelfSubjectAccessReview", False,
             stored=False, served_verbs=("create",)),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}


def group_versions() -> dict[str, list[str]]:
    """Served versions per API group, in table order ("" is the core group)."""
    out: dict[str, list[str]] = {}
    for res in RESOURCES:
        versions = out.setdefault(res.group, [])
        if res.version not in versions:
            versions.append(res.version)
    return out


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return BY_PATH.get((group, version, plural))


def by_plural(plural: str) -> Resource:
    for res in RESOURCES:
        if res.plural == plural:
            return res
    raise KeyError(plural)
