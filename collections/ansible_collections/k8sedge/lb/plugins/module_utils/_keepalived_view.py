# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VIPs of the edge as keepalived sees them: render-ready data for roles/edge_keepalived.

Pure: no I/O. `keepalived_view(facts, options)` checks the inventory against the host's own
interface facts before anything changes (the interface exists and has an IPv4 address, every VIP
lies in its subnet, router ids are distinct) and decides everything the template would otherwise
have to: one VRRP instance per VIP, its virtual_router_id, its priority on this host (the VIPs of
a pool take turns in the order of the hosts that serve it, so they are split active/active), the
unicast peers, and the track script command lines; the template spells keepalived's syntax.
`domain_conflicts(domains)` compares the views of several hosts: in one broadcast domain (one
IPv4 network) a virtual_router_id names one VIP. Refusals are module_utils/_view's: ViewError,
naming the host, the variable and what was expected.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as g
from ansible_collections.k8sedge.lb.plugins.module_utils._view import Checker, Finding, ViewError

__all__ = ["CheckOptions", "Member", "ViewError", "ViewOptions", "domain_conflicts", "keepalived_view", "vip_order"]

# Names that go into keepalived.conf unquoted and into file names of the notify script.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}")
# Arguments of a track script: keepalived splits its `script` line on spaces and reads quotes.
_ARGUMENT = re.compile(r"[A-Za-z0-9_./:@=,+-]{1,255}")
_ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9_./-]{0,254}")
_PATH = "an absolute path of letters, digits and _.-/"
# haproxy is probed on its stats socket (`show info`), nginx with HEAD /stub_status on its admin
# listener: neither is logged, however often the check probes.
_PROXIES = ("haproxy", "nginx")
_VRRP_PRIORITY = (1, 254)  # 255 belongs to an address owner
_ROUTER_ID = (1, 255)
# A watching proxy check ends this long before keepalived starts the next run (same interval):
# keepalived skips a run while the previous one is still going.
WATCH_MARGIN = 0.1


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    """An IPv4 address without a prefix, for Checker.grammar."""
    try:
        if isinstance(value, str) and "/" not in value:
            return ipaddress.IPv4Address(value)
    except ValueError:
        pass
    raise g.expected("an IPv4 address (no prefix)", value)


def _ip_text(value: Any) -> str:
    """Any IP address, as it is spelled, for Checker.grammar."""
    try:
        if isinstance(value, str):
            ipaddress.ip_address(value)
            return value
    except ValueError:
        pass
    raise g.expected("an IP address", value)


def _path(c: Checker, what: str, value: Any) -> str:
    value = c.matches(what, value, _ABSOLUTE_PATH, _PATH)
    if "/../" in f"{value}/":
        raise c.fail(what, _PATH, value)
    return value


@dataclass(frozen=True)
class Member:
    """A host that shares the VIPs of the pools it serves; `address` is its VRRP source address
    ("" when the inventory does not say, which only unicast needs)."""

    name: str
    pools: tuple[str, ...]
    address: str = ""


@dataclass(frozen=True)
class CheckOptions:
    """The track scripts: the proxy's health, and whether it runs the config the rollout applied."""

    program: str = "/usr/local/lib/k8sedge/vrrp-check"
    proxy: str = "haproxy"
    socket: str = "/run/haproxy/admin.sock"  # haproxy's stats socket
    admin_address: str = "127.0.0.1"  # nginx's admin listener
    admin_port: int = 8405
    interval: int = 1
    poll: float = 0.05  # 0: one probe per run
    timeout: float = 0.5
    fall: int = 1
    rise: int = 2
    track_config: bool = True
    state_file: str = "/var/lib/k8sedge/state.json"  # the host's state record (k8sedge.lb.edge_state)
    grace: int = 120
    config_weight: int = 0
    status_dir: str = "/run/k8sedge-keepalived"


