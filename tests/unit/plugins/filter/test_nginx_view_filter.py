"""The k8sedge.lb.nginx_view filter: options passed through, one error type out."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.nginx_view import FilterModule, nginx_view

FIXTURE = yaml.safe_load((Path(__file__).parents[1] / "module_utils" / "fixtures" / "nginx_view.yaml").read_text())
DIRECTORY = "/etc/nginx/k8sedge/releases/0123456789abcdef"


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"nginx_view": nginx_view}


@pytest.mark.parametrize("text", [False, True])
def test_options_reach_the_view(text):
    numbers = {"admin_port": 9000, "max_fails": 3, "fail_timeout": 5}
    numbers = {k: str(v) for k, v in numbers.items()} if text else numbers  # extra vars arrive as text
    view = nginx_view(FIXTURE["model"], DIRECTORY, pools=["internal"], pool_addresses={"internal": "10.213.0.201"},
                      admin_address="10.213.0.12", **numbers)
    assert view["admin"] == {"listen": "10.213.0.12:9000"}
    assert view["stream"]["servers"][0]["directives"][0] == "listen 10.213.0.201:8443"
    assert view["stream"]["upstreams"][0]["directives"] == ["server 10.244.1.7:8443 max_fails=3 fail_timeout=5s"]
    assert view["routes"]


def test_the_json_text_of_the_model_gives_the_same_view():
    as_dict = nginx_view(FIXTURE["model"], DIRECTORY, pools=["internal"])
    assert nginx_view(json.dumps(FIXTURE["model"]), DIRECTORY, pools=["internal"]) == as_dict


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: nginx_view(m, DIRECTORY, admin_port=9999), r"^k8sedge.lb.nginx_view: frontend default-tcp-9999: port 9999/tcp"),
    (lambda m: nginx_view(m, DIRECTORY, pools="default"), r"^k8sedge.lb.nginx_view: option pools: expected a list"),
    (lambda m: nginx_view(m, "etc/nginx"), r"^k8sedge.lb.nginx_view: option directory"),
    (lambda m: nginx_view(m, DIRECTORY, pools=["internal"], max_fails="3;"), r"option field max_fails"),
    (lambda m: nginx_view(m, DIRECTORY, pools=["internal"], admin_port="٣"), r"option field admin_port"),
    (lambda m: nginx_view(None, DIRECTORY, pools=["internal"]), r"^k8sedge.lb.nginx_view: model: expected the model edge_info returns"),
    (lambda m: nginx_view(m, DIRECTORY, certificates=["shop"], pools=["internal"]), "option certificates: expected a dict"),
    (lambda m: nginx_view(m, DIRECTORY, pool_addresses="10.0.0.1", pools=["internal"]), "option pool_addresses: expected a dict"),
])
def test_every_refusal_is_an_ansible_filter_error(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call(copy.deepcopy(FIXTURE["model"]))


def test_a_certificate_not_given_is_a_finding_not_an_error():
    view = nginx_view(copy.deepcopy(FIXTURE["model"]), DIRECTORY)
    assert [(f["frontend"], f["field"]) for f in view["findings"]] == [
        ("default-http-443", "routes[0].certificate"), ("default-http-443", "routes")]
