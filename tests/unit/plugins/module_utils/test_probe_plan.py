"""Probes derived from the model (every path, every engine's limits) and the verdicts on their
results; the fail-static guard."""
from __future__ import annotations

import copy
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.filter.fail_static import fail_static
from ansible_collections.k8sedge.lb.plugins.filter.probe_plan import probe_plan
from ansible_collections.k8sedge.lb.plugins.filter.probe_report import probe_report
from ansible_collections.k8sedge.lb.plugins.module_utils._guard import GuardError, check
from ansible_collections.k8sedge.lb.plugins.module_utils._probe_plan import check_digests


def backend(name, port_name="http", protocol="http", proxy="none", targets=2, service=None, port=80):
    namespace, svc = "default", service or name.split("_")[1]
    return {"name": name, "namespace": namespace, "service": svc, "port": port, "port_name": port_name,
            "frontend_protocol": protocol, "proxy_protocol": proxy, "mode": "nodeport",
            "targets": [{"address": f"10.213.0.{21 + i}", "port": 31780, "node": f"node{i + 1}", "zone": "", "state": "ready"}
                        for i in range(targets)]}


def route(host, backend_name, path="/", path_type="prefix", redirect=False, certificate=""):
    return {"host": host, "path": path, "path_type": path_type, "backend": backend_name, "certificate": certificate,
            "redirect_https": redirect}


MODEL = {
    "generation": "g1",
    "frontends": [
        {"name": "default-http-80", "pool": "default", "protocol": "http", "port": 80, "tls": False, "accept_proxy": False,
         "certificates": [], "routes": [
             route("s2.pctest", "default_s2_80"), route("shop.pctest", "default_shop_80", redirect=True),
             route("api.pctest", "default_api_80", "/v1", "exact"), route("api.pctest", "default_api_80", "/v1"),
             route("*.wild.pctest", "default_s2_80"), route("*", "default_s2_80")]},
        {"name": "default-http-443", "pool": "default", "protocol": "http", "port": 443, "tls": True, "accept_proxy": False,
         "certificates": ["shop"], "routes": [route("shop.pctest", "default_shop_80", certificate="shop")]},
        {"name": "default-tcp-8443", "pool": "default", "protocol": "tcp", "port": 8443, "tls": False, "accept_proxy": False,
         "backend": "", "sni": [{"host": "db.pctest", "backend": "default_db_5432_tcp"}]},
        {"name": "default-tcp-9998", "pool": "default", "protocol": "tcp", "port": 9998, "tls": False, "accept_proxy": True,
         "backend": "default_s2_80_tcp", "sni": []},
        {"name": "default-tcp-9000", "pool": "default", "protocol": "tcp", "port": 9000, "tls": False, "accept_proxy": False,
         "backend": "default_multi_9000_tcp", "sni": []},
        {"name": "default-tcp-9997", "pool": "default", "protocol": "tcp", "port": 9997, "tls": False, "accept_proxy": False,
         "backend": "default_s2_80_tcp_proxy-v2", "sni": []},
        {"name": "default-udp-5353", "pool": "default", "protocol": "udp", "port": 5353, "tls": False, "accept_proxy": False,
         "backend": "default_udp_9001_udp"},
        {"name": "other-tcp-7000", "pool": "other", "protocol": "tcp", "port": 7000, "tls": False, "accept_proxy": False,
         "backend": "default_empty_7000_tcp", "sni": []},
    ],
    "backends": [
        backend("default_api_80"), backend("default_s2_80"), backend("default_shop_80", proxy="v1"),
        backend("default_db_5432_tcp", "postgres", "tcp", port=5432), backend("default_s2_80_tcp", protocol="tcp"),
        backend("default_s2_80_tcp_proxy-v2", protocol="tcp", proxy="v2", service="s2"),
        backend("default_multi_9000_tcp", "tcp-echo", "tcp", port=9000), backend("default_udp_9001_udp", "udp-echo", "udp", port=9001),
        backend("default_empty_7000_tcp", "tcp", "tcp", targets=0, port=7000),
    ],
    "routes": [],
}
HOSTS = [{"name": "edge1", "address": "10.213.0.11", "engine": "haproxy", "pools": ["default"]},
         {"name": "edge2", "address": "10.213.0.12", "engine": "nginx", "pools": ["default", "other"]}]


