"""Pure parts of the lab API server: selectors, patches, tables, errors, RBAC, allocation."""
from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.kubeapi import protobuf, tables
from lab.kubeapi.allocators import ServiceAllocator
from lab.kubeapi.auth import Attributes, Authorizer, User, denial_reason, load_tokens
from lab.kubeapi.errors import FieldError, go_repr, invalid
from lab.kubeapi.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from lab.kubeapi.resources import by_plural
from lab.kubeapi.selectors import SelectorError, fields_match, labels_match, parse_fields, parse_labels

LABELS = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize("selector, matches", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app in (web, db)", True),
    ("app in (db)", False),
    ("app notin (db,cache)", True),
    ("missing notin (x)", True),
    ("tier", True),
    ("missing", False),
    ("!missing", True),
    ("!tier", False),
    ("app=web,tier=front", True),
    ("app=web, tier=back", False),
    ("version>2", True),
    ("version<3", False),
    ("example.com/app=web", False),
])
def test_label_selector_matching(selector: str, matches: bool) -> None:
    assert labels_match(parse_labels(selector), LABELS) is matches


def test_keywords_are_values_but_not_keys() -> None:
    assert labels_match(parse_labels("a=in,b in (notin)"), {"a": "in", "b": "notin"})
    with pytest.raises(SelectorError, match="found 'in', expected: identifier"):
        parse_labels("in=a")


@pytest.mark.parametrize("selector", ["app=", "a b", "app in ()", "app in (x", "=x", "app=web,", "a/b/c=x",
                                      "app in x", "x>y"])
def test_label_selector_rejects(selector: str) -> None:
    if selector == "app=":  # an empty value is legal and matches only the empty string
        assert labels_match(parse_labels(selector), {"app": ""})
        return
    with pytest.raises(SelectorError):
        parse_labels(selector)


# "in" and "notin" are the selector grammar's keywords: refused as keys, as the real parser does
# (values may be either).
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True).filter(lambda k: k not in ("in", "notin")),
                       st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), max_size=5))
def test_equality_selector_of_own_labels_always_matches(labels: dict[str, str]) -> None:
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    assert labels_match(parse_labels(selector), labels)
    if labels:
        negated = ",".join(f"{k}!={v}" for k, v in labels.items())
        assert not labels_match(parse_labels(negated), labels)


@pytest.mark.parametrize("selector, matches", [
    ("metadata.name=web", True),
    ("metadata.name==web", True),
    ("metadata.name!=web", False),
    ("metadata.namespace=default,spec.nodeName=n1", True),
    ("spec.nodeName=", False),
    ("status.phase=Running", False),
])
def test_field_selector(selector: str, matches: bool) -> None:
    pod = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"nodeName": "n1"},
           "status": {"phase": "Pending"}}
    supported = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase")
    assert fields_match(parse_fields(selector, supported), pod) is matches


def test_field_selector_unknown_field_and_escapes() -> None:
    with pytest.raises(SelectorError, match="^field label not supported: spec.foo$"):
        parse_fields("spec.foo=1", ("metadata.name",))
    terms = parse_fields(r"metadata.name=a\,b", ("metadata.name",))
    assert fields_match(terms, {"metadata": {"name": "a,b"}})


