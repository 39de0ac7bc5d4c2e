# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edge model as haproxy sees it: render-ready data for roles/edge_haproxy's template.

Pure: no I/O. `haproxy_view(model, options)` decides everything the template would otherwise have
to (which frontends this host serves, map files and their order, server slots, keyword lists);
the template only loops. The model's values were validated when it was built, but every value is
checked again here against a grammar that cannot end a config line, open a section or quote
anything, so a model that did not come from `edge_info` still cannot break the config.

A tenant's claim haproxy cannot serve (a certificate the operator did not give; UDP, unless the
operator chose `udp_frontends: fail`) is left out with a finding. ViewError stops the run only
for what the operator must change: options, a model that is not edge_info's, a port the admin
listener or another served pool also binds. Checks, findings and the helpers the three views share
are module_utils/_view's.

HTTP routing: per HTTP frontend, up to six map files are looked up in order, the first hit wins:
exact host then `*.` wildcard then any host (`*`), each with the exact path first and then the
longest path prefix. A Prefix route `/a` matches `/a` (exact map) and `/a/...` (prefix map
`host/a/`), never `/ab`, as Kubernetes defines it. No hit: a 404 from the edge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._view import (
    ANY_HOST, Checker, Finding, ViewError, certificate_digest, check_certificates, endpoint, json_digest, named, path_matches,
    pod_routes)

__all__ = ["ViewError", "ViewOptions", "haproxy_view"]

_BALANCES = ("roundrobin", "leastconn", "source")
_PROXY_PROTOCOL = {"none": "", "v1": "send-proxy", "v2": "send-proxy-v2"}
_GENERATION = re.compile(r"[0-9a-f]{0,64}")  # "": a model built by hand (the fast path's option check)
MAPS_DIR = "maps"
CERTS_DIR = "certs"
# The lookup order of an HTTP frontend: (tier, path kind, variable holding the key, converter).
_HTTP_LOOKUPS = (
    ("host", "exact", "txn.k8sedge_key", "map_str"),
    ("host", "prefix", "txn.k8sedge_key", "map_beg"),
    ("wildcard", "exact", "txn.k8sedge_wild", "map_str"),
    ("wildcard", "prefix", "txn.k8sedge_wild", "map_beg"),
    ("any", "exact", "txn.k8sedge_any", "map_str"),
    ("any", "prefix", "txn.k8sedge_any", "map_beg"),
)
_SNI_LOOKUPS = (
    ("host", "exact", "txn.k8sedge_sni", "map_str"),
    ("wildcard", "exact", "txn.k8sedge_sni_wild", "map_str"),
)


@dataclass(frozen=True)
class ViewOptions:
    """What the role passes besides the model."""

    pools: tuple[str, ...] = ("default",)
    certificates: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {cert, key}
    slots: int = 10
    admin_address: str = "127.0.0.1"
    admin_port: int = 8404
    bind_address: str = ""  # "": every address
    udp_frontends: str = "skip"  # skip | fail
    previous: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # backend -> slot -> {address, port}


def _check_options(options: ViewOptions) -> None:
    c = Checker("options")
    if not isinstance(options.pools, (list, tuple)) or not options.pools:
        raise c.fail("pools", "a non-empty list of pool names", options.pools)
    for pool in options.pools:
        c.name("pools[]", pool)
    c.integer("slots", options.slots, 1, 1000, "a number of server slots 1-1000")
    c.address("admin_address", options.admin_address)
    c.port("admin_port", options.admin_port)
    if options.bind_address:
        c.address("bind_address", options.bind_address)
    c.choice("udp_frontends", options.udp_frontends, ("fail", "skip"))
    check_certificates(options.certificates, "certificates")
    for backend, slots in c.mapping("previous", options.previous).items():
        # Slot names are sorted and matched against s1..sN; a slot is read as far as it says.
        for slot in c.mapping(f"previous.{backend}", slots):
            if not isinstance(slot, str):
                raise c.fail(f"previous.{backend}", "slot names", slot)


def _redirect_backend(pool: str) -> str:
    # Model backend names always hold two '_' (namespace_service_port): this one cannot collide.
    return f"k8sedge-redirect-{pool}"