def planned(**options):
    return probe_plan(copy.deepcopy(MODEL), options.pop("hosts", HOSTS), **{"pool_vips": {"default": ["10.213.0.200"]}, **options})


def find(plan, name):
    matches = [p for p in plan["probes"] if p["probe"]["name"] == name]
    assert len(matches) == 1, [p["probe"]["name"] for p in plan["probes"]]
    return matches[0]["probe"]


def test_a_pool_an_edge_serves_on_its_vip_only_is_proven_through_the_vip():
    hosts = [HOSTS[0], {**HOSTS[1], "listen": {"default": "10.213.0.200"}},
             {**HOSTS[1], "name": "edge3", "address": "10.213.0.13", "listen": {"default": "192.0.2.7"}}]
    plan = planned(hosts=hosts)
    edge = {(p["via"], p["probe"]["address"]) for p in plan["probes"] if p["kind"] == "edge"}
    assert edge == {("edge1", "10.213.0.11"), ("edge3", "192.0.2.7")}
    assert find(plan, "vip 10.213.0.200 default-http-80 s2.pctest/")["address"] == "10.213.0.200"
    assert "edge2 listens for pool default on its VIP 10.213.0.200 only: proven through the VIP" in {
        s["reason"] for s in plan["skipped"] if s["via"] == "edge2"}
    assert any(p["kind"] == "target" and p["runner"] == "edge2" for p in plan["probes"])  # its targets still are


def test_a_listen_map_that_is_not_pools_to_addresses_is_refused_by_field():
    with pytest.raises(AnsibleFilterError, match=r"hosts\[0\]\.listen: expected pool names to the address"):
        planned(hosts=[{**HOSTS[0], "listen": {"default": 7}}])


def test_http_routes_through_the_edge_expect_the_backend_not_the_edge():
    probe = find(planned(), "edge edge1 default-http-80 s2.pctest/")
    assert probe == {"type": "http", "host": "s2.pctest", "path": "/", "status_code": ["200-499"],
                     "body_not_regex": "^k8sedge: no route", "timeout": 5.0, "name": "edge edge1 default-http-80 s2.pctest/",
                     "address": "10.213.0.11", "port": 80}
    vip = find(planned(), "vip 10.213.0.200 default-http-80 s2.pctest/")
    assert vip["address"] == "10.213.0.200" and vip["host"] == "s2.pctest"


def test_wildcards_exact_paths_and_redirects():
    plan = planned()
    assert find(plan, "edge edge1 default-http-80 *.wild.pctest/")["host"] == "k8sedge-probe.wild.pctest"
    assert find(plan, "edge edge1 default-http-80 */")["host"] == "k8sedge-probe.invalid"
    labels = [p["label"] for p in plan["probes"] if p["kind"] == "edge" and p["via"] == "edge1" and p["label"].startswith("api")]
    assert labels == ["api.pctest/v1 exact", "api.pctest/v1"]
    paths = [p["probe"]["path"] for p in plan["probes"] if p["kind"] == "edge" and p["via"] == "edge1" and p["label"].startswith("api")]
    assert paths == ["/v1", "/v1/k8sedge-probe"]  # the exact route wins /v1: the prefix one is probed below it
    redirect = find(plan, "edge edge1 default-http-80 shop.pctest/")
    assert redirect["status_code"] == ["301", "302", "307", "308"]
    assert redirect["expect_headers"] == {"Location": "^https://shop\\.pctest"}