@pytest.mark.parametrize("target, patch, expected", [
    ({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}}, {"a": 1, "b": {"d": 3}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
    ({"a": 1}, {"a": {"x": 1}}, {"a": {"x": 1}}),
    ({}, {"a": None}, {}),
])
def test_merge_patch(target, patch, expected) -> None:
    assert merge_patch(target, patch) == expected


def test_strategic_merge_patch_replaces_plain_lists_and_honours_map_directives() -> None:
    target = {"spec": {"externalIPs": ["192.0.2.1"], "selector": {"a": "1", "b": "2"}}}
    patch = {"spec": {"externalIPs": ["192.0.2.2"], "selector": {"$patch": "replace", "c": "3"}}}
    assert strategic_merge_patch(target, patch) == {"spec": {"externalIPs": ["192.0.2.2"], "selector": {"c": "3"}}}
    assert strategic_merge_patch(target, {"spec": {"selector": {"$patch": "delete"}}}) == {
        "spec": {"externalIPs": ["192.0.2.1"]}}


def test_strategic_merge_patch_merges_keyed_lists_item_by_item() -> None:
    target = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    patch = {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 8080}],
                      "ports": [{"port": 80, "name": "web"}, {"port": 8080}, {"port": 443, "$patch": "delete"}]}}
    assert strategic_merge_patch(target, patch) == {"spec": {"ports": [{"port": 80, "name": "web"}, {"port": 8080}]}}


