# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which probes prove an edge model, and what their results say.

`plan()` derives, from the model alone, one check per thing a client can reach (an HTTP route,
a TLS passthrough name, a TCP or UDP frontend) and sends it through every VIP of the pool, through
every edge host directly and to every backend target directly, so a failure says where it is.
What a host proved before (its last-known-good's check digests, `check_digests()`) need not be
proven again in full: a check whose route and backend are the same as then is unchanged, and
unchanged checks are probed as a bounded sample, chosen at random with a seed the report names
(a full sweep is an option). Whatever changed since the last proven config is probed in full.
`report()` turns the probes' results into a verdict per host, a table and failures that are
classified: `backend` (its targets do not answer directly either), `edge` (the targets answer but
not through this edge, or the engine on this edge counts them all down), `vip` (the edges answer
but not the VIP).
"""
from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ProbeError
from ansible_collections.k8sedge.lb.plugins.module_utils._view import Checker

ENGINES = ("haproxy", "nginx")
THROUGH = ("vip", "edge", "target")
CLASSES = ("edge", "backend", "vip")
CONTROLLER = "controller"
PROBE_HOST = "k8sedge-probe"  # the label used for a wildcard host or the catch-all route
HTTP_LIKE = re.compile(r"^(http|http-.+|.+-http)$")
HEAD_EXPECT = r"^HTTP/1\.[01] [1-4][0-9][0-9]"
REDIRECTS = ["301", "302", "307", "308"]


class PlanError(ProbeError):
    """The model, the options, or a plan and its results cannot be turned into probes or a verdict."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    engine: str
    pools: tuple[str, ...]
    certificates: tuple[str, ...] | None = None  # the names the operator gave its engine; None: unknown
    listen: Mapping[str, str] = field(default_factory=dict)  # pool -> the one address it listens on for it
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # certificate name -> its SHA-256, where known


@dataclass(frozen=True)
class PlanOptions:
    hosts: tuple[Host, ...] = ()
    pool_vips: Mapping[str, list[str]] = field(default_factory=dict)
    through: tuple[str, ...] = THROUGH
    targets_from: str = "edge"  # "edge": each edge host probes its targets; "controller"
    timeout: float = 5.0
    validate_certs: bool = True
    ca_path: str = ""
    http_status: tuple[str, ...] = ("200-499",)
    http_not_regex: str = "^k8sedge: no route"
    payloads: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    udp_send: str = "k8sedge-probe\n"
    tcp_hold: float = 0.3
    # host -> digests of the checks its last-known-good config passed; a host not here proved nothing.
    proven: Mapping[str, frozenset[str]] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)  # host -> the settings digest its engine runs now
    sample: int = 32  # unchanged checks probed per plan; every check when `sweep`
    sweep: bool = False


@dataclass(frozen=True)
class Check:
    """What proves one reachable thing, without the address it is sent to."""

    frontend: str
    pool: str
    port: int
    protocol: str  # http, tcp, udp: what the engine must serve
    label: str
    backend: str
    edge_spec: dict[str, Any]  # the probe through an edge or VIP, minus name/address/port
    target_spec: dict[str, Any]  # the probe straight to a target
    certificate: str = ""  # the certificate the route needs (a TLS route, or the redirect to one)


def digest(check: Check, backend: Mapping[str, Any], settings: str = "") -> str:
    """What makes a check the same as before: where it is reached, what it routes to, the backend
    as the model has it (targets included, so an endpoint change is a change), and the settings
    the host's engine rendered it with (its role's inputs besides the model: a new template, role
    variable or certificate changes every check on that host)."""
    identity = [check.frontend, check.pool, check.port, check.protocol, check.label, check.certificate, backend, settings]
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def check_digests(model: Mapping[str, Any], settings: str = "") -> list[str]:
    """The digests of every check of a model under `settings`, sorted: what a host that passed
    its probes proved."""
    backends = _backends(check_model(model))
    return sorted({digest(check, backends.get(check.backend, {}), settings) for check in checks(model, PlanOptions())})


def _fail(field_name: str, message: str) -> PlanError:
    return PlanError(f"{field_name}: {message}")