def test_https_routes_use_sni_and_the_ca_and_targets_get_plain_http_with_proxy():
    plan = planned(ca_path="/lab/ca.crt")
    https = find(plan, "edge edge1 default-http-443 shop.pctest/")
    assert https["type"] == "https" and https["host"] == "shop.pctest" and https["ca_path"] == "/lab/ca.crt"
    assert https["validate_certs"] is True
    target = find(plan, "target default_shop_80 10.213.0.21:31780 from edge1")
    assert target["type"] == "http" and target["send_proxy"] == "v1" and "ca_path" not in target


def test_passthrough_checks_the_tls_handshake_by_name():
    plan = planned(validate_certs=False)
    probe = find(plan, "edge edge1 default-tcp-8443 sni db.pctest")
    assert probe["type"] == "tcp" and probe["tls"] is True and probe["sni"] == "db.pctest" and probe["validate_certs"] is False
    assert find(plan, "target default_db_5432_tcp 10.213.0.22:31780 from edge2")["tls"] is True


def test_tcp_payloads_proxy_headers_and_hold():
    plan = planned(payloads={"default/multi:9000": {"send": "ping\n", "expect": "ping"}})
    seed = find(plan, "edge edge1 default-tcp-9998 tcp/9998")
    assert seed["send_proxy"] == "v1"  # the frontend accepts PROXY
    assert seed["send"] == "HEAD / HTTP/1.1\r\nHost: s2.pctest\r\nConnection: close\r\n\r\n"
    assert seed["expect"].startswith("^HTTP/1")
    assert "send_proxy" not in find(plan, "target default_s2_80_tcp 10.213.0.21:31780 from edge1")  # targets get no PROXY from us
    assert find(plan, "edge edge1 default-tcp-9000 tcp/9000")["send"] == "ping\n"
    assert find(plan, "target default_s2_80_tcp_proxy-v2 10.213.0.21:31780 from edge1")["send_proxy"] == "v2"
    assert find(planned(), "edge edge1 default-tcp-9000 tcp/9000")["hold"] == 0.3


def test_engines_skip_what_they_do_not_serve():
    plan = planned()
    names = {p["probe"]["name"] for p in plan["probes"]}
    assert "edge edge2 default-udp-5353 udp/5353" in names and "edge edge1 default-udp-5353 udp/5353" not in names
    assert "edge edge2 default-tcp-9997 tcp/9997" not in names and "edge edge1 default-tcp-9997 tcp/9997" in names
    assert "edge edge2 default-http-443 shop.pctest/" not in names  # nginx cannot send PROXY from HTTP
    skipped = {(s["frontend"], s["via"]): s["reason"] for s in plan["skipped"]}
    assert skipped[("default-udp-5353", "edge1")] == "haproxy does not proxy UDP"
    assert skipped[("default-udp-5353", "10.213.0.200")] == "haproxy does not proxy UDP"  # a VIP may land on edge1
    assert skipped[("default-tcp-9997", "edge2")] == "nginx sends PROXY protocol v1 only"
    assert skipped[("other-tcp-7000", "*")] == "backend default_empty_7000_tcp has no ready targets in the model"
    assert len(names) == len(plan["probes"])


def test_a_held_backend_is_not_probed():
    """What the last targets of a backend the guard held answer is not the change's doing."""
    model = copy.deepcopy(MODEL)
    next(b for b in model["backends"] if b["name"] == "default_multi_9000_tcp")["held"] = True
    plan = probe_plan(model, HOSTS, pool_vips={"default": ["10.213.0.200"]})
    assert not [p for p in plan["probes"] if p["backend"] == "default_multi_9000_tcp"]
    skipped = {(s["frontend"], s["via"]): s["reason"] for s in plan["skipped"]}
    assert skipped[("default-tcp-9000", "*")] == "backend default_multi_9000_tcp is held at its last targets by the fail-static guard"


