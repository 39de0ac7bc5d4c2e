"""HTTPS front end: authentication, authorization, routing, list/watch encoding."""
from __future__ import annotations

import json
import logging
import queue
import select
import socket
import ssl
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from . import discovery, protobuf, tables
from .allocators import NODE_PORT_RANGE, ServiceAllocator
from .auth import (ANONYMOUS, ANONYMOUS_PATHS, Attributes, StoredAuthorizer, User, certificate_user, denial_reason,
                   service_account_user)
from .errors import ApiError, bad_request, forbidden
from .registry import DeleteOptions, ListQuery, Registry, utcnow
from .resources import Resource, lookup
from .selectors import SelectorError, parse_fields, parse_labels
from .store import Entry, Event, Store, TooOld, dumps
from .strategies import drop_unknown_fields

Obj = dict[str, Any]
_BASE_FIELDS = ("metadata.name", "metadata.namespace")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_MAX_WATCH_SECONDS = 1800
_HEALTH = ("/healthz", "/livez", "/readyz")
access_log = logging.getLogger("lab.kubeapi.access")


@dataclass
class Config:
    registry: Registry
    tokens: dict[str, User]
    authorizer: StoredAuthorizer
    server_address: str
    bookmark_interval: float = 1.0
    client_certificates: bool = False  # --client-ca-file was given


def resolve(method: str, path: str, query: dict[str, str]) -> Attributes:
    """RequestInfoFactory's view of a URL: resource attributes or a non-resource path."""
    parts = [p for p in path.split("/") if p]
    verb_by_method = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
                      "GET": "get", "HEAD": "get"}
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Attributes(method.lower(), path, False)
    del version
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = verb_by_method.get(method, method.lower())
    if not name and verb == "get":
        verb = "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    if query.get("watch", "") in ("1", "true") and verb in ("get", "list"):
        verb = "watch"
    return Attributes(verb, path, True, group, resource, subresource, namespace, name)


