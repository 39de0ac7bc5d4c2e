"""Authentication (kube-apiserver's --token-auth-file and --client-ca-file) and RBAC."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
_PRIVILEGED_GROUP = "system:masters"


@dataclass(frozen=True)
class User:
    name: str
    uid: str
    groups: tuple[str, ...]


ANONYMOUS = User("system:anonymous", "", ("system:unauthenticated",))


def load_tokens(path: str | Path) -> dict[str, User]:
    """Parse `token,user,uid,"group1,group2"` lines; blank and # lines are skipped."""
    users: dict[str, User] = {}
    with open(path, newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle), 1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{lineno}: expected token,user,uid[,groups], got {len(row)} fields")
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            users[row[0].strip()] = User(row[1].strip(), row[2].strip(),
                                         groups + ("system:authenticated",))
    return users


def certificate_user(certificate: dict[str, Any]) -> User:
    """The user of a verified X.509 client certificate, as kube-apiserver reads it: the subject's
    CN is the name, its O values are the groups."""
    subject = [pair for rdn in certificate.get("subject", ()) for pair in rdn]
    name = next((value for key, value in subject if key == "commonName"), "")
    groups = tuple(value for key, value in subject if key == "organizationName")
    return User(name, "", groups + ("system:authenticated",))


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the real RequestInfo resolver sees it."""
    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    non_resource_urls: tuple[str, ...]

    def allows(self, attrs: Attributes) -> bool:
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.resource_request:
            return any(u == "*" or u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1]))
                       for u in self.non_resource_urls)
        if "*" not in self.api_groups and attrs.api_group not in self.api_groups:
            return False
        if attrs.subresource:
            wanted = {f"{attrs.resource}/{attrs.subresource}", f"{attrs.resource}/*",
                      f"*/{attrs.subresource}", "*"}
        else:
            wanted = {attrs.resource, "*"}
        if not wanted & self.resources:
            return False
        return not self.resource_names or attrs.name in self.resource_names


def _rule(raw: dict[str, Any]) -> Rule:
    return Rule(frozenset(raw.get("verbs") or ()), frozenset(raw.get("apiGroups") or ()),
                frozenset(raw.get("resources") or ()), frozenset(raw.get("resourceNames") or ()),
                tuple(raw.get("nonResourceURLs") or ()))


@dataclass(frozen=True)
class Binding:
    name: str
    namespace: str  # "" for ClusterRoleBindings
    role_kind: str
    role_name: str
    users: frozenset[str]
    groups: frozenset[str]


def _subjects(doc: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    users, groups = set(), set()
    for subject in doc.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "User":
            users.add(subject["name"])
        elif kind == "Group":
            groups.add(subject["name"])
        elif kind == "ServiceAccount":
            users.add(f"system:serviceaccount:{subject.get('namespace', '')}:{subject['name']}")
    return frozenset(users), frozenset(groups)


# Objects an RBAC manifest ships beside its roles (docs/rbac.yaml has a ServiceAccount);
# they grant nothing by themselves.
_GRANTS_NOTHING = ("Namespace", "ServiceAccount", "Secret")


class Authorizer:
    """RBAC over ClusterRoles/Roles and their bindings, plus the system:masters bypass."""

    def __init__(self, documents: list[dict[str, Any]]):
        self.roles: dict[tuple[str, str, str], tuple[Rule, ...]] = {}
        self.bindings: list[Binding] = []
        for doc in documents:
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            if kind in ("ClusterRole", "Role"):
                namespace = meta.get("namespace", "") if kind == "Role" else ""
                self.roles[(kind, namespace, meta["name"])] = tuple(
                    _rule(r) for r in doc.get("rules") or [])
            elif kind in ("ClusterRoleBinding", "RoleBinding"):
                users, groups = _subjects(doc)
                ref = doc.get("roleRef") or {}
                namespace = meta.get("namespace", "") if kind == "RoleBinding" else ""
                self.bindings.append(Binding(meta.get("name", ""), namespace, ref.get("kind", ""), ref.get("name", ""),
                                             users, groups))
            elif kind not in _GRANTS_NOTHING:
                raise ValueError(f"authorization policy: unsupported kind {kind!r} "
                                 f"(object {meta.get('name')!r})")

    @classmethod
    def from_files(cls, paths: list[str | Path]) -> "Authorizer":
        documents = []
        for path in paths:
            with open(path) as handle:
                documents += [d for d in yaml.safe_load_all(handle) if d]
        return cls(documents)

    def allowed(self, user: User, attrs: Attributes) -> bool:
        return self.reason(user, attrs) is not None

    def reason(self, user: User, attrs: Attributes) -> str | None:
        """Why the request is allowed, in the RBAC authorizer's words; None when it is not."""
        if _PRIVILEGED_GROUP in user.groups:
            return ""
        for binding in self.bindings:
            if binding.namespace and binding.namespace != attrs.namespace:
                continue
            if user.name not in binding.users and not binding.groups.intersection(user.groups):
                continue
            role_ns = binding.namespace if binding.role_kind == "Role" else ""
            rules = self.roles.get((binding.role_kind, role_ns, binding.role_name), ())
            if any(rule.allows(attrs) for rule in rules):
                kind = "RoleBinding" if binding.namespace else "ClusterRoleBinding"
                where = f'"{binding.name}/{binding.namespace}"' if binding.namespace else f'"{binding.name}"'
                subject = (_subject_of(user.name) if user.name in binding.users
                           else f'Group "{sorted(binding.groups.intersection(user.groups))[0]}"')
                return f'RBAC: allowed by {kind} {where} of {binding.role_kind} "{binding.role_name}" to {subject}'
        return None

    def review(self, user: User, spec: Any) -> dict[str, Any]:
        """The status of a SelfSubjectAccessReview of `spec`; ValueError names a bad field."""
        if not isinstance(spec, dict):
            raise ValueError("spec: Required value")
        resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if (resource is None) == (non_resource is None):
            raise ValueError("spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes"
                             " or resourceAttributes must be specified")
        given = resource if resource is not None else non_resource
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise ValueError("spec: Invalid value: the attributes must be strings")
        if resource is not None:
            attrs = Attributes(given.get("verb", ""), "", True, given.get("group", ""), given.get("resource", ""),
                               given.get("subresource", ""), given.get("namespace", ""), given.get("name", ""))
        else:
            attrs = Attributes(given.get("verb", ""), given.get("path", ""), False)
        why = self.reason(user, attrs)
        return {"allowed": True, **({"reason": why} if why else {})} if why is not None else {"allowed": False}


