# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edge model as nginx sees it: render-ready data for roles/edge_nginx's templates.

Pure: no I/O, no Ansible. `nginx_view(model, options)` makes every decision the nginx config
needs: which frontends an edge serves, how Kubernetes Prefix/Exact paths become locations, which
host gets the default server, how draining targets are used, what open-source nginx cannot do
(PROXY protocol from the http module, PROXY v2) and is therefore left out with a finding, and
which ports would clash between the http and stream modules. A TLS route whose certificate the
operator did not give is left out with a finding too: a tenant's claim never stops the edge for
everybody, only the operator's configuration does. The templates spell the nginx syntax.

The view does not depend on the release directory it is rendered into: its `digest` names the
release, and the templates put the directory into the paths.

The model was validated when it was built; every value is checked again against a grammar
narrower than nginx's own syntax (defence in depth), through module_utils/_view's Checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._view import (
    ANY_HOST, Checker, Finding, ViewError, certificate_digest, check_certificates, endpoint, json_digest, named, path_matches,
    pod_routes)

__all__ = ["REFUSE_UPSTREAM", "ViewError", "ViewOptions", "nginx_view"]

REFUSE_UPSTREAM = "k8sedge-refuse"  # no backend name can take it: those always contain '_'

_GENERATION = re.compile(r"[0-9a-f]{64}")
_BALANCES = ("roundrobin", "leastconn", "source")
_HEALTH = ("tcp", "http", "none")
_PROXY = ("none", "v1", "v2")
_STATES = ("ready", "draining")


@dataclass(frozen=True)
class ViewOptions:
    """What the operator chose for this edge (the role's inputs)."""

    pools: tuple[str, ...] = ("default",)
    certificates: dict[str, Any] = field(default_factory=dict)  # name -> {cert, key} PEM
    admin_address: str = "127.0.0.1"
    admin_port: int = 8405
    pool_addresses: dict[str, str] = field(default_factory=dict)  # pool -> listen address
    max_fails: int = 2
    fail_timeout_s: int = 10


def _listen(address: str, port: int) -> str:
    """address:port as nginx listens; an empty address is every address."""
    return endpoint(address, port) if address else str(port)


# --- backends -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Backend:
    name: str
    balance: str
    health: str
    proxy_protocol: str
    connect_ms: int
    server_ms: int
    servers: tuple[str, ...]  # address:port of the targets nginx sends to; empty when there is none


def _read_backend(raw: Any, i: int) -> _Backend:
    raw = Checker("model").mapping(f"backends[{i}]", raw)
    name, c = named("backend", raw.get("name"))
    balance = c.choice("balance", raw.get("balance"), _BALANCES)
    health = c.choice("health_check.type", c.mapping("health_check", raw.get("health_check")).get("type"), _HEALTH)
    proxy = c.choice("proxy_protocol", raw.get("proxy_protocol"), _PROXY)
    timeouts = c.mapping("timeouts", raw.get("timeouts"))
    connect_ms = c.milliseconds("timeouts.connect_ms", timeouts.get("connect_ms"))
    server_ms = c.milliseconds("timeouts.server_ms", timeouts.get("server_ms"))
    ready, draining = [], []
    for i, target in enumerate(c.sequence("targets", raw.get("targets"))):
        target = c.mapping(f"targets[{i}]", target)
        address = str(c.address(f"targets[{i}].address", target.get("address")))
        port = c.port(f"targets[{i}].port", target.get("port"))
        state = c.choice(f"targets[{i}].state", target.get("state"), _STATES)
        (ready if state == "ready" else draining).append(endpoint(address, port))
    # Draining targets (terminating but still serving) take traffic only when nothing else can.
    return _Backend(name, balance, health, proxy, connect_ms, server_ms, tuple(sorted(set(ready or draining))))


def _upstream(backend: _Backend, options: ViewOptions) -> dict[str, Any]:
    """An upstream block; open-source nginx checks passively: max_fails and fail_timeout."""
    checked = backend.health != "none"
    return {"name": backend.name, "balance": backend.balance, "servers": list(backend.servers), "checked": checked,
            "max_fails": options.max_fails if checked else 0, "fail_timeout": options.fail_timeout_s}


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

    def backend(self, c: Checker, what: str, name: Any) -> _Backend:
        if not isinstance(name, str) or name not in self.backends:
            raise c.fail(what, "the name of a backend of the model", name)
        return self.backends[name]


@dataclass(frozen=True)
class _Route:
    host: str
    path: str
    path_type: str
    backend: _Backend
    redirect: bool
    certificate: str  # "" outside a TLS frontend


