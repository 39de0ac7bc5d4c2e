# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift: what each edge host really runs, against the model and against the other hosts, the
certificates each presents included. Pure."""

from __future__ import annotations

import datetime
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ProbeError
from ansible_collections.k8sedge.lb.plugins.module_utils._view import Checker

_STATE = {"ready": "ready", "draining": "drain"}


class DriftError(ProbeError):
    """The input is not what the drift report compares."""


def _check_model(model: Any) -> None:
    """The fields of the model the report reads."""
    if not isinstance(model, dict):
        raise DriftError("model: expected the model edge_info returns")
    c = Checker("model", DriftError)
    c.text("generation", model.get("generation"))
    for i, frontend in enumerate(c.sequence("frontends", model.get("frontends"))):
        frontend = c.mapping(f"frontends[{i}]", frontend)
        c.text(f"frontends[{i}].pool", frontend.get("pool"))
        c.text(f"frontends[{i}].protocol", frontend.get("protocol"))
        for kind in ("routes", "sni"):
            for j, entry in enumerate(c.sequence(f"frontends[{i}].{kind}", frontend.get(kind, []))):
                c.text(f"frontends[{i}].{kind}[{j}].backend", c.mapping(f"frontends[{i}].{kind}[{j}]", entry).get("backend"))
    for i, backend in enumerate(c.sequence("backends", model.get("backends"))):
        backend = c.mapping(f"backends[{i}]", backend)
        c.text(f"backends[{i}].name", backend.get("name"))
        for j, target in enumerate(c.sequence(f"backends[{i}].targets", backend.get("targets"))):
            target = c.mapping(f"backends[{i}].targets[{j}]", target)
            c.text(f"backends[{i}].targets[{j}].address", target.get("address"))
            c.port(f"backends[{i}].targets[{j}].port", target.get("port"))
            c.choice(f"backends[{i}].targets[{j}].state", target.get("state"), tuple(_STATE))


def certificate_probes(model: Any, hosts: Any) -> list[dict[str, Any]]:
    """The probes that ask each edge (name -> address) for each certificate the model's
    TLS-terminated routes use: a TLS handshake with the first of its routes' names (a wildcard's
    stand-in under it), the certificate not validated (drift compares, the rollout's probes judge)."""
    _check_model(model)
    if not isinstance(hosts, dict):
        raise DriftError("hosts: expected host name -> its address")
    names: dict[str, tuple[str, int]] = {}
    for frontend in model["frontends"]:
        for route in frontend.get("routes", []) if frontend.get("tls") else []:
            if route.get("certificate") and route["host"] != "*":
                names.setdefault(route["certificate"], (route["host"].replace("*", "k8sedge-drift", 1), frontend["port"]))
    return [{"name": f"certificate {certificate} on {host}", "type": "tcp", "tls": True, "validate_certs": False,
             "sni": server_name, "address": str(address), "port": port, "timeout": 5}
            for host, address in sorted(hosts.items()) for certificate, (server_name, port) in sorted(names.items())]


def certificates_of(results: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """host -> certificate -> {sha256, not_after, error} from the results of certificate_probes()."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results if isinstance(results, list) else []:
        _word, certificate, _on, host = str(result.get("name", "")).split(" ", 3)
        tls = result.get("tls") or {}
        found.setdefault(host, {})[certificate] = {"sha256": tls.get("certificate_sha256", ""),
                                                   "not_after": tls.get("not_after", ""), "error": result.get("error", "")}
    return found


def _certificates(out: dict[str, Any], expected: dict[str, dict[str, str]], now: datetime.datetime) -> tuple[list[str], list[str]]:
    """(drift, lines): a host that presents another certificate than the one it was given, or
    cannot be asked; a certificate that differs between the edges; and, per certificate, when it
    expires."""
    drift, lines = [], []
    for certificate in sorted({c for h in out.values() for c in h["certificates"]}):
        seen = {name: h["certificates"][certificate] for name, h in out.items() if certificate in h["certificates"]}
        for name, served in seen.items():
            want = expected.get(name, {}).get(certificate, "")
            if served["error"]:
                drift.append(f"{name}: certificate {certificate}: not presented ({served['error']})")
            elif want and served["sha256"] != want:
                drift.append(f"{name}: certificate {certificate}: presents SHA-256 {served['sha256'][:16]}..., the inventory"
                             f" gives {want[:16]}...")
        fingerprints = {served["sha256"] for served in seen.values() if not served["error"]}
        if len(fingerprints) > 1:
            drift.append(f"certificate {certificate} differs between the edges: "
                         + ", ".join(f"{name} {served['sha256'][:16]}..." for name, served in seen.items() if not served["error"]))
        for fingerprint in sorted(fingerprints):
            where = [name for name, served in seen.items() if served["sha256"] == fingerprint]
            not_after = next(served["not_after"] for served in seen.values() if served["sha256"] == fingerprint)
            when = ""
            if not_after:
                days = (datetime.datetime.fromisoformat(not_after) - now).total_seconds() / 86400
                when = (f"; expired {-days:.0f} days ago" if days < 0 else f"; expires in {days:.0f} days") + f", on {not_after[:10]}"
            lines.append(f"certificate {certificate}: {fingerprint[:16]}... on {', '.join(where)}{when}")
    return drift, lines


def _check_host(name: str, host: Any) -> None:
    """One host's report: {engine, generation, pools, servers (haproxy_runtime's), vrrp, certificates}."""
    c = Checker(f"host {name}", DriftError)
    host = c.mapping("hosts", host)
    for certificate, served in c.mapping("certificates", host.get("certificates") or {}).items():
        served = c.mapping(f"certificates.{certificate}", served)
        for key in ("sha256", "not_after", "error"):
            if not isinstance(served.get(key), str):
                raise DriftError(f"host {name}: certificates.{certificate}.{key}: expected text")
    for certificate, fingerprint in c.mapping("expected", host.get("expected") or {}).items():
        c.text(f"expected.{certificate}", fingerprint)
    for key in ("engine", "generation"):
        if host.get(key) is not None:
            c.text(key, host[key])
    for key in ("pools", "vrrp"):
        for i, item in enumerate(c.sequence(key, host.get(key) or [])):
            c.text(f"{key}[{i}]", item)
    if host.get("servers") is not None:
        for backend, slots in c.mapping("servers", host["servers"]).items():
            for slot, server in c.mapping(f"servers.{backend}", slots).items():
                server = c.mapping(f"servers.{backend}.{slot}", server)
                c.text(f"servers.{backend}.{slot}.address", server.get("address"))
                c.integer(f"servers.{backend}.{slot}.port", server.get("port"), 0, 65535)
                c.text(f"servers.{backend}.{slot}.state", server.get("state"))


def _served_backends(model: dict[str, Any], pools: list[str]) -> set[str]:
    """Backends the frontends of these pools use, UDP left out (haproxy cannot serve it)."""
    names = set()
    for frontend in model["frontends"]:
        if frontend["pool"] not in pools or frontend["protocol"] == "udp":
            continue
        names.update(b for b in [frontend.get("backend", "")] if b)
        names.update(route["backend"] for route in frontend.get("routes", []))
        names.update(entry["backend"] for entry in frontend.get("sni", []))
    return names


def _runtime(model: dict[str, Any], pools: list[str], servers: dict[str, Any]) -> list[str]:
    """Backends whose running servers are not the model's targets, each with what differs."""
    targets = {b["name"]: b["targets"] for b in model["backends"]}
    found = []
    for name in sorted(_served_backends(model, pools) | set(servers)):
        want = {(t["address"], int(t["port"]), _STATE[t["state"]]) for t in targets.get(name, [])}
        have = {(s["address"], int(s["port"]), s["state"]) for s in (servers.get(name) or {}).values()}
        if want != have:
            missing = ", ".join(f"{a}:{p} {s}" for a, p, s in sorted(want - have)) or "none"
            extra = ", ".join(f"{a}:{p} {s}" for a, p, s in sorted(have - want)) or "none"
            found.append(f"{name}: missing {missing}; not in the model {extra}")
    return found


