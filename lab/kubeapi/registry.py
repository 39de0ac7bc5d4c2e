"""The API semantics on top of the store: metadata, defaulting, validation,
optimistic concurrency, subresources, graceful deletion and paginated lists."""
from __future__ import annotations

import base64
import binascii
import bisect
import copy
import datetime
import json
import random
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from . import strategies
from .allocators import ServiceAllocator
from .errors import ApiError, FieldError, already_exists, bad_request, conflict, invalid, \
    namespace_not_found, not_found
from .patch import PatchError, apply_patch
from .resources import RESOURCES, Resource, by_plural
from .selectors import FieldTerm, Requirement, fields_match, labels_match
from .store import Entry, Store, object_key

Obj = dict[str, Any]

DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
_UNDELETABLE_NAMESPACES = frozenset({"default", "kube-public", "kube-system"})
_USER_METADATA = ("name", "generateName", "namespace", "labels", "annotations",
                  "finalizers", "ownerReferences")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list.")


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector, as Scale.status.selector carries it."""
    parts = [f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        op = expr.get("operator")
        parts.append({"In": f"{expr['key']} in ({values})", "NotIn": f"{expr['key']} notin ({values})",
                      "Exists": expr["key"]}.get(op, f"!{expr['key']}"))
    return ",".join(parts)


@dataclass(frozen=True)
class ListQuery:
    namespace: str
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldTerm, ...] = ()
    limit: int = 0
    continue_token: str = ""


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    resource_version: int
    continue_token: str
    remaining: int | None


@dataclass(frozen=True)
class DeleteOptions:
    grace_period: int | None = None
    uid: str | None = None
    resource_version: str | None = None
    dry_run: bool = False


def encode_continue(rv: int, changed: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "changed": changed, "start": start + "\x00"},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, int, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw.get("v") != "meta.k8s.io/v1":
            raise ValueError("unsupported version")
        return int(raw["rv"]), int(raw["changed"]), str(raw["start"]).rstrip("\x00")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc


class Registry:
    def __init__(self, store: Store, allocator: ServiceAllocator | None = None, root_ca: bytes = b""):
        self.store = store
        self.services = allocator or ServiceAllocator()
        self.root_ca = root_ca  # kube-controller-manager's --root-ca-file: ca.crt in token Secrets

    # --- service account tokens ------------------------------------------------------------

    def _fill_token(self, namespace: str, secret: Obj) -> None:
        """The token controller's work, done as the Secret is created: a token for the
        ServiceAccount the Secret names, the cluster's CA and the namespace. The token is opaque
        (the real one is a signed JWT; clients treat it as opaque)."""
        if secret.get("type") != strategies.SERVICE_ACCOUNT_TOKEN or not isinstance(secret.get("data", {}), dict):
            return
        data = secret.setdefault("data", {})
        data.setdefault("token", base64.b64encode(secrets.token_urlsafe(32).encode()).decode())
        data["ca.crt"] = base64.b64encode(self.root_ca).decode()
        data["namespace"] = base64.b64encode(namespace.encode()).decode()

    def rbac_objects(self) -> tuple[tuple[int, ...], Any]:
        """What StoredAuthorizer reads: each RBAC resource's last change, and how to read them all."""
        kinds = [by_plural(plural) for plural in ("clusterroles", "clusterrolebindings", "roles", "rolebindings")]
        fingerprint = tuple(self.store.changed[res.plural] for res in kinds)

        def documents() -> list[Obj]:
            with self.store.lock:
                return [dict(entry.obj, kind=res.kind) for res in kinds for entry in self.store.objects[res.plural].values()]
        return fingerprint, documents

    def service_account(self, token: str) -> tuple[str, str] | None:
        """(namespace, ServiceAccount name) of a token Secret that holds `token` and still exists."""
        wanted = base64.b64encode(token.encode()).decode()
        with self.store.lock:
            for entry in self.store.objects["secrets"].values():
                obj = entry.obj
                if obj.get("type") == strategies.SERVICE_ACCOUNT_TOKEN and (obj.get("data") or {}).get("token") == wanted:
                    meta = obj["metadata"]
                    return meta["namespace"], (meta.get("annotations") or {}).get(strategies.SERVICE_ACCOUNT_NAME, "")
        return None

    # --- helpers ---------------------------------------------------------------------------

    def _existing(self, res: Resource, namespace: str, name: str) -> Entry:
        entry = self.store.get(res, object_key(res, namespace, name))
        if entry is None:
            raise not_found(res, name)
        return entry

    def _require_namespace(self, namespace: str) -> None:
        if self.store.get(by_plural("namespaces"), namespace) is None:
            raise namespace_not_found(namespace)

    @staticmethod
    def _check_type(res: Resource, body: Obj) -> None:
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request is not a {res.kind} object")
        kind, version = body.get("kind"), body.get("apiVersion")
        if kind and kind != res.kind:
            raise bad_request(f"the kind in the body ({kind}) does not match the kind on the URL ({res.kind})")
        if version and version != res.api_version:
            raise bad_request(f"the API version in the data ({version}) does not match the "
                              f"expected API version ({res.api_version})")
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")

    @staticmethod
    def _typed(res: Resource, body: Obj) -> Obj:
        """Body with kind/apiVersion first, as the API serializes objects."""
        out = {"kind": res.kind, "apiVersion": res.api_version}
        out.update((k, v) for k, v in body.items() if k not in ("kind", "apiVersion"))
        return out

    def _check_namespace(self, res: Resource, namespace: str, meta: Obj) -> None:
        if not res.namespaced:
            meta.pop("namespace", None)
            return
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
        meta["namespace"] = namespace

    # --- reads -----------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str, name: str) -> Entry:
        return self._existing(res, namespace, name)

    def list(self, res: Resource, query: ListQuery) -> Page:
        if query.continue_token:
            rv, changed, start = decode_continue(query.continue_token)
            snap = self.store.snapshot(res, changed)
            if snap is None:
                current = self.store.snapshot(res)
                assert current is not None
                token = encode_continue(self.store.rv, current.changed, start)
                raise ApiError(410, EXPIRED_CONTINUE, "Expired", metadata={"continue": token})
        else:
            with self.store.lock:
                snap = self.store.snapshot(res)
                rv, start = self.store.rv, ""
            assert snap is not None
        keys = snap.keys
        lo, hi = 0, len(keys)
        if query.namespace and res.namespaced:
            lo = bisect.bisect_left(keys, query.namespace + "/")
            hi = bisect.bisect_left(keys, query.namespace + "0")  # '0' follows '/'
        if start:
            lo = max(lo, bisect.bisect_right(keys, start))
        filtered = bool(query.labels or query.fields)
        entries: list[Entry] = []
        index = lo
        while index < hi and (not query.limit or len(entries) < query.limit):
            entry = snap.entries[index]
            index += 1
            if filtered and not self._matches(entry.obj, query):
                continue
            entries.append(entry)
        if query.limit and index < hi and entries:
            token = encode_continue(rv, snap.changed, keys[index - 1])
            remaining = None if filtered else hi - index
            return Page(entries, rv, token, remaining)
        return Page(entries, rv, "", None)

    @staticmethod
    def _matches(obj: Obj, query: ListQuery) -> bool:
        return (labels_match(query.labels, obj["metadata"].get("labels"))
                and fields_match(query.fields, obj))

    # --- create ----------------------------------------------------------------------------

    def create(self, res: Resource, namespace: str, body: Obj, dry_run: bool = False) -> Entry:
        self._check_type(res, body)
        obj = self._typed(res, body)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        self._check_namespace(res, namespace, meta)
        obj["metadata"] = meta = {k: meta[k] for k in _USER_METADATA if k in meta}
        with self.store.lock:
            if res.namespaced:
                self._require_namespace(namespace)
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise invalid(res, "", [FieldError("Required", "metadata.name", None,
                                                       "name or generateName is required")])
                meta["name"] = self._generated_name(res, namespace, meta["generateName"])
            name = meta["name"]
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = rfc3339(utcnow())
            if res.has_generation:
                meta["generation"] = 1
            if res.has_status and not res.status_on_create:
                obj.pop("status", None)
            strategies.apply_defaults(res, obj)
            if res.plural == "secrets":
                self._fill_token(namespace, obj)
            if res.has_status and not res.status_on_create:
                strategies.initial_status(res, obj)
            errors = strategies.validate(res, obj, None)
            if errors:
                raise invalid(res, name, errors)
            key = object_key(res, namespace, name)
            if self.store.get(res, key) is not None:
                raise already_exists(res, name)
            if res.plural == "services":
                errors = self.services.assign(key, obj["spec"], None, commit=not dry_run)
                if errors:
                    raise invalid(res, name, errors)
            obj = self._ordered(obj)
            if dry_run:
                return Entry(obj, self.store.rv)
            return self.store.commit(res, key, obj)

    def _generated_name(self, res: Resource, namespace: str, prefix: str) -> str:
        prefix = prefix[:58]
        for _ in range(8):
            name = prefix + "".join(random.choice(_NAME_ALPHABET) for _ in range(5))
            if self.store.get(res, object_key(res, namespace, name)) is None:
                return name
        raise ApiError(500, f"unable to generate a unique name for {res.qualified} from {prefix!r}")

    @staticmethod
    def _ordered(obj: Obj) -> Obj:
        """kind, apiVersion, metadata, spec, ..., status: the order the API prints."""
        head = ("kind", "apiVersion", "metadata", "spec")
        out = {k: obj[k] for k in head if k in obj}
        out.update((k, v) for k, v in obj.items() if k not in head and k != "status")
        if "status" in obj:
            out["status"] = obj["status"]
        return out

    # --- update ----------------------------------------------------------------------------

    @staticmethod
    def _preconditions(res: Resource, name: str, old: Entry, meta: Obj) -> None:
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old.obj["metadata"]["resourceVersion"]:
            raise conflict(res, name)
        wanted_uid = meta.get("uid")
        if wanted_uid and wanted_uid != old.obj["metadata"]["uid"]:
            raise ApiError(409, f'Operation cannot be fulfilled on {res.qualified} "{name}": '
                           f"Precondition failed: UID in precondition: {wanted_uid}, UID in object "
                           f"meta: {old.obj['metadata']['uid']}", "Conflict",
                           {"name": name, "kind": res.plural})

    def _write(self, res: Resource, key: str, old: Entry, obj: Obj, dry_run: bool) -> Entry:
        """Finish an update: system metadata from old, generation, no-op detection."""
        old_meta = old.obj["metadata"]
        meta = obj["metadata"]
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "name", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        if res.has_generation:
            generation = old_meta.get("generation", 1)
            meta["generation"] = generation + (obj.get("spec") != old.obj.get("spec"))
        meta["resourceVersion"] = old_meta["resourceVersion"]
        obj = self._ordered(obj)
        if obj == old.obj:
            return old
        if dry_run:
            return Entry(obj, old.rv)
        if (meta.get("deletionTimestamp") and not meta.get("finalizers")
                and old_meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds")):
            # The last finalizer is gone from an object being deleted: it goes now.
            self._release(res, key)
            return self.store.remove(res, key, obj)
        return self.store.commit(res, key, obj)

    def update(self, res: Resource, namespace: str, name: str, body: Obj,
               dry_run: bool = False) -> Entry:
        self._check_type(res, body)
        obj = self._typed(res, copy.deepcopy(body))
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != name:
            raise bad_request(f"the name of the object ({meta.get('name', '')}) does not match the "
                              f"name on the URL ({name})")
        self._check_namespace(res, namespace, meta)
        with self.store.lock:
            old = self._existing(res, namespace, name)
            self._preconditions(res, name, old, meta)
            obj["metadata"] = {k: meta[k] for k in _USER_METADATA if k in meta}
            if res.has_status:
                obj.pop("status", None)
                if "status" in old.obj:
                    obj["status"] = copy.deepcopy(old.obj["status"])
            strategies.prepare_for_update(res, obj, old.obj)
            strategies.apply_defaults(res, obj)
            errors = strategies.validate(res, obj, old.obj)
            if errors:
                raise invalid(res, name, errors)
            key = object_key(res, namespace, name)
            if res.plural == "services":
                errors = self.services.assign(key, obj["spec"], old.obj.get("spec"),
                                              commit=not dry_run)
                if errors:
                    raise invalid(res, name, errors)
            return self._write(res, key, old, obj, dry_run)

    def update_status(self, res: Resource, namespace: str, name: str, body: Obj,
                      dry_run: bool = False) -> Entry:
        self._check_type(res, body)
        with self.store.lock:
            old = self._existing(res, namespace, name)
            self._preconditions(res, name, old, body.get("metadata") or {})
            obj = copy.deepcopy(old.obj)
            if "status" in body:
                obj["status"] = copy.deepcopy(body["status"])
            else:
                obj.pop("status", None)
            return self._write(res, object_key(res, namespace, name), old, obj, dry_run)

    # --- scale -----------------------------------------------------------------------------

    @staticmethod
    def scale_of(obj: Obj) -> Obj:
        meta = obj["metadata"]
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": obj["spec"].get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": format_label_selector(obj["spec"].get("selector"))},
        }

    def update_scale(self, res: Resource, namespace: str, name: str, body: Obj,
                     dry_run: bool = False) -> Obj:
        if not isinstance(body, dict) or body.get("kind", "Scale") != "Scale":
            raise bad_request("the body of the request is not an autoscaling/v1 Scale object")
        with self.store.lock:
            old = self._existing(res, namespace, name)
            self._preconditions(res, name, old, body.get("metadata") or {})
            replicas = (body.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid '
                               f"value: {replicas}: must be greater than or equal to 0",
                               details={"name": name, "group": "autoscaling", "kind": "Scale",
                                        "causes": [{"reason": "FieldValueInvalid",
                                                    "message": f"Invalid value: {replicas}: must be "
                                                               "greater than or equal to 0",
                                                    "field": "spec.replicas"}]})
            obj = copy.deepcopy(old.obj)
            obj["spec"]["replicas"] = replicas
            entry = self._write(res, object_key(res, namespace, name), old, obj, dry_run)
            return self.scale_of(entry.obj)

    # --- patch -----------------------------------------------------------------------------

    def patch(self, res: Resource, namespace: str, name: str, subresource: str,
              content_type: str, patch: Any, dry_run: bool = False) -> Entry | Obj:
        with self.store.lock:
            old = self._existing(res, namespace, name)
            current = self.scale_of(old.obj) if subresource == "scale" else copy.deepcopy(old.obj)
            try:
                patched = apply_patch(content_type, current, patch)
            except PatchError as exc:
                if exc.bad_request:
                    raise bad_request(str(exc)) from exc
                raise ApiError(422, str(exc)) from exc
            if not isinstance(patched, dict):
                raise bad_request("the patch did not produce an object")
            if subresource == "scale":
                return self.update_scale(res, namespace, name, patched, dry_run)
            if subresource == "status":
                return self.update_status(res, namespace, name, patched, dry_run)
            strategies.drop_unknown_fields(res, patched)
            meta = patched.get("metadata")
            if not isinstance(meta, dict) or meta.get("name") != name:
                raise bad_request(f"the name of the object ({(meta or {}).get('name', '')}) does "
                                  f"not match the name on the URL ({name})")
            return self.update(res, namespace, name, patched, dry_run)

    # --- delete ----------------------------------------------------------------------------

    def _release(self, res: Resource, key: str) -> None:
        if res.plural == "services":
            self.services.release(key)

    def delete(self, res: Resource, namespace: str, name: str,
               options: DeleteOptions) -> tuple[Entry, bool]:
        """Returns (object as returned by the API, whether it is gone from the store)."""
        with self.store.lock:
            old = self._existing(res, namespace, name)
            meta = old.obj["metadata"]
            if options.uid and options.uid != meta["uid"]:
                raise ApiError(409, f'Operation cannot be fulfilled on {res.qualified} "{name}": '
                               f"Precondition failed: UID in precondition: {options.uid}, UID in "
                               f"object meta: {meta['uid']}", "Conflict",
                               {"name": name, "kind": res.plural})
            if options.resource_version and options.resource_version != meta["resourceVersion"]:
                raise ApiError(409, f'Operation cannot be fulfilled on {res.qualified} "{name}": '
                               "Precondition failed: ResourceVersion in precondition: "
                               f"{options.resource_version}, ResourceVersion in object meta: "
                               f"{meta['resourceVersion']}", "Conflict",
                               {"name": name, "kind": res.plural})
            key = object_key(res, namespace, name)
            if res.plural == "namespaces":
                return self._delete_namespace(res, old, options.dry_run)
            grace = self._grace(res, old.obj, options)
            if grace > 0 or meta.get("finalizers"):
                return self._mark_deleting(res, key, old, grace, options.dry_run), False
            if options.dry_run:
                return old, True
            self._release(res, key)
            return self.store.remove(res, key), True

    @staticmethod
    def _grace(res: Resource, obj: Obj, options: DeleteOptions) -> int:
        if res.plural != "pods":
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # Unbound or finished pods have no kubelet to wait for: the API deletes them at once.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if options.grace_period is not None:
            return max(options.grace_period, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def _mark_deleting(self, res: Resource, key: str, old: Entry, grace: int,
                       dry_run: bool) -> Entry:
        meta = old.obj["metadata"]
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and (current is not None and current <= grace):
            return old  # a shorter grace period may replace a longer one, not the reverse
        obj = copy.deepcopy(old.obj)
        deadline = utcnow() + datetime.timedelta(seconds=grace)
        obj["metadata"]["deletionTimestamp"] = rfc3339(deadline)
        obj["metadata"]["deletionGracePeriodSeconds"] = grace
        if "generation" in meta:
            obj["metadata"]["generation"] = meta["generation"] + 1
        obj = self._ordered(obj)
        if dry_run:
            return Entry(obj, old.rv)
        return self.store.commit(res, key, obj)

    def _delete_namespace(self, res: Resource, old: Entry, dry_run: bool) -> tuple[Entry, bool]:
        name = old.obj["metadata"]["name"]
        if name in _UNDELETABLE_NAMESPACES:
            raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                           details={"name": name, "kind": "namespaces"})
        terminating = copy.deepcopy(old.obj)
        terminating["metadata"]["deletionTimestamp"] = rfc3339(utcnow())
        terminating["status"] = {"phase": "Terminating"}
        if dry_run:
            return Entry(terminating, old.rv), False
        # The namespace controller's work, done at once: contents first, then the namespace.
        for other in RESOURCES:
            if not other.namespaced:
                continue
            prefix = name + "/"
            for key in [k for k in self.store.objects[other.plural] if k.startswith(prefix)]:
                self._release(other, key)
                self.store.remove(other, key)
        self.store.remove(res, name)
        return Entry(terminating, old.rv), True

    def delete_collection(self, res: Resource, query: ListQuery, options: DeleteOptions) -> None:
        with self.store.lock:
            page = self.list(res, ListQuery(query.namespace, query.labels, query.fields))
            for entry in page.entries:
                meta = entry.obj["metadata"]
                self.delete(res, meta.get("namespace", ""), meta["name"], options)

    # --- seeding ---------------------------------------------------------------------------

    def seed(self, address: str, port: int) -> None:
        """The objects every cluster starts with."""
        ns_res = by_plural("namespaces")
        for name in DEFAULT_NAMESPACES:
            self.create(ns_res, "", {"metadata": {"name": name}})
        labels = {"component": "apiserver", "provider": "kubernetes"}
        self.create(by_plural("services"), "default", {
            "metadata": {"name": "kubernetes", "labels": labels},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": port}]},
        })
        self.create(by_plural("endpoints"), "default", {
            "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        })
        self.create(by_plural("endpointslices"), "default", {
            "metadata": {"name": "kubernetes", "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        })
