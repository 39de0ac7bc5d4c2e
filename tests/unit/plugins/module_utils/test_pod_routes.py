"""Pod routes: what to replace and delete so that the kernel holds exactly the model's routes."""
from __future__ import annotations

import json

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._pod_routes import RouteError, desired, installed, plan


def test_installed_reads_ip_json_of_both_families():
    out = json.dumps([{"dst": "10.244.1.0/24", "gateway": "10.213.0.21", "dev": "eth0", "protocol": "213"},
                      {"dst": "10.9.9.9", "gateway": "10.213.0.22"}])
    assert installed(out) == {"10.244.1.0/24": "10.213.0.21", "10.9.9.9/32": "10.213.0.22"}
    assert installed("") == {}


@pytest.mark.parametrize("wanted, current, replace, delete", [
    ({"10.244.1.0/24": "10.213.0.21"}, {}, [("10.244.1.0/24", "10.213.0.21")], []),
    ({"10.244.1.0/24": "10.213.0.21"}, {"10.244.1.0/24": "10.213.0.21"}, [], []),
    ({"10.244.1.0/24": "10.213.0.22"}, {"10.244.1.0/24": "10.213.0.21"}, [("10.244.1.0/24", "10.213.0.22")], []),
    ({}, {"10.244.1.0/24": "10.213.0.21"}, [], ["10.244.1.0/24"]),
])
def test_plan(wanted, current, replace, delete):
    assert plan(wanted, current) == (replace, delete)


def test_plan_without_prune_only_adds_and_replaces():
    current = {"10.244.1.0/24": "10.213.0.21", "10.244.2.0/24": "10.213.0.22"}
    assert plan({"10.244.3.0/24": "10.213.0.23", "10.244.2.0/24": "10.213.0.24"}, current, prune=False) == (
        [("10.244.2.0/24", "10.213.0.24"), ("10.244.3.0/24", "10.213.0.23")], [])
    assert plan({}, current, prune=False) == ([], [])


@pytest.mark.parametrize("routes, message", [
    ([{"cidr": "10.244.1.1/24", "via": "10.213.0.21"}], "expected {cidr, via}"),
    ([{"cidr": "10.244.1.0/24"}], "expected {cidr, via}"),
    ([{"cidr": "10.244.1.0/24", "via": "fd00::1"}], "cannot go via fd00::1"),
    ([{"cidr": "10.244.1.0/24", "via": "10.213.0.21"}, {"cidr": "10.244.1.0/24", "via": "10.213.0.22"}], "asked for twice"),
])
def test_desired_refuses(routes, message):
    with pytest.raises(RouteError, match=message):
        desired(routes)