def _read_route(raw: Any, c: Checker, i: int, tls: bool, ctx: _Context) -> _Route:
    at = f"routes[{i}]"
    raw = c.mapping(at, raw)
    return _Route(
        host=c.host(f"{at}.host", raw.get("host")),
        path=c.path(f"{at}.path", raw.get("path")),
        path_type=c.choice(f"{at}.path_type", raw.get("path_type"), ("prefix", "exact")),
        backend=ctx.backend(c, f"{at}.backend", raw.get("backend")),
        redirect=c.flag(f"{at}.redirect_https", raw.get("redirect_https")),
        certificate=c.name(f"{at}.certificate", raw.get("certificate")) if tls else "",
    )


def _uncertified(frontends: list[tuple[str, str, dict[str, Any]]], ctx: _Context) -> list[tuple[str, str, dict[str, Any]]]:
    """Leave out each TLS route whose certificate the operator did not give, with a finding (one
    tenant's claim must not stop the edge for everybody), and a TLS frontend left with no route.
    The routes left out go to ctx.uncertified, for their redirects from plain HTTP to go too."""
    kept = []
    for name, pool, raw in frontends:
        c = Checker(f"frontend {name}")
        if raw.get("protocol") == "http" and c.flag("tls", raw.get("tls")):
            routes = c.sequence("routes", raw.get("routes"))
            left = len(routes)
            for i, item in enumerate(routes):
                route = _read_route(item, c, i, True, ctx)
                if route.certificate not in ctx.options.certificates:
                    ctx.findings.append(c.finding(
                        f"routes[{i}].certificate",
                        f"route {route.host}{route.path} to backend {route.backend.name} needs certificate {route.certificate}, which"
                        f" is not in certificates (have: {', '.join(sorted(ctx.options.certificates)) or 'none'};"
                        " certificates come from Ansible, files or vault, cluster Secrets are never read): the route and its"
                        " redirect from plain HTTP are not served"))
                    ctx.uncertified.add((pool, route.host, route.path, route.path_type, route.backend.name))
                    left -= 1
            if not left:
                ctx.findings.append(c.finding("routes", "no route left to serve: the frontend is not served"))
                continue
        kept.append((name, pool, raw))
    return kept


def _location(path: str, kind: str, answer: str, backend: _Backend | None = None, https_port: int = 0) -> dict[str, Any]:
    """A location and how it answers: `proxy` (to the backend's upstream), `redirect` (to HTTPS on
    https_port, 0: the default port), `no_targets` (503), `no_path` or `no_host` (404)."""
    return {"path": path, "exact": kind == "exact", "answer": answer, "upstream": backend.name if backend else "",
            "connect_ms": backend.connect_ms if backend else 0, "server_ms": backend.server_ms if backend else 0,
            "https_port": https_port}


def _http_servers(frontend: dict[str, Any], name: str, listen: str, tls_ports: dict[str, int], ctx: _Context) -> list[dict[str, Any]]:
    """One server per host name (a TLS frontend: with that host's certificate) and the
    default server: the routes of host `*` when there are any, else a plain 404."""
    c = Checker(f"frontend {name}")
    tls = c.flag("tls", frontend.get("tls"))
    pool = frontend["pool"]
    hosts: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(c.sequence("routes", frontend.get("routes"))):
        route = _read_route(item, c, i, tls, ctx)
        host, path, backend, certificate = route.host, route.path, route.backend, route.certificate
        # Left out with a finding; the model gives its host and path to no other route than its
        # redirect from plain HTTP, which goes with it.
        if (pool, host, path, route.path_type, backend.name) in ctx.uncertified:
            continue
        server = hosts.setdefault(host, {"certificate": certificate, "locations": {}})
        if certificate and certificate != server["certificate"]:
            ctx.findings.append(c.finding(f"routes[{i}].certificate", f"host {host} already uses certificate {server['certificate']}"
                                          f" (one certificate per host name in nginx): route {host}{path} is served with it"))
        if route.redirect:
            port = tls_ports.get(pool)
            answer, https_port = "redirect", 0 if port in (None, 443) else port
        elif backend.proxy_protocol != "none":
            ctx.findings.append(c.finding(f"routes[{i}].backend", f"backend {backend.name} sends PROXY protocol {backend.proxy_protocol},"
                                          f" which open-source nginx cannot send from HTTP: route {host}{path} not served"))
            continue
        elif not backend.servers:
            answer, https_port = "no_targets", 0
        else:
            ctx.http_used.add(backend.name)
            answer, https_port = "proxy", 0
        for kind, match in path_matches(path, route.path_type):
            # The model lists the longest path first: the first route to claim a location wins.
            if (kind, match) in server["locations"]:
                ctx.findings.append(c.finding(f"routes[{i}].path", f"{kind} path {match} of host {host} is already served: route"
                                              f" {host}{path} not served there"))
                continue
            server["locations"][(kind, match)] = _location(match, kind, answer, backend if answer == "proxy" else None, https_port)
    servers = []
    default = hosts.pop(ANY_HOST, None)
    for host in sorted(hosts):
        servers.append(_server(listen, tls, False, host, hosts[host]["certificate"] if tls else "", hosts[host]["locations"], ctx))
    if default is None:
        servers.append({**_server(listen, tls, True, "", "", {}, ctx), "locations": [_location("/", "prefix", "no_host")]})
    else:
        servers.append(_server(listen, tls, True, "", default["certificate"] if tls else "", default["locations"], ctx))
    return servers


