"""The lab's layout: one source of names and addresses, consistent with the inventory."""
from __future__ import annotations

import ipaddress

import pytest
import yaml

from lab import network
from lab.topology import GATEWAY_IP, HOSTS, REPO, SUBNET_PREFIXLEN, VIP_RANGE, host


def test_addresses_are_unique_and_on_the_lab_subnet():
    subnet = ipaddress.ip_interface(f"{GATEWAY_IP}/{SUBNET_PREFIXLEN}").network
    addresses = [GATEWAY_IP, *(h.ip for h in HOSTS)]
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(a) in subnet for a in addresses)
    low, high = (ipaddress.ip_address(a) for a in VIP_RANGE)
    assert all(not low <= ipaddress.ip_address(h.ip) <= high for h in HOSTS)


def test_interface_names_fit_the_kernel_limit():
    assert all(len(h.veth) <= 15 for h in HOSTS)
    assert len({h.veth for h in HOSTS}) == len(HOSTS)


def test_pod_cidrs_are_disjoint():
    cidrs = [ipaddress.ip_network(h.pod_cidr) for h in HOSTS if h.pod_cidr]
    assert len(cidrs) == 2
    assert not cidrs[0].overlaps(cidrs[1])


@pytest.mark.parametrize(("path", "on_demand"), [("inventory/lab/hosts.yml", False), ("inventory/lab-edge3/hosts.yml", True)])
def test_lab_inventory_matches_the_topology(path, on_demand):
    inventory = yaml.safe_load((REPO / path).read_text())
    edges = {name: vars_["ansible_host"] for name, vars_ in inventory["edges"]["hosts"].items()}
    assert edges == {h.name: h.ip for h in HOSTS if h.is_vm and h.on_demand == on_demand}


def test_hosts_file_names_every_host():
    lines = network.hosts_file().splitlines()
    for h in HOSTS:
        assert f"{h.ip}\t{h.name}" in lines


def test_unknown_host_is_named_in_the_error():
    with pytest.raises(KeyError, match="no lab host named 'edge9'; the lab has: edge1, edge2"):
        host("edge9")
