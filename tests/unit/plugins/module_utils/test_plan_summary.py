"""k8sedge.lb.plan_summary: what site.yml in check mode says it would do, per edge host and per VIP."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.plan_summary import plan_summary

KEEPALIVED = {"changed": False, "preempt": True, "instances": {"VI_default_1": "10.213.0.200", "VI_default_2": "10.213.0.201"},
              "primaries": {"VI_default_1": "edge1", "VI_default_2": "edge2"}}


def states(**by_instance: str) -> list[str]:
    return [f"/run/k8sedge-keepalived/{name}.state:{state} 1765000000" for name, state in by_instance.items()]


def host(converged=False, changes=None, keepalived=None, engine="haproxy"):
    return {"engine": engine, "serving": "a" * 64, "generation": "b" * 64, "converged": converged,
            "changes": changes or {}, "keepalived": keepalived if keepalived is not None else {}}


def test_a_changing_host_says_what_would_change_and_a_converged_one_that_nothing_would():
    changes = {"install": False, "config": "structural", "files": ["haproxy.cfg", "maps/hosts.map"],
               "validator": "Configuration file is valid\n", "servers": False, "routes": True}
    lines = plan_summary({"edge1": host(changes=changes), "edge2": host(converged=True)})["lines"]
    assert lines == [
        f"edge1 (haproxy): serves {'a' * 12}; would apply {'b' * 12}; config structural (haproxy.cfg, maps/hosts.map);"
        " haproxy -c: Configuration file is valid; pod routes change",
        f"edge2 (haproxy): serves {'a' * 12}; nothing to change"]


def test_a_fresh_host_says_it_would_install_and_that_its_tree_could_not_be_validated_there():
    changes = {"install": True, "config": "structural", "files": ["haproxy.cfg"],
               "validator": "not validated: /usr/sbin/haproxy is not installed on this host yet", "servers": False, "routes": False}
    fresh = {**host(changes=changes, keepalived={**KEEPALIVED, "changed": True}), "serving": ""}
    line = plan_summary({"edge1": fresh})["lines"][0]
    assert line.startswith("edge1 (haproxy): serves nothing; would apply bbbbbbbbbbbb; install haproxy; config structural")
    assert "haproxy -c: not validated: /usr/sbin/haproxy is not installed on this host yet" in line
    assert line.endswith("; keepalived changes")


def test_an_nginx_host_names_its_release():
    changes = {"install": False, "release": "0123abcd", "switch": True, "routes": False}
    line = plan_summary({"edge2": host(engine="nginx", changes=changes)})["lines"][0]
    assert line == f"edge2 (nginx): serves {'a' * 12}; would apply {'b' * 12}; release 0123abcd, goes live after nginx -t"
    checked = plan_summary({"edge2": host(engine="nginx", changes={**changes, "validator": "valid"})})["lines"][0]
    assert checked.endswith("release 0123abcd, goes live after nginx -t; nginx -t: valid")


@pytest.mark.parametrize(("edge1", "edge2", "said", "moves"), [
    ({"VI_default_1": "MASTER", "VI_default_2": "BACKUP"}, {"VI_default_1": "BACKUP", "VI_default_2": "MASTER"},
     ["held by edge1, stays", "held by edge2, stays"], [False, False]),
    ({"VI_default_1": "MASTER", "VI_default_2": "MASTER"}, {"VI_default_1": "BACKUP", "VI_default_2": "FAULT"},
     ["held by edge1, stays", "held by edge1, would move to edge2"], [False, True]),
    ({}, {}, ["held by no edge now, edge1 would take it", "held by no edge now, edge2 would take it"], [True, True]),
    ({"VI_default_1": "MASTER"}, {"VI_default_1": "MASTER"},
     ["held by edge1, edge2 (split brain), edge1 would keep it once they hear each other", "held by no edge now, edge2 would take it"],
     [True, True]),
])
def test_each_vip_says_where_it_is_and_where_it_would_be(edge1, edge2, said, moves):
    answers = {"edge1": host(converged=True, keepalived={**KEEPALIVED, "states": states(**edge1)}),
               "edge2": host(converged=True, keepalived={**KEEPALIVED, "states": states(**edge2)})}
    summary = plan_summary(answers)
    assert summary["lines"][2:] == [f"VIP 10.213.0.200 (VI_default_1): {said[0]}", f"VIP 10.213.0.201 (VI_default_2): {said[1]}"]
    assert [vip["moves"] for vip in summary["vips"]] == moves


def test_without_preempt_a_held_vip_stays_where_it_is():
    keepalived = {**KEEPALIVED, "preempt": False}
    answers = {"edge1": host(converged=True, keepalived={**keepalived, "states": states(VI_default_2="MASTER")}),
               "edge2": host(converged=True, keepalived={**keepalived, "states": states(VI_default_2="BACKUP")})}
    assert plan_summary(answers)["lines"][3] == "VIP 10.213.0.201 (VI_default_2): held by edge1, stays"


@pytest.mark.parametrize(("answers", "message"), [
    ({}, "hosts: expected a mapping of edge host"),
    ([], "hosts: expected a mapping of edge host"),
    ({"edge1": "x"}, "hosts.edge1: expected a mapping, got str"),
    ({"edge1": {"changes": [1]}}, "hosts.edge1.changes: expected a mapping, got list"),
    ({"edge1": {"converged": True, "keepalived": "on"}}, "hosts.edge1.keepalived: expected a mapping, got str"),
])
def test_answers_that_are_not_the_roles_are_refused_by_field(answers, message):
    with pytest.raises(AnsibleFilterError, match=f"k8sedge.lb.plan_summary: {message}"):
        plan_summary(answers)