def test_strategic_merge_patch_keeps_the_pod_conditions_another_writer_owns() -> None:
    """The kubelet and a readiness gate's controller patch the same list, each its own types."""
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                     {"type": "lb.k8sedge.io/edge-ready", "status": "False"}]}}
    gate = {"status": {"conditions": [{"type": "lb.k8sedge.io/edge-ready", "status": "True"}]}}
    kubelet = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    patched = strategic_merge_patch(strategic_merge_patch(pod, gate), kubelet)
    assert patched == {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                                 {"type": "lb.k8sedge.io/edge-ready", "status": "True"}]}}
    container_env = {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}]}]}}
    assert strategic_merge_patch(container_env, {"spec": {"containers": [{"name": "app", "env": [
        {"name": "B", "value": "2"}]}]}}) == {"spec": {"containers": [{"name": "app", "env": [
            {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}


def test_strategic_merge_patch_refuses_a_keyed_item_without_its_key() -> None:
    with pytest.raises(PatchError, match="merge key 'type'"):
        strategic_merge_patch({"status": {"conditions": []}}, {"status": {"conditions": [{"status": "True"}]}})


@pytest.mark.parametrize("ops, expected", [
    ([{"op": "add", "path": "/a/-", "value": 9}], {"a": [1, 2, 9], "m": {"k": "v"}}),
    ([{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2], "m": {"k": "v"}}),
    ([{"op": "remove", "path": "/a/1"}], {"a": [1], "m": {"k": "v"}}),
    ([{"op": "replace", "path": "/m/k", "value": "w"}], {"a": [1, 2], "m": {"k": "w"}}),
    ([{"op": "move", "from": "/m/k", "path": "/m/j"}], {"a": [1, 2], "m": {"j": "v"}}),
    ([{"op": "copy", "from": "/a", "path": "/b"}], {"a": [1, 2], "b": [1, 2], "m": {"k": "v"}}),
    ([{"op": "add", "path": "/m/a~1b", "value": 1}], {"a": [1, 2], "m": {"k": "v", "a/b": 1}}),
    ([{"op": "test", "path": "/m/k", "value": "v"}], {"a": [1, 2], "m": {"k": "v"}}),
])
def test_json_patch(ops, expected) -> None:
    target = {"a": [1, 2], "m": {"k": "v"}}
    assert json_patch(target, ops) == expected
    assert target == {"a": [1, 2], "m": {"k": "v"}}  # the input is never modified


@pytest.mark.parametrize("ops, bad_request", [
    ([{"op": "test", "path": "/m/k", "value": "x"}], False),
    ([{"op": "remove", "path": "/nope"}], False),
    ([{"op": "replace", "path": "/nope", "value": 1}], False),
    ([{"op": "add", "path": "/a/7", "value": 1}], False),
    ([{"op": "frob", "path": "/a"}], True),
    ({"op": "add"}, True),
    ([{"op": "add", "path": "a", "value": 1}], True),
])
def test_json_patch_errors(ops, bad_request: bool) -> None:
    with pytest.raises(PatchError) as caught:
        json_patch({"a": [1, 2], "m": {"k": "v"}}, ops)
    assert caught.value.bad_request is bad_request


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
    (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (49 * 3600, "2d1h"), (8 * 86400, "8d"),
    (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
CREATED = {"creationTimestamp": "2025-01-01T11:55:00Z"}


@pytest.mark.parametrize("spec, status, cells", [
    ({"type": "ClusterIP", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "protocol": "TCP"}],
      "selector": {"b": "2", "a": "1"}}, {},
     ["s", "ClusterIP", "10.96.0.5", "<none>", "80/TCP", "5m", "a=1,b=2"]),
    ({"type": "NodePort", "clusterIP": "10.96.0.6", "externalIPs": ["192.0.2.1"],
      "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}, {},
     ["s", "NodePort", "10.96.0.6", "192.0.2.1", "80:30080/TCP,53/UDP", "5m", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "10.96.0.7", "ports": []}, {},
     ["s", "LoadBalancer", "10.96.0.7", "<pending>", "<none>", "5m", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "10.96.0.7", "ports": []},
     {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example"}]}},
     ["s", "LoadBalancer", "10.96.0.7", "203.0.113.9,lb.example", "<none>", "5m", "<none>"]),
    ({"type": "ExternalName", "externalName": "db.example"}, {},
     ["s", "ExternalName", "<none>", "db.example", "<none>", "5m", "<none>"]),
])
def test_service_rows(spec, status, cells) -> None:
    svc = {"metadata": {"name": "s", **CREATED}, "spec": spec, "status": status}
    assert tables.row_cells("services", svc, NOW) == cells


@pytest.mark.parametrize("endpoints, ports, cells", [
    ([], [], ["e", "IPv4", "<unset>", "<unset>", "5m"]),
    ([{"addresses": ["10.0.0.1"]}], [{"port": 80}, {"port": None}],
     ["e", "IPv4", "80,<unset>", "10.0.0.1", "5m"]),
    ([{"addresses": [f"10.0.0.{i}"]} for i in range(5)], [{"port": 8080}],
     ["e", "IPv4", "8080", "10.0.0.0,10.0.0.1,10.0.0.2 + 2 more...", "5m"]),
])
def test_endpointslice_rows(endpoints, ports, cells) -> None:
    eps = {"metadata": {"name": "e", **CREATED}, "addressType": "IPv4", "endpoints": endpoints,
           "ports": ports}
    assert tables.row_cells("endpointslices", eps, NOW) == cells


def test_pod_row_and_table_shape() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n", **CREATED, "deletionTimestamp": "x"},
           "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "podIP": "10.244.0.5",
                      "containerStatuses": [{"ready": True, "restartCount": 2},
                                            {"ready": False, "restartCount": 1}]}}
    assert tables.row_cells("pods", pod, NOW) == [
        "p", "1/2", "Terminating", "3", "5m", "10.244.0.5", "node-1", "<none>", "<none>"]
    table = tables.table("pods", [pod], "Metadata", NOW, {"resourceVersion": "7"})
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                          "metadata": pod["metadata"]}
    assert "object" not in tables.table("pods", [pod], "None", NOW)["rows"][0]
    assert tables.table("widgets", [pod], "Object", NOW)["rows"][0]["cells"] == ["p", CREATED["creationTimestamp"]]


@pytest.mark.parametrize("value, text", [
    ("x", '"x"'), (31780, "31780"), (True, "true"), (["10.96.0.1"], '[]string{"10.96.0.1"}'),
    ({"b": "2", "a": "1"}, 'map[string]string{"a":"1", "b":"2"}'),
])
def test_go_repr(value, text: str) -> None:
    assert go_repr(value) == text


def test_invalid_status_shape() -> None:
    error = invalid(by_plural("services"), "web", [
        FieldError("Required", "spec.ports"),
        FieldError("Invalid", "spec.ports[0].nodePort", 1, "provided port is not in the valid range")])
    status = error.status()
    assert status["message"] == ('Service "web" is invalid: [spec.ports: Required value, '
                                 "spec.ports[0].nodePort: Invalid value: 1: provided port is not in the valid range]")
    assert status["details"]["causes"][0] == {"reason": "FieldValueRequired", "message": "Required value",
                                              "field": "spec.ports"}
    assert invalid(by_plural("deployments"), "d", [FieldError("Required", "spec.selector")]).message == (
        'Deployment.apps "d" is invalid: spec.selector: Required value')


POLICY = [
    {"kind": "ClusterRole", "metadata": {"name": "reader"}, "rules": [
        {"apiGroups": [""], "resources": ["services", "services/status"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"], "resourceNames": ["only"]},
        {"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
     "subjects": [{"kind": "Group", "name": "readers"}, {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"}]},
    {"kind": "Role", "metadata": {"name": "cm", "namespace": "team"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]},
    {"kind": "RoleBinding", "metadata": {"name": "cm", "namespace": "team"},
     "roleRef": {"kind": "Role", "name": "cm"}, "subjects": [{"kind": "User", "name": "alice"}]},
]


@pytest.mark.parametrize("user, attrs, allowed", [
    (User("bob", "", ("readers",)), Attributes("list", "", True, "", "services", namespace="x"), True),
    (User("bob", "", ("readers",)), Attributes("create", "", True, "", "services", namespace="x"), False),
    (User("bob", "", ("readers",)), Attributes("get", "", True, "", "services", "status", "x", "s"), True),
    (User("bob", "", ("readers",)), Attributes("get", "", True, "", "pods", namespace="x"), False),
    (User("bob", "", ("readers",)), Attributes("delete", "", True, "apps", "deployments", "", "x", "only"), True),
    (User("bob", "", ("readers",)), Attributes("delete", "", True, "apps", "deployments", "", "x", "other"), False),
    (User("bob", "", ("readers",)), Attributes("list", "", True, "apps", "deployments", namespace="x"), False),
    (User("system:serviceaccount:ns:sa", "", ()), Attributes("get", "/apis/apps", False), True),
    (User("system:serviceaccount:ns:sa", "", ()), Attributes("get", "/api", False), False),
    (User("alice", "", ()), Attributes("create", "", True, "", "configmaps", namespace="team"), True),
    (User("alice", "", ()), Attributes("create", "", True, "", "configmaps", namespace="other"), False),
    (User("root", "", ("system:masters",)), Attributes("delete", "", True, "x", "y"), True),
])
def test_rbac(user: User, attrs: Attributes, allowed: bool) -> None:
    assert Authorizer(POLICY).allowed(user, attrs) is allowed


def test_rbac_policy_file_and_denial_wording() -> None:
    authorizer = Authorizer.from_files(["lab/rbac.yaml", "docs/rbac.yaml"])
    reader = User("system:serviceaccount:k8sedge:edge-reader", "", ("system:authenticated",))
    for resource, group in (("endpointslices", "discovery.k8s.io"), ("ingresses", "networking.k8s.io"),
                            ("nodes", ""), ("services", ""), ("endpoints", ""), ("configmaps", "")):
        assert authorizer.allowed(reader, Attributes("watch", "", True, group, resource))
    # Least privilege: nothing the model does not read.
    for resource, group in (("ingressclasses", "networking.k8s.io"), ("namespaces", ""), ("pods", ""),
                            ("secrets", "")):
        assert not authorizer.allowed(reader, Attributes("list", "", True, group, resource))
    assert not authorizer.allowed(reader, Attributes("create", "", True, "", "services", namespace="d"))
    # Its one write: the rollout's Lease, in its own namespace only.
    for verb in ("get", "create", "update"):
        assert authorizer.allowed(reader, Attributes(verb, "", True, "coordination.k8s.io", "leases", namespace="k8sedge"))
    assert not authorizer.allowed(reader, Attributes("delete", "", True, "coordination.k8s.io", "leases", namespace="k8sedge"))
    assert not authorizer.allowed(reader, Attributes("create", "", True, "coordination.k8s.io", "leases", namespace="default"))
    assert authorizer.allowed(reader, Attributes("get", "/openapi/v3", False))
    assert denial_reason(reader, Attributes("list", "", True, "", "nodes")) == (
        'User "system:serviceaccount:k8sedge:edge-reader" cannot list resource "nodes" in API group "" '
        "at the cluster scope")


def test_token_file(tmp_path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# comment\nt1,alice,1,"g1,g2"\nt2,bob,2\n')
    users = load_tokens(path)
    assert users["t1"] == User("alice", "1", ("g1", "g2", "system:authenticated"))
    assert users["t2"].groups == ("system:authenticated",)


def test_allocator_claims_and_releases() -> None:
    alloc = ServiceAllocator("10.96.0.0/29", (30000, 30001))
    first = {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}
    assert alloc.assign("a/one", first, None, commit=True) == []
    assert first["clusterIP"] == "10.96.0.1" and first["ports"][0]["nodePort"] == 30000
    second = {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}
    errors = alloc.assign("a/two", second, None, commit=True)
    assert [str(e) for e in errors] == ["spec.ports: Invalid value: null: node port range is full"]
    assert alloc.ports == {30000: "a/one"}
    alloc.release("a/one")
    assert alloc.assign("a/two", second, None, commit=True) == []
    assert sorted(alloc.ports) == [30000, 30001] and second["clusterIP"] == "10.96.0.2"
    dry = {"type": "ClusterIP", "clusterIP": "10.96.0.9", "ports": []}
    assert "not in the valid range" in str(alloc.assign("a/x", dry, None, commit=False)[0])


def test_pki_files(tmp_path) -> None:
    import stat

    import yaml
    from cryptography import x509

    from lab import pki

    pki.create_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    pki.create_server_cert(tmp_path / "s.crt", tmp_path / "s.key", tmp_path / "ca.crt", tmp_path / "ca.key",
                           ["localhost"], ["127.0.0.1"])
    pki.write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443", tmp_path / "ca.crt", "tok", "u", "ctx")
    for name in ("ca.key", "s.key", "kc"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / "s.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    config = yaml.safe_load((tmp_path / "kc").read_text())
    assert config["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443",
                                                "certificate-authority": str(tmp_path / "ca.crt")}
    assert config["users"] == [{"name": "u", "user": {"token": "tok"}}] and config["current-context"] == "ctx"


# --- protobuf: the SelfSubjectAccessReview kubectl auth can-i sends ---------------------------

def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def _review(kind: bytes = b"SelfSubjectAccessReview", spec: bytes = b"") -> bytes:
    type_meta = _field(1, b"authorization.k8s.io/v1") + _field(2, kind)
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, _field(1, b"") + _field(2, spec))


def test_protobuf_review_reads_as_its_json_form() -> None:
    attributes = _field(2, b"list") + _field(3, b"discovery.k8s.io") + _field(5, b"endpointslices") + _field(1, b"web")
    assert protobuf.self_subject_access_review(_review(spec=_field(1, attributes))) == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "web", "verb": "list", "group": "discovery.k8s.io",
                                        "resource": "endpointslices"}}}
    assert protobuf.self_subject_access_review(_review(spec=_field(2, _field(1, b"/healthz") + _field(2, b"get"))))["spec"] == {
        "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


@pytest.mark.parametrize("body, message", [
    (b'{"kind": "SelfSubjectAccessReview"}', "no k8s protobuf envelope"),
    (_review(kind=b"Pod"), "expected an authorization.k8s.io/v1 SelfSubjectAccessReview"),
    (_review()[:-1] + b"\xff", "truncated"),
    (protobuf.MAGIC + b"\x0d\x00\x00\x00\x00", "wire type 5 of field 1"),
    (_review(spec=_field(1, _field(2, b"\xff\xfe"))), "not a string"),
])
def test_protobuf_bodies_it_cannot_read_are_refused_by_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.self_subject_access_review(body)
