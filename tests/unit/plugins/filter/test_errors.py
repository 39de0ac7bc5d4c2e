"""Errors at the filters' edge: what a layer refuses (module_utils/_errors.py: EdgeError) becomes one
AnsibleFilterError naming the filter; a bug (a TypeError, a KeyError) stays a traceback; and no
input, however malformed, makes a view filter fail with anything but AnsibleFilterError."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.k8sedge.lb.plugins.filter import drift, haproxy_view, keepalived_domains, keepalived_view, nginx_view
from ansible_collections.k8sedge.lb.plugins.filter import probe_plan, probe_report
from ansible_collections.k8sedge.lb.plugins.module_utils import _drift, _haproxy_view, _keepalived_view, _nginx_view, _probe_plan

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures"
HAPROXY_MODEL = yaml.safe_load((FIXTURES / "haproxy_view_model.yaml").read_text())
NGINX_MODEL = yaml.safe_load((FIXTURES / "nginx_view.yaml").read_text())["model"]
FACTS = {"interfaces": ["lo", "eth0"], "eth0": {"ipv4": {"address": "10.213.0.11", "netmask": "255.255.255.0"}}}
KEEPALIVED = {"host": "edge1", "hosts": ["edge1"], "hostvars": {},
              "peer_vars": {"pools": "p", "address": "a", "interface": "i"}, "interface": "eth0", "pool_vips": {"default": ["10.213.0.200"]}}
HOSTS = [{"name": "edge1", "address": "10.213.0.11", "engine": "haproxy", "pools": ["default"]}]


def haproxy(**options: Any) -> Any:
    return haproxy_view.FilterModule().filters()["haproxy_view"](copy.deepcopy(HAPROXY_MODEL), **options)


def nginx(**options: Any) -> Any:
    return nginx_view.FilterModule().filters()["nginx_view"](copy.deepcopy(NGINX_MODEL), **options)


def keepalived(**options: Any) -> Any:
    return keepalived_view.FilterModule().filters()["keepalived_view"](FACTS, **{**KEEPALIVED, **options})


def bug(*_args: Any, **_kwargs: Any) -> Any:
    raise TypeError("a bug, not the user's")


# Each filter with a function deep in its module_utils replaced by a bug.
BUGS = [
    (_haproxy_view, "path_matches", haproxy),
    (_nginx_view, "path_matches", nginx),
    (_keepalived_view, "_advert_int", keepalived),
    (_keepalived_view, "_domains", lambda: keepalived_domains.FilterModule().filters()["keepalived_domains"]([])),
    (_probe_plan, "_stream_payload", lambda: probe_plan.probe_plan(copy.deepcopy(HAPROXY_MODEL), HOSTS)),
    (_probe_plan, "_rows", lambda: probe_report.probe_report({"probes": [], "hosts": [], "skipped": []}, [])),
    (_drift, "_vrrp", lambda: drift.drift({"generation": "", "frontends": [], "backends": []}, {})),
]


@pytest.mark.parametrize(("module", "name", "call"), BUGS, ids=[f"{m.__name__.rsplit('.', 1)[1]}.{n}" for m, n, _c in BUGS])
def test_a_bug_is_a_traceback_not_a_user_message(monkeypatch, module, name, call):
    call()  # the filter works with the function in place
    monkeypatch.setattr(module, name, bug)
    with pytest.raises(TypeError, match="a bug, not the user's"):
        call()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: haproxy(admin_port=80), r"^k8sedge.lb.haproxy_view: frontend default-http-80: port: 80 is already taken"),
    (lambda: nginx(pools="default"), r"^k8sedge.lb.nginx_view: options: pools: expected a list"),
    (lambda: keepalived(interface="eth9"), r"^k8sedge.lb.keepalived_view: host edge1: interface: eth9 does not exist"),
    (lambda: probe_plan.probe_plan({"generation": ""}, HOSTS), r"^k8sedge.lb.probe_plan: model: frontends: expected a list"),
    (lambda: probe_plan.probe_plan("{", HOSTS), r"^k8sedge.lb.probe_plan: model: expected the JSON text"),
    (lambda: drift.drift({"generation": "", "frontends": [], "backends": []}, {"edge1": []}), r"^k8sedge.lb.drift: host edge1: "),
])
def test_what_a_layer_refuses_is_one_filter_error(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


# --- no malformed input gets past the checks -----------------------------------------------------

values = st.recursive(st.none() | st.booleans() | st.integers(-2, 70000) | st.floats(allow_nan=False) | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)


def replaced(document: Any, path: list[int], value: Any) -> Any:
    """document with one node, picked by path (indexes into its containers), replaced by value."""
    document = copy.deepcopy(document)
    node, key = None, None
    current = document
    for step in path:
        if isinstance(current, dict) and current:
            node, key = current, sorted(current)[step % len(current)]
        elif isinstance(current, list) and current:
            node, key = current, step % len(current)
        else:
            break
        current = node[key]
    if node is None:
        return value
    node[key] = value
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.lists(st.integers(0, 50), max_size=5), value=values)
def test_a_malformed_model_is_refused_as_a_filter_error(path, value):
    for engine, model, certificates in (("haproxy", HAPROXY_MODEL, "web"), ("nginx", NGINX_MODEL, "shop")):
        pem = {"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
               "key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}
        view = {"haproxy": haproxy_view, "nginx": nginx_view}[engine].FilterModule().filters()[f"{engine}_view"]
        try:
            view(replaced(model, path, value), certificates={certificates: pem})
        except AnsibleFilterError:
            pass


OPTIONS = {
    "haproxy": ("pools", "certificates", "slots", "admin_address", "admin_port", "bind_address", "udp_frontends", "previous"),
    "nginx": ("pools", "certificates", "admin_address", "admin_port", "pool_addresses", "max_fails", "fail_timeout"),
    "keepalived": ("pool_vips", "pools", "address", "version", "advert_int", "preempt", "unicast", "router_id_base", "router_ids",
                   "priority", "priority_step", "check", "hosts", "hostvars", "interface"),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine=st.sampled_from(sorted(OPTIONS)), data=st.data(), value=values)
def test_a_malformed_option_is_refused_as_a_filter_error(engine, data, value):
    option = data.draw(st.sampled_from(OPTIONS[engine]))
    try:
        {"haproxy": haproxy, "nginx": nginx, "keepalived": keepalived}[engine](**{option: value})
    except AnsibleFilterError:
        pass
