# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edge model as nginx sees it: render-ready blocks of directives, so templates only loop.

Pure: no I/O, no Ansible. `build_view()` is the only entry point. Every decision the nginx
config needs is made here: which frontends an edge serves, how Kubernetes Prefix/Exact paths
become locations, which host gets the default server, how draining targets are used, what
open-source nginx cannot do (PROXY protocol from the http module, PROXY v2) and is therefore
left out with a finding, and which ports would clash between the http and stream modules.
A TLS route whose certificate the operator did not give is left out with a finding too: a
tenant's claim never stops the edge for everybody, only the operator's configuration does.

The model was validated when it was built; this module checks every value again against a
grammar narrower than nginx's own syntax (defence in depth) and raises ViewError, naming the
frontend or backend and the field, for anything that could break a config line.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g

__all__ = ["ViewError", "ViewOptions", "build_view"]

REFUSE_UPSTREAM = "k8sedge-refuse"  # no backend name can take it: those always contain '_'
NOT_FOUND = 'return 404 "k8sedge: no route for this host\\n"'
NO_PATH = 'return 404 "k8sedge: no route for this host and path\\n"'
NO_TARGETS = 'return 503 "k8sedge: no ready targets for this route\\n"'

_DIRECTORY = re.compile(r"/[A-Za-z0-9._/-]{1,200}")
_GENERATION = re.compile(r"[0-9a-f]{64}")
_BALANCE = {"roundrobin": "", "leastconn": "least_conn", "source": "hash $remote_addr consistent"}
_HEALTH = ("tcp", "http", "none")
_PROXY = ("none", "v1", "v2")
_STATES = ("ready", "draining")

Finding = dict[str, str]


class ViewError(ValueError):
    """A value the view refuses to render; the message names the object and the field."""


@dataclass(frozen=True)
class ViewOptions:
    """What the operator chose for this edge (the role's inputs)."""

    directory: str  # absolute path of the release the config is rendered into
    pools: tuple[str, ...] = ("default",)
    certificates: dict[str, Any] = field(default_factory=dict)  # name -> {cert, key} PEM
    admin_address: str = "127.0.0.1"
    admin_port: int = 8405
    pool_addresses: dict[str, str] = field(default_factory=dict)  # pool -> listen address
    max_fails: int = 2
    fail_timeout_s: int = 10


# --- checks -----------------------------------------------------------------------------------

def _fail(where: str, what: str, value: Any) -> ViewError:
    shown = value if isinstance(value, (int, bool)) or value is None else repr(value)[:80]
    return ViewError(f"{where}: expected {what}, got {shown}")


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ViewError(f"{where}: missing field {key}")
    return obj[key]


def _accepts(accept: Callable[[Any], Any], value: Any) -> bool:
    """Whether the grammar accept() (module_utils/_grammar) takes value as it is spelled."""
    try:
        return accept(value) == value
    except g.InvalidValue:
        return False


def _valid(obj: Any, key: str, accept: Callable[[Any], Any], what: str, where: str) -> str:
    value = _get(obj, key, where)
    if not _accepts(accept, value):
        raise _fail(f"{where} field {key}", what, value)
    return value


def _generation(value: Any) -> Any:
    if not isinstance(value, str) or not _GENERATION.fullmatch(value):
        raise g.InvalidValue("expected a sha256 hex digest")
    return value


def _host(value: Any, where: str) -> str:
    """A host name as the model spells it (lowercase), a '*.' wildcard, or '*' (any host)."""
    if value != "*" and not _accepts(g.hostname, value):
        raise _fail(where, "a host name or *", value)
    return value


def _one_of(obj: Any, key: str, allowed: Any, where: str) -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str) or value not in allowed:
        raise _fail(f"{where} field {key}", f"one of {', '.join(sorted(allowed))}", value)
    return value


def _int(obj: Any, key: str, low: int, high: int, where: str) -> int:
    value = _get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(f"{where} field {key}", f"an integer {low}-{high}", value)
    return value


def _bool(obj: Any, key: str, where: str) -> bool:
    value = _get(obj, key, where)
    if not isinstance(value, bool):
        raise _fail(f"{where} field {key}", "true or false", value)
    return value