def test_through_and_targets_from():
    only_edges = planned(through=["edge"])
    assert {p["kind"] for p in only_edges["probes"]} == {"edge"}
    controller = planned(through=["target"], targets_from="controller")
    targets = [p["probe"]["name"] for p in controller["probes"]]
    assert "target default_s2_80 10.213.0.21:31780" in targets and len(targets) == len(set(targets))
    assert {p["runner"] for p in controller["probes"]} == {"controller"}
    no_vips = planned(pool_vips={})
    assert not [p for p in no_vips["probes"] if p["kind"] == "vip"]


@pytest.mark.parametrize(("options", "message"), [
    ({"through": ["everywhere"]}, "through: expected values from vip, edge, target, got everywhere"),
    ({"targets_from": "client"}, "targets_from: expected values from edge, controller"),
    ({"hosts": [{"name": "edge1"}]}, "hosts[0]: expected {name, address, engine, pools}"),
    ({"hosts": [{"name": "edge1", "address": "10.0.0.1", "engine": "envoy"}]}, "hosts[0].engine: expected one of haproxy, nginx"),
])
def test_bad_options_are_filter_errors(options, message):
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.probe_plan: " + message.replace("[", r"\[").replace("{", r"\{")):
        planned(**options)


# --- verdicts -----------------------------------------------------------------------------------

def results(plan, failing=(), error="expected status 200-499, got 503"):
    return [{"name": p["probe"]["name"], "ok": not any(f in p["probe"]["name"] for f in failing),
             "error": error if any(f in p["probe"]["name"] for f in failing) else "", "latency_ms": 2.5} for p in plan["probes"]]


def test_all_passed_table_and_counts():
    plan = planned(through=["vip", "edge", "target"])
    verdict = probe_report(plan, results(plan))
    assert verdict["passed"] and verdict["hosts"] == {"edge1": {"passed": True, "failures": 0}, "edge2": {"passed": True, "failures": 0}}
    assert verdict["table"][0].split() == ["frontend", "check", "VIP", "edge1", "edge2", "backends", "latency"]
    s2 = next(line for line in verdict["table"] if "s2.pctest/" in line)
    assert s2.split() == ["default-http-80", "s2.pctest/", "ok", "ok", "ok", "2/2", "2.5", "ms"]
    assert verdict["summary"]["probes"] == len(plan["probes"]) and verdict["summary"]["failed"] == 0


def test_an_edge_failure_is_the_edge_s_when_targets_answer():
    plan = planned()
    verdict = probe_report(plan, results(plan, failing=["edge edge1 default-http-80 s2.pctest/"]))
    assert not verdict["passed"]
    assert verdict["hosts"]["edge1"] == {"passed": False, "failures": 1} and verdict["hosts"]["edge2"]["passed"]
    failure = verdict["blocking"][0]
    assert failure["class"] == "edge" and failure["via"] == "edge1"
    assert verdict["messages"] == ["edge edge1 default-http-80 s2.pctest/ (edge: 10.213.0.11:80): expected status 200-499, got 503"]


def test_a_backend_down_is_the_backend_s_and_a_vip_failure_the_vip_s():
    plan = planned()
    down = probe_report(plan, results(plan, failing=["default_multi_9000_tcp", "default-tcp-9000"]))
    assert {f["class"] for f in down["failures"]} == {"backend"}
    assert "0/2" in next(line for line in down["table"] if "tcp/9000" in line)
    assert probe_report(plan, results(plan, failing=["default_multi_9000_tcp", "default-tcp-9000"]), fail_on=["edge"])["passed"]
    vip = probe_report(plan, results(plan, failing=["vip 10.213.0.200 default-http-80 s2.pctest/"]))
    assert [f["class"] for f in vip["failures"]] == ["vip"]
    assert vip["hosts"]["edge1"]["passed"] and not vip["passed"]


def test_a_missing_result_is_a_failure():
    plan = planned(through=["edge"])
    verdict = probe_report(plan, results(plan)[1:])
    assert verdict["failures"][0]["error"] == "no result: the probe did not run"


def test_report_refuses_bad_input():
    with pytest.raises(AnsibleFilterError, match="fail_on: expected values from edge, backend, vip"):
        probe_report(planned(), [], fail_on=["nothing"])
    with pytest.raises(AnsibleFilterError, match="plan: expected what k8sedge.lb.probe_plan returns"):
        probe_report([], [])
    with pytest.raises(AnsibleFilterError, match="plan: probes: expected a list"):
        probe_report({}, [])
    broken = planned()
    del broken["probes"][0]["probe"]["port"]
    with pytest.raises(AnsibleFilterError, match=r"plan: probes\[0\]\.probe\.port: expected a port number"):
        probe_report(broken, [])
    with pytest.raises(AnsibleFilterError, match="results: expected the probes lists"):
        probe_report(planned(), {})


@pytest.mark.parametrize(("path", "value", "message"), [
    (("frontends", 0, "port"), "80", r"model: frontends\[0\]\.port: expected a port number"),
    (("frontends", 0, "routes", 0), "s2.pctest/", r"model: frontends\[0\]\.routes\[0\]: expected an object"),
    (("frontends", 0, "routes", 0, "host"), None, r"model: frontends\[0\]\.routes\[0\]\.host: expected text"),
    (("backends", 0, "targets"), "10.0.0.1", r"model: backends\[0\]\.targets: expected a list"),
    (("backends",), {}, "model: backends: expected a list"),
])
def test_a_model_that_is_not_edge_infos_is_refused_naming_the_field(path, value, message):
    model = copy.deepcopy(MODEL)
    *parents, last = path
    node = model
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.probe_plan: " + message):
        probe_plan(model, HOSTS)


@pytest.mark.parametrize(("options", "message"), [
    ({"timeout": "soon"}, 'options: timeout: expected seconds, got "soon"'),
    ({"pool_vips": {"default": "10.0.0.1"}}, r"options: pool_vips.default: expected a list"),
    ({"payloads": {"default/db:5432": "ping"}}, r"options: payloads.default/db:5432: expected an object"),
    ({"http_status": 200}, "options: http_status: expected a list"),
])
def test_options_of_the_wrong_shape_are_filter_errors(options, message):
    with pytest.raises(AnsibleFilterError, match=r"^k8sedge.lb.probe_plan: " + message):
        planned(**options)


# --- the fail-static guard ----------------------------------------------------------------------

def model_with(**targets):
    return {"generation": "x", "backends": [backend(name, targets=count) for name, count in targets.items()]}


@pytest.mark.parametrize(("live", "new", "ok", "reason"), [
    (model_with(default_a_80=2, default_b_80=2), model_with(default_a_80=2, default_b_80=2), True, ""),
    (None, model_with(default_a_80=0), True, ""),  # nothing live yet
    # One backend emptied: held, not a reason to stop (test_an_emptied_backend_is_held).
    (model_with(default_a_80=1, default_b_80=9), model_with(default_a_80=0, default_b_80=9), True, ""),
    (model_with(default_a_80=5, default_b_80=5), model_with(default_a_80=5, default_b_80=2), False,
     "edge1: 3 of 10 targets (30%) would be removed"),
    (model_with(default_a_80=5, default_b_80=5), model_with(default_a_80=5, default_b_80=3), True, ""),
    (model_with(default_a_80=2, default_b_80=2), model_with(default_a_80=2), False, "edge1: 2 of 4 targets (50%)"),
    (model_with(default_a_80=0), model_with(default_a_80=0), True, ""),
])
def test_guard(live, new, ok, reason):
    result = check(new, {"edge1": live}, 0.25)
    assert result["ok"] is ok
    assert (result["reasons"][0] if result["reasons"] else "").startswith(reason)


def test_an_emptied_backend_is_held_and_the_rest_goes_through():
    live = {"generation": "old", "backends": [backend("default_a_80", targets=2), backend("default_b_80", targets=4)]}
    new = {"generation": "new", "errors": [], "warnings": [], "frontends": [], "routes": [],
           "backends": [backend("default_a_80", targets=0), backend("default_b_80", targets=3)]}
    result = check(new, {"edge1": live, "edge2": live}, 0.3)
    assert result["ok"] and result["reasons"] == []
    assert result["held"] == ["backend default_a_80 would lose all its targets: held at its last 2"]
    held = {b["name"]: b for b in result["model"]["backends"]}
    assert held["default_a_80"]["targets"] == live["backends"][0]["targets"] and held["default_a_80"]["held"]
    assert held["default_b_80"] == new["backends"][1]  # every other change goes through
    assert result["model"]["generation"] not in ("new", "old") and new["backends"][0]["targets"] == []
    assert (result["generation"], result["new_generation"]) == (result["model"]["generation"], "new")
    [warning] = result["model"]["warnings"]
    assert (warning["namespace"], warning["name"]) == ("default", "a") and "held at its last 2 targets" in warning["message"]
    assert result["hosts"]["edge1"] == {"total": 6, "removed": 1, "emptied": ["default_a_80"], "generation": "old"}
    unchanged = check(live | {"frontends": [], "routes": [], "errors": [{"kind": "Service", "name": "x"}]}, {"edge1": live}, 0.3)
    assert unchanged["held"] == [] and unchanged["model"]["generation"] == unchanged["generation"] == "old"
    assert unchanged["refused"] == [{"kind": "Service", "name": "x"}] and result["refused"] == []
    # What the new model warns of is answered beside what it refused; the guard's own holds are in `held`.
    typo = {"kind": "Service", "namespace": "default", "name": "x", "field": "metadata.annotations[lb.k8sedge.io/helth-check]",
            "message": "not an annotation of this object's contract, ignored"}
    assert check(live | {"warnings": [typo]}, {"edge1": live}, 0.3)["warnings"] == [typo] and result["warnings"] == []


def test_guard_filter_and_errors():
    result = fail_static(model_with(default_a_80=2), {"edge1": model_with(default_a_80=2), "edge2": {}})
    assert result["ok"] and result["hosts"]["edge2"]["total"] == 0 and result["hosts"]["edge1"]["total"] == 2
    with pytest.raises(AnsibleFilterError, match="max_removed_share: expected a share from 0 to 1"):
        fail_static(model_with(), {}, max_removed_share=30)
    with pytest.raises(GuardError, match="edge1: live model: backends: expected a list"):
        check(model_with(), {"edge1": {"backends": "x"}})


def test_the_guard_takes_and_gives_json_text_as_the_state_record_and_edge_info_give_it():
    """The fast way at scale: the model as edge_info's model_json, each host's serving as
    edge_state's serving_json; the model comes back as text, the input itself when nothing is held."""
    live = {"generation": "old", "routes": [], "backends": [backend("default_a_80", targets=2), backend("default_b_80", targets=4)]}
    new = {"generation": "new", "errors": [], "warnings": [], "frontends": [], "routes": [],
           "backends": [backend("default_a_80", targets=0), backend("default_b_80", targets=3)]}
    as_text = fail_static(json.dumps(new), {"edge1": json.dumps(live), "edge2": ""})
    as_objects = fail_static(copy.deepcopy(new), {"edge1": live, "edge2": {}})
    assert json.loads(as_text.pop("model")) == as_objects.pop("model")
    assert as_text == as_objects and as_text["held"]
    unchanged = json.dumps(new | {"backends": [backend("default_a_80", targets=2), backend("default_b_80", targets=4)]})
    assert fail_static(unchanged, {"edge1": json.dumps(live)})["model"] is unchanged
    with pytest.raises(AnsibleFilterError, match="edge1: live model: expected the JSON text of the state record's serving"):
        fail_static(unchanged, {"edge1": "{"})


def test_a_route_whose_certificate_an_edge_was_not_given_is_not_probed_there():
    """The role leaves such a route out (one tenant's claim never stops the run): so does the plan,
    with its redirect from plain HTTP."""
    given = [{**h, "certificates": []} if h["name"] == "edge1" else {**h, "certificates": ["shop"]} for h in HOSTS]
    plan = probe_plan(copy.deepcopy(MODEL), given, pool_vips={"default": ["10.213.0.200"]})
    names = {p["probe"]["name"] for p in plan["probes"]}
    assert "edge edge1 default-http-443 shop.pctest/" in {p["probe"]["name"] for p in planned()["probes"]}
    assert "edge edge1 default-http-443 shop.pctest/" not in names
    assert "edge edge1 default-http-80 shop.pctest/" not in names  # its redirect
    assert "edge edge1 default-http-80 s2.pctest/" in names  # everything else is probed
    reasons = {s["reason"] for s in plan["skipped"] if s["via"] == "edge1"}
    assert "certificate shop is not given to this edge: the role leaves the route out" in reasons
    with pytest.raises(AnsibleFilterError, match=r"hosts\[0\].certificates: expected a list of certificate names, or names"):
        probe_plan(MODEL, [{**HOSTS[0], "certificates": "shop"}])



def test_https_probes_check_the_certificate_each_edge_was_given():
    """Through an edge: its own certificate; through a VIP: any of the pool's (either edge may answer);
    the redirect from plain HTTP and the passthrough are not TLS the edge terminates."""
    fingerprints = {"edge1": "1" * 64, "edge2": "2" * 64}
    given = [{**h, "engine": "haproxy", "certificates": {"shop": fingerprints[h["name"]]}} for h in HOSTS]
    plan = probe_plan(copy.deepcopy(MODEL), given, pool_vips={"default": ["10.213.0.200"]})
    expected = {p["probe"]["name"]: p["probe"].get("certificate_sha256") for p in plan["probes"]}
    assert expected["edge edge1 default-http-443 shop.pctest/"] == ["1" * 64]
    assert expected["edge edge2 default-http-443 shop.pctest/"] == ["2" * 64]
    assert expected["vip 10.213.0.200 default-http-443 shop.pctest/"] == ["1" * 64, "2" * 64]
    assert expected["edge edge1 default-http-80 shop.pctest/"] is None  # the redirect
    assert expected["edge edge1 default-tcp-8443 sni db.pctest"] is None  # passthrough: the pod's certificate
    # Names only (no fingerprints): the same probes, without the check.
    names_only = probe_plan(copy.deepcopy(MODEL), [{**h, "certificates": ["shop"]} for h in HOSTS])
    assert not any("certificate_sha256" in p["probe"] for p in names_only["probes"])


# --- what changed in full, the rest as a sample ---------------------------------------------------

def checked(plan):
    """The (frontend, label) pairs a plan probes through the edges."""
    return {(p["frontend"], p["label"]) for p in plan["probes"] if p["kind"] == "edge"}


def test_what_no_host_proved_is_probed_in_full():
    plan = planned(sample=0)
    assert plan["coverage"] == {"checks": 13, "changed": 13, "unchanged": 0, "unchanged_probed": 0,
                                "unchanged_chosen_by": "all unchanged (no more than the sample of 0)"}
    assert plan["probes"] == planned()["probes"]


def test_unchanged_checks_are_a_seeded_sample_and_a_changed_backend_is_probed_in_full():
    proven = {host["name"]: check_digests(MODEL) for host in HOSTS}
    everything = checked(planned(proven=proven, sweep=True))
    sample = planned(proven=proven, sample=2)
    assert sample["coverage"] == {"checks": 13, "changed": 0, "unchanged": 13, "unchanged_probed": 2,
                                  "unchanged_chosen_by": "random sample of 2, seed g1"}
    assert len(checked(sample)) <= 2 and checked(sample) <= everything
    assert sample["probes"] == planned(proven=proven, sample=2)["probes"], "the same generation probes the same sample"
    moved = copy.deepcopy(MODEL)
    next(b for b in moved["backends"] if b["name"] == "default_api_80")["targets"][0]["address"] = "10.213.0.99"
    plan = probe_plan(moved, HOSTS, pool_vips={"default": ["10.213.0.200"]}, proven=proven, sample=0)
    assert plan["coverage"]["changed"] == 2  # both api.pctest routes
    assert checked(plan) == {("default-http-80", "api.pctest/v1 exact"), ("default-http-80", "api.pctest/v1")}
    assert {p["via"] for p in plan["probes"] if p["kind"] == "target"} == {"10.213.0.99:31780", "10.213.0.22:31780"}


def test_the_proven_digests_may_come_as_the_text_edge_state_returns():
    as_lists = {host["name"]: check_digests(MODEL) for host in HOSTS}
    as_text = {name: " ".join(digests) for name, digests in as_lists.items()}
    assert planned(proven=as_text, sample=2) == planned(proven=as_lists, sample=2)
    assert planned(proven={name: "" for name in as_lists}, sample=0)["coverage"]["changed"] == 13


def test_a_check_one_host_of_its_pool_did_not_prove_is_changed():
    plan = planned(proven={"edge1": check_digests(MODEL)}, sample=0)
    assert plan["coverage"]["changed"] == 13 and plan["coverage"]["unchanged"] == 0


def test_sample_and_sweep_come_as_text_from_extra_vars_and_bad_values_are_named():
    proven = {host["name"]: check_digests(MODEL) for host in HOSTS}
    assert planned(proven=proven, sample="3", sweep="false")["coverage"]["unchanged_probed"] == 3
    assert planned(proven=proven, sample="0", sweep="true")["coverage"]["unchanged_chosen_by"] == "full sweep"
    with pytest.raises(AnsibleFilterError, match="options: sample: expected a count of 0 or more"):
        planned(sample=-1)
    with pytest.raises(AnsibleFilterError, match="options: sweep: expected true or false"):
        planned(sweep="maybe")


def test_the_report_carries_the_coverage():
    plan = planned(proven={host["name"]: check_digests(MODEL) for host in HOSTS}, sample=1)
    assert probe_report(plan, [])["coverage"] == plan["coverage"]


def test_a_check_proven_under_other_settings_is_changed():
    """A new template, role variable or certificate on a host changes every check there."""
    proven = {host["name"]: check_digests(MODEL, "aa") for host in HOSTS}
    same = planned(proven=proven, settings={"edge1": "aa", "edge2": "aa"}, sample=0)
    assert same["coverage"]["changed"] == 0
    edge2_changed = planned(proven=proven, settings={"edge1": "aa", "edge2": "bb"}, sample=0)
    assert edge2_changed["coverage"]["changed"] == edge2_changed["coverage"]["checks"] == 13
    assert planned(proven=proven, sample=0)["coverage"]["changed"] == 13  # settings unknown: nothing proven


def test_a_plan_whose_probes_were_not_sent_passes_and_marks_every_cell_plan():
    """Check mode: the edges still serve what they served, so no answer is judged, none is missing."""
    plan = planned()
    unsent = probe_report(plan, [], sent=False)
    assert (unsent["passed"], unsent["sent"], unsent["failures"], unsent["blocking"]) == (True, False, [], [])
    assert unsent["summary"] == {"probes": len(plan["probes"]), "passed": 0, "failed": 0, "skipped": len(plan["skipped"]),
                                 "blocking": 0}
    assert all(probe["ok"] is None for probe in unsent["probes"])
    row = next(line for line in unsent["table"] if line.startswith("default-http-80") and "s2.pctest/" in line)
    assert row.split()[2:5] == ["plan", "plan", "plan"] and row.split()[5] == "-", row
    # The same plan with no results, sent, is every probe failed.
    assert probe_report(plan, [])["passed"] is False
