"""The handoff's pure parts: the nftables ruleset the taker loads, and the readers of the
giver's connections and of keepalived's recorded states."""
from __future__ import annotations

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._keepalived_view import Member, vip_order
from ansible_collections.k8sedge.lb.plugins.module_utils._handoff import (
    HandoffError, connections, forward_ruleset, moves, remove_ruleset, vips, vrrp_states)

# /proc/net/tcp: a listener on 10.213.0.200:80, two connections on it (ESTABLISHED, FIN_WAIT1),
# one in TIME_WAIT, one on 10.213.0.201 (CLOSE_WAIT) and one on another address.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: C800D50A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: C800D50A:0050 6400D50A:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: C800D50A:0050 6400D50A:A1B3 04 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: C800D50A:0050 6400D50A:A1B4 06 00000000:00000000 00:00000000 00000000     0        0 0 1
   4: C900D50A:0050 6400D50A:A1B5 08 00000000:00000000 00:00000000 00000000     0        0 4 1
   5: 0B00D50A:0016 0100D50A:C000 01 00000000:00000000 00:00000000 00000000     0        0 5 1
"""


def test_the_giver_counts_the_connections_that_still_expect_packets_on_each_vip():
    assert connections(PROC_NET_TCP, ["10.213.0.200", "10.213.0.201", "10.213.0.202"]) == \
        {"10.213.0.200": 2, "10.213.0.201": 1, "10.213.0.202": 0}


def test_the_taker_sends_unknown_flows_of_each_vip_to_its_giver_in_one_transaction():
    script = forward_ruleset({"10.213.0.201": "10.213.0.12", "10.213.0.200": "10.213.0.11"}, "eth0")
    assert script.startswith(remove_ruleset())  # replaces any earlier table
    assert ('ip daddr { 10.213.0.200, 10.213.0.201 } tcp flags & syn == 0 ct state new,invalid'
            ' dup to ip daddr map { 10.213.0.200 : 10.213.0.11, 10.213.0.201 : 10.213.0.12 } device "eth0" drop') in script
    assert "priority -150" in script  # after conntrack


@pytest.mark.parametrize(("forward_to", "interface", "message"), [
    ({}, "eth0", "forward_to: expected VIP -> the address"),
    ({"10.213.0.200/24": "10.213.0.11"}, "eth0", "forward_to: expected an IPv4 address"),
    ({"10.213.0.200": "edge1; flush ruleset"}, "eth0", "forward_to.10.213.0.200: expected an IPv4 address"),
    ({"10.213.0.200": "10.213.0.200"}, "eth0", "cannot be handed to itself"),
    ({"10.213.0.200": "10.213.0.11"}, 'eth0" drop; flush', "interface: expected an interface name"),
])
def test_what_the_ruleset_cannot_carry_is_refused_by_name(forward_to, interface, message):
    with pytest.raises(HandoffError, match=message):
        forward_ruleset(forward_to, interface)


def test_vips_are_checked_and_sorted_once_each():
    assert vips(["10.213.0.201", "10.213.0.200", "10.213.0.201"]) == ["10.213.0.200", "10.213.0.201"]
    with pytest.raises(HandoffError, match="vips: expected a list"):
        vips("10.213.0.200")


def test_keepalived_states_are_read_per_vip_and_a_damaged_file_is_named():
    assert vrrp_states({"k8sedge_default_10.213.0.200": "MASTER 1796559081\n",
                        "k8sedge_edge-2_10.213.0.201": "FAULT 1796559082\n"}) == {
        "10.213.0.200": {"instance": "k8sedge_default_10.213.0.200", "state": "MASTER", "since": 1796559081},
        "10.213.0.201": {"instance": "k8sedge_edge-2_10.213.0.201", "state": "FAULT", "since": 1796559082}}
    with pytest.raises(HandoffError, match="VRRP state of k8sedge_default_10.213.0.200: expected 'STATE EPOCH'"):
        vrrp_states({"k8sedge_default_10.213.0.200": "MASTER"})
    with pytest.raises(HandoffError, match="expected one of MASTER, BACKUP, FAULT, STOP, got 'BOSS'"):
        vrrp_states({"k8sedge_default_10.213.0.200": "BOSS 1"})


def edges(**changes):
    """Three edges of one pool with three VIPs, each held by its primary (inventory order)."""
    hosts = {
        "edge1": {"pools": ["default"], "address": "10.213.0.11", "held": ["10.213.0.200"], "drained": False,
                  "vrrp": {"10.213.0.200": {"state": "MASTER"}, "10.213.0.201": {"state": "BACKUP"},
                           "10.213.0.202": {"state": "BACKUP"}}},
        "edge2": {"pools": ["default"], "address": "10.213.0.12", "held": ["10.213.0.201"], "drained": False,
                  "vrrp": {"10.213.0.200": {"state": "BACKUP"}, "10.213.0.201": {"state": "MASTER"},
                           "10.213.0.202": {"state": "BACKUP"}}},
        "edge3": {"pools": ["default"], "address": "10.213.0.13", "held": ["10.213.0.202"], "drained": False,
                  "vrrp": {"10.213.0.200": {"state": "BACKUP"}, "10.213.0.201": {"state": "BACKUP"},
                           "10.213.0.202": {"state": "MASTER"}}},
    }
    for name, fields in changes.items():
        hosts[name] = {**hosts[name], **fields}
    return hosts


POOL_VIPS = {"default": ["10.213.0.200", "10.213.0.201", "10.213.0.202"]}


def test_a_drain_moves_each_vip_to_the_host_keepalived_ranks_next():
    assert moves("edge1", "drain", POOL_VIPS, edges()) == [
        {"vip": "10.213.0.200", "giver": "edge1", "giver_address": "10.213.0.11", "taker": "edge2"}]
    # edge2 is drained already: edge3, the next in rank, takes it.
    assert moves("edge1", "drain", POOL_VIPS, edges(edge2={"drained": True}))[0]["taker"] == "edge3"


def test_a_drain_that_would_leave_a_vip_unserved_is_refused_naming_it():
    with pytest.raises(HandoffError, match=r"VIP 10.213.0.200: no other edge can take it over \(edge2: FAULT, edge3: drained\)"):
        moves("edge1", "drain", POOL_VIPS, edges(edge2={"vrrp": {"10.213.0.200": {"state": "FAULT"}}},
                                                 edge3={"drained": True}))


def test_an_undrain_takes_back_what_the_edge_ranks_first_for_from_where_it_is():
    drained = edges(edge1={"held": [], "drained": True, "vrrp": {"10.213.0.200": {"state": "FAULT"}}},
                    edge2={"held": ["10.213.0.200", "10.213.0.201"]})
    assert moves("edge1", "undrain", POOL_VIPS, drained) == [
        {"vip": "10.213.0.200", "giver": "edge2", "giver_address": "10.213.0.12", "taker": "edge1"}]
    assert moves("edge1", "undrain", POOL_VIPS, drained, preempt=False) == []


def test_the_edge_must_be_one_of_the_hosts():
    with pytest.raises(HandoffError, match="hosts: expected edge9, the edge to drain"):
        moves("edge9", "drain", POOL_VIPS, edges())


def test_a_pinned_vip_is_primary_on_its_host_and_an_appended_host_moves_no_primary():
    two = [Member("edge1", ("default",)), Member("edge2", ("default",))]
    three = [*two, Member("edge3", ("default",))]
    pool = {"default": ["10.213.0.200", "10.213.0.201"]}
    assert {vip: hosts[0] for vip, hosts in vip_order(pool, two).items()} == \
        {vip: hosts[0] for vip, hosts in vip_order(pool, three).items()} == {"10.213.0.200": "edge1", "10.213.0.201": "edge2"}
    # A third VIP would go to edge3 once it is added: pinned, it stays on edge1.
    pool3 = {"default": ["10.213.0.200", "10.213.0.201", "10.213.0.202"]}
    assert vip_order(pool3, three)["10.213.0.202"][0] == "edge3"
    assert vip_order(pool3, three, {"10.213.0.202": "edge1"})["10.213.0.202"] == ["edge1", "edge3", "edge2"]
    pinned = edges(edge1={"held": ["10.213.0.200", "10.213.0.202"],
                          "vrrp": {"10.213.0.200": {"state": "MASTER"}, "10.213.0.202": {"state": "MASTER"}}},
                   edge3={"held": [], "vrrp": {"10.213.0.200": {"state": "BACKUP"}, "10.213.0.202": {"state": "BACKUP"}}})
    assert [(m["vip"], m["taker"]) for m in moves("edge1", "drain", POOL_VIPS, pinned, primaries={"10.213.0.202": "edge1"})] \
        == [("10.213.0.200", "edge2"), ("10.213.0.202", "edge3")]
