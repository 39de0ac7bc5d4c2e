"""The k8sedge.lb.nginx_view filter: options passed through, one error type out, and the role's
templates spelling in nginx syntax what the view decided."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import comment

from ansible_collections.k8sedge.lb.plugins.filter.nginx_view import FilterModule

REPO = Path(__file__).resolve().parents[4]
TEMPLATES = REPO / "roles/edge_nginx/templates"
FIXTURE = yaml.safe_load((Path(__file__).parents[1] / "module_utils" / "fixtures" / "nginx_view.yaml").read_text())
DIRECTORY = "/etc/nginx/k8sedge/releases/0123456789abcdef"
nginx_view = FilterModule().filters()["nginx_view"]


@pytest.mark.parametrize("text", [False, True])
def test_options_reach_the_view(text):
    numbers = {"admin_port": 9000, "max_fails": 3, "fail_timeout": 5}
    numbers = {k: str(v) for k, v in numbers.items()} if text else numbers  # extra vars arrive as text
    view = nginx_view(FIXTURE["model"], pools=["internal"], pool_addresses={"internal": "10.213.0.201"},
                      admin_address="10.213.0.12", **numbers)
    assert view["admin"] == {"listen": "10.213.0.12:9000"}
    assert view["stream"]["servers"][0]["listen"] == "10.213.0.201:8443"
    [upstream] = view["stream"]["upstreams"]
    assert (upstream["servers"], upstream["max_fails"], upstream["fail_timeout"]) == (["10.244.1.7:8443"], 3, 5)
    assert view["routes"]


def test_the_json_text_of_the_model_gives_the_same_view():
    as_dict = nginx_view(FIXTURE["model"], pools=["internal"])
    assert nginx_view(json.dumps(FIXTURE["model"]), pools=["internal"]) == as_dict


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: nginx_view(m, admin_port=9999), r"^k8sedge.lb.nginx_view: frontend default-tcp-9999: port 9999/tcp"),
    (lambda m: nginx_view(m, pools="default"), r"^k8sedge.lb.nginx_view: options: pools: expected a list"),
    (lambda m: nginx_view(m, pools=["internal"], max_fails="3;"), r"options: max_fails: expected an integer"),
    (lambda m: nginx_view(m, pools=["internal"], admin_port="٣"), r"options: admin_port: expected a port number"),
    (lambda m: nginx_view(None, pools=["internal"]), r"^k8sedge.lb.nginx_view: model: expected the model edge_info returns"),
    (lambda m: nginx_view(m, certificates=["shop"], pools=["internal"]), "options: certificates: expected an object"),
    (lambda m: nginx_view(m, pool_addresses="10.0.0.1", pools=["internal"]), "options: pool_addresses: expected an object"),
])
def test_every_refusal_is_an_ansible_filter_error(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call(copy.deepcopy(FIXTURE["model"]))


def test_a_certificate_not_given_is_a_finding_not_an_error():
    view = nginx_view(copy.deepcopy(FIXTURE["model"]))
    assert [(f["where"], f["field"]) for f in view["findings"]] == [
        ("frontend default-http-443", "routes[0].certificate"), ("frontend default-http-443", "routes")]


# --- the templates spell it -----------------------------------------------------------------------

def render(view: dict, template: str) -> str:
    """As ansible.builtin.template renders (trim_blocks, no lstrip_blocks)."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    environment.filters["comment"] = comment
    return environment.from_string((TEMPLATES / template).read_text()).render(
        ansible_managed="Ansible managed", __edge_nginx_view=view, __edge_nginx_dir=DIRECTORY, __edge_nginx_release="0123456789abcdef",
        edge_nginx_access_log="off", edge_nginx_keepalive_timeout=60)


@pytest.fixture(scope="module", name="http")
def fixture_http() -> str:
    return render(nginx_view(copy.deepcopy(FIXTURE["model"]), certificates={"shop": FIXTURE["certificate"]}), "http.conf.j2")


@pytest.fixture(scope="module", name="stream")
def fixture_stream() -> str:
    return render(nginx_view(copy.deepcopy(FIXTURE["model"]), certificates={"shop": FIXTURE["certificate"]}), "stream.conf.j2")