def _list(obj: Any, key: str, where: str) -> list[Any]:
    value = _get(obj, key, where)
    if not isinstance(value, list):
        raise _fail(f"{where} field {key}", "a list", value)
    return value


def _ip(value: Any, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return g.canonical_ip(value)
    except g.InvalidValue:
        raise _fail(where, "an IP address in canonical form", value) from None


def _socket(address: str, port: int) -> str:
    """address:port as nginx spells it; an empty address is every address."""
    if not address:
        return str(port)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# --- backends -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Backend:
    name: str
    balance: str
    health: str
    proxy_protocol: str
    connect_ms: int
    server_ms: int
    servers: tuple[str, ...]  # "address:port parameters", empty when there is no target


def _read_backend(raw: Any, options: ViewOptions) -> _Backend:
    where = "backend"
    name = _valid(raw, "name", g.model_name, "a backend name ([a-z0-9_.-])", where)
    where = f"backend {name}"
    balance = _one_of(raw, "balance", _BALANCE, where)
    health = _one_of(_get(raw, "health_check", where), "type", _HEALTH, f"{where} field health_check")
    proxy = _one_of(raw, "proxy_protocol", _PROXY, where)
    timeouts = _get(raw, "timeouts", where)
    connect_ms = _int(timeouts, "connect_ms", 1, g.MAX_DURATION_MS, f"{where} field timeouts")
    server_ms = _int(timeouts, "server_ms", 1, g.MAX_DURATION_MS, f"{where} field timeouts")
    ready, draining = [], []
    for i, target in enumerate(_list(raw, "targets", where)):
        at = f"{where} field targets[{i}]"
        address = str(_ip(_get(target, "address", at), f"{at}.address"))
        port = _int(target, "port", 1, 65535, at)
        state = _one_of(target, "state", _STATES, at)
        (ready if state == "ready" else draining).append(_socket(address, port))
    # Draining targets (terminating but still serving) take traffic only when nothing else can.
    chosen = sorted(set(ready or draining))
    checks = "max_fails=0" if health == "none" else f"max_fails={options.max_fails} fail_timeout={options.fail_timeout_s}s"
    return _Backend(name, balance, health, proxy, connect_ms, server_ms, tuple(f"{s} {checks}" for s in chosen))


def _upstream(backend: _Backend) -> dict[str, Any]:
    directives = [_BALANCE[backend.balance]] if _BALANCE[backend.balance] else []
    directives += [f"server {s}" for s in backend.servers]
    return {"name": backend.name, "directives": directives}


def _refuse_upstream() -> dict[str, Any]:
    # A server marked down: nginx accepts the connection and closes it ("no live upstreams").
    return {"name": REFUSE_UPSTREAM, "directives": ["server 127.0.0.1:9 down"]}


# --- frontends ------------------------------------------------------------------------------------

@dataclass
class _Context:
    options: ViewOptions
    backends: dict[str, _Backend]
    findings: list[Finding] = field(default_factory=list)
    http_used: set[str] = field(default_factory=set)
    stream_used: set[str] = field(default_factory=set)
    certificates: set[str] = field(default_factory=set)
    uncertified: set[tuple[str, ...]] = field(default_factory=set)  # (pool, host, path, path_type, backend) left out

    def backend(self, name: Any, where: str) -> _Backend:
        if not isinstance(name, str) or name not in self.backends:
            raise _fail(f"{where} field backend", "the name of a backend of the model", name)
        return self.backends[name]

    def skip(self, frontend: str, backend: str, field_name: str, message: str) -> None:
        self.findings.append({"frontend": frontend, "backend": backend, "field": field_name, "message": message})


@dataclass(frozen=True)
class _Route:
    host: str
    path: str
    path_type: str
    backend: _Backend
    redirect: bool
    certificate: str  # "" outside a TLS frontend


def _read_route(raw: Any, at: str, tls: bool, ctx: _Context) -> _Route:
    return _Route(
        host=_host(_get(raw, "host", at), f"{at}.host"),
        path=_valid(raw, "path", g.path, "a path ('/' then letters, digits and . _ ~ / -)", at),
        path_type=_one_of(raw, "path_type", ("prefix", "exact"), at),
        backend=ctx.backend(_get(raw, "backend", at), at),
        redirect=_bool(raw, "redirect_https", at),
        certificate=_valid(raw, "certificate", g.dns_label, "a certificate name (DNS label)", at) if tls else "",
    )


def _uncertified(frontends: list[tuple[str, str, dict[str, Any]]], ctx: _Context) -> list[tuple[str, str, dict[str, Any]]]:
    """Leave out each TLS route whose certificate the operator did not give, with a finding (one
    tenant's claim must not stop the edge for everybody), and a TLS frontend left with no route.
    The routes left out go to ctx.uncertified, for their redirects from plain HTTP to go too."""
    kept = []
    for name, pool, raw in frontends:
        if raw.get("protocol") == "http" and raw.get("tls") is True:
            where = f"frontend {name}"
            routes = _list(raw, "routes", where)
            left = len(routes)
            for i, item in enumerate(routes):
                route = _read_route(item, f"{where} field routes[{i}]", True, ctx)
                if route.certificate not in ctx.options.certificates:
                    ctx.skip(name, route.backend.name, f"routes[{i}].certificate",
                             f"route {route.host}{route.path} needs certificate {route.certificate}, which is not in"
                             f" edge_nginx_certificates (have: {', '.join(sorted(ctx.options.certificates)) or 'none'}; certificates"
                             " come from Ansible, files or vault, cluster Secrets are never read): the route and its redirect from"
                             " plain HTTP are not served")
                    ctx.uncertified.add((pool, route.host, route.path, route.path_type, route.backend.name))
                    left -= 1
            if not left:
                ctx.skip(name, "", "routes", f"no route left to serve: frontend {name} not served")
                continue
        kept.append((name, pool, raw))
    return kept


def _location_matches(path: str, path_type: str) -> list[str]:
    """Kubernetes path matching in nginx locations: Exact is `= path`; Prefix matches whole
    path elements, so /foo is `= /foo` and `/foo/` (never /foobar), and / is everything."""
    if path_type == "exact":
        return [f"= {path}"]
    stem = path.rstrip("/")
    return ["/"] if not stem else [f"= {stem}", f"{stem}/"]


def _proxy_directives(backend: _Backend) -> list[str]:
    return [
        f"proxy_pass http://{backend.name}",
        f"proxy_connect_timeout {backend.connect_ms}ms",
        f"proxy_read_timeout {backend.server_ms}ms",
        f"proxy_send_timeout {backend.server_ms}ms",
    ]


def _http_servers(frontend: dict[str, Any], name: str, listen: str, tls_ports: dict[str, int], ctx: _Context) -> list[dict[str, Any]]:
    """One server per host name (a TLS frontend: with that host's certificate) and the
    default server: the routes of host `*` when there are any, else a plain 404."""
    where = f"frontend {name}"
    tls = _bool(frontend, "tls", where)
    pool = frontend["pool"]
    hosts: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(_list(frontend, "routes", where)):
        route = _read_route(item, f"{where} field routes[{i}]", tls, ctx)
        host, path, backend, certificate = route.host, route.path, route.backend, route.certificate
        # Left out with a finding; the model gives its host and path to no other route than its
        # redirect from plain HTTP, which goes with it.
        if (pool, host, path, route.path_type, backend.name) in ctx.uncertified:
            continue
        server = hosts.setdefault(host, {"certificate": certificate, "locations": {}})
        if certificate and certificate != server["certificate"]:
            ctx.skip(name, backend.name, f"routes[{i}].certificate", f"host {host} already uses certificate {server['certificate']}"
                     f" (one certificate per host name in nginx): route {host}{path} is served with it")
        if route.redirect:
            port = tls_ports.get(pool)
            target = "https://$host" + ("" if port in (None, 443) else f":{port}") + "$request_uri"
            directives = [f"return 308 {target}"]
        elif backend.proxy_protocol != "none":
            ctx.skip(name, backend.name, "proxy_protocol", f"open-source nginx cannot send PROXY protocol from HTTP: route {host}{path} not served")
            continue
        elif not backend.servers:
            directives = [NO_TARGETS]
        else:
            ctx.http_used.add(backend.name)
            directives = _proxy_directives(backend)
        for match in _location_matches(path, route.path_type):
            # The model lists the longest path first: the first route to claim a location wins.
            if match in server["locations"]:
                ctx.skip(name, backend.name, f"routes[{i}].path", f"location {match} of host {host} is already served: route {host}{path} not served there")
                continue
            server["locations"][match] = directives
    ssl = " ssl" if tls else ""
    servers = []
    default = hosts.pop("*", None)
    for host in sorted(hosts):
        directives = [f"listen {listen}{ssl}", f"server_name {host}"]
        if tls:
            directives += _certificate_directives(hosts[host]["certificate"], ctx)
        servers.append({"directives": directives, "locations": _locations(hosts[host]["locations"])})
    directives = [f"listen {listen}{ssl} default_server", 'server_name ""']
    if tls:
        if default is not None and default["certificate"]:
            directives += _certificate_directives(default["certificate"], ctx)
        else:
            directives.append("ssl_reject_handshake on")  # an unknown name gets no certificate
    if default is None:
        locations = [{"match": "/", "directives": [NOT_FOUND]}]
    else:
        locations = _locations(default["locations"])
    servers.append({"directives": directives, "locations": locations})
    return servers


def _locations(by_match: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The server's locations and, unless a route claims `/`, a `location /` that answers 404: a
    request no location matches would otherwise be served from nginx's default document root."""
    by_match = {"/": [NO_PATH], **by_match}
    # Order does not change nginx's matching; sorted so a re-run renders the same bytes.
    return [{"match": match, "directives": by_match[match]} for match in sorted(by_match)]


def _certificate_directives(name: str, ctx: _Context) -> list[str]:
    ctx.certificates.add(name)
    directory = ctx.options.directory
    return [f"ssl_certificate {directory}/certs/{name}.crt", f"ssl_certificate_key {directory}/certs/{name}.key"]


def _stream_server(frontend: dict[str, Any], name: str, listen: str, protocol: str, ctx: _Context) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(server, map) of a TCP or UDP frontend; TLS passthrough routes by SNI through a map."""
    where = f"frontend {name}"
    accepts_proxy = protocol == "tcp" and _bool(frontend, "accept_proxy", where)
    accept = " proxy_protocol" if accepts_proxy else ""
    udp = " udp" if protocol == "udp" else ""
    sni = _list(frontend, "sni", where) if protocol == "tcp" else []
    if not sni:
        backend = ctx.backend(_get(frontend, "backend", where), where)
        if backend.proxy_protocol == "v2":
            ctx.skip(name, backend.name, "proxy_protocol", f"open-source nginx sends PROXY protocol v1 only: frontend {name} not served")
            return None, None
        chosen = [backend]
        target = backend.name if backend.servers else REFUSE_UPSTREAM
        mapping = None
    else:
        variable = "$k8sedge_sni_" + name.replace("-", "_").replace(".", "_")
        entries, chosen, default = [], [], REFUSE_UPSTREAM
        candidates = []
        for i, route in enumerate(sni):
            at = f"{where} field sni[{i}]"
            host = _host(_get(route, "host", at), f"{at}.host")
            candidates.append((i, host, ctx.backend(_get(route, "backend", at), at)))
        # One server block sends PROXY protocol to all its backends or to none: the majority wins.
        wanted = [candidate[2].proxy_protocol for candidate in candidates if candidate[2].proxy_protocol != "v2"]
        proxy = "v1" if wanted.count("v1") > wanted.count("none") else "none"
        for i, host, backend in candidates:
            if backend.proxy_protocol != proxy:
                ctx.skip(name, backend.name, f"sni[{i}].proxy_protocol", f"{host} needs PROXY protocol {backend.proxy_protocol}, the frontend"
                         f" sends {proxy} (nginx: one setting per server, v1 only): not served")
                continue
            chosen.append(backend)
            upstream = backend.name if backend.servers else REFUSE_UPSTREAM
            if host == "*":
                default = upstream
            else:
                entries.append(f"{host} {upstream}")
        mapping = {"variable": variable, "directives": ["hostnames", *sorted(entries), f"default {default}"]}
        target = variable
    if not chosen:
        return None, None
    directives = [f"listen {listen}{udp}{accept}"]
    if accepts_proxy:
        # The client is the one the PROXY header names (a listener that accepts PROXY trusts its
        # senders, as haproxy's accept-proxy does): the PROXY header sent on and `hash
        # $remote_addr` (balance source) then carry it, not the load balancer in front.
        directives += ["set_real_ip_from 0.0.0.0/0", "set_real_ip_from ::/0"]
    if sni:
        directives.append("ssl_preread on")
    directives += [
        f"proxy_pass {target}",
        f"proxy_connect_timeout {max(b.connect_ms for b in chosen)}ms",
        f"proxy_timeout {max(b.server_ms for b in chosen)}ms",
    ]
    if protocol == "tcp":
        # A client that sends its request and shuts its side (the seed's `printf | socat`) still
        # gets the answer.
        directives.append("proxy_half_close on")
    if any(b.proxy_protocol == "v1" for b in chosen):
        directives.append("proxy_protocol on")
    for backend in chosen:
        if backend.servers:
            ctx.stream_used.add(backend.name)
    return {"frontend": name, "directives": directives}, mapping


# --- assembly -------------------------------------------------------------------------------------

def _check_options(options: ViewOptions) -> None:
    if not isinstance(options.directory, str) or not _DIRECTORY.fullmatch(options.directory) or "/." in options.directory:
        raise _fail("option directory", "an absolute path of letters, digits and . _ / -", options.directory)
    for pool in options.pools:
        if not _accepts(g.dns_label, pool):
            raise _fail("option pools", "pool names (DNS labels)", pool)
    for pool, address in options.pool_addresses.items():
        _ip(address, f"option pool_addresses[{pool}]")
    _ip(options.admin_address, "option admin_address")
    for key, low, high in (("admin_port", 1, 65535), ("max_fails", 0, 100), ("fail_timeout_s", 1, 3600)):
        _int({key: getattr(options, key)}, key, low, high, "option")
    for name, pair in options.certificates.items():
        if not _accepts(g.dns_label, name):
            raise _fail("option certificates", "certificate names (DNS labels)", name)
        for part in ("cert", "key"):
            value = pair.get(part) if isinstance(pair, dict) else None
            if not _accepts(g.pem, value):
                raise ViewError(f"option certificates[{name}].{part}: expected PEM text (-----BEGIN ...----- to -----END ...-----)")


def _claim_port(ports: dict[tuple[int, str], list[tuple[str, str, str, str]]], port: int, transport: str, module: str, address: str,
                owner: str, pool: str) -> None:
    """Refuse two listeners nginx could not both have: one address and port twice in a module (in
    http, a second default server), or one port in both the http and the stream module unless on
    two distinct addresses. Within a module nginx serves a specific address through the wildcard.

    The model refuses tenants' claims per object, within a pool and on its reserved ports; what is
    left to clash here is the operator's choice of admin port or of pool addresses."""
    for other_module, other_address, other, other_pool in ports.get((port, transport), []):
        if address == other_address or (other_module != module and not (address and other_address)):
            if other_pool:
                fix = f"give pools {other_pool} and {pool} distinct addresses in edge_nginx_pool_addresses"
            else:
                fix = (f"add {port} to edge_info's reserved_ports option, so that claims on it are refused per object,"
                       " or choose another admin port")
            raise ViewError(f"{owner}: port {port}/{transport} on {address or 'every address'} is also used by {other}: {fix}")
    ports.setdefault((port, transport), []).append((module, address, owner, pool))


def _bucket_size(longest_key: int) -> int:
    """A hash bucket that holds the longest key: nginx's default (one 64-byte cache line) holds
    keys of at most 46 characters and refuses to start otherwise."""
    size = 64
    while size < longest_key + 32:  # the key plus nginx's per-entry pointer, length and alignment
        size *= 2
    return size


def _hash_bucket_sizes(http_servers: list[dict[str, Any]], maps: list[dict[str, Any]]) -> dict[str, int]:
    names = [d.split(" ", 1)[1] for s in http_servers for d in s["directives"] if d.startswith("server_name ")]
    keys = [d.split(" ", 1)[0] for m in maps for d in m["directives"] if d != "hostnames" and not d.startswith("default ")]
    variables = [m["variable"] for m in maps]
    return {
        "server_names": _bucket_size(max(map(len, names), default=0)),
        "map": _bucket_size(max(map(len, keys), default=0)),
        "variables": _bucket_size(max(map(len, variables), default=0)),
    }


def build_view(model: Any, options: ViewOptions) -> dict[str, Any]:
    """What the templates render for `options.pools` of `model`; see the module's docstring."""
    _check_options(options)
    generation = _valid(model, "generation", _generation, "a sha256 hex digest", "model")
    backends = {}
    for raw in _list(model, "backends", "model"):
        backend = _read_backend(raw, options)
        backends[backend.name] = backend
    ctx = _Context(options, backends)
    frontends = []
    for i, raw in enumerate(_list(model, "frontends", "model")):
        name = _valid(raw, "name", g.model_name, "a frontend name", f"model field frontends[{i}]")
        pool = _valid(raw, "pool", g.dns_label, "a pool name", f"frontend {name}")
        if pool in options.pools:
            frontends.append((name, pool, raw))
    frontends = _uncertified(frontends, ctx)
    tls_ports = {pool: _int(raw, "port", 1, 65535, f"frontend {name}") for name, pool, raw in frontends
                 if raw.get("protocol") == "http" and raw.get("tls") is True}
    ports: dict[tuple[int, str], list[tuple[str, str, str, str]]] = {}
    _claim_port(ports, options.admin_port, "tcp", "http", options.admin_address, "the admin listener (edge_nginx_admin_port)", "")
    http_servers, stream_servers, maps = [], [], []
    for name, pool, raw in frontends:  # the model's order: pool, protocol, port
        where = f"frontend {name}"
        protocol = _one_of(raw, "protocol", ("http", "tcp", "udp"), where)
        port = _int(raw, "port", 1, 65535, where)
        address = options.pool_addresses.get(pool, "")
        listen = _socket(address, port)
        _claim_port(ports, port, "udp" if protocol == "udp" else "tcp", "http" if protocol == "http" else "stream", address, where, pool)
        if protocol == "http":
            http_servers += _http_servers(raw, name, listen, tls_ports, ctx)
        else:
            server, mapping = _stream_server(raw, name, listen, protocol, ctx)
            if server is not None:
                stream_servers.append(server)
            if mapping is not None:
                maps.append(mapping)
    refuse = any(REFUSE_UPSTREAM in d for s in stream_servers for d in s["directives"]) or any(
        REFUSE_UPSTREAM in d for m in maps for d in m["directives"])
    stream_upstreams = [_upstream(backends[n]) for n in sorted(ctx.stream_used)] + ([_refuse_upstream()] if refuse else [])
    pod_mode = any(raw.get("mode") == "pod" for raw in model["backends"] if raw.get("name") in ctx.http_used | ctx.stream_used)
    routes = []
    if pod_mode:
        for i, route in enumerate(_list(model, "routes", "model")):
            at = f"model field routes[{i}]"
            cidr = _get(route, "cidr", at)
            if not _accepts(lambda value: str(g.cidr(value)), cidr):
                raise _fail(f"{at}.cidr", "a CIDR in canonical form", cidr)
            routes.append({"cidr": cidr, "via": str(_ip(_get(route, "via", at), f"{at}.via"))})
    view = {
        "generation": generation,
        "hash_bucket_sizes": _hash_bucket_sizes(http_servers, maps),
        "pools": sorted(options.pools),
        "admin": {"listen": _socket(options.admin_address, options.admin_port)},
        "http": {"upstreams": [_upstream(backends[n]) for n in sorted(ctx.http_used)], "servers": http_servers},
        "stream": {"upstreams": stream_upstreams, "maps": maps, "servers": stream_servers},
        "certificates": [{
            "name": name,
            "digest": hashlib.sha256((options.certificates[name]["cert"] + options.certificates[name]["key"]).encode()).hexdigest(),
        } for name in sorted(ctx.certificates)],
        "routes": sorted(routes, key=lambda r: (ipaddress.ip_network(r["cidr"]).version, ipaddress.ip_network(r["cidr"]))),
        "findings": ctx.findings,
    }
    view["digest"] = hashlib.sha256(json.dumps(view, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return view