def vrrp_states(lines: list[str]) -> dict[str, str]:
    """Instance -> state from the notify script's records, as `grep -r` prints them:
    `/run/k8sedge-keepalived/<instance>.state:<STATE> <epoch>`."""
    states = {}
    for line in lines:
        path, found, record = line.partition(".state:")
        if found and record:
            states[path.rsplit("/", 1)[-1]] = record.split(" ", 1)[0]
    return states


def _vrrp(out: dict[str, Any]) -> list[str]:
    """A VIP that more than one edge holds (the edges do not hear each other: split brain), or
    that no edge holds, among the hosts that reported their VRRP instances."""
    instances = sorted({i for h in out.values() for i in h["vrrp"]})
    found = []
    for instance in instances:
        masters = [name for name, h in out.items() if h["vrrp"].get(instance) == "MASTER"]
        if len(masters) > 1:
            found.append(f"VRRP {instance}: MASTER on {', '.join(masters)} (split brain: the edges do not hear each other's"
                         " advertisements; the VIP answers from whichever edge the network last learned)")
        elif not masters:
            states = ", ".join(f"{name} {h['vrrp'].get(instance, 'none')}" for name, h in out.items())
            found.append(f"VRRP {instance}: no edge holds the VIP ({states})")
    return found


def report(model: dict[str, Any], hosts: dict[str, dict[str, Any]], now: datetime.datetime | None = None) -> dict[str, Any]:
    """hosts: name -> {engine, generation (applied, "" if none), pools, servers (haproxy's running
    servers, or None when not read), vrrp (the notify script's records, optional), maintenance
    (the state record's, when drained), certificates (what it presents: certificates_of()) and
    expected (certificate -> the SHA-256 it was given), both optional}. Returns
    {ok, model, hosts: name -> {...}, vrrp, certificates, lines}."""
    _check_model(model)
    if not isinstance(hosts, dict):
        raise DriftError("hosts: expected host -> {engine, generation, pools, servers}")
    out: dict[str, Any] = {}
    for name, host in sorted(hosts.items()):
        _check_host(name, host)
        generation, servers = host.get("generation") or "", host.get("servers")
        runtime = _runtime(model, list(host.get("pools") or ["default"]), servers) if servers is not None else []
        vrrp = vrrp_states(list(host.get("vrrp") or []))
        out[name] = {"engine": host.get("engine", ""), "generation": generation,
                     "current": generation == model["generation"], "runtime": runtime, "vrrp": vrrp,
                     "maintenance": host.get("maintenance") or None, "certificates": dict(host.get("certificates") or {})}
    generations = sorted({h["generation"] for h in out.values()})
    lines = [f"model generation {model['generation'][:12]}"]
    for name, host in out.items():
        state = "current" if host["current"] else f"DRIFT: applied {host['generation'][:12] or 'nothing'}"
        drained = host["maintenance"]
        if drained:  # an operator's choice, not drift
            state += "; drained" + (f" ({drained.get('reason')})" if isinstance(drained, dict) and drained.get("reason") else "")
        lines.append(f"{name} ({host['engine']}): {state}" + "".join(f"; runtime {r}" for r in host["runtime"]))
    if len(generations) > 1:
        lines.append(f"hosts differ: {len(generations)} generations among {len(out)} hosts")
    vrrp = _vrrp(out)
    lines += vrrp
    certificates, about = _certificates(out, {name: dict(h.get("expected") or {}) for name, h in hosts.items()},
                                        now or datetime.datetime.now(datetime.timezone.utc))
    lines += certificates + about
    ok = all(h["current"] and not h["runtime"] for h in out.values()) and not vrrp and not certificates
    return {"ok": ok, "model": model["generation"], "hosts": out, "vrrp": vrrp, "certificates": certificates, "lines": lines}
