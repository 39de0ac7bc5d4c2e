# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VIP that moves between edges without breaking a connection: the handoff.

keepalived moves a VIP by gratuitous ARP: from then on every packet to it reaches the new holder,
including those of the connections the old holder still serves, and the new holder answers them
with a reset. For a planned move (drain, undrain) the two hosts hand the VIP over instead:

- the host that gives it up keeps accepting its packets: the VIP as a /32 on `lo`, which it does
  not announce (`arp_ignore=1`, `arp_announce=2`: ARP answers and asks only with addresses of the
  interface the ARP goes through), so its sockets go on serving;
- the host that takes it sends on, unchanged, every TCP packet to the VIP that belongs to no
  connection it knows (conntrack's state `new` without SYN, or `invalid`) to the giver's address,
  and drops its own copy (nftables `dup to ... drop`); new connections (a SYN) stay with it. It
  first forgets what conntrack remembers of earlier connections to the VIP (an entry left from an
  earlier handoff would make a packet of the giver's connection look like one of its own);
- once the giver has no connection on the VIP left (or the bound ran out), both are removed.

Pure: the nftables ruleset, and the readers of /proc/net/tcp and of the notify script's state
files. Refusals are ApplyError naming the option and what was expected.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ApplyError
from ansible_collections.k8sedge.lb.plugins.module_utils._keepalived_view import Member, vip_order

__all__ = ["SYSCTLS", "TABLE", "HandoffError", "connections", "forward_ruleset", "moves", "remove_ruleset", "vips",
           "vrrp_states"]

TABLE = "k8sedge_handoff"
# The giver answers and asks ARP only with the addresses of the interface the ARP goes through:
# the VIP on lo is never announced, and the taker's gratuitous ARP is the only one.
SYSCTLS = {"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2"}
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}")
# /proc/net/tcp states of a connection that still expects packets from its client: every state
# but LISTEN (0A), TIME_WAIT (06) and CLOSE (07).
_OPEN_STATES = {"01", "02", "03", "04", "05", "08", "09", "0B"}
_VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


class HandoffError(ApplyError):
    """An option the handoff cannot take; names it."""


def _ipv4(value: Any, what: str) -> str:
    try:
        if isinstance(value, str) and "/" not in value:
            return str(ipaddress.IPv4Address(value))
    except ValueError:
        pass
    raise HandoffError(f"{what}: expected an IPv4 address (no prefix), got {value!r:.80}")


def vips(values: Any, what: str = "vips") -> list[str]:
    """The VIPs, checked and sorted, without duplicates."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise HandoffError(f"{what}: expected a list of IPv4 addresses, got {values!r:.80}")
    return sorted({_ipv4(value, what) for value in values}, key=ipaddress.IPv4Address)


def forward_ruleset(forward_to: Mapping[str, str], interface: str) -> str:
    """The nft script that replaces the table with one sending each VIP's unknown TCP flows to
    its giver (VIP -> the giver's address) through `interface`; one transaction."""
    if not isinstance(forward_to, Mapping) or not forward_to:
        raise HandoffError("forward_to: expected VIP -> the address of the host that gives it up, at least one")
    if not isinstance(interface, str) or not _INTERFACE.fullmatch(interface):
        raise HandoffError(f"interface: expected an interface name, got {interface!r:.40}")
    pairs = sorted((_ipv4(vip, "forward_to"), _ipv4(to, f"forward_to.{vip}")) for vip, to in forward_to.items())
    for vip, to in pairs:
        if vip == to:
            raise HandoffError(f"forward_to.{vip}: a VIP cannot be handed to itself")
    entries = ", ".join(f"{vip} : {to}" for vip, to in pairs)
    return "\n".join([
        *remove_ruleset().splitlines(),
        f"table ip {TABLE} {{",
        "  chain prerouting {",
        # After conntrack (-200): a packet of a connection this host does not know is `new`
        # without SYN (or `invalid`, a FIN or RST of one).
        "    type filter hook prerouting priority -150; policy accept;",
        f"    ip daddr {{ {', '.join(vip for vip, _to in pairs)} }} tcp flags & syn == 0 ct state new,invalid"
        f' dup to ip daddr map {{ {entries} }} device "{interface}" drop',
        "  }",
        "}",
        "",
    ])


def remove_ruleset() -> str:
    """The nft script that removes the table, whether or not it exists."""
    return f"table ip {TABLE}\ndelete table ip {TABLE}\n"


def _address(hex_address: str) -> str:
    """/proc/net/tcp's little-endian hex IPv4 address."""
    return str(ipaddress.IPv4Address(bytes.fromhex(hex_address)[::-1]))


def connections(proc_net_tcp: str, wanted: Iterable[str]) -> dict[str, int]:
    """VIP -> how many TCP connections on it still expect packets from their clients."""
    counts = {vip: 0 for vip in wanted}
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] not in _OPEN_STATES:
            continue
        local = _address(fields[1].split(":")[0])
        if local in counts:
            counts[local] += 1
    return counts


def vrrp_states(files: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """VIP -> {instance, state, since} from the notify script's files (instance name -> text,
    `STATE EPOCH`); instances are named k8sedge_<pool>_<vip> (roles/edge_keepalived)."""
    states: dict[str, dict[str, Any]] = {}
    for name, text in files.items():
        vip = name.rsplit("_", 1)[-1]
        fields = text.split()
        try:
            vip = str(ipaddress.IPv4Address(vip))
            since = int(fields[1])
        except (ValueError, IndexError):
            raise HandoffError(f"VRRP state of {name}: expected 'STATE EPOCH' of instance k8sedge_<pool>_<vip>,"
                               f" got {text.strip()!r:.60}") from None
        if fields[0] not in _VRRP_STATES:
            raise HandoffError(f"VRRP state of {name}: expected one of {', '.join(_VRRP_STATES)}, got {fields[0]!r:.20}")
        states[vip] = {"instance": name, "state": fields[0], "since": since}
    return states


def _host(name: str, facts: Any) -> dict[str, Any]:
    """One edge as the playbook reads it: {pools, address, held, vrrp, drained}."""
    if not isinstance(facts, Mapping):
        raise HandoffError(f"hosts.{name}: expected its pools, address, held, vrrp and drained")
    pools = facts.get("pools")
    if isinstance(pools, str) or not isinstance(pools, Iterable):
        raise HandoffError(f"hosts.{name}.pools: expected a list of pool names, got {pools!r:.60}")
    return {"pools": tuple(pools), "address": _ipv4(facts.get("address"), f"hosts.{name}.address"),
            "held": vips(facts.get("held") or [], f"hosts.{name}.held"), "vrrp": facts.get("vrrp") or {},
            "drained": bool(facts.get("drained"))}


def moves(edge: str, action: str, pool_vips: Mapping[str, Any], hosts: Mapping[str, Any],
          preempt: bool = True, primaries: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The VIPs a drain or an undrain of `edge` moves: [{vip, giver, giver_address, taker}].

    `hosts` is every edge that shares VIPs, in inventory order (keepalived's priorities follow it
    and the pinned `primaries`: _keepalived_view.vip_order), each with its pools, VRRP address, the VIPs it holds, the VRRP
    state keepalived recorded for each VIP ({vip: {state}}) and whether it is drained.
    A drain moves each VIP `edge` holds to the healthy host (BACKUP, not drained) that keepalived
    ranks next, and is refused when a VIP has none. An undrain moves back, from where each is now,
    the VIPs `edge` is the highest-ranked eligible host for (with preempt; without it, none)."""
    if action not in ("drain", "undrain"):
        raise HandoffError(f"action: expected drain or undrain, got {action!r:.40}")
    if not isinstance(hosts, Mapping) or edge not in hosts:
        raise HandoffError(f"hosts: expected {edge}, the edge to {action}, among the edges that share VIPs")
    facts = {name: _host(str(name), value) for name, value in hosts.items()}
    order = vip_order(pool_vips, [Member(name, f["pools"], f["address"]) for name, f in facts.items()], primaries)

    def state(name: str, vip: str) -> str:
        entry = facts[name]["vrrp"].get(vip)
        return str(entry.get("state")) if isinstance(entry, Mapping) else "unknown"

    found = []
    if action == "drain":
        for vip in facts[edge]["held"]:
            others = [name for name in order.get(vip, []) if name != edge]
            takers = [name for name in others if not facts[name]["drained"] and state(name, vip) == "BACKUP"]
            if not takers:
                why = ", ".join(f"{name}: {'drained' if facts[name]['drained'] else state(name, vip)}" for name in others)
                raise HandoffError(f"VIP {vip}: no other edge can take it over ({why or 'no other edge serves its pool'});"
                                   f" draining {edge} would leave it unserved")
            found.append({"vip": vip, "giver": edge, "giver_address": facts[edge]["address"], "taker": takers[0]})
        return found
    for vip, ranked in order.items():
        eligible = [name for name in ranked if name == edge
                    or (not facts[name]["drained"] and state(name, vip) in ("MASTER", "BACKUP"))]
        holders = [name for name in ranked if vip in facts[name]["held"] and name != edge]
        if preempt and eligible and eligible[0] == edge and holders:
            found.append({"vip": vip, "giver": holders[0], "giver_address": facts[holders[0]]["address"], "taker": edge})
    return found
