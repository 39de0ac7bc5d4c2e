# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VIPs of the edge as keepalived sees them: render-ready data for roles/edge_keepalived.

Pure: no I/O. `keepalived_view(facts, options)` checks the inventory against the host's own
interface facts before anything changes (the interface exists and has an IPv4 address, every VIP
lies in its subnet, router ids are distinct) and decides everything the template would otherwise
have to: one VRRP instance per VIP, its virtual_router_id, its priority on this host (the VIPs of
a pool take turns in the order of the hosts that serve it, so they are split active/active), the
unicast peers, and the track script command lines. `domain_conflicts(views)` compares the views
of several hosts: in one broadcast domain (one IPv4 network) a virtual_router_id names one VIP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckOptions", "Member", "ViewError", "ViewOptions", "domain_conflicts", "keepalived_view"]

# Names that go into keepalived.conf unquoted and into file names of the notify script.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}")
# Arguments of a track script: keepalived splits its `script` line on spaces and reads quotes.
_ARGUMENT = re.compile(r"[A-Za-z0-9_./:@=,+-]{1,255}")
_ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9_./-]{0,254}")
_UNSAFE_TO_SHOW = re.compile(r"[^A-Za-z0-9._:/@=+,*-]")
# proxy: generation file format. haproxy is probed on its stats socket (`show info`), nginx with
# HEAD /stub_status on its admin listener: neither is logged, however often the check probes.
_PROXIES = {"haproxy": "text", "nginx": "json"}
_VRRP_PRIORITY = range(1, 255)  # 255 belongs to an address owner
_ROUTER_ID = range(1, 256)
# A watching proxy check ends this long before keepalived starts the next run (same interval):
# keepalived skips a run while the previous one is still going.
WATCH_MARGIN = 0.1


class ViewError(ValueError):
    """Inventory the view refuses; the message names the host, the object and the field."""


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = _UNSAFE_TO_SHOW.sub("?", value[:64])
        return f'"{text}..."' if len(value) > 64 else f'"{text}"'
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


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
    rollout_file: str = "/var/lib/k8sedge/rollout.json"
    generation_file: str = ""  # "": where the proxy role records it
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
    check: CheckOptions = field(default_factory=CheckOptions)