def _flag(query: dict[str, str], name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    return value.lower() in ("1", "true")


def _accepts_table(accept: str) -> bool:
    for clause in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in clause.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return True
    return False


def _list_query(res: Resource, namespace: str, query: dict[str, str], name: str = "") -> ListQuery:
    try:
        labels = parse_labels(query.get("labelSelector", ""))
        fields = parse_fields(query.get("fieldSelector", ""), _BASE_FIELDS + res.field_labels)
    except SelectorError as exc:
        raise bad_request(str(exc)) from exc
    if name:
        fields += parse_fields(f"metadata.name={name}", _BASE_FIELDS)
    limit_text = query.get("limit", "0") or "0"
    if not limit_text.isdigit():
        raise bad_request(f'invalid limit "{limit_text}"')
    return ListQuery(namespace, labels, fields, int(limit_text), query.get("continue", ""))


def _watch_filter(res: Resource, list_query: ListQuery) -> Callable[[Obj], bool]:
    def matches(obj: Obj) -> bool:
        if list_query.namespace and res.namespaced and obj["metadata"].get("namespace") != list_query.namespace:
            return False
        return Registry._matches(obj, list_query)
    return matches


def transition(event: Event, matches: Callable[[Obj], bool]) -> tuple[str, Entry] | None:
    """What a filtered watch sees of an event (the watch cache's ADDED/DELETED on
    objects that start or stop matching)."""
    new_ok = event.type != "DELETED" and matches(event.entry.obj)
    old_ok = event.old is not None and matches(event.old.obj)
    if event.type == "ADDED":
        return ("ADDED", event.entry) if new_ok else None
    if event.type == "DELETED":
        return ("DELETED", event.entry) if old_ok else None
    if new_ok:
        return ("MODIFIED" if old_ok else "ADDED", event.entry)
    if old_ok:
        assert event.old is not None
        obj = dict(event.old.obj)
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(event.rv))
        return ("DELETED", Entry(obj, event.rv))
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8sedge-lab-apiserver"
    server: "ApiServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # one access-log line per request is written by _log instead

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # --- plumbing --------------------------------------------------------------------------

    def _log(self, user: str, code: int, started: float) -> None:
        access_log.info("%s %s %s %d %.1fms", self.command, self.path, user, code,
                        (time.monotonic() - started) * 1000)

    def _send(self, code: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # One write for headers and body: one TLS record train, no Nagle stalls.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, dumps(obj))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authenticate(self, path: str) -> User | None:
        # As kube-apiserver's union of authenticators: a verified client certificate first.
        certificate = self.connection.getpeercert() if self.server.config.client_certificates else None
        if certificate:
            return certificate_user(certificate)
        header = self.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            token = token.strip()
            user = self.server.config.tokens.get(token)
            if user is None and token:  # a ServiceAccount's token, from its token Secret
                account = self.server.config.registry.service_account(token)
                user = service_account_user(*account) if account else None
            return user
        return ANONYMOUS if path in ANONYMOUS_PATHS else None

    # --- dispatch --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path.rstrip("/") or "/"
        body = self._read_body()
        user = self._authenticate(path)
        user_name = user.name if user else "-"
        code = 500
        try:
            if user is None:
                raise ApiError(401, "Unauthorized")
            attrs = resolve(self.command, path, query)
            if not self.server.config.authorizer.allowed(user, attrs):
                raise self._forbidden(user, attrs)
            if attrs.resource_request:
                code = self._resource(user, attrs, path, query, body)
            else:
                code = self._non_resource(path)
        except ApiError as exc:
            code = exc.code
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - any bug becomes a 500 Status, as the API does
            logging.getLogger("lab.kubeapi").error("%s %s failed:\n%s", self.command, self.path,
                                                   traceback.format_exc())
            code = 500
            self._send_json(500, ApiError(500, "Internal error occurred: see the server log").status())
        self._log(user_name, code, started)

    @staticmethod
    def _forbidden(user: User, attrs: Attributes) -> ApiError:
        why = denial_reason(user, attrs)
        if not attrs.resource_request:
            return ApiError(403, f"forbidden: {why}", details={})
        qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
        return forbidden(qualified, attrs.name, attrs.api_group, attrs.resource, why)

    def _non_resource(self, path: str) -> int:
        if path in _HEALTH or path.startswith(tuple(p + "/" for p in _HEALTH)):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return 200
        parts = [p for p in path.split("/") if p]
        doc: Any = None
        if path == "/version":
            doc = discovery.version()
        elif path == "/api":
            doc = discovery.api_versions(self.server.config.server_address)
        elif path == "/apis":
            doc = discovery.api_group_list()
        elif parts[:1] == ["api"] and len(parts) == 2:
            doc = discovery.api_resource_list("", parts[1])
        elif parts[:1] == ["apis"] and len(parts) == 2:
            doc = discovery.api_group(parts[1])
        elif parts[:1] == ["apis"] and len(parts) == 3:
            doc = discovery.api_resource_list(parts[1], parts[2])
        elif path == "/openapi/v3":
            doc = discovery.openapi_v3_root()
        elif parts[:2] == ["openapi", "v3"] and len(parts) >= 4:
            rel = parts[2:]
            raw = (discovery.openapi_v3_document("", rel[1]) if rel[0] == "api" and len(rel) == 2
                   else discovery.openapi_v3_document(rel[1], rel[2]) if rel[0] == "apis" and len(rel) == 3
                   else None)
            if raw is not None:
                self._send(200, raw, headers={"Cache-Control": "public, immutable"})
                return 200
        if doc is None:
            raise ApiError(404, "the server could not find the requested resource", details={})
        self._send_json(200, doc)
        return 200

    def _resource(self, user: User, attrs: Attributes, path: str, query: dict[str, str], body: bytes) -> int:
        parts = [p for p in path.split("/") if p]
        version = parts[1] if parts[0] == "api" else parts[2]
        res = lookup(attrs.api_group, version, attrs.resource)
        if res is None or (attrs.subresource and attrs.subresource not in res.subresources):
            raise ApiError(404, "the server could not find the requested resource", details={})
        if not res.stored:
            return self._review(user, res, attrs, body)
        namespace = attrs.namespace
        if res.plural == "namespaces":
            namespace = ""
        elif res.namespaced is False and namespace:
            raise ApiError(404, "the server could not find the requested resource", details={})
        registry = self.server.config.registry
        dry_run = query.get("dryRun") == "All"
        table = _accepts_table(self.headers.get("Accept", ""))
        verb, name, sub = attrs.verb, attrs.name, attrs.subresource

        if verb == "watch":
            return self._watch(res, _list_query(res, namespace, query, name), query, table)
        if verb == "list":
            return self._list(res, _list_query(res, namespace, query), query, table)
        if verb == "deletecollection":
            registry.delete_collection(res, _list_query(res, namespace, query),
                                       self._delete_options(query, body))
            self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success"})
            return 200
        if verb == "get":
            entry = registry.get(res, namespace, name)
            if sub == "scale":
                self._send_json(200, registry.scale_of(entry.obj))
            elif table:
                self._send_json(200, tables.table(res.plural, [entry.obj],
                                                  query.get("includeObject", "Metadata"), utcnow(),
                                                  {"resourceVersion": entry.obj["metadata"]["resourceVersion"]}))
            else:
                self._send(200, entry.full(res))
            return 200
        if verb == "delete":
            return self._delete(res, namespace, name, query, body)
        payload = self._json_body(body)
        warnings = self._field_validation(res, sub, payload, query.get("fieldValidation", "Warn"))
        if verb == "create":
            if sub:
                raise ApiError(405, f"the server does not allow this method on the requested resource")
            entry = registry.create(res, namespace, payload, dry_run)
            self._send(201, entry.full(res), headers=warnings)
            return 201
        if verb == "update":
            if sub == "scale":
                self._send_json(200, registry.update_scale(res, namespace, name, payload, dry_run))
                return 200
            if sub == "status":
                entry = registry.update_status(res, namespace, name, payload, dry_run)
            else:
                entry = registry.update(res, namespace, name, payload, dry_run)
            self._send(200, entry.full(res), headers=warnings)
            return 200
        if verb == "patch":
            result = registry.patch(res, namespace, name, sub, self.headers.get("Content-Type", ""),
                                    payload, dry_run)
            if isinstance(result, Entry):
                self._send(200, result.full(res))
            else:
                self._send_json(200, result)
            return 200
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _review(self, user: User, res: Resource, attrs: Attributes, body: bytes) -> int:
        """A SelfSubjectAccessReview: answered for the user who asks, never stored."""
        if attrs.verb != "create" or attrs.name or attrs.namespace:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        try:
            payload = (protobuf.self_subject_access_review(body) if content_type == protobuf.MEDIA_TYPE
                       else self._json_body(body))
        except protobuf.ProtobufError as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from None
        if not isinstance(payload, dict):
            raise bad_request("the body of the request was in an unknown format")
        try:
            status = self.server.config.authorizer.review(user, payload.get("spec"))
        except ValueError as exc:
            raise ApiError(422, f'{res.kind}.{res.group} "" is invalid: {exc}', reason="Invalid") from None
        review = {"kind": res.kind, "apiVersion": res.api_version, "metadata": {"creationTimestamp": None},
                  "spec": payload.get("spec"), "status": status}
        self._send_json(201, review)
        return 201

    def _json_body(self, body: bytes) -> Any:
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if self.command == "PATCH" and content_type == "application/apply-patch+yaml":
            raise ApiError(415, "server-side apply is not supported by the lab API server")
        if content_type not in ("application/json", "application/merge-patch+json",
                                "application/strategic-merge-patch+json",
                                "application/json-patch+json", ""):
            raise ApiError(415, f'the body of the request was in an unknown format - accepted media '
                           f'types include: application/json')
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise bad_request(f"the body of the request could not be decoded as JSON: {exc}") from exc

    @staticmethod
    def _field_validation(res: Resource, sub: str, payload: Any, directive: str) -> dict[str, str]:
        """fieldValidation=Strict|Warn|Ignore for create/update bodies (top level and metadata)."""
        if directive not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation: Unsupported value: "{directive}": supported '
                              'values: "Ignore", "Strict", "Warn"')
        if sub or not isinstance(payload, dict) or directive == "Ignore":
            return {}
        unknown = drop_unknown_fields(res, payload)
        if not unknown:
            return {}
        if directive == "Strict":
            raise bad_request("strict decoding error: " +
                              ", ".join(f'unknown field "{f}"' for f in unknown))
        return {"Warning": ", ".join(f'299 - "unknown field \\"{f}\\""' for f in unknown)}

    @staticmethod
    def _delete_options(query: dict[str, str], body: bytes) -> DeleteOptions:
        try:
            options = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            raise bad_request(f"DeleteOptions could not be decoded: {exc}") from exc
        grace = options.get("gracePeriodSeconds")
        if grace is None and query.get("gracePeriodSeconds", "") != "":
            try:
                grace = int(query["gracePeriodSeconds"])
            except ValueError as exc:
                raise bad_request(f'invalid gracePeriodSeconds "{query["gracePeriodSeconds"]}"') from exc
        pre = options.get("preconditions") or {}
        dry = query.get("dryRun") == "All" or "All" in (options.get("dryRun") or [])
        return DeleteOptions(grace, pre.get("uid"), pre.get("resourceVersion"), dry)

    def _delete(self, res: Resource, namespace: str, name: str, query: dict[str, str],
                body: bytes) -> int:
        options = self._delete_options(query, body)
        entry, gone = self.server.config.registry.delete(res, namespace, name, options)
        if not gone or res.returns_deleted_object:
            self._send(200, entry.full(res))
            return 200
        details: Obj = {"name": name}
        if res.group:
            details["group"] = res.group
        details.update(kind=res.plural, uid=entry.obj["metadata"]["uid"])
        self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "details": details})
        return 200

    # --- list and watch --------------------------------------------------------------------

    def _list(self, res: Resource, list_query: ListQuery, query: dict[str, str], table: bool) -> int:
        page = self.server.config.registry.list(res, list_query)
        meta: Obj = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        if table:
            self._send_json(200, tables.table(res.plural, [e.obj for e in page.entries],
                                              query.get("includeObject", "Metadata"), utcnow(), meta))
            return 200
        head = (f'{{"kind":"{res.kind}List","apiVersion":"{res.api_version}","metadata":'
                .encode() + dumps(meta) + b',"items":[')
        self._send(200, head + b",".join(e.item for e in page.entries) + b"]}")
        return 200

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event_bytes(self, res: Resource, kind: str, entry: Entry, table: bool,
                     include: str, first: bool) -> bytes:
        if table:
            obj = tables.table(res.plural, [entry.obj], include, utcnow(),
                               {"resourceVersion": entry.obj["metadata"]["resourceVersion"]},
                               headers=first)
            return b'{"type":"%s","object":%s}\n' % (kind.encode(), dumps(obj))
        return b'{"type":"%s","object":%s}\n' % (kind.encode(), entry.full(res))

    def _bookmark(self, res: Resource, rv: int, table: bool, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        if table:
            obj: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                        "columnDefinitions": None, "rows": None}
        else:
            obj = {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}
        return b'{"type":"BOOKMARK","object":%s}\n' % dumps(obj)

    def _client_gone(self) -> bool:
        # A watch client never sends while streaming: readable means closed (or garbage).
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _watch(self, res: Resource, list_query: ListQuery, query: dict[str, str], table: bool) -> int:
        config = self.server.config
        store = config.registry.store
        rv_text = query.get("resourceVersion", "")
        send_initial = _flag(query, "sendInitialEvents")
        bookmarks = bool(_flag(query, "allowWatchBookmarks"))
        include = query.get("includeObject", "Metadata")
        timeout_text = query.get("timeoutSeconds", "")
        timeout = min(int(timeout_text), _MAX_WATCH_SECONDS) if timeout_text.isdigit() else _MAX_WATCH_SECONDS
        if send_initial and query.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiError(422, 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: '
                           'Forbidden: sendInitialEvents requires setting resourceVersionMatch '
                           'to NotOlderThan')
        if rv_text not in ("", "0") and not rv_text.isdigit():
            raise bad_request(f'invalid resource version "{rv_text}"')
        if send_initial or (send_initial is None and rv_text in ("", "0")):
            since: int | None = None
        elif rv_text in ("", "0"):
            since = store.rv
        else:
            since = int(rv_text)
        matches = _watch_filter(res, list_query)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            watcher, initial, backlog, start_rv = store.watch(res, since)
        except TooOld as exc:
            status = ApiError(410, str(exc), "Expired").status()
            self._chunk(b'{"type":"ERROR","object":%s}\n' % dumps(status))
            self.wfile.write(b"0\r\n\r\n")
            return 200
        first = True
        try:
            for entry in sorted(initial, key=lambda e: (e.obj["metadata"].get("namespace", ""),
                                                        e.obj["metadata"]["name"])):
                if matches(entry.obj):
                    self._chunk(self._event_bytes(res, "ADDED", entry, table, include, first))
                    first = False
            if send_initial:
                self._chunk(self._bookmark(res, start_rv, table, initial_end=True))
            for event in backlog:
                seen = transition(event, matches)
                if seen:
                    self._chunk(self._event_bytes(res, seen[0], seen[1], table, include, first))
                    first = False
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + config.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = min(deadline, next_bookmark if bookmarks else now + 1.0) - now
                try:
                    event = watcher.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    if self._client_gone():
                        break
                    if bookmarks and time.monotonic() >= next_bookmark:
                        next_bookmark = time.monotonic() + config.bookmark_interval
                        with store.lock:
                            # Only when nothing is queued is store.rv safe to resume from.
                            rv = store.rv if watcher.empty() else None
                        if rv is not None:
                            self._chunk(self._bookmark(res, rv, table))
                    continue
                if event is None:
                    break
                seen = transition(event, matches)
                if seen:
                    self._chunk(self._event_bytes(res, seen[0], seen[1], table, include, first))
                    first = False
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            store.unwatch(res, watcher)
        return 200


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, config: Config):
        super().__init__(address, Handler)
        self.context = context
        self.config = config

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in accept().
        try:
            # Without NODELAY the tail of a large body waits for the client's delayed ACK (40 ms).
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:  # --client-ca-file: a certificate is asked for, not required (tokens still work)
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


def build_server(bind: str, port: int, cert: str, key: str, tokens: dict[str, User],
                 policy_files: list[str], watch_cache_size: int = 10000,
                 bookmark_interval: float = 1.0, list_snapshots: int = 16,
                 node_ports: tuple[int, int] = NODE_PORT_RANGE, client_ca: str | None = None,
                 root_ca: bytes = b"") -> ApiServer:
    store = Store(watch_cache_size, list_snapshots)
    registry = Registry(store, ServiceAllocator(node_ports=node_ports), root_ca)
    authorizer = StoredAuthorizer(policy_files, registry.rbac_objects)
    config = Config(registry, tokens, authorizer, "", bookmark_interval, client_certificates=bool(client_ca))
    server = ApiServer((bind, port), tls_context(cert, key, client_ca), config)
    actual_port = server.server_address[1]
    config.server_address = f"{bind}:{actual_port}"
    registry.seed(bind, actual_port)
    return server


def serve(server: ApiServer, stop: threading.Event) -> None:
    """Serve until stop is set, then end the watches and close the socket."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="kubeapi-accept", daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.config.registry.store.close_watchers()
    server.server_close()
    thread.join(timeout=5)