def _route(route: Any, c: Checker, i: int) -> tuple[str, str, str, str]:
    """(host, path, path_type, backend) of an HTTP route, checked."""
    route = c.mapping(f"routes[{i}]", route)
    return (c.host(f"routes[{i}].host", route.get("host")),
            c.path(f"routes[{i}].path", route.get("path")),
            c.choice(f"routes[{i}].path_type", route.get("path_type"), ("exact", "prefix")),
            c.name(f"routes[{i}].backend", route.get("backend")))


def _uncertified(frontends: list[dict[str, Any]], options: ViewOptions,
                 findings: list[Finding]) -> tuple[list[dict[str, Any]], set[tuple[str, ...]]]:
    """Leave out each TLS route whose certificate the operator did not give, with a finding (one
    tenant's claim must not stop the edge for everybody), and a TLS frontend left with no route.
    The frontends kept, and the routes left out as (pool, host, path, path_type, backend)."""
    kept, refused = [], set()
    for frontend in frontends:
        _name, c = named("frontend", frontend.get("name"))
        if frontend.get("protocol") == "http" and c.flag("tls", frontend.get("tls")):
            routes = c.sequence("routes", frontend.get("routes"))
            left = len(routes)
            for i, route in enumerate(routes):
                host, path, path_type, backend = _route(route, c, i)
                certificate = route.get("certificate")
                if certificate and c.name(f"routes[{i}].certificate", certificate) not in options.certificates:
                    findings.append(c.finding(f"routes[{i}].certificate", f"route {host}{path} to backend {backend} needs"
                                              f" certificate {certificate}, which is not given in certificates"
                                              " (certificates come from Ansible, files or vault; cluster Secrets are never read):"
                                              " the route and its redirect from plain HTTP are left out"))
                    refused.add((frontend["pool"], host, path, path_type, backend))
                    left -= 1
            if not left:
                findings.append(c.finding("routes", "no route left to serve: the frontend is left out"))
                continue
        kept.append(frontend)
    return kept, refused


def _http_maps(frontend: dict[str, Any], c: Checker, redirects: dict[str, str],
               refused: set[tuple[str, ...]]) -> tuple[dict[tuple[str, str], dict[str, str]], list[str]]:
    """(tier, kind) -> {key: backend}, first claim of a key wins (the model's route order), and
    the certificates the routes served need. A refused route is left out; the model gives its
    host and path to no other route than its redirect from plain HTTP, which goes with it."""
    maps: dict[tuple[str, str], dict[str, str]] = {(tier, kind): {} for tier, kind, _v, _c in _HTTP_LOOKUPS}
    certificates = []
    for i, route in enumerate(c.sequence("routes", frontend.get("routes"))):
        host, path, path_type, backend = key = _route(route, c, i)
        if (frontend["pool"], *key) in refused:
            continue
        if frontend.get("tls") is True and route.get("certificate"):
            certificates.append(c.name(f"routes[{i}].certificate", route["certificate"]))
        if route.get("redirect_https") is True:
            if frontend["pool"] not in redirects:
                raise c.refuse(f"routes[{i}].redirect_https", f"no TLS frontend of pool {frontend['pool']} to redirect to")
            backend = redirects[frontend["pool"]]
        tier = "any" if host == ANY_HOST else "wildcard" if host.startswith("*.") else "host"
        for kind, match in path_matches(path, path_type):
            maps[(tier, kind)].setdefault(host + match, backend)
    return maps, certificates


def _sni_maps(frontend: dict[str, Any], c: Checker) -> tuple[dict[tuple[str, str], dict[str, str]], str]:
    maps: dict[tuple[str, str], dict[str, str]] = {("host", "exact"): {}, ("wildcard", "exact"): {}}
    default = ""
    for i, entry in enumerate(c.sequence("sni", frontend.get("sni"))):
        entry = c.mapping(f"sni[{i}]", entry)
        host = c.host(f"sni[{i}].host", entry.get("host"))
        backend = c.name(f"sni[{i}].backend", entry.get("backend"))
        if host == ANY_HOST:
            default = default or backend
        else:
            maps[("wildcard" if host.startswith("*.") else "host", "exact")].setdefault(host, backend)
    return maps, default


