"""Status write-back (module_utils/_lb_status.py): which Services of the class get which ingress."""
from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils._lb_status import StatusError, desired

VIPS = {"default": ["10.213.0.200", "10.213.0.201"], "blue": ["10.213.0.210"]}


def service(name: str, kind: str = "LoadBalancer", klass: str | None = "lb.k8sedge.io/edge", namespace: str = "default",
            ingress: list[dict[str, Any]] | None = None, **annotations: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind}
    if klass:
        spec["loadBalancerClass"] = klass
    return {"metadata": {"namespace": namespace, "name": name, "annotations": {f"lb.k8sedge.io/{k}": v for k, v in annotations.items()}},
            "spec": spec, "status": {"loadBalancer": {"ingress": ingress} if ingress is not None else {}}}


def backend(namespace: str, name: str) -> dict[str, Any]:
    return {"name": f"{namespace}_{name}_80", "namespace": namespace, "service": name}


MODEL = {
    "generation": "ab" * 32,
    "frontends": [
        {"name": "default-http-80", "pool": "default", "protocol": "http", "port": 80,
         "routes": [{"host": "web.pctest", "path": "/", "backend": "default_web_80"}]},
        {"name": "default-tcp-443", "pool": "default", "protocol": "tcp", "port": 443, "backend": "",
         "sni": [{"host": "tls.pctest", "backend": "default_tls_80"}]},
        {"name": "blue-tcp-7000", "pool": "blue", "protocol": "tcp", "port": 7000, "backend": "default_blue_80"},
    ],
    "backends": [backend("default", "web"), backend("default", "tls"), backend("default", "blue")],
}


def by_name(statuses) -> dict[str, Any]:
    return {s.name: s for s in statuses}


def test_served_services_of_the_class_get_their_pool_s_vips():
    statuses = by_name(desired([service("web"), service("tls"), service("blue", pool="blue")], MODEL, VIPS, ["default", "blue"]))
    assert statuses["web"].after == ({"ip": "10.213.0.200"}, {"ip": "10.213.0.201"}) and statuses["web"].changed
    assert statuses["tls"].after == statuses["web"].after  # served through SNI
    assert statuses["blue"].after == ({"ip": "10.213.0.210"},) and statuses["blue"].reason == "served by pool blue"


def test_only_services_of_the_class_and_of_the_served_pools():
    services = [service("web", klass=None), service("web", klass="other.io/lb"), service("web", kind="NodePort"),
                service("blue", pool="blue"), service("tls", namespace="other")]
    statuses = desired(services, MODEL, VIPS, ["default"])
    assert [(s.namespace, s.name, s.after, s.reason) for s in statuses] == [
        ("other", "tls", (), "not served by the model (see edge_info's errors)")]


@pytest.mark.parametrize("svc, reason", [
    (service("web", expose="false"), 'opted out (lb.k8sedge.io/expose: "false")'),
    (service("gone"), "not served by the model (see edge_info's errors)"),
    (service("blue"), "not served by the model (see edge_info's errors)"),  # its backend is in pool blue, it says default
])
def test_what_is_not_served_gets_no_address(svc, reason):
    svc["status"]["loadBalancer"]["ingress"] = [{"ip": "10.213.0.200"}]
    (status,) = desired([svc], MODEL, VIPS, ["default"])
    assert (status.after, status.reason, status.changed) == ((), reason, True)


def test_a_pool_without_vips_gets_no_address():
    (status,) = desired([service("web")], MODEL, {"blue": ["10.213.0.210"]}, ["default"])
    assert (status.after, status.reason) == ((), "pool default has no VIPs")


def test_an_ingress_that_already_says_it_is_unchanged_and_anything_else_is_replaced():
    current = [{"ip": "10.213.0.200"}, {"ip": "10.213.0.201"}]
    assert not desired([service("web", ingress=current)], MODEL, VIPS, ["default"])[0].changed
    for other in ([{"ip": "10.213.0.201"}, {"ip": "10.213.0.200"}], [*current, {"hostname": "lb.example"}],
                  [{"ip": "10.213.0.200", "ipMode": "VIP"}, {"ip": "10.213.0.201"}]):
        assert desired([service("web", ingress=other)], MODEL, VIPS, ["default"])[0].changed


def test_values_from_the_cluster_that_cannot_be_a_path_are_skipped():
    assert desired([service("web/../x"), service("Web"), {"spec": "x"}, "junk"], MODEL, VIPS, ["default"]) == []


@pytest.mark.parametrize("vips, message", [
    ({"default": "10.213.0.200"}, r"pool_vips\[default\]: expected a list of VIP addresses"),
    ({"default": ["10.213.0.300"]}, r"pool_vips\[default\]: .*expected an IP address in canonical form"),
    (["10.213.0.200"], r"pool_vips: expected pool -> list"),
])
def test_bad_vips_are_refused_by_name(vips, message):
    with pytest.raises(StatusError, match=message):
        desired([service("web")], MODEL, vips, ["default"])


def test_a_model_of_another_shape_is_refused():
    with pytest.raises(StatusError, match=r"model: frontends: expected a list of objects with pool \(the model edge_info returns\)"):
        desired([service("web")], {"frontends": [{}], "backends": []}, VIPS, ["default"])
    with pytest.raises(StatusError, match=r"model: backends: expected a list of objects with name, namespace, service"):
        desired([service("web")], {"frontends": [], "backends": [{"name": "default_web_80"}]}, VIPS, ["default"])