@dataclass(frozen=True)
class ViewOptions:
    """What the role passes besides the host's facts."""

    host: str
    interface: str
    pool_vips: Mapping[str, Sequence[str]]
    members: tuple[Member, ...]
    address: str = ""  # this host's VRRP source address; "": the interface's primary IPv4
    version: int = 3
    advert_int: float = 0.2
    preempt: bool = True
    unicast: bool = False
    auth_file: str = ""  # "": no VRRPv2 authentication
    router_id_base: int = 50
    router_ids: Mapping[str, int] = field(default_factory=dict)
    priority: int = 250
    priority_step: int = 10
    primaries: Mapping[str, str] = field(default_factory=dict)  # VIP -> the host it is pinned to
    check: CheckOptions = field(default_factory=CheckOptions)


def _interface_network(c: Checker, facts: Mapping[str, Any], options: ViewOptions) -> tuple[ipaddress.IPv4Interface, str]:
    """The interface's primary IPv4 address with its prefix, from the host's facts."""
    name = c.matches("interface", options.interface, _INTERFACE, "an interface name")
    present = sorted(str(interface) for interface in c.sequence("facts.interfaces", facts.get("interfaces") or []))
    if name not in present:
        raise c.refuse("interface", f"{name} does not exist on this host (it has: {', '.join(present) or 'none'});"
                                    " set interface to the interface that carries the VIPs")
    # Facts name an interface's entry with - and : spelt _ (br-lan -> ansible_br_lan).
    details = facts.get(re.sub(r"[-:]", "_", name))
    ipv4 = details.get("ipv4") if isinstance(details, Mapping) else None
    address, netmask = (ipv4.get("address"), ipv4.get("netmask")) if isinstance(ipv4, Mapping) else (None, None)
    try:
        primary = ipaddress.IPv4Interface(f"{address}/{netmask}") if isinstance(address, str) and isinstance(netmask, str) else None
    except ValueError:
        primary = None
    if primary is None:
        raise c.refuse("interface", f"{name} has no IPv4 address; the VIPs need an interface with one")
    if options.address:
        source = c.grammar("address", options.address, _ipv4, "an IPv4 address (no prefix)")
        if source not in primary.network:
            raise c.refuse("address", f"{source} is outside {primary.network}, the subnet of {name}")
        return ipaddress.IPv4Interface(f"{source}/{primary.network.prefixlen}"), name
    return primary, name


def _advert_int(c: Checker, options: ViewOptions) -> str:
    value = c.number("advert_int", options.advert_int)
    if options.version == 2:
        if value != int(value) or not 1 <= value <= 255:
            raise c.refuse("advert_int", f"VRRPv2 advertises in whole seconds from 1 to 255, got {value:g}; "
                           "sub-second intervals need version 3")
        return str(int(value))
    centiseconds = round(value * 100)
    if abs(centiseconds - value * 100) > 1e-6 or not 1 <= centiseconds <= 4095:
        raise c.refuse("advert_int", f"VRRPv3 advertises in hundredths of a second from 0.01 to 40.95, got {value:g}")
    return f"{centiseconds / 100:g}"


def _pool_vips(c: Checker, options: ViewOptions, network: ipaddress.IPv4Network,
               members: Sequence[Member]) -> list[tuple[str, list[ipaddress.IPv4Address]]]:
    """pool -> VIPs, pools sorted by name, each VIP checked against the interface's subnet."""
    what = "pool_vips"
    c.mapping(what, options.pool_vips)
    taken = {m.address: m.name for m in members if m.address}
    seen: dict[ipaddress.IPv4Address, str] = {}
    pools = []
    for pool in sorted(options.pool_vips, key=str):
        c.matches(what, pool, _NAME, "pool names of a-z, 0-9, _.-")
        vips = options.pool_vips[pool]
        if isinstance(vips, (str, bytes)) or not isinstance(vips, Sequence):
            raise c.fail(f"{what}.{pool}", "a list of VIPs", vips)
        addresses = []
        for vip in vips:
            address = c.grammar(f"{what}.{pool}", vip, _ipv4, "an IPv4 address (no prefix)")
            if address not in network or address in (network.network_address, network.broadcast_address):
                raise c.refuse(f"{what}.{pool}", f"VIP {address} is outside {network}, the subnet of {options.interface}")
            if address in seen:
                raise c.refuse(what, f"VIP {address} is listed twice (pools {seen[address]} and {pool})")
            if str(address) in taken:
                raise c.refuse(f"{what}.{pool}", f"VIP {address} is the address of {taken[str(address)]}")
            seen[address] = pool
            addresses.append(address)
        pools.append((pool, addresses))
    return pools