@pytest.mark.parametrize("block", [
    # Balance, passive checks, draining targets left out while a target is ready.
    "upstream default_api_8080 {\n"
    "    least_conn;\n"
    "    server 10.0.0.11:30880 max_fails=2 fail_timeout=10s;\n"
    "    server [fd00::11]:30880 max_fails=2 fail_timeout=10s;\n"
    "}\n",
    # Kubernetes paths as locations; `location /` answers 404 for a path no route serves.
    "server {\n"
    "    listen 80;\n"
    "    server_name *.apps.example.com;\n"
    "    location / {\n"
    '        return 404 "k8sedge: no route for this host and path\\n";\n'
    "    }\n"
    "    location = /health {\n"
    "        proxy_pass http://default_web_80;\n"
    "        proxy_connect_timeout 5000ms;\n"
    "        proxy_read_timeout 60000ms;\n"
    "        proxy_send_timeout 60000ms;\n"
    "    }\n"
    "}\n",
    # A plain HTTP route of a TLS host redirects.
    "    server_name secure.example.com;\n"
    "    location / {\n"
    "        return 308 https://$host$request_uri;\n"
    "    }\n",
    # TLS termination: the certificate in the release directory; unknown names get none.
    "    listen 443 ssl;\n"
    "    server_name secure.example.com;\n"
    f"    ssl_certificate {DIRECTORY}/certs/shop.crt;\n"
    f"    ssl_certificate_key {DIRECTORY}/certs/shop.key;\n",
    "    listen 443 ssl default_server;\n"
    '    server_name "";\n'
    "    ssl_reject_handshake on;\n"
    "    location / {\n"
    '        return 404 "k8sedge: no route for this host\\n";\n'
    "    }\n",
])
def test_http_conf_spells_what_the_view_decided(http, block):
    assert block in http


@pytest.mark.parametrize("block", [
    "upstream default_db_5432_tcp {\n"
    "    hash $remote_addr consistent;\n"
    "    server 10.0.0.12:31432 max_fails=2 fail_timeout=10s;\n"
    "}\n",
    "upstream kube-system_dns_53_udp {\n"
    "    server 10.0.0.11:30053 max_fails=0;\n"
    "}\n",
    "upstream k8sedge-refuse {\n"
    "    server 127.0.0.1:9 down;\n"
    "}\n",
    "map $ssl_preread_server_name $k8sedge_sni_default_tcp_8443 {\n"
    "    hostnames;\n"
    "    *.mq.example.com default_mq_5671_tcp;\n"
    "    db.example.com default_db_5432_tcp;\n"
    "    default k8sedge-refuse;\n"
    "}\n",
    "# default-tcp-8443\n"
    "server {\n"
    "    listen 8443;\n"
    "    ssl_preread on;\n"
    "    proxy_pass $k8sedge_sni_default_tcp_8443;\n"
    "    proxy_connect_timeout 5000ms;\n"
    "    proxy_timeout 3600000ms;\n"
    "    proxy_half_close on;\n"
    "}\n",
    "# default-tcp-9999\n"
    "server {\n"
    "    listen 9999 proxy_protocol;\n"
    "    set_real_ip_from 0.0.0.0/0;\n"
    "    set_real_ip_from ::/0;\n"
    "    proxy_pass default_web_80_tcp_proxy-v1;\n"
    "    proxy_connect_timeout 5000ms;\n"
    "    proxy_timeout 60000ms;\n"
    "    proxy_half_close on;\n"
    "    proxy_protocol on;\n"
    "}\n",
    "# default-udp-53\n"
    "server {\n"
    "    listen 53 udp;\n"
    "    proxy_pass kube-system_dns_53_udp;\n"
    "    proxy_connect_timeout 5000ms;\n"
    "    proxy_timeout 60000ms;\n"
    "}\n",
    "# default-tcp-7000\n"
    "server {\n"
    "    listen 7000;\n"
    "    proxy_pass k8sedge-refuse;\n",
])
def test_stream_conf_spells_what_the_view_decided(stream, block):
    assert block in stream


def test_the_templates_leave_no_stray_lines(http, stream):
    """Every line is a comment, a directive, a block's opening or its end: no line a Jinja tag
    left half-empty."""
    for line in (http + stream).splitlines():
        assert line == "" or line.startswith("#") or line.rstrip().endswith((";", "{", "}")), line
        assert line == line.rstrip() and "  ;" not in line, line