def _int(value: Any, where: str, allowed: range) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise ViewError(f"{where}: expected an integer from {allowed.start} to {allowed.stop - 1}, got {_show(value)}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ViewError(f"{where}: expected a number, got {_show(value)}")
    return float(value)


def _ipv4(value: Any, where: str) -> ipaddress.IPv4Address:
    try:
        if not isinstance(value, str) or "/" in value:
            raise ValueError(value)
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ViewError(f"{where}: expected an IPv4 address (no prefix), got {_show(value)}") from None


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ABSOLUTE_PATH.fullmatch(value) or "/../" in f"{value}/":
        raise ViewError(f"{where}: expected an absolute path of letters, digits and _.-/, got {_show(value)}")
    return value


def _interface_network(facts: Mapping[str, Any], options: ViewOptions) -> tuple[ipaddress.IPv4Interface, str]:
    """The interface's primary IPv4 address with its prefix, from the host's facts."""
    name = options.interface
    where = f"host {options.host}: interface"
    if not isinstance(name, str) or not _INTERFACE.fullmatch(name):
        raise ViewError(f"{where}: expected an interface name, got {_show(name)}")
    present = sorted(facts.get("interfaces") or [])
    if name not in present:
        raise ViewError(f"{where}: {name} does not exist on this host (it has: {', '.join(present) or 'none'}); "
                        "set edge_keepalived_interface to the interface that carries the VIPs")
    # Facts name an interface's entry with - and : spelt _ (br-lan -> ansible_br_lan).
    details = facts.get(re.sub(r"[-:]", "_", name)) or {}
    ipv4 = details.get("ipv4") or {}
    try:
        primary = ipaddress.IPv4Interface(f"{ipv4['address']}/{ipv4['netmask']}")
    except (KeyError, TypeError, ValueError):
        raise ViewError(f"{where}: {name} has no IPv4 address; the VIPs need an interface with one") from None
    if options.address:
        source = _ipv4(options.address, f"host {options.host}: edge_keepalived_address")
        if source not in primary.network:
            raise ViewError(f"host {options.host}: edge_keepalived_address: {source} is outside {primary.network}, "
                            f"the subnet of {name}")
        return ipaddress.IPv4Interface(f"{source}/{primary.network.prefixlen}"), name
    return primary, name


def _advert_int(options: ViewOptions) -> str:
    value = _number(options.advert_int, "edge_keepalived_advert_int")
    if options.version == 2:
        if value != int(value) or not 1 <= value <= 255:
            raise ViewError(f"edge_keepalived_advert_int: VRRPv2 advertises in whole seconds from 1 to 255, got {value:g}; "
                            "sub-second intervals need edge_keepalived_vrrp_version 3")
        return str(int(value))
    centiseconds = round(value * 100)
    if abs(centiseconds - value * 100) > 1e-6 or not 1 <= centiseconds <= 4095:
        raise ViewError(f"edge_keepalived_advert_int: VRRPv3 advertises in hundredths of a second from 0.01 to 40.95, "
                        f"got {value:g}")
    return f"{centiseconds / 100:g}"


def _pool_vips(options: ViewOptions, network: ipaddress.IPv4Network, members: Sequence[Member]) -> list[tuple[str, list[ipaddress.IPv4Address]]]:
    """pool -> VIPs, pools sorted by name, each VIP checked against the interface's subnet."""
    if not isinstance(options.pool_vips, Mapping):
        raise ViewError(f"edge_keepalived_pool_vips: expected pool -> list of VIPs, got {_show(options.pool_vips)}")
    taken = {m.address: m.name for m in members if m.address}
    seen: dict[ipaddress.IPv4Address, str] = {}
    pools = []
    for pool in sorted(options.pool_vips):
        if not isinstance(pool, str) or not _NAME.fullmatch(pool):
            raise ViewError(f"edge_keepalived_pool_vips: expected pool names of a-z, 0-9, _.-, got {_show(pool)}")
        vips = options.pool_vips[pool]
        if isinstance(vips, (str, bytes)) or not isinstance(vips, Sequence):
            raise ViewError(f"edge_keepalived_pool_vips: pool {pool}: expected a list of VIPs, got {_show(vips)}")
        addresses = []
        for vip in vips:
            address = _ipv4(vip, f"edge_keepalived_pool_vips: pool {pool}")
            if address not in network or address in (network.network_address, network.broadcast_address):
                raise ViewError(f"edge_keepalived_pool_vips: pool {pool}: VIP {address} is outside {network}, "
                                f"the subnet of {options.interface} on {options.host}")
            if address in seen:
                raise ViewError(f"edge_keepalived_pool_vips: VIP {address} is listed twice (pools {seen[address]} and {pool})")
            if str(address) in taken:
                raise ViewError(f"edge_keepalived_pool_vips: pool {pool}: VIP {address} is the address of {taken[str(address)]}")
            seen[address] = pool
            addresses.append(address)
        pools.append((pool, addresses))
    return pools


def _router_ids(options: ViewOptions, pools: list[tuple[str, list[ipaddress.IPv4Address]]]) -> dict[ipaddress.IPv4Address, int]:
    """VIP -> virtual_router_id: edge_keepalived_router_ids, else base + the VIP's position."""
    if not isinstance(options.router_ids, Mapping):
        raise ViewError(f"edge_keepalived_router_ids: expected VIP -> router id, got {_show(options.router_ids)}")
    pinned = {_ipv4(vip, "edge_keepalived_router_ids"): _int(rid, f"edge_keepalived_router_ids: {vip}", _ROUTER_ID)
              for vip, rid in options.router_ids.items()}
    base = _int(options.router_id_base, "edge_keepalived_router_id_base", _ROUTER_ID)
    ids: dict[ipaddress.IPv4Address, int] = {}
    owner: dict[int, ipaddress.IPv4Address] = {}
    in_order = [vip for _pool, vips in pools for vip in vips]
    for position, vip in enumerate(in_order):
        rid = pinned.get(vip, base + position)
        if rid not in _ROUTER_ID:
            raise ViewError(f"edge_keepalived_router_id_base: VIP {vip} would get router id {rid}, past 255; "
                            "lower the base or pin ids in edge_keepalived_router_ids")
        if rid in owner:
            raise ViewError(f"duplicate virtual_router_id {rid} on {options.host}: VIPs {owner[rid]} and {vip} "
                            "are in one broadcast domain and need distinct ids (edge_keepalived_router_ids, "
                            "edge_keepalived_router_id_base)")
        owner[rid] = vip
        ids[vip] = rid
    return ids


def _check_lines(options: ViewOptions, serving: int) -> list[dict[str, Any]]:
    """The vrrp_script blocks: the proxy's health (FAULT when down) and, if tracked, its config."""
    check = options.check
    if check.proxy not in _PROXIES:
        raise ViewError(f"edge_keepalived_proxy: expected one of {', '.join(_PROXIES)}, got {_show(check.proxy)}")
    generation_format = _PROXIES[check.proxy]
    interval = _int(check.interval, "edge_keepalived_check_interval", range(1, 61))
    poll = _number(check.poll, "edge_keepalived_check_poll")
    timeout = _number(check.timeout, "edge_keepalived_check_timeout")
    if not 0 <= poll <= interval - WATCH_MARGIN:
        raise ViewError(f"edge_keepalived_check_poll: expected 0 (one probe a run) up to {interval - WATCH_MARGIN:g} s, "
                        f"got {poll:g}")
    if not 0.01 <= timeout <= interval - WATCH_MARGIN:
        raise ViewError(f"edge_keepalived_check_timeout: expected 0.01 to {interval - WATCH_MARGIN:g} s (a probe must end "
                        f"within the check interval), got {timeout:g}")
    fall = _int(check.fall, "edge_keepalived_check_fall", range(1, 101))
    rise = _int(check.rise, "edge_keepalived_check_rise", range(1, 101))
    program = _path(check.program, "check program")
    status_dir = _path(check.status_dir, "check status directory")
    if check.proxy == "haproxy":
        target = ["--socket", _path(check.socket, "edge_keepalived_proxy_socket")]
    else:
        address = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(check.admin_address, check.admin_address)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ViewError(f"edge_keepalived_proxy_admin_address: expected an IP address, got {_show(check.admin_address)}") from None
        port = _int(check.admin_port, "edge_keepalived_proxy_admin_port", range(1, 65536))
        target = ["--host", address, "--port", str(port), "--path", "/stub_status"]
    watch = f"{interval - WATCH_MARGIN:g}" if poll else "0"
    proxy = [program, "proxy", *target, "--timeout", f"{timeout:g}", "--watch", watch, "--poll", f"{poll:g}",
             "--status-dir", status_dir]
    # keepalived kills a run that outlives its timeout and counts it as failed: allow a slow start.
    scripts = [{"name": "k8sedge_proxy", "command": " ".join(proxy), "interval": interval, "timeout": interval + 1,
                "fall": fall, "rise": rise, "weight": 0}]
    if check.track_config:
        weight = _int(check.config_weight, "edge_keepalived_config_weight", range(-253, 1))
        if weight and not options.preempt:
            raise ViewError("edge_keepalived_config_weight: a negative weight only lowers the priority, which moves no VIP "
                            "with edge_keepalived_preempt false; use 0 (FAULT: the host gives its VIPs up)")
        spread = (serving - 1) * options.priority_step
        if weight and -weight <= spread:
            raise ViewError(f"edge_keepalived_config_weight: {weight} must outweigh the priority spread of {spread} "
                            f"({serving} hosts, step {options.priority_step}) so a stale host ranks below every healthy one")
        generation_file = check.generation_file or {
            "haproxy": "/var/lib/k8sedge/haproxy/generation", "nginx": "/var/lib/k8sedge/nginx/applied.json"}[check.proxy]
        config = [program, "config", "--rollout", _path(check.rollout_file, "edge_keepalived_rollout_file"),
                  "--generation", _path(generation_file, "edge_keepalived_generation_file"),
                  "--format", generation_format, "--grace", str(_int(check.grace, "edge_keepalived_config_grace", range(0, 86401))),
                  "--status-dir", status_dir]
        scripts.append({"name": "k8sedge_config", "command": " ".join(config), "interval": interval, "timeout": interval + 1,
                        "fall": fall, "rise": rise, "weight": weight})
    for script in scripts:
        for argument in script["command"].split(" "):
            if not _ARGUMENT.fullmatch(argument):
                raise ViewError(f"track script {script['name']}: argument {_show(argument)} cannot go into keepalived.conf")
    return scripts


def _members(options: ViewOptions) -> list[Member]:
    members = list(options.members)
    names = [m.name for m in members]
    if options.host not in names:
        raise ViewError(f"host {options.host} is not among the hosts that share the VIPs ({', '.join(names) or 'none'}); "
                        "check edge_keepalived_group")
    for member in members:
        if not isinstance(member.name, str) or not member.name:
            raise ViewError(f"members: expected host names, got {_show(member.name)}")
        for pool in member.pools:
            if not isinstance(pool, str) or not _NAME.fullmatch(pool):
                raise ViewError(f"host {member.name}: edge_keepalived_pools: expected pool names, got {_show(pool)}")
        if member.address:
            _ipv4(member.address, f"host {member.name}: VRRP address")
    return members


def keepalived_view(facts: Mapping[str, Any], options: ViewOptions) -> dict[str, Any]:
    """Everything keepalived.conf says on this host; ViewError before anything changes."""
    if options.version not in (2, 3):
        raise ViewError(f"edge_keepalived_vrrp_version: expected 2 or 3, got {_show(options.version)}")
    members = _members(options)
    primary, interface = _interface_network(facts, options)
    own = Member(options.host, next(m.pools for m in members if m.name == options.host), str(primary.ip))
    members = [own if m.name == options.host else m for m in members]
    advert_int = _advert_int(options)
    if options.auth_file:
        if options.version != 2:
            raise ViewError("edge_keepalived_auth_pass: VRRPv3 has no authentication (RFC 5798); "
                            "use edge_keepalived_vrrp_version 2 or leave the password empty")
        _path(options.auth_file, "auth file")
    pools = _pool_vips(options, primary.network, members)
    router_ids = _router_ids(options, pools)
    top = _int(options.priority, "edge_keepalived_priority", _VRRP_PRIORITY)
    step = _int(options.priority_step, "edge_keepalived_priority_step", range(1, 254))

    instances, warnings = [], []
    largest = 1
    for pool, vips in pools:
        serving = [m for m in members if pool in m.pools]
        if own not in serving or not vips:
            continue
        largest = max(largest, len(serving))
        lowest = top - (len(serving) - 1) * step
        if lowest not in _VRRP_PRIORITY:
            raise ViewError(f"pool {pool}: {len(serving)} hosts from priority {top} in steps of {step} go down to {lowest}; "
                            "VRRP priorities are 1 to 254 (edge_keepalived_priority, edge_keepalived_priority_step)")
        for index, vip in enumerate(vips):
            # The VIPs of a pool take turns: VIP k is primary on the (k mod n)-th serving host.
            rank = (serving.index(own) - index) % len(serving)
            peers = [m for m in serving if m is not own]
            if options.unicast:
                missing = [m.name for m in peers if not m.address]
                if missing:
                    raise ViewError(f"pool {pool}: unicast needs the VRRP address of {', '.join(missing)}: set "
                                    "edge_keepalived_address or ansible_host to it, or gather its facts in the same play")
            directives = ["state BACKUP", f"interface {interface}", f"virtual_router_id {router_ids[vip]}",
                          f"priority {top - rank * step}", f"advert_int {advert_int}"]
            if not options.preempt:
                directives.append("nopreempt")
            instances.append({
                "name": f"k8sedge_{pool}_{vip}",
                "pool": pool,
                "vip": str(vip),
                "prefix": primary.network.prefixlen,
                "router_id": router_ids[vip],
                "priority": top - rank * step,
                "primary": serving[index % len(serving)].name,
                "directives": directives,
                "unicast": [{"source": own.address, "peers": sorted(m.address for m in peers)}] if options.unicast else [],
            })
    for pool in sorted(set(own.pools) - set(options.pool_vips)):
        warnings.append(f"pool {pool}: no VIPs in edge_keepalived_pool_vips; this host holds none for it")
    return {
        "interface": interface,
        "address": own.address,
        "network": str(primary.network),
        "version": options.version,
        "instances": instances,
        "includes": [options.auth_file] if options.auth_file else [],
        "scripts": _check_lines(options, largest),
        "domain": {"host": options.host, "network": str(primary.network),
                   "router_ids": [{"router_id": i["router_id"], "vip": i["vip"]} for i in instances]},
        "warnings": warnings,
    }


def domain_conflicts(domains: Sequence[Mapping[str, Any]]) -> list[str]:
    """Router ids that clash across hosts: in one network a virtual_router_id must name one VIP,
    and a VIP one id. `domains` are the views' `domain` entries; returns the problems found."""
    by_network: dict[str, dict[str, dict[Any, set[tuple[Any, str]]]]] = {}
    for domain in domains:
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
                                "each VIP needs its own id (edge_keepalived_router_ids, edge_keepalived_router_id_base)")
        for vip, users in sorted(network["vips"].items()):
            if len({rid for rid, _host in users}) > 1:
                listed = ", ".join(f"{rid} on {host}" for rid, host in sorted(users))
                problems.append(f"VIP {vip} has different virtual_router_ids in {network_name}: {listed}; "
                                "every host must give a VIP the same id")
    return problems