def _map_files(frontend_name: str, maps: dict[tuple[str, str], dict[str, str]],
               lookups: tuple[tuple[str, str, str, str], ...]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The lookups a frontend makes and the map files they read; empty maps are left out."""
    used, files = [], []
    for tier, kind, variable, converter in lookups:
        entries = maps[(tier, kind)]
        if not entries:
            continue
        path = f"{MAPS_DIR}/{frontend_name}.{tier}-{kind}.map"
        # map_str is a tree (order does not matter); map_beg takes the first match in file
        # order: longest key first, so the longest path prefix wins.
        keys = sorted(entries, key=lambda k: (-len(k), k)) if kind == "prefix" else sorted(entries)
        files.append({"path": path, "lines": [f"{key} {entries[key]}" for key in keys]})
        used.append({"variable": variable, "converter": converter, "file": path})
    return used, files


def _bind(options: ViewOptions, port: int) -> str:
    return endpoint(options.bind_address, port) if options.bind_address else f":{port}"


def _frontend(frontend: dict[str, Any], options: ViewOptions, redirects: dict[str, str],
              refused: set[tuple[str, ...]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name, c = named("frontend", frontend.get("name"))
    port = c.port("port", frontend.get("port"))
    protocol = c.choice("protocol", frontend.get("protocol"), ("http", "tcp"))
    bind_options = ["accept-proxy"] if c.flag("accept_proxy", frontend.get("accept_proxy")) else []
    view: dict[str, Any] = {"name": name, "mode": protocol, "port": port, "bind": _bind(options, port), "lookups": [], "backend": ""}
    files: list[dict[str, Any]] = []
    if protocol == "http":
        tls = frontend.get("tls") is True
        maps, route_certificates = _http_maps(frontend, c, redirects, refused)
        if tls:
            names = [c.name(f"certificates[{i}]", n) for i, n in enumerate(c.sequence("certificates", frontend.get("certificates")))]
            # A name not given is needed by no route served: those routes were left out.
            certificates = [n for n in names if n in options.certificates] + route_certificates
            if not certificates:
                raise c.refuse("certificates", "expected at least one certificate for a TLS frontend, got none")
            # The first crt is the default certificate for clients that send no SNI.
            bind_options += ["ssl"] + [f"crt {CERTS_DIR}/{n}.pem" for n in sorted(set(certificates))] + ["alpn h2,http/1.1"]
        view["scheme"] = "https" if tls else "http"
        view["lookups"], files = _map_files(name, maps, _HTTP_LOOKUPS)
    elif frontend.get("sni"):
        maps, default = _sni_maps(frontend, c)
        view["lookups"], files = _map_files(name, maps, _SNI_LOOKUPS)
        view["backend"] = default
        view["sni"] = True
    else:
        view["backend"] = c.name("backend", frontend.get("backend"))
    view["sni"] = bool(view.get("sni"))
    view["bind_options"] = bind_options
    return view, files


def _slots(name: str, targets: list[dict[str, Any]], options: ViewOptions) -> list[dict[str, Any]]:
    """Targets placed in numbered server slots s1..sN, N a multiple of options.slots.

    A target keeps the slot it had (options.previous, read from the running haproxy), so an
    endpoint change moves as few slots as possible; new targets take the lowest free slots."""
    count = options.slots * max(1, -(-len(targets) // options.slots))
    wanted = {(t["address"], t["port"]): t["state"] for t in targets}
    placed: dict[int, tuple[str, int]] = {}
    previous = options.previous.get(name) if isinstance(options.previous, dict) else None
    for slot, where in sorted((previous or {}).items()):  # slot names are text (_check_options)
        number = int(slot[1:]) if re.fullmatch(r"s[1-9][0-9]{0,4}", slot) else 0
        if not isinstance(where, dict) or not isinstance(where.get("address"), str) or not isinstance(where.get("port"), int):
            continue  # nothing a target could be matched with: the slot is filled anew
        key = (where["address"], where["port"])
        if 1 <= number <= count and key in wanted and key not in placed.values():
            placed[number] = key
    free = (n for n in range(1, count + 1) if n not in placed)
    for key in sorted(wanted):
        if key not in placed.values():
            placed[next(free)] = key
    servers = []
    for number in range(1, count + 1):
        if number in placed:
            address, port = placed[number]
            state = "drain" if wanted[(address, port)] == "draining" else "ready"
            servers.append({"name": f"s{number}", "address": address, "port": port, "state": state,
                            "endpoint": endpoint(address, port), "options": ["weight 0"] if state == "drain" else []})
        else:
            servers.append({"name": f"s{number}", "address": "", "port": 0, "state": "maint", "endpoint": "0.0.0.0:0", "options": ["disabled"]})
    return servers


def _backend(backend: dict[str, Any], options: ViewOptions) -> dict[str, Any]:
    name, c = named("backend", backend.get("name"))
    layer = c.choice("frontend_protocol", backend.get("frontend_protocol"), ("http", "tcp"))
    balance = c.choice("balance", backend.get("balance"), _BALANCES)
    timeouts = c.mapping("timeouts", backend.get("timeouts"))
    connect_ms = c.milliseconds("timeouts.connect_ms", timeouts.get("connect_ms"))
    server_ms = c.milliseconds("timeouts.server_ms", timeouts.get("server_ms"))
    proxy = c.choice("proxy_protocol", backend.get("proxy_protocol", "none"), tuple(_PROXY_PROTOCOL))
    check = c.mapping("health_check", backend.get("health_check"))
    check_type = c.choice("health_check.type", check.get("type"), ("tcp", "http", "none"))
    default_server = []
    http_check = ""
    if check_type != "none":
        default_server += ["check", "inter 2s", "fall 3", "rise 2"]
        if "port" in check:
            default_server.append(f"port {c.port('health_check.port', check['port'])}")
        if check_type == "http":
            http_check = c.path("health_check.path", check.get("path"))
    if _PROXY_PROTOCOL[proxy]:
        default_server.append(_PROXY_PROTOCOL[proxy])
    targets = []
    for i, target in enumerate(c.sequence("targets", backend.get("targets"))):
        target = c.mapping(f"targets[{i}]", target)
        address = str(c.address(f"targets[{i}].address", target.get("address")))
        port = c.port(f"targets[{i}].port", target.get("port"))
        state = c.choice(f"targets[{i}].state", target.get("state", "ready"), ("ready", "draining"))
        targets.append({"address": address, "port": port, "state": state})
    return {
        "name": name,
        "mode": layer,
        "balance": balance,
        "timeout_connect": f"{connect_ms}ms",
        "timeout_server": f"{server_ms}ms",
        "http_check": http_check,
        "default_server": default_server,
        "servers": _slots(name, targets, options),
    }


def _structure_digest(view: dict[str, Any]) -> str:
    """sha256 of everything that needs a reload to change: the view without the servers'
    addresses and states (those change through the runtime API), plus the certificates."""
    structure = {key: value for key, value in view.items() if key not in ("runtime", "structure", "generation", "routes", "findings")}
    structure["backends"] = [{**b, "servers": [s["name"] for s in b["servers"]]} for b in view["backends"]]
    return json_digest(structure)


def haproxy_view(model: Any, options: ViewOptions) -> dict[str, Any]:
    """Render-ready data for haproxy.cfg and its map files; ViewError when refused."""
    _check_options(options)
    c = Checker("model")
    model = c.mapping("model", model)
    frontends = c.sequence("frontends", model.get("frontends"))
    backends = {}
    for i, backend in enumerate(c.sequence("backends", model.get("backends"))):
        backend = c.mapping(f"backends[{i}]", backend)
        backends[c.name(f"backends[{i}].name", backend.get("name"))] = backend
    served, findings = [], []
    for i, frontend in enumerate(frontends):
        frontend = c.mapping(f"frontends[{i}]", frontend)
        pool = c.name(f"frontends[{i}].pool", frontend.get("pool"))
        if pool not in options.pools:
            continue
        if frontend.get("protocol") == "udp":
            name = c.name(f"frontends[{i}].name", frontend.get("name"))
            udp = Checker(f"frontend {name}")
            message = f"UDP (port {frontend.get('port')}) cannot be served by haproxy; serve pool {pool} with the nginx engine (role edge_nginx)"
            if options.udp_frontends == "fail":
                raise udp.refuse("protocol", message + ", or set udp_frontends: skip (the default) to leave UDP to another edge")
            findings.append(udp.finding("protocol", message + ": skipped (udp_frontends: skip)"))
            continue
        served.append(frontend)
    served, refused = _uncertified(served, options, findings)
    https_ports = {f["pool"]: f["port"] for f in served if f.get("protocol") == "http" and f.get("tls") is True}
    redirects = {pool: _redirect_backend(pool) for pool in https_ports}
    ports: dict[int, dict[str, Any]] = {}
    view_frontends, map_files = [], []
    users: dict[str, list[dict[str, Any]]] = {}  # backend -> frontends that send to it
    for frontend in served:
        view, files = _frontend(frontend, options, redirects, refused)
        # The model refuses tenants' claims per object, within a pool and on its reserved ports;
        # what is left to clash here is the operator's choice of admin port or of pools.
        at = Checker(f"frontend {view['name']}")
        if view["port"] == options.admin_port:
            raise at.refuse("port", f"{view['port']} is already taken by the admin listener (admin_port): add"
                                    f" {view['port']} to edge_info's reserved_ports option, so that claims on it are refused per"
                                    " object, or choose another admin port")
        if view["port"] in ports:
            other = ports[view["port"]]
            raise at.refuse("port", f"{view['port']} is already taken by frontend {other['name']}: pools {other['pool']} and"
                                    f" {frontend['pool']} have their own ports and this host binds both on one address: serve them"
                                    " from different edges (pools)")
        ports[view["port"]] = {"name": view["name"], "pool": frontend["pool"]}
        view_frontends.append(view)
        map_files += files
        for name in {line.rsplit(" ", 1)[1] for f in files for line in f["lines"]} | ({view["backend"]} - {""}):
            users.setdefault(name, []).append(view)
    view_backends = []
    for name in sorted(set(users) - set(redirects.values())):
        if name not in backends:
            raise ViewError(f"backend {name}: named by frontend {users[name][0]['name']} but missing from the model's backends")
        backend = _backend(backends[name], options)
        for frontend in users[name]:
            if backend["mode"] != frontend["mode"]:
                raise Checker(f"backend {name}").refuse(
                    "frontend_protocol", f"{backend['mode']}, but frontend {frontend['name']} speaks {frontend['mode']}")
        view_backends.append(backend)
    redirect_backends = [{
        "name": redirects[pool],
        "location": f"https://%[var(txn.k8sedge_host)]{'' if port == 443 else f':{port}'}%[url]",
    } for pool, port in sorted(https_ports.items())]
    prefix, suffix = f"crt {CERTS_DIR}/", ".pem"
    certificates = sorted({opt[len(prefix):-len(suffix)] for f in view_frontends for opt in f["bind_options"] if opt.startswith(prefix)})
    mode_pod = any(backends[b["name"]].get("mode") == "pod" for b in view_backends)
    generation = c.matches("generation", model.get("generation", ""), _GENERATION, "a hex digest")
    view: dict[str, Any] = {
        "generation": generation,
        "admin": {"bind": endpoint(options.admin_address, options.admin_port)},
        "frontends": view_frontends,
        "backends": view_backends,
        "redirects": redirect_backends,
        "maps": sorted(map_files, key=lambda f: f["path"]),
        "certificates": [{"name": n, "path": f"{CERTS_DIR}/{n}.pem", "sha256": certificate_digest(options.certificates[n])}
                         for n in certificates],
        "routes": pod_routes(model) if mode_pod else [],
        "findings": findings,
    }
    view["runtime"] = [{"backend": b["name"], "servers": [{k: s[k] for k in ("name", "address", "port", "state")} for s in b["servers"]]}
                       for b in view_backends]
    view["structure"] = _structure_digest(view)
    return view