def _server(listen: str, tls: bool, default: bool, host: str, certificate: str, locations: dict[tuple[str, str], dict[str, Any]],
            ctx: _Context) -> dict[str, Any]:
    """A server block. Its locations, and unless a route claims `/`, a `location /` that answers
    404: a request no location matches would otherwise be served from nginx's default document
    root. A TLS default server without a certificate rejects the handshake of an unknown name."""
    if certificate:
        ctx.certificates.add(certificate)
    locations = {("prefix", "/"): _location("/", "prefix", "no_path"), **locations}
    # Order does not change nginx's matching; sorted so a re-run renders the same bytes.
    return {"listen": listen, "ssl": tls, "default": default, "name": host, "certificate": certificate,
            "reject_handshake": tls and not certificate,
            "locations": [locations[key] for key in sorted(locations, key=lambda k: (k[0] == "exact", k[1]))]}


def _stream_server(frontend: dict[str, Any], name: str, listen: str, protocol: str,
                   ctx: _Context) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(server, map) of a TCP or UDP frontend; TLS passthrough routes by SNI through a map."""
    c = Checker(f"frontend {name}")
    accepts_proxy = protocol == "tcp" and c.flag("accept_proxy", frontend.get("accept_proxy"))
    sni = c.sequence("sni", frontend.get("sni")) if protocol == "tcp" else []
    if not sni:
        backend = ctx.backend(c, "backend", frontend.get("backend"))
        if backend.proxy_protocol == "v2":
            ctx.findings.append(c.finding("backend", f"backend {backend.name} sends PROXY protocol v2; open-source nginx sends v1 only:"
                                                     " the frontend is not served"))
            return None, None
        chosen = [backend]
        target = backend.name if backend.servers else REFUSE_UPSTREAM
        mapping = None
    else:
        variable = "$k8sedge_sni_" + name.replace("-", "_").replace(".", "_")
        entries, chosen, default = [], [], REFUSE_UPSTREAM
        candidates = []
        for i, route in enumerate(sni):
            route = c.mapping(f"sni[{i}]", route)
            candidates.append((i, c.host(f"sni[{i}].host", route.get("host")), ctx.backend(c, f"sni[{i}].backend", route.get("backend"))))
        # One server block sends PROXY protocol to all its backends or to none: the majority wins.
        wanted = [candidate[2].proxy_protocol for candidate in candidates if candidate[2].proxy_protocol != "v2"]
        proxy = "v1" if wanted.count("v1") > wanted.count("none") else "none"
        for i, host, backend in candidates:
            if backend.proxy_protocol != proxy:
                ctx.findings.append(c.finding(f"sni[{i}].backend", f"{host} needs PROXY protocol {backend.proxy_protocol} (backend"
                                              f" {backend.name}), the frontend sends {proxy} (nginx: one setting per server, v1 only):"
                                              " not served"))
                continue
            chosen.append(backend)
            upstream = backend.name if backend.servers else REFUSE_UPSTREAM
            if host == ANY_HOST:
                default = upstream
            else:
                entries.append({"host": host, "upstream": upstream})
        mapping = {"variable": variable, "entries": sorted(entries, key=lambda e: (e["host"], e["upstream"])), "default": default}
        target = variable
    if not chosen:
        return None, None
    for backend in chosen:
        if backend.servers:
            ctx.stream_used.add(backend.name)
    server = {
        "frontend": name,
        "listen": listen,
        "udp": protocol == "udp",
        # The client is the one the PROXY header names (a listener that accepts PROXY trusts its
        # senders, as haproxy's accept-proxy does).
        "accept_proxy": accepts_proxy,
        "ssl_preread": bool(sni),
        "target": target,
        "connect_ms": max(b.connect_ms for b in chosen),
        "server_ms": max(b.server_ms for b in chosen),
        # A client that sends its request and shuts its side (the seed's `printf | socat`) still
        # gets the answer.
        "half_close": protocol == "tcp",
        "proxy_protocol": any(b.proxy_protocol == "v1" for b in chosen),
    }
    return server, mapping


# --- assembly -------------------------------------------------------------------------------------

def _check_options(options: ViewOptions) -> None:
    c = Checker("options")
    if isinstance(options.pools, str) or not isinstance(options.pools, (list, tuple)):
        raise c.fail("pools", "a list of pool names", options.pools)
    for pool in options.pools:
        c.name("pools[]", pool)
    for pool, address in c.mapping("pool_addresses", options.pool_addresses).items():
        c.address(f"pool_addresses[{pool}]", address)
    c.address("admin_address", options.admin_address)
    c.port("admin_port", options.admin_port)
    c.integer("max_fails", options.max_fails, 0, 100)
    c.integer("fail_timeout", options.fail_timeout_s, 1, 3600)
    check_certificates(options.certificates, "certificates")


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
                fix = f"give pools {other_pool} and {pool} distinct addresses in pool_addresses"
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
    return {
        "server_names": _bucket_size(max((len(s["name"]) for s in http_servers), default=0)),
        "map": _bucket_size(max((len(e["host"]) for m in maps for e in m["entries"]), default=0)),
        "variables": _bucket_size(max((len(m["variable"]) for m in maps), default=0)),
    }


def nginx_view(model: Any, options: ViewOptions) -> dict[str, Any]:
    """What the templates render for `options.pools` of `model`; see the module's docstring."""
    _check_options(options)
    c = Checker("model")
    model = c.mapping("model", model)
    generation = c.matches("generation", model.get("generation"), _GENERATION, "a sha256 hex digest")
    backends = {}
    for i, raw in enumerate(c.sequence("backends", model.get("backends"))):
        backend = _read_backend(raw, i)
        backends[backend.name] = backend
    ctx = _Context(options, backends)
    frontends = []
    for i, raw in enumerate(c.sequence("frontends", model.get("frontends"))):
        name = c.name(f"frontends[{i}].name", c.mapping(f"frontends[{i}]", raw).get("name"))
        pool = Checker(f"frontend {name}").name("pool", raw.get("pool"))
        if pool in options.pools:
            frontends.append((name, pool, raw))
    frontends = _uncertified(frontends, ctx)
    tls_ports = {pool: Checker(f"frontend {name}").port("port", raw.get("port")) for name, pool, raw in frontends
                 if raw.get("protocol") == "http" and raw.get("tls") is True}
    ports: dict[tuple[int, str], list[tuple[str, str, str, str]]] = {}
    _claim_port(ports, options.admin_port, "tcp", "http", options.admin_address, "the admin listener (admin_port)", "")
    http_servers, stream_servers, maps = [], [], []
    for name, pool, raw in frontends:  # the model's order: pool, protocol, port
        at = Checker(f"frontend {name}")
        protocol = at.choice("protocol", raw.get("protocol"), ("http", "tcp", "udp"))
        port = at.port("port", raw.get("port"))
        address = options.pool_addresses.get(pool, "")
        listen = _listen(address, port)
        _claim_port(ports, port, "udp" if protocol == "udp" else "tcp", "http" if protocol == "http" else "stream", address,
                    f"frontend {name}", pool)
        if protocol == "http":
            http_servers += _http_servers(raw, name, listen, tls_ports, ctx)
        else:
            server, mapping = _stream_server(raw, name, listen, protocol, ctx)
            if server is not None:
                stream_servers.append(server)
            if mapping is not None:
                maps.append(mapping)
    refuse = any(s["target"] == REFUSE_UPSTREAM for s in stream_servers) or any(
        REFUSE_UPSTREAM in (m["default"], *(e["upstream"] for e in m["entries"])) for m in maps)
    pod_mode = any(raw.get("mode") == "pod" for raw in model["backends"] if raw.get("name") in ctx.http_used | ctx.stream_used)
    view = {
        "generation": generation,
        "hash_bucket_sizes": _hash_bucket_sizes(http_servers, maps),
        "pools": sorted(options.pools),
        "admin": {"listen": _listen(options.admin_address, options.admin_port)},
        "http": {"upstreams": [_upstream(backends[n], options) for n in sorted(ctx.http_used)], "servers": http_servers},
        "stream": {"upstreams": [_upstream(backends[n], options) for n in sorted(ctx.stream_used)],
                   "refuse": REFUSE_UPSTREAM if refuse else "", "maps": maps, "servers": stream_servers},
        "certificates": [{"name": name, "sha256": certificate_digest(options.certificates[name])} for name in sorted(ctx.certificates)],
        "routes": pod_routes(model) if pod_mode else [],
        "findings": ctx.findings,
    }
    view["digest"] = json_digest(view)
    return view