def _router_ids(c: Checker, options: ViewOptions, pools: list[tuple[str, list[ipaddress.IPv4Address]]]) -> dict[ipaddress.IPv4Address, int]:
    """VIP -> virtual_router_id: router_ids, else base + the VIP's position."""
    pinned = {c.grammar("router_ids", vip, _ipv4, "VIPs (IPv4 addresses)"):
              c.integer(f"router_ids.{vip}", rid, *_ROUTER_ID)
              for vip, rid in c.mapping("router_ids", options.router_ids).items()}
    base = c.integer("router_id_base", options.router_id_base, *_ROUTER_ID)
    ids: dict[ipaddress.IPv4Address, int] = {}
    owner: dict[int, ipaddress.IPv4Address] = {}
    in_order = [vip for _pool, vips in pools for vip in vips]
    for position, vip in enumerate(in_order):
        rid = pinned.get(vip, base + position)
        if not _ROUTER_ID[0] <= rid <= _ROUTER_ID[1]:
            raise c.refuse("router_id_base", f"VIP {vip} would get router id {rid}, past 255; "
                           "lower the base or pin ids in router_ids")
        if rid in owner:
            raise c.refuse("router_ids", f"duplicate virtual_router_id {rid}: VIPs {owner[rid]} and {vip} are in one"
                           " broadcast domain and need distinct ids (router_ids,"
                           " router_id_base)")
        owner[rid] = vip
        ids[vip] = rid
    return ids


def _check_lines(c: Checker, options: ViewOptions, serving: int) -> list[dict[str, Any]]:
    """The vrrp_script blocks: the proxy's health (FAULT when down) and, if tracked, its config."""
    check = options.check
    c.choice("check.proxy", check.proxy, _PROXIES)
    interval = c.integer("check.interval", check.interval, 1, 60)
    poll = c.number("check.poll", check.poll)
    timeout = c.number("check.timeout", check.timeout)
    if not 0 <= poll <= interval - WATCH_MARGIN:
        raise c.refuse("check.poll", f"expected 0 (one probe a run) up to {interval - WATCH_MARGIN:g} s, got {poll:g}")
    if not 0.01 <= timeout <= interval - WATCH_MARGIN:
        raise c.refuse("check.timeout", f"expected 0.01 to {interval - WATCH_MARGIN:g} s (a probe must end within the"
                       f" check interval), got {timeout:g}")
    fall = c.integer("check.fall", check.fall, 1, 100)
    rise = c.integer("check.rise", check.rise, 1, 100)
    program = _path(c, "check program", check.program)
    status_dir = _path(c, "check status directory", check.status_dir)
    if check.proxy == "haproxy":
        target = ["--socket", _path(c, "check.socket", check.socket)]
    else:
        given = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(check.admin_address, check.admin_address)
        address = c.grammar("check.admin_address", given, _ip_text, "an IP address")
        port = c.port("check.admin_port", check.admin_port)
        target = ["--host", address, "--port", str(port), "--path", "/stub_status"]
    watch = f"{interval - WATCH_MARGIN:g}" if poll else "0"
    proxy = [program, "proxy", *target, "--timeout", f"{timeout:g}", "--watch", watch, "--poll", f"{poll:g}",
             "--status-dir", status_dir]
    # keepalived kills a run that outlives its timeout and counts it as failed: allow a slow start.
    scripts = [{"name": "k8sedge_proxy", "command": " ".join(proxy), "interval": interval, "timeout": interval + 1,
                "fall": fall, "rise": rise, "weight": 0}]
    if c.flag("check.track_config", check.track_config):
        weight = c.integer("check.config_weight", check.config_weight, -253, 0)
        if weight and not options.preempt:
            raise c.refuse("check.config_weight", "a negative weight only lowers the priority, which moves no VIP with"
                           " preempt false; use 0 (FAULT: the host gives its VIPs up)")
        spread = (serving - 1) * options.priority_step
        if weight and -weight <= spread:
            raise c.refuse("check.config_weight", f"{weight} must outweigh the priority spread of {spread} ({serving} hosts,"
                           f" step {options.priority_step}) so a stale host ranks below every healthy one")
        config = [program, "config", "--state", _path(c, "check.state_file", check.state_file),
                  "--grace", str(c.integer("check.grace", check.grace, 0, 86400)), "--status-dir", status_dir]
        scripts.append({"name": "k8sedge_config", "command": " ".join(config), "interval": interval, "timeout": interval + 1,
                        "fall": fall, "rise": rise, "weight": weight})
    for script in scripts:
        for argument in script["command"].split(" "):
            c.matches(f"track script {script['name']}", argument, _ARGUMENT, "arguments keepalived.conf can carry")
    return scripts