def hosts_of(value: Any) -> tuple[Host, ...]:
    if not isinstance(value, list):
        raise _fail("hosts", "expected a list of {name, address, engine, pools, certificates, listen}")
    hosts = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not item.get("name") or not item.get("address"):
            raise _fail(f"hosts[{i}]", "expected {name, address, engine, pools} with a name and an address")
        engine = item.get("engine") or "haproxy"
        if engine not in ENGINES:
            raise _fail(f"hosts[{i}].engine", f"expected one of {', '.join(ENGINES)}, got {engine!r}")
        pools = item.get("pools") or ["default"]
        if not isinstance(pools, list) or not all(isinstance(p, str) for p in pools):
            raise _fail(f"hosts[{i}].pools", "expected a list of pool names")
        certificates = item.get("certificates")
        fingerprints = dict(certificates) if isinstance(certificates, Mapping) else {}
        if certificates is not None and not (
                isinstance(certificates, list) and all(isinstance(c, str) for c in certificates)
                or isinstance(certificates, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in fingerprints.items())):
            raise _fail(f"hosts[{i}].certificates", "expected a list of certificate names, or names to their SHA-256 fingerprints")
        listen = item.get("listen") or {}
        if not isinstance(listen, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in listen.items()):
            raise _fail(f"hosts[{i}].listen", "expected pool names to the address each listens on")
        hosts.append(Host(str(item["name"]), str(item["address"]), engine, tuple(pools),
                          tuple(certificates) if certificates is not None else None, dict(listen), fingerprints))
    return tuple(hosts)


def _probe_host(host: str) -> str:
    """A name a route of `host` matches: the host itself, a name under a wildcard, or any name."""
    if host == "*":
        return f"{PROBE_HOST}.invalid"
    if host.startswith("*."):
        return f"{PROBE_HOST}.{host[2:]}"
    return host


def _probe_path(route: Mapping[str, Any], exact: set[tuple[str, str]]) -> str:
    """A path the route itself matches first: an exact route of the same host and path (`exact`:
    the frontend's exact routes, by host and path) would win over a prefix route, so a prefix
    route is probed one path element deeper then."""
    path = route["path"]
    if route.get("path_type") == "exact" or (route["host"], path) not in exact:
        return path
    return path.rstrip("/") + f"/{PROBE_HOST}"


def check_model(model: Mapping[str, Any]) -> Mapping[str, Any]:
    """The fields of the model the plan reads, checked: a model that is not edge_info's is
    refused naming the field, never half read."""
    c = Checker("model", PlanError)
    for i, frontend in enumerate(c.sequence("frontends", model.get("frontends"))):
        at = f"frontends[{i}]"
        frontend = c.mapping(at, frontend)
        for key in ("name", "pool", "protocol"):
            c.text(f"{at}.{key}", frontend.get(key))
        c.port(f"{at}.port", frontend.get("port"))
        for kind, keys in (("routes", ("host", "path", "backend")), ("sni", ("host", "backend"))):
            for j, entry in enumerate(c.sequence(f"{at}.{kind}", frontend.get(kind) or [])):
                entry = c.mapping(f"{at}.{kind}[{j}]", entry)
                for key in keys:
                    c.text(f"{at}.{kind}[{j}].{key}", entry.get(key))
    for i, backend in enumerate(c.sequence("backends", model.get("backends"))):
        backend = c.mapping(f"backends[{i}]", backend)
        c.text(f"backends[{i}].name", backend.get("name"))
        for j, target in enumerate(c.sequence(f"backends[{i}].targets", backend.get("targets") or [])):
            target = c.mapping(f"backends[{i}].targets[{j}]", target)
            c.text(f"backends[{i}].targets[{j}].address", target.get("address"))
            c.port(f"backends[{i}].targets[{j}].port", target.get("port"))
    return model