class StoredAuthorizer:
    """RBAC as a cluster has it: the policy files the server starts with (its bootstrap roles)
    and the RBAC objects applied through the API since, read again once they change."""

    def __init__(self, files: list[str | Path], objects: Callable[[], tuple[Any, Callable[[], list[dict[str, Any]]]]]) -> None:
        """`objects()` -> (a fingerprint that changes with any RBAC object, a function that reads them)."""
        self.base: list[dict[str, Any]] = []
        for path in files:
            with open(path) as handle:
                self.base += [d for d in yaml.safe_load_all(handle) if d]
        Authorizer(self.base)  # refuse a bad policy file at start
        self.objects = objects
        self._seen: Any = None
        self._current = Authorizer(self.base)

    def _authorizer(self) -> Authorizer:
        fingerprint, documents = self.objects()
        if fingerprint != self._seen:
            self._current, self._seen = Authorizer(self.base + documents()), fingerprint
        return self._current

    def allowed(self, user: User, attrs: Attributes) -> bool:
        return self._authorizer().allowed(user, attrs)

    def reason(self, user: User, attrs: Attributes) -> str | None:
        return self._authorizer().reason(user, attrs)

    def review(self, user: User, spec: Any) -> dict[str, Any]:
        return self._authorizer().review(user, spec)


def service_account_user(namespace: str, name: str) -> User:
    return User(f"system:serviceaccount:{namespace}:{name}", "",
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


def _subject_of(user: str) -> str:
    """How the RBAC authorizer names a user it allowed: a service account by name/namespace."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return f'ServiceAccount "{parts[3]}/{parts[2]}"'
    return f'User "{user}"'


def denial_reason(user: User, attrs: Attributes) -> str:
    """The RBAC authorizer's wording of why a request was refused."""
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
             else "at the cluster scope")
    return (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" '
            f'in API group "{attrs.api_group}" {scope}')