def _members(c: Checker, options: ViewOptions) -> list[Member]:
    members = list(options.members)
    names = [m.name for m in members]
    if options.host not in names:
        raise c.refuse("hosts", f"this host is not among the hosts that share the VIPs ({', '.join(map(str, names)) or 'none'})")
    for member in members:
        other = Checker(f"host {g.show(member.name)}")
        if not isinstance(member.name, str) or not member.name:
            raise other.fail("name", "a host name", member.name)
        for pool in member.pools:
            other.matches("pools", pool, _NAME, "pool names of a-z, 0-9, _.-")
        if member.address:
            other.grammar("VRRP address", member.address, _ipv4, "an IPv4 address (no prefix)")
    return members


def vip_order(pool_vips: Mapping[str, Sequence[Any]], members: Sequence[Member],
              primaries: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """VIP -> the hosts that serve its pool, highest priority first. The VIPs of a pool take
    turns: VIP k of a pool's list is primary on the (k mod n)-th of its n hosts (in inventory
    order), the next host in that order has the next priority, and so on round the list. A VIP
    pinned in `primaries` (VIP -> host) is primary on that host, the others following in turn.
    So a host appended to the inventory changes no primary of the first n VIPs of a pool; with
    more VIPs than hosts, pin the others before adding one."""
    order = {}
    for pool in sorted(pool_vips, key=str):
        serving = [m.name for m in members if pool in m.pools]
        for index, vip in enumerate(pool_vips[pool]):
            turns = [serving[(index + rank) % len(serving)] for rank in range(len(serving))]
            pinned = (primaries or {}).get(str(vip))
            order[str(vip)] = [pinned, *(name for name in turns if name != pinned)] if pinned in serving else turns
    return order


def keepalived_view(facts: Any, options: ViewOptions) -> dict[str, Any]:
    """Everything keepalived.conf says on this host; ViewError before anything changes."""
    c = Checker(f"host {options.host}")
    facts = c.mapping("facts", facts)
    if options.version not in (2, 3) or isinstance(options.version, bool):
        raise c.fail("version", "2 or 3", options.version)
    members = _members(c, options)
    primary, interface = _interface_network(c, facts, options)
    own = Member(options.host, next(m.pools for m in members if m.name == options.host), str(primary.ip))
    members = [own if m.name == options.host else m for m in members]
    advert_int = _advert_int(c, options)
    preempt = c.flag("preempt", options.preempt)
    unicast = c.flag("unicast", options.unicast)
    if options.auth_file:
        if options.version != 2:
            raise c.refuse("auth_file", "VRRPv3 has no authentication (RFC 5798); use version 2"
                           " or leave the password empty")
        _path(c, "auth file", options.auth_file)
    pools = _pool_vips(c, options, primary.network, members)
    router_ids = _router_ids(c, options, pools)
    top = c.integer("priority", options.priority, *_VRRP_PRIORITY)
    step = c.integer("priority_step", options.priority_step, 1, 253)

    primaries = c.mapping("primaries", options.primaries)
    for vip, pinned in primaries.items():
        pool = next((pool for pool, vips in pools if str(vip) in map(str, vips)), None)
        if pool is None:
            raise c.refuse(f"primaries.{vip}", "not one of the VIPs of pool_vips")
        if pinned not in [m.name for m in members if pool in m.pools]:
            raise c.refuse(f"primaries.{vip}", f"{g.show(pinned)} is not a host that serves pool {pool}")
    order = vip_order(dict(pools), members, primaries)
    instances: list[dict[str, Any]] = []
    findings: list[Finding] = []
    largest = 1
    for pool, vips in pools:
        serving = [m for m in members if pool in m.pools]
        if own not in serving or not vips:
            continue
        largest = max(largest, len(serving))
        lowest = top - (len(serving) - 1) * step
        if lowest < _VRRP_PRIORITY[0]:
            raise c.refuse("priority", f"pool {pool}: {len(serving)} hosts from priority {top} in steps of {step} go"
                           f" down to {lowest}; VRRP priorities are 1 to 254 (priority,"
                           " priority_step)")
        peers = [m for m in serving if m is not own]
        if unicast:
            missing = [m.name for m in peers if not m.address]
            if missing:
                raise c.refuse("unicast", f"pool {pool}: unicast needs the VRRP address of {', '.join(missing)}: set"
                               " address or ansible_host to it, or gather its facts in the"
                               " same play")
        for vip in vips:
            rank = order[str(vip)].index(own.name)
            instances.append({
                "name": f"k8sedge_{pool}_{vip}",
                "pool": pool,
                "vip": str(vip),
                "prefix": primary.network.prefixlen,
                "router_id": router_ids[vip],
                "priority": top - rank * step,
                "primary": order[str(vip)][0],
                "unicast": [{"source": own.address, "peers": sorted(m.address for m in peers)}] if unicast else [],
            })
    for pool in sorted(set(own.pools) - set(options.pool_vips)):
        findings.append(Checker(f"pool {pool}").finding("pool_vips", "no VIPs: this host holds none for it"))
    return {
        "interface": interface,
        "address": own.address,
        "network": str(primary.network),
        "version": options.version,
        "advert_int": advert_int,
        "preempt": preempt,
        "instances": instances,
        "includes": [options.auth_file] if options.auth_file else [],
        "scripts": _check_lines(c, options, largest),
        "domain": {"host": options.host, "network": str(primary.network),
                   "router_ids": [{"router_id": i["router_id"], "vip": i["vip"]} for i in instances]},
        "findings": findings,
    }


def _domains(domains: Any) -> list[Mapping[str, Any]]:
    """The views' `domain` entries, checked: {host, network, router_ids: [{router_id, vip}]}."""
    c = Checker("domains")
    for i, domain in enumerate(c.sequence("entries", domains)):
        domain = c.mapping(f"[{i}]", domain)
        for key in ("host", "network"):
            c.text(f"[{i}].{key}", domain.get(key))
        for j, entry in enumerate(c.sequence(f"[{i}].router_ids", domain.get("router_ids"))):
            entry = c.mapping(f"[{i}].router_ids[{j}]", entry)
            c.integer(f"[{i}].router_ids[{j}].router_id", entry.get("router_id"), *_ROUTER_ID)
            c.text(f"[{i}].router_ids[{j}].vip", entry.get("vip"))
    return domains


def domain_conflicts(domains: Any) -> list[str]:
    """Router ids that clash across hosts: in one network a virtual_router_id must name one VIP,
    and a VIP one id. `domains` are the views' `domain` entries; returns the problems found."""
    by_network: dict[str, dict[str, dict[Any, set[tuple[Any, str]]]]] = {}
    for domain in _domains(domains):
        network = by_network.setdefault(domain["network"], {"ids": {}, "vips": {}})
        for entry in domain["router_ids"]:
            network["ids"].setdefault(entry["router_id"], set()).add((entry["vip"], domain["host"]))
            network["vips"].setdefault(entry["vip"], set()).add((entry["router_id"], domain["host"]))
    problems = []
    for network_name, network in sorted(by_network.items()):
        for rid, users in sorted(network["ids"].items()):
            if len({vip for vip, _host in users}) > 1:
                listed = ", ".join(f"{vip} on {host}" for vip, host in sorted(users))
                problems.append(f"duplicate virtual_router_id {rid} in broadcast domain {network_name}: {listed}; "
                                "each VIP needs its own id (router_ids, router_id_base)")
        for vip, users in sorted(network["vips"].items()):
            if len({rid for rid, _host in users}) > 1:
                listed = ", ".join(f"{rid} on {host}" for rid, host in sorted(users))
                problems.append(f"VIP {vip} has different virtual_router_ids in {network_name}: {listed}; "
                                "every host must give a VIP the same id")
    return problems