def _backends(model: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {b["name"]: b for b in model["backends"]}


def _service_key(backend: Mapping[str, Any]) -> str:
    return f"{backend.get('namespace')}/{backend.get('service')}:{backend.get('port')}"


def _stream_payload(backend: Mapping[str, Any], http_hosts: Mapping[str, str], options: PlanOptions) -> dict[str, Any]:
    """send/expect for a TCP or UDP backend: the operator's payload for its Service port, else the
    design note's HEAD for an HTTP-named port, else (TCP) connect and hold / (UDP) any answer."""
    given = options.payloads.get(_service_key(backend))
    if given is not None:
        return {key: given[key] for key in ("send", "expect") if given.get(key)}
    if backend.get("frontend_protocol") == "udp":
        return {"send": options.udp_send}
    if HTTP_LIKE.match(str(backend.get("port_name") or "")):
        host = http_hosts.get(f"{backend.get('namespace')}/{backend.get('service')}", PROBE_HOST)
        return {"send": f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", "expect": HEAD_EXPECT}
    return {"hold": options.tcp_hold}


def _proxy(backend: Mapping[str, Any]) -> str:
    value = backend.get("proxy_protocol") or "none"
    return value if value in ("v1", "v2") else "none"


def checks(model: Mapping[str, Any], options: PlanOptions) -> list[Check]:
    """One check per route, passthrough name, TCP and UDP frontend of the model, in model order."""
    backends = _backends(model)
    frontends = model["frontends"]
    http_hosts: dict[str, str] = {}
    for frontend in frontends:
        for route in frontend.get("routes") or []:
            backend = backends.get(route.get("backend"), {})
            http_hosts.setdefault(f"{backend.get('namespace')}/{backend.get('service')}", _probe_host(route["host"]))
    tls_common = {"validate_certs": options.validate_certs, **({"ca_path": options.ca_path} if options.ca_path else {})}
    # A redirect from plain HTTP goes with the TLS route it points at, and with its certificate.
    tls_certificates = {(frontend["pool"], route["host"], route["path"]): route.get("certificate") or ""
                        for frontend in frontends if frontend.get("tls") for route in frontend.get("routes") or []}
    out: list[Check] = []
    for frontend in frontends:
        name, pool, protocol = frontend["name"], frontend["pool"], frontend["protocol"]
        proxy_in = {"send_proxy": "v1"} if frontend.get("accept_proxy") else {}
        if protocol == "http":
            routes = frontend.get("routes") or []
            exact = {(r["host"], r["path"]) for r in routes if r.get("path_type") == "exact"}
            for route in routes:
                backend = backends.get(route["backend"], {})
                host, path = _probe_host(route["host"]), _probe_path(route, exact)
                label = f"{route['host']}{route['path']}" + (" exact" if route.get("path_type") == "exact" else "")
                http = {"type": "https" if frontend.get("tls") else "http", "host": host, "path": path}
                if frontend.get("tls"):
                    http.update(tls_common)
                if route.get("redirect_https") and not frontend.get("tls"):
                    edge = {**http, "status_code": REDIRECTS, "expect_headers": {"Location": f"^https://{re.escape(host)}"}}
                else:
                    edge = {**http, "status_code": list(options.http_status)}
                    if options.http_not_regex:
                        edge["body_not_regex"] = options.http_not_regex
                target = {"type": "http", "host": host, "path": path, "status_code": list(options.http_status)}
                if _proxy(backend) != "none":
                    target["send_proxy"] = _proxy(backend)
                if frontend.get("tls"):
                    certificate = route.get("certificate") or ""
                elif route.get("redirect_https"):
                    certificate = tls_certificates.get((pool, route["host"], route["path"]), "")
                else:
                    certificate = ""
                out.append(Check(name, pool, frontend["port"], "http", label, route["backend"], {**edge, **proxy_in}, target,
                                 certificate))
        elif protocol == "tcp" and frontend.get("sni"):
            for entry in frontend["sni"]:
                backend = backends.get(entry["backend"], {})
                spec = {"type": "tcp", "tls": True, "sni": _probe_host(entry["host"]), **tls_common}
                target = {**spec, **({"send_proxy": _proxy(backend)} if _proxy(backend) != "none" else {})}
                out.append(Check(name, pool, frontend["port"], "tcp", f"sni {entry['host']}", entry["backend"], {**spec, **proxy_in}, target))
        elif protocol in ("tcp", "udp"):
            backend = backends.get(frontend.get("backend"), {})
            payload = _stream_payload(backend, http_hosts, options)
            spec = {"type": protocol, **payload}
            target = {**spec, **({"send_proxy": _proxy(backend)} if protocol == "tcp" and _proxy(backend) != "none" else {})}
            out.append(Check(name, pool, frontend["port"], protocol, f"{protocol}/{frontend['port']}", frontend.get("backend", ""),
                             {**spec, **proxy_in}, target))
    return out


def serves(engine: str, check: Check, backend: Mapping[str, Any], certificates: tuple[str, ...] | None = None) -> str:
    """Why an engine does not serve a check ("" when it does); the roles leave these out (see their READMEs)."""
    if certificates is not None and check.certificate and check.certificate not in certificates:
        return f"certificate {check.certificate} is not given to this edge: the role leaves the route out"
    if engine == "haproxy" and check.protocol == "udp":
        return "haproxy does not proxy UDP"
    if engine == "nginx" and check.protocol == "http" and _proxy(backend) != "none":
        return "nginx cannot send PROXY protocol from HTTP"
    if engine == "nginx" and check.protocol == "tcp" and _proxy(backend) == "v2":
        return "nginx sends PROXY protocol v1 only"
    return ""


def _served_certificate(check: Check, hosts: list[Host]) -> dict[str, Any]:
    """For an HTTPS check, the fingerprints the certificate it needs may have through `hosts`
    (one host: its own; a VIP: any of its pool's): what the edge must present."""
    if not check.certificate or check.edge_spec.get("type") != "https":
        return {}
    known = sorted({h.fingerprints[check.certificate] for h in hosts if check.certificate in h.fingerprints})
    return {"certificate_sha256": known} if known else {}


def _targets(backend: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in backend.get("targets") or [] if t.get("state") == "ready"]


def _address(address: str, port: Any) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def plan(model: Mapping[str, Any], options: PlanOptions) -> dict[str, Any]:
    """The probes (each with its `runner`: "controller" or an edge host) and what was skipped and why."""
    check_model(model)
    for value, allowed, name in ((options.through, THROUGH, "through"), ((options.targets_from,), ("edge", CONTROLLER), "targets_from")):
        bad = [v for v in value if v not in allowed]
        if bad:
            raise _fail(name, f"expected values from {', '.join(allowed)}, got {', '.join(map(str, bad))}")
    backends = _backends(model)
    probes: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    seen_targets: set[tuple[str, str, str]] = set()
    timing = {"timeout": options.timeout}
    chosen, coverage = _choose(model, checks(model, options), backends, options)
    for check in chosen:
        backend = backends.get(check.backend, {})
        row = {"frontend": check.frontend, "label": check.label, "pool": check.pool, "backend": check.backend}
        if not _targets(backend):
            skipped.append({**row, "via": "*", "reason": f"backend {check.backend} has no ready targets in the model"})
            continue
        if backend.get("held"):
            skipped.append({**row, "via": "*", "reason": f"backend {check.backend} is held at its last targets by the fail-static guard"})
            continue
        hosts = [h for h in options.hosts if check.pool in h.pools]
        if "vip" in options.through and hosts:
            why_not = sorted({serves(h.engine, check, backend, h.certificates) for h in hosts} - {""})
            for vip in options.pool_vips.get(check.pool) or []:
                if why_not:
                    skipped.append({**row, "via": vip, "reason": "; ".join(why_not)})
                    continue
                probes.append({**row, "kind": "vip", "via": vip, "runner": CONTROLLER, "probe": {
                    **check.edge_spec, **_served_certificate(check, hosts), **timing,
                    "name": f"vip {vip} {check.frontend} {check.label}", "address": vip, "port": check.port}})
        for host in hosts:
            why_not = serves(host.engine, check, backend, host.certificates)
            if "edge" in options.through:
                listen = host.listen.get(check.pool, "")
                if why_not:
                    skipped.append({**row, "via": host.name, "reason": why_not})
                elif listen in (options.pool_vips.get(check.pool) or []):
                    # Only the host holding that VIP answers on it: the VIP probes prove this pool.
                    reason = f"{host.name} listens for pool {check.pool} on its VIP {listen} only: proven through the VIP"
                    skipped.append({**row, "via": host.name, "reason": reason})
                else:
                    probes.append({**row, "kind": "edge", "via": host.name, "runner": CONTROLLER, "probe": {
                        **check.edge_spec, **_served_certificate(check, [host]), **timing,
                        "name": f"edge {host.name} {check.frontend} {check.label}",
                        "address": listen or host.address, "port": check.port}})
            if "target" not in options.through or why_not:
                continue
            runner = host.name if options.targets_from == "edge" else CONTROLLER
            for target in _targets(backend):
                where = _address(target["address"], target["port"])
                if (runner, check.backend, where) in seen_targets:
                    continue
                seen_targets.add((runner, check.backend, where))
                probes.append({**row, "kind": "target", "via": where, "runner": runner, "probe": {
                    **check.target_spec, **timing,
                    "name": f"target {check.backend} {where}" + (f" from {runner}" if runner != CONTROLLER else ""),
                    "address": target["address"], "port": target["port"]}})
    return {"generation": model.get("generation", ""), "probes": probes, "skipped": skipped,
            "hosts": [h.name for h in options.hosts], "coverage": coverage}


def _choose(model: Mapping[str, Any], found: list[Check], backends: Mapping[str, Mapping[str, Any]],
            options: PlanOptions) -> tuple[list[Check], dict[str, Any]]:
    """The checks to probe: every changed one (not proven by every host of its pool), and of the
    unchanged ones all (a sweep, or no more than the sample) or a random sample of `sample`, the
    seed being the model's generation (the same run again probes the same sample)."""
    changed, unchanged = [], []
    for check in found:
        hosts = [h.name for h in options.hosts if check.pool in h.pools]
        if not hosts:
            continue  # no host here serves its pool: nothing to probe
        backend = backends.get(check.backend, {})
        keys = [digest(check, backend, options.settings.get(host, "")) for host in hosts]
        proven = all(key in options.proven.get(host, ()) for key, host in zip(keys, hosts))
        (unchanged if proven else changed).append((keys[0], check))
    seed = str(model.get("generation", ""))
    if options.sweep or len(unchanged) <= options.sample:
        sampled, how = unchanged, "full sweep" if options.sweep else f"all unchanged (no more than the sample of {options.sample})"
    else:
        ranked = sorted(unchanged, key=lambda pair: hashlib.sha256(f"{seed}/{pair[0]}".encode()).digest())
        sampled, how = ranked[:options.sample], f"random sample of {options.sample}, seed {seed[:12]}"
    keep = {id(pair[1]) for pair in changed + sampled}
    coverage = {"checks": len(changed) + len(unchanged), "changed": len(changed), "unchanged": len(unchanged),
                "unchanged_probed": len(sampled), "unchanged_chosen_by": how}
    return [check for check in found if id(check) in keep], coverage


# --- results ------------------------------------------------------------------------------------

def _classify(entry: Mapping[str, Any], ok_by_key: Mapping[tuple[str, str, str], list[bool]],
              backend_up: Mapping[str, int]) -> str:
    if entry["kind"] == "target" or backend_up.get(entry["backend"], 0) == 0:
        return "backend"
    if entry["kind"] == "vip":
        edges = ok_by_key.get(("edge", entry["frontend"], entry["label"]), [])
        return "vip" if edges and all(edges) else "edge"
    return "edge"


def _engine_failures(engine_health: Mapping[str, Any], backend_up: Mapping[str, int], hosts: list[str]) -> list[dict[str, Any]]:
    """A backend whose targets answer directly but that the engine of an edge counts all down:
    whatever a probe saw, that edge is about to stop sending it traffic."""
    if not isinstance(engine_health, Mapping):
        raise _fail("engine_health", "expected edge host -> backend -> {up, down}")
    failures = []
    for host in hosts:
        backends = engine_health.get(host) or {}
        if not isinstance(backends, Mapping):
            raise _fail(f"engine_health.{host}", "expected backend -> {up, down}")
        for backend, counts in sorted(backends.items()):
            if not isinstance(counts, Mapping) or not all(isinstance(counts.get(k), int) for k in ("up", "down")):
                raise _fail(f"engine_health.{host}.{backend}", "expected {up, down} counts")
            answering = backend_up.get(backend, 0)
            if counts["up"] == 0 and counts["down"] > 0 and answering > 0:
                failures.append({
                    "name": f"engine {host} {backend}", "kind": "engine", "class": "edge", "frontend": "", "label": "",
                    "via": host, "runner": host, "target": backend, "backend": backend,
                    "error": f"the engine counts all {counts['down']} servers down while {answering} of its targets answer directly"})
    return failures


def _check_report_inputs(planned: Any, results: Any, fail_on: Any) -> None:
    """A plan as plan() returns it, the probes' results as a list, classes from CLASSES."""
    if not isinstance(planned, Mapping):
        raise PlanError("plan: expected what k8sedge.lb.probe_plan returns")
    c = Checker("plan", PlanError)
    for i, item in enumerate(c.sequence("probes", planned.get("probes"))):
        item = c.mapping(f"probes[{i}]", item)
        for key in ("kind", "frontend", "label", "backend", "via", "runner"):
            c.text(f"probes[{i}].{key}", item.get(key))
        probe = c.mapping(f"probes[{i}].probe", item.get("probe"))
        c.text(f"probes[{i}].probe.name", probe.get("name"))
        c.text(f"probes[{i}].probe.address", probe.get("address"))
        c.port(f"probes[{i}].probe.port", probe.get("port"))
    for i, host in enumerate(c.sequence("hosts", planned.get("hosts", []))):
        c.text(f"hosts[{i}]", host)
    for i, item in enumerate(c.sequence("skipped", planned.get("skipped", []))):
        item = c.mapping(f"skipped[{i}]", item)
        for key in ("frontend", "label", "backend", "via", "reason"):
            c.text(f"skipped[{i}].{key}", item.get(key))
    if not isinstance(results, list):
        raise PlanError("results: expected the probes lists of k8sedge.lb.probe")
    bad = [value for value in fail_on if value not in CLASSES] if isinstance(fail_on, (list, tuple)) else [fail_on]
    if bad:
        raise PlanError(f"fail_on: expected values from {', '.join(CLASSES)}, got {', '.join(map(str, bad))}")


def report(planned: Mapping[str, Any], results: list[Mapping[str, Any]], fail_on: tuple[str, ...] = CLASSES,
           engine_health: Mapping[str, Any] | None = None, sent: bool = True) -> dict[str, Any]:
    """Verdicts, the table and classified failures. A planned probe without a result counts as failed.
    `engine_health` is each edge's own verdict on its servers (edge host -> backend -> {up, down}).
    sent=False (check mode): the plan alone, every probe marked "plan", nothing judged."""
    _check_report_inputs(planned, results, fail_on)
    if not sent:
        return _unsent(planned)
    by_name = {r["name"]: r for r in results if isinstance(r, Mapping) and "name" in r}
    entries = []
    for item in planned["probes"]:
        result = by_name.get(item["probe"]["name"]) or {
            "ok": False, "error": "no result: the probe did not run", "latency_ms": None}
        entries.append(_entry(item, result))
    targets: dict[str, dict[str, bool]] = {}
    for entry in entries:
        if entry["kind"] == "target":
            up = targets.setdefault(entry["backend"], {})
            up[entry["via"]] = up.get(entry["via"], True) and entry["ok"]
    backend_up = {name: sum(up.values()) for name, up in targets.items()}
    ok_by_key: dict[tuple[str, str, str], list[bool]] = {}
    for entry in entries:
        ok_by_key.setdefault((entry["kind"], entry["frontend"], entry["label"]), []).append(entry["ok"])
    failures = []
    for entry in entries:
        if not entry["ok"]:
            entry["class"] = _classify(entry, ok_by_key, backend_up) if entry["backend"] in targets else (
                "vip" if entry["kind"] == "vip" else "edge")
            failures.append({key: entry[key] for key in ("name", "kind", "class", "frontend", "label", "via", "runner", "target",
                                                         "backend", "error")})
    failures += _engine_failures(engine_health or {}, backend_up, planned.get("hosts", []))
    blocking = [f for f in failures if f["class"] in fail_on]
    hosts = {}
    for host in planned.get("hosts", []):
        # A host answers for what went through it and for the targets it probed; targets probed
        # from the controller count for every host, as each of them would forward to them.
        mine = [f for f in blocking if f["via"] == host or (f["kind"] == "target" and f["runner"] in (host, CONTROLLER))]
        hosts[host] = {"passed": not mine, "failures": len(mine)}
    rows = _rows(planned, entries, targets)
    return {
        "generation": planned.get("generation", ""),
        "summary": {"probes": len(entries), "passed": sum(e["ok"] for e in entries), "failed": len(failures),
                    "skipped": len(planned.get("skipped", [])), "blocking": len(blocking)},
        "coverage": dict(planned.get("coverage") or {}),
        "passed": not blocking,
        "hosts": hosts,
        "failures": failures,
        "blocking": blocking,
        "messages": [f"{f['name']} ({f['class']}: {f['target']}): {f['error']}" for f in blocking],
        "rows": rows,
        "table": table(rows, planned.get("hosts", [])),
        "probes": entries,
        "skipped": list(planned.get("skipped", [])),
        "notes": _notes(planned),
        "sent": True,
    }


def _entry(item: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in item.items() if k != "probe"}, "name": item["probe"]["name"],
            "target": _address(str(item["probe"]["address"]), item["probe"]["port"]),
            "ok": bool(result.get("ok")), "error": result.get("error", ""),
            "latency_ms": result.get("latency_ms"), "status": result.get("status"),
            "received": result.get("received", ""),
            # TLS the edge terminates: what it presented, and what it had to present.
            **({"certificate_sha256": (result.get("tls") or {}).get("certificate_sha256", ""),
                "certificate_expected": item["probe"]["certificate_sha256"]} if item["probe"].get("certificate_sha256") else {})}


def _notes(planned: Mapping[str, Any]) -> list[str]:
    return [f"skipped {s['frontend']} {s['label']} via {s['via']}: {s['reason']}" for s in planned.get("skipped", [])]


def _unsent(planned: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a plan whose probes were not sent: the edges still serve what they served, so
    no answer would say anything about what the run would apply."""
    entries = [{**_entry(item, {}), "ok": None} for item in planned["probes"]]
    rows = [{**row, "backends": "-"} for row in _rows(planned, entries, {})]
    return {
        "generation": planned.get("generation", ""),
        "summary": {"probes": len(entries), "passed": 0, "failed": 0, "skipped": len(planned.get("skipped", [])),
                    "blocking": 0},
        "coverage": dict(planned.get("coverage") or {}),
        "passed": True,
        "hosts": {host: {"passed": True, "failures": 0} for host in planned.get("hosts", [])},
        "failures": [],
        "blocking": [],
        "messages": [],
        "rows": rows,
        "table": table(rows, planned.get("hosts", [])),
        "probes": entries,
        "skipped": list(planned.get("skipped", [])),
        "notes": _notes(planned),
        "sent": False,
    }


def _cell(entries: list[Mapping[str, Any]]) -> str:
    if not entries:
        return "-"
    if any(e["ok"] is None for e in entries):
        return "plan"
    failed = sum(not e["ok"] for e in entries)
    return "ok" if not failed else "FAIL" if failed == len(entries) else f"FAIL {failed}/{len(entries)}"


def _rows(planned: Mapping[str, Any], entries: list[dict[str, Any]], targets: Mapping[str, Mapping[str, bool]]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in [*entries, *({**s, "kind": "skipped"} for s in planned.get("skipped", []))]:
        row = rows.setdefault((entry["frontend"], entry["label"]), {
            "frontend": entry["frontend"], "check": entry["label"], "backend": entry["backend"], "vip": [], "edges": {},
            "skipped": []})
        if entry["kind"] == "vip":
            row["vip"].append(entry)
        elif entry["kind"] == "edge":
            row["edges"].setdefault(entry["via"], []).append(entry)
        elif entry["kind"] == "skipped":
            row["skipped"].append(f"{entry['via']}: {entry['reason']}")
    out = []
    for row in rows.values():
        through = row["vip"] + [e for group in row["edges"].values() for e in group]
        latencies = [e["latency_ms"] for e in through if e["ok"] and e["latency_ms"] is not None]
        up = targets.get(row["backend"])
        out.append({
            "frontend": row["frontend"], "check": row["check"], "backend": row["backend"],
            "vip": _cell(row["vip"]), "edges": {host: _cell(group) for host, group in row["edges"].items()},
            "backends": f"{sum(up.values())}/{len(up)}" if up is not None else "-",
            "latency_ms": round(statistics.median(latencies), 1) if latencies else None,
            "skipped": row["skipped"],
        })
    return out


def table(rows: list[Mapping[str, Any]], hosts: list[str]) -> list[str]:
    """Fixed-width lines: frontend, check, VIP, one column per edge host, backends up/total, latency."""
    header = ["frontend", "check", "VIP", *hosts, "backends", "latency"]
    lines = [header]
    for row in rows:
        latency = f"{row['latency_ms']:g} ms" if row["latency_ms"] is not None else "-"
        cells = [row["frontend"], row["check"], row["vip"], *(row["edges"].get(h, "-") for h in hosts), row["backends"], latency]
        if row["skipped"] and all(c == "-" for c in cells[2:-2]):
            cells[2] = "skipped"
        lines.append(cells)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
