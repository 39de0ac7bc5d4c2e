"""Everything the edge roles would apply passes the real validators.

Generated clusters (the strategies of module_utils/test_model_properties.py) and a few fixed ones
-> build_model -> each role's view filter with the options the role passes -> the role's own
templates and copy tasks, run through Ansible's templating (lab/testlib/role_render.py) -> the tree
laid out as on the host, under a temporary directory -> `haproxy -c` on the
staging tree and `nginx -t` on the release, the checks the roles run before going live (for
nginx, on a copy of the release's nginx.conf whose pid file and error log are moved into the
temporary directory, so that nothing under /run or /var/log is touched).

A model the view refuses on purpose is handled as the role handles it: UDP frontends with
`edge_haproxy_udp_frontends: skip`, and two served pools on one port (the role fails before
anything changes). Any other refusal, and any config the binary rejects, fails the test.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from ansible.errors import AnsibleError
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ansible_collections.k8sedge.lb.plugins.module_utils._manifests import load_state
from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, ModelOptions, build_model
from lab.testlib.role_render import (Role, certificate_names, haproxy_tree, loaded_roles, nginx_check_command, nginx_release,
                                     throwaway_certificate)
from tests.unit.plugins.module_utils.test_model_properties import FIXTURE, KINDS, clusters

REPO = Path(__file__).resolve().parents[3]
HAPROXY = shutil.which("haproxy")
NGINX = shutil.which("nginx")
NGINX_MODULES = Path("/usr/lib/nginx/modules")  # Debian's; the role loads the stream module from /etc/nginx/modules-enabled
EXAMPLES = 80  # per engine, each serving something; the whole file runs in about 30 s on 2 cores

needs_haproxy = pytest.mark.skipif(not HAPROXY, reason="haproxy is not installed (make setup installs it)")
needs_nginx = pytest.mark.skipif(
    not NGINX or not (NGINX_MODULES / "ngx_stream_module.so").exists() or not Path("/etc/nginx/modules-enabled").is_dir(),
    reason="nginx or libnginx-mod-stream is not installed (make setup installs them)")
# `nginx -t` binds the listeners, as on the edge: ports below 1024 need root (make runs as root).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nginx -t binds ports below 1024, which needs root")

# What each role's view may refuse for a generated model: two served pools that want one port. The
# role fails there, before anything on the host changes; nothing else may be refused.
HAPROXY_REFUSALS = re.compile(r"frontend \S+: port: \d+ is already taken by frontend \S+")
NGINX_REFUSALS = re.compile(r"frontend \S+: port \d+/(tcp|udp) on \S+( address)? is also used by frontend \S+")


@pytest.fixture(scope="module", name="roles")
def fixture_roles() -> Iterator[dict[str, Role]]:
    with loaded_roles() as roles:
        yield roles


@pytest.fixture(scope="module", name="certificate")
def fixture_certificate() -> dict[str, str]:
    return throwaway_certificate()


# --- from cluster to validated tree ------------------------------------------------------------

def refused(exc: AnsibleError, allowed: re.Pattern[str], pools: list[str]) -> bool:
    """Whether the view refused the model the way the role may: only with several pools served."""
    return len(pools) > 1 and bool(allowed.search(str(exc)))


def numbered(path: Path) -> str:
    return "".join(f"{i:4} {line}\n" for i, line in enumerate(path.read_text().splitlines(), 1))


def check_haproxy(roles: dict[str, Role], model: dict[str, Any], certificate: dict[str, str], *, pools: list[str],
                  bind_address: str = "", slots: int = 10) -> str:
    """Render the staging tree as edge_haproxy does and run `haproxy -c` on it as
    k8sedge.lb.haproxy_config does; 'refused' when the view refuses as the role may."""
    with tempfile.TemporaryDirectory(prefix="k8sedge-haproxy-") as tmp:
        try:
            config = haproxy_tree(roles, model, {name: certificate for name in certificate_names(model)}, Path(tmp),
                                  pools=pools, bind_address=bind_address, slots=slots)
        except AnsibleError as exc:
            if refused(exc, HAPROXY_REFUSALS, pools):
                return "refused"
            raise
        result = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"haproxy -c refused what edge_haproxy would apply:\n{output}\n{numbered(config)}"
        assert "[WARNING]" not in output, f"haproxy -c warns about what edge_haproxy would apply:\n{output}\n{numbered(config)}"
        return "accepted"


def check_nginx(roles: dict[str, Role], model: dict[str, Any], certificate: dict[str, str], *, pools: list[str],
                pool_addresses: dict[str, str] | None = None) -> str:
    """Render a release as edge_nginx does and run `nginx -t` on it as the role's handler does;
    'refused' when the view refuses as the role may."""
    with tempfile.TemporaryDirectory(prefix="k8sedge-nginx-") as tmp:
        root = Path(tmp)
        try:
            config = nginx_release(roles, model, {name: certificate for name in certificate_names(model)}, root,
                                   pools=pools, pool_addresses=pool_addresses)
        except AnsibleError as exc:
            if refused(exc, NGINX_REFUSALS, pools):
                return "refused"
            raise
        command = nginx_check_command(NGINX, NGINX_MODULES, config, root)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        output = result.stdout + result.stderr
        files = "".join(f"--- {path.name}\n{numbered(path)}" for path in (Path(command[-1]), config.with_name("http.conf"), config.with_name("stream.conf")))
        assert result.returncode == 0, f"nginx -t refused what edge_nginx would apply:\n{output}\n{files}"
        assert "[warn]" not in output, f"nginx -t warns about what edge_nginx would apply:\n{output}\n{files}"
        return "accepted"


# --- fixed examples: the unit fixture's cluster, the lab's manifests, long names --------------

def fixture_cluster() -> ClusterState:
    return ClusterState(**{kind: copy.deepcopy(FIXTURE.get(kind, [])) for kind in KINDS})


def lab_cluster(with_nodes: bool) -> ClusterState:
    """The Services, Ingress and ConfigMaps the lab applies; with the fixture's nodes, node-port
    targets (the lab's own nodes and pods exist only while it runs)."""
    state, _read = load_state(str(REPO / "lab" / "manifests"))
    return ClusterState(**{**{kind: getattr(state, kind) for kind in KINDS},
                           "nodes": copy.deepcopy(FIXTURE["nodes"]) if with_nodes else state.nodes})


def one_service(host: str = "web.example.com", pool: str = "default", tls: str = "none") -> ClusterState:
    """One node-port Service with one host, on the fixture's nodes."""
    annotations = {"lb.k8sedge.io/expose": "true", "lb.k8sedge.io/hosts": host, "lb.k8sedge.io/pool": pool, "lb.k8sedge.io/tls": tls}
    if tls == "terminate":
        annotations["lb.k8sedge.io/tls-certificate"] = "web"
    service = {"metadata": {"name": "web", "namespace": "default", "annotations": annotations},
               "spec": {"type": "NodePort", "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}]}}
    return ClusterState(services=[service], nodes=copy.deepcopy(FIXTURE["nodes"]))


FIXED = {
    "unit-fixture": lambda: build_model(fixture_cluster(), ModelOptions()),
    "unit-fixture-on-8080-9443": lambda: build_model(fixture_cluster(), ModelOptions(http_port=8080, https_port=9443)),
    "lab-manifests": lambda: build_model(lab_cluster(with_nodes=False), ModelOptions()),
    "lab-manifests-with-nodes": lambda: build_model(lab_cluster(with_nodes=True), ModelOptions()),
    "empty-cluster": lambda: build_model(ClusterState(), ModelOptions()),
}
FIXED_POOLS = [["default"], ["internal"], ["default", "internal"], ["passthrough"]]  # no two share a port; passthrough: the lab's


@needs_haproxy
@pytest.mark.parametrize("pools", FIXED_POOLS, ids="+".join)
@pytest.mark.parametrize("example", list(FIXED))
def test_haproxy_accepts_the_fixed_examples(roles, certificate, example, pools):
    model = FIXED[example]()
    assert not model["errors"]
    assert check_haproxy(roles, model, certificate, pools=pools) == "accepted"


@needs_haproxy
@pytest.mark.parametrize(("bind_address", "slots"), [("10.213.0.10", 1), ("fd00::10", 3)])
def test_haproxy_accepts_the_fixture_with_other_role_inputs(roles, certificate, bind_address, slots):
    model = FIXED["unit-fixture"]()
    assert check_haproxy(roles, model, certificate, pools=["default", "internal"], bind_address=bind_address, slots=slots) == "accepted"


@needs_nginx
@needs_root
@pytest.mark.parametrize("pools", FIXED_POOLS, ids="+".join)
@pytest.mark.parametrize("example", list(FIXED))
def test_nginx_accepts_the_fixed_examples(roles, certificate, example, pools):
    model = FIXED[example]()
    assert not model["errors"]
    assert check_nginx(roles, model, certificate, pools=pools) == "accepted"


@needs_nginx
@needs_root
def test_nginx_accepts_the_fixture_on_pool_addresses(roles, certificate):
    model = FIXED["unit-fixture"]()
    assert check_nginx(roles, model, certificate, pools=["default", "internal"], pool_addresses={"default": "127.0.0.1", "internal": "::1"}) == "accepted"


# Names the grammars allow (host names up to 253 characters, labels and pools up to 63) but that
# nginx keeps in hash tables whose bucket size defaults to the CPU's cache line (64 bytes on
# x86-64): a key of more than 46 bytes does not fit and `nginx -t` fails. The keys are exact host
# names, each label of a wildcard name, and variable names. The cases that fit pass; the others are
# known failures of edge_nginx, which sets no *_hash_bucket_size.
LONG_HOST = "checkout-service.shop-production.apps.example.com"  # 49 characters
LONG_WILDCARD = "*.pr-1234-preview-of-the-checkout-service-redesign.example.com"  # a label of 48
LONG_POOL = "payments-production-eu-west"  # 27: $k8sedge_sni_<pool>_tcp_443 has 47 characters
# The longest host the model takes: '*.' and a subdomain of 253 (the views once refused it).
LONGEST_WILDCARD = "*." + ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
NAMES = {
    "host-of-46-characters": {"host": "a" * 34 + ".example.com"},
    "passthrough-host-of-46-characters": {"host": "a" * 34 + ".example.com", "tls": "passthrough"},
    "wildcard-of-51-characters-short-labels": {"host": "*." + LONG_HOST},
    "passthrough-wildcard-of-51-characters-short-labels": {"host": "*." + LONG_HOST, "tls": "passthrough"},
    "passthrough-pool-of-26-characters": {"pool": LONG_POOL[:26], "tls": "passthrough"},
    "host-of-49-characters": {"host": LONG_HOST},
    "terminated-host-of-49-characters": {"host": LONG_HOST, "tls": "terminate"},
    "wildcard-with-a-label-of-48-characters": {"host": LONG_WILDCARD},
    "passthrough-host-of-49-characters": {"host": LONG_HOST, "tls": "passthrough"},
    "passthrough-wildcard-with-a-label-of-48-characters": {"host": LONG_WILDCARD, "tls": "passthrough"},
    "passthrough-pool-of-27-characters": {"pool": LONG_POOL, "tls": "passthrough"},
    "wildcard-of-255-characters": {"host": LONGEST_WILDCARD},
    "terminated-wildcard-of-255-characters": {"host": LONGEST_WILDCARD, "tls": "terminate"},
    "passthrough-wildcard-of-255-characters": {"host": LONGEST_WILDCARD, "tls": "passthrough"},
}
@needs_haproxy
@pytest.mark.parametrize("example", list(NAMES))
def test_haproxy_accepts_long_names(roles, certificate, example):
    model = build_model(one_service(**NAMES[example]), ModelOptions())
    assert model["frontends"] and not model["errors"]
    assert check_haproxy(roles, model, certificate, pools=[NAMES[example].get("pool", "default")]) == "accepted"


@needs_nginx
@needs_root
@pytest.mark.parametrize("example", list(NAMES))
def test_nginx_accepts_long_names(roles, certificate, example):
    model = build_model(one_service(**NAMES[example]), ModelOptions())
    assert model["frontends"] and not model["errors"]
    assert check_nginx(roles, model, certificate, pools=[NAMES[example].get("pool", "default")]) == "accepted"


BOGUS = {"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}


@needs_haproxy
def test_a_config_haproxy_refuses_fails_with_its_message(roles):
    """The check reaches the binary: a certificate of the right shape but no content passes the
    view and is refused by haproxy -c, whose message the failure shows."""
    with pytest.raises(AssertionError, match=r"(?s)haproxy -c refused what edge_haproxy would apply:.*certs/web\.pem"):
        check_haproxy(roles, build_model(one_service(tls="terminate"), ModelOptions()), BOGUS, pools=["default"])


@needs_nginx
@needs_root
def test_a_config_nginx_refuses_fails_with_its_message(roles):
    with pytest.raises(AssertionError, match=r"(?s)nginx -t refused what edge_nginx would apply:.*certs/web\.(crt|key)"):
        check_nginx(roles, build_model(one_service(tls="terminate"), ModelOptions()), BOGUS, pools=["default"])


# --- generated clusters -----------------------------------------------------------------------

def serves_something(model: dict[str, Any], pools: list[str]) -> bool:
    """Models that serve nothing to the pools are not counted: `empty-cluster` covers them."""
    return any(f["pool"] in pools for f in model["frontends"])


def describe(model: dict[str, Any], pools: list[str]) -> None:
    """What the served part of a generated model holds (pytest --hypothesis-show-statistics)."""
    served = [f for f in model["frontends"] if f["pool"] in pools]
    used = {name for f in served for name in [f.get("backend", "")] + [r["backend"] for r in f.get("routes", []) + f.get("sni", [])]}
    backends = [b for b in model["backends"] if b["name"] in used]
    features = {
        "http": any(f["protocol"] == "http" for f in served),
        "tls terminate": any(f["tls"] for f in served), "tls passthrough": any(f.get("sni") for f in served),
        "tcp": any(f["protocol"] == "tcp" and not f.get("sni") for f in served), "udp": any(f["protocol"] == "udp" for f in served),
        "proxy accepted": any(f["accept_proxy"] for f in served), "proxy sent": any(b["proxy_protocol"] != "none" for b in backends),
        "targets": any(b["targets"] for b in backends),
    }
    for feature, present in features.items():
        if present:
            event(feature)


# The strategies' pools are `default` and `other`; an edge serves one or both. Their edge ports
# are 80, 443, 7000 and 7001: with other HTTP(S) ports, TCP frontends take 80 and 443.
served_pools = st.sampled_from([["default"], ["other"], ["default", "other"]])
model_options = st.sampled_from([ModelOptions(), ModelOptions(http_port=8080, https_port=8443)])


@needs_haproxy
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters(), options=model_options, pools=served_pools, bind_address=st.sampled_from(["", "10.213.0.10", "fd00::10"]),
       slots=st.sampled_from([10, 1]))
def test_haproxy_accepts_every_generated_model(roles, certificate, objects, options, pools, bind_address, slots):
    model = build_model(ClusterState(**objects), options)
    assume(serves_something(model, pools))
    describe(model, pools)
    event(check_haproxy(roles, model, certificate, pools=pools, bind_address=bind_address, slots=slots))


@needs_nginx
@needs_root
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters(), options=model_options, pools=served_pools,
       pool_addresses=st.sampled_from([{}, {"default": "127.0.0.1"}, {"default": "127.0.0.1", "other": "::1"}]))
def test_nginx_accepts_every_generated_model(roles, certificate, objects, options, pools, pool_addresses):
    model = build_model(ClusterState(**objects), options)
    assume(serves_something(model, pools))
    describe(model, pools)
    event(check_nginx(roles, model, certificate, pools=pools, pool_addresses=pool_addresses))
