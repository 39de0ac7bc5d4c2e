"""Credentials from the official client's loader and HTTPS to the Kubernetes API (module_utils/_k8s_client.py).

Kubeconfig forms are loaded into the client's Configuration; then a real TLS server that requires
nothing but records what each request presented (Authorization, client certificate) proves they
are sent, refreshed and retried as they should be.
"""
from __future__ import annotations

import base64
import datetime
import json
import ssl
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_client as c
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from lab import pki


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def kubeconfig(server: Any = "https://127.0.0.1:6443", cluster: dict | None = None, user: dict | None = None,
               current: str | None = "main", name: str = "main") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": name, "user": user or {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        **({"current-context": current} if current else {}),
    }


def load(tmp_path: Path, document: dict[str, Any], **options: Any) -> c.Configuration:
    return c.load_configuration(c.AuthOptions(kubeconfig=str(write(tmp_path / "config", document)), **options))[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- loading credentials ----------------------------------------------------------------------

def test_token_and_a_ca_path_relative_to_the_kubeconfig(tmp_path):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki/ca.crt").write_text("CA")
    found = load(tmp_path, kubeconfig(cluster={"certificate-authority": "pki/ca.crt"}, user={"token": "abc"}))
    assert (found.host, found.ssl_ca_cert, found.verify_ssl) == ("https://127.0.0.1:6443", str(tmp_path / "pki/ca.crt"), True)
    assert found.get_api_key_with_prefix("BearerToken") == "Bearer abc"


def test_merged_kubeconfigs_first_file_wins(tmp_path, monkeypatch):
    first = write(tmp_path / "a", {"current-context": "b", "users": [{"name": "b", "user": {"token": "from-a"}}]})
    second = write(tmp_path / "b", kubeconfig(name="b", current="other", user={"token": "from-b"}))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    found, _where = c.load_configuration(c.AuthOptions())
    assert (found.host, found.get_api_key_with_prefix("BearerToken")) == ("https://127.0.0.1:6443", "Bearer from-a")


def test_inline_data_fields_are_given_to_the_client_as_private_files(tmp_path):
    found = load(tmp_path, kubeconfig(cluster={"certificate-authority-data": b64(b"CA")},
                                      user={"client-certificate-data": b64(b"CERT"), "client-key-data": b64(b"KEY")}))
    assert [Path(p).read_bytes() for p in (found.ssl_ca_cert, found.cert_file, found.key_file)] == [b"CA", b"CERT", b"KEY"]
    assert stat.S_IMODE(Path(found.key_file).stat().st_mode) == 0o600


def test_options_override_the_kubeconfig(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("CA")
    found = load(tmp_path, kubeconfig(cluster={"certificate-authority-data": "Q0E="}), ca_cert=str(ca), validate_certs=False)
    assert (found.ssl_ca_cert, found.verify_ssl) == (str(ca), False)
    explicit, where = c.load_configuration(c.AuthOptions(kubeconfig=str(tmp_path / "config"), host="https://api:6443/", api_key="t"))
    assert (explicit.host, explicit.get_api_key_with_prefix("BearerToken"), where) == ("https://api:6443", "Bearer t", "option host")


def test_insecure_skip_tls_verify_is_kept(tmp_path):
    assert load(tmp_path, kubeconfig(cluster={"insecure-skip-tls-verify": True})).verify_ssl is False


def in_cluster(tmp_path, monkeypatch, host: str, port: str) -> None:
    """A pod's view: a service-account token and CA, no kubeconfig, the API server's variables."""
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("CA")
    monkeypatch.setattr(c, "IN_CLUSTER_DIR", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)


def test_in_cluster_when_no_kubeconfig(tmp_path, monkeypatch):
    in_cluster(tmp_path, monkeypatch, "fd00::1", "443")
    found, where = c.load_configuration(c.AuthOptions())
    assert (found.host, found.ssl_ca_cert, where) == ("https://[fd00::1]:443", str(tmp_path / "ca.crt"), "in-cluster")
    assert found.get_api_key_with_prefix("BearerToken") == "bearer sa-token"


def test_no_credentials_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(c.TransportError, match="no Kubernetes credentials"):
        c.load_configuration(c.AuthOptions())
    with pytest.raises(c.TransportError, match=f"kubeconfig {tmp_path}/given: no such file"):
        c.load_configuration(c.AuthOptions(kubeconfig=str(tmp_path / "given")))


@pytest.mark.parametrize("document, context, message", [
    (kubeconfig(current=None), None, "no current-context; set context"),
    (kubeconfig(), "prod", "context prod: Invalid kube-config file. Expected object with name prod in .*contexts list"),
    (kubeconfig(server=42), None, r"clusters\[name=main\].cluster.server: expected a string"),
    (kubeconfig(cluster={"insecure-skip-tls-verify": "false"}), None, "insecure-skip-tls-verify: expected true or false"),
    (kubeconfig(cluster={"certificate-authority-data": "not base64!"}), None, "certificate-authority-data: expected base64"),
    (kubeconfig(cluster={"certificate-authority": "gone.crt"}), None, "context main: File does not exist: .*/gone.crt"),
    (kubeconfig(user={"client-certificate": "c.pem"}), None, r"users\[name=main\].user: expected a client certificate and its key together"),
    (kubeconfig(user={"client-certificate-data": "Q0E=", "client-key-data": 7}), None, "client-key-data: expected base64"),
])
def test_bad_kubeconfigs_name_the_field(tmp_path, document, context, message):
    with pytest.raises(c.TransportError, match=message):
        load(tmp_path, document, context=context)


def test_the_loaders_errors_do_not_show_a_users_secrets(tmp_path):
    """The loader names a merged entry by its whole content: an auth-provider's missing field
    would print the user's token and key in the error."""
    user = {"token": "s3cret", "auth-provider": {"name": "oidc", "config": {"client-id": "k8sedge"}}}
    with pytest.raises(c.TransportError, match="Expected key id-token") as raised:
        load(tmp_path, kubeconfig(user=user))
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize("server", ["https://127.0.0.1:99999", "https://[::1", "https://api:port", "https://api:0", "api.example.com:6443"])
def test_a_bad_server_url_names_where_it_came_from(tmp_path, server):
    expected = r"expected an https:// URL with a host and a port 1-65535"
    with pytest.raises(c.TransportError, match=rf"kubeconfig {tmp_path}/config: clusters\[name=main\].cluster.server: {expected}"):
        load(tmp_path, kubeconfig(server=server))
    with pytest.raises(c.TransportError, match=f"option host: {expected}"):
        c.load_configuration(c.AuthOptions(host=server))


def test_a_bad_in_cluster_port_names_the_variables(tmp_path, monkeypatch):
    in_cluster(tmp_path, monkeypatch, "10.96.0.1", "99999")
    with pytest.raises(c.TransportError, match="in-cluster KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT: expected an https:// URL"):
        c.load_configuration(c.AuthOptions())


def test_auth_provider_is_the_loaders(tmp_path):
    claims = base64.urlsafe_b64encode(json.dumps({"exp": int(time.time()) + 3600}).encode()).decode().rstrip("=")
    id_token = f"e30.{claims}.c2ln"
    found = load(tmp_path, kubeconfig(user={"auth-provider": {"name": "oidc", "config": {
        "client-id": "k8sedge", "id-token": id_token, "idp-issuer-url": "https://issuer.invalid"}}}))
    assert found.get_api_key_with_prefix("BearerToken") == f"Bearer {id_token}"


def test_without_the_kubernetes_client_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(c, "HAS_KUBERNETES", False)
    with pytest.raises(c.TransportError, match=r"Failed to import the required Python library \(kubernetes\)"):
        c.Connection(c.AuthOptions(host="https://127.0.0.1:6443"))


# --- requests against a real TLS server ---------------------------------------------------------

class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []
    revoked: set[str] = set()  # Authorization headers answered with 401

    def do_GET(self):  # noqa: N802 (http.server's name)
        peer = self.connection.getpeercert() or {}
        subject = dict(pair[0] for pair in peer.get("subject", ()))
        authorization = self.headers.get("Authorization")
        Recorder.seen.append({"path": self.path, "authorization": authorization,
                              "client": subject.get("commonName"), "port": self.client_address[1]})
        if self.path.startswith("/watch"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in (b'{"n": 1}\n', b'{"n": 2}\n'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(5)  # a quiet watch: the client interrupts it
            return
        body = json.dumps({"path": self.path}).encode()
        self.send_response(401 if self.path.startswith("/unauthorized") or authorization in Recorder.revoked else 200)
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A TLS server whose certificate names only api.test, trusting client certificates of our CA."""
    pki_dir = tmp_path_factory.mktemp("pki")
    ca, ca_key = pki_dir / "ca.crt", pki_dir / "ca.key"
    pki.create_ca(ca, ca_key)
    pki.create_server_cert(pki_dir / "server.crt", pki_dir / "server.key", ca, ca_key, dns_names=("api.test",), ip_addresses=())
    pki.create_client_cert(pki_dir / "client.crt", pki_dir / "client.key", ca, ca_key, "edge-reader", ("k8sedge",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki_dir / "server.crt", pki_dir / "server.key")
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"https://127.0.0.1:{server.server_address[1]}", "dir": pki_dir, "ca": ca}
    server.shutdown()
    server.server_close()


def connect(tls, tmp_path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> c.Connection:
    cluster = {"certificate-authority": str(tls["ca"]), "tls-server-name": "api.test", **(cluster or {})}
    cluster = {key: value for key, value in cluster.items() if value is not None}
    return c.Connection(c.AuthOptions(kubeconfig=str(write(tmp_path / "config", kubeconfig(tls["url"], cluster, user)))))


def last_request() -> dict[str, Any]:
    return Recorder.seen[-1]


def test_token_over_verified_tls_with_keep_alive(tls, tmp_path):
    connection = connect(tls, tmp_path, {"token": "abc"})
    assert connection.request("GET", "/api/v1/services", [("limit", 2), ("continue", "a b/=")]) == (200, b'{"path": "/api/v1/services?limit=2&continue=a+b%2F%3D"}')
    first = last_request()
    connection.request("GET", "/version")
    assert last_request()["authorization"] == "Bearer abc"
    assert last_request()["port"] == first["port"], "a second request reuses the connection"


def test_a_closed_keep_alive_connection_is_reopened(tls, tmp_path):
    connection = connect(tls, tmp_path, {"token": "abc"})
    assert connection.request("GET", "/close")[0] == 200
    assert connection.request("GET", "/version")[0] == 200


def test_the_certificate_is_checked_against_the_name(tls, tmp_path):
    connection = connect(tls, tmp_path, {"token": "abc"}, {"tls-server-name": None})
    with pytest.raises(c.TransportError, match="certificate verify failed: IP address mismatch"):
        connection.request("GET", "/version")
    untrusted = connect(tls, tmp_path, {"token": "abc"}, {"certificate-authority": None})
    with pytest.raises(c.TransportError, match="certificate verify failed"):
        untrusted.request("GET", "/version")
    assert connect(tls, tmp_path, {}, {"certificate-authority": None, "insecure-skip-tls-verify": True}).request("GET", "/version")[0] == 200


def test_client_certificate_from_files_and_from_data(tls, tmp_path):
    pki_dir = tls["dir"]
    connect(tls, tmp_path, {"client-certificate": str(pki_dir / "client.crt"), "client-key": str(pki_dir / "client.key")}).request("GET", "/files")
    assert (last_request()["client"], last_request()["authorization"]) == ("edge-reader", None)
    connect(tls, tmp_path, {"client-certificate-data": b64((pki_dir / "client.crt").read_bytes()),
                            "client-key-data": b64((pki_dir / "client.key").read_bytes())}).request("GET", "/data")
    assert last_request()["client"] == "edge-reader"


def test_client_certificate_options(tls, tmp_path):
    pki_dir = tls["dir"]
    auth = c.AuthOptions(host=tls["url"], ca_cert=str(tls["ca"]), validate_certs=False,
                         client_cert=str(pki_dir / "client.crt"), client_key=str(pki_dir / "client.key"))
    c.Connection(auth).request("GET", "/options")
    assert (last_request()["path"], last_request()["client"]) == ("/options", "edge-reader")


def test_a_missing_client_certificate_file_is_named(tmp_path):
    present = write(tmp_path / "client.key", {})
    for cert, key in ((tmp_path / "gone.crt", present), (present, tmp_path / "gone.key")):
        missing = cert if cert != present else key
        with pytest.raises(c.TransportError, match=f"No such file or directory: '{missing}'"):
            c.Connection(c.AuthOptions(host="https://127.0.0.1:6443", client_cert=str(cert), client_key=str(key)))
        user = {"client-certificate": str(cert), "client-key": str(key)}
        with pytest.raises(c.TransportError, match=f"File does not exist: {missing}"):
            c.Connection(c.AuthOptions(kubeconfig=str(write(tmp_path / "config", kubeconfig(user=user)))))


def test_a_rotated_token_file_is_read_again_when_the_old_token_is_refused(tls, tmp_path):
    """The loader reads tokenFile once; a 401 loads the credentials again."""
    token = tmp_path / "token"
    token.write_text("first")
    connection = connect(tls, tmp_path, {"tokenFile": "token"})
    connection.request("GET", "/one")
    token.write_text("rotated")
    Recorder.revoked.add("Bearer first")
    assert connection.request("GET", "/two")[0] == 200
    assert [r["authorization"] for r in Recorder.seen[-3:]] == ["Bearer first", "Bearer first", "Bearer rotated"]


def exec_plugin(tmp_path: Path, status: dict[str, Any], api_version: str = "client.authentication.k8s.io/v1") -> dict[str, Any]:
    """A plugin that prints the ExecCredential in credential.json (status: what it says) and
    counts its runs in runs.log."""
    script = tmp_path / "bin" / "credential"
    script.parent.mkdir(exist_ok=True)
    (tmp_path / "credential.json").write_text(json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}))
    script.write_text(f"#!/bin/sh\necho \"$KUBERNETES_EXEC_INFO $EXTRA\" >> {tmp_path}/runs.log\ncat {tmp_path}/credential.json\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"exec": {"apiVersion": api_version, "command": "bin/credential", "env": [{"name": "EXTRA", "value": "x"}],
                     "provideClusterInfo": True}}


def runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.log").read_text().splitlines()


def in_minutes(minutes: float) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)).isoformat()


def test_exec_plugin_token_is_cached_until_it_expires(tls, tmp_path):
    connection = connect(tls, tmp_path, exec_plugin(tmp_path, {"token": "from-exec", "expirationTimestamp": in_minutes(60)}))
    connection.request("GET", "/one")
    connection.request("GET", "/two")
    assert len(runs(tmp_path)) == 1 and last_request()["authorization"] == "Bearer from-exec"
    info = json.loads(runs(tmp_path)[0].rsplit(" ", 1)[0])
    assert info["spec"]["interactive"] is False and info["spec"]["cluster"]["server"] == tls["url"]
    assert runs(tmp_path)[0].endswith(" x")


def test_an_expiring_exec_token_is_refreshed_before_a_request(tls, tmp_path):
    """Within the loader's 5 minutes of skew, each request asks the plugin again."""
    connection = connect(tls, tmp_path, exec_plugin(tmp_path, {"token": "short", "expirationTimestamp": in_minutes(1)}))
    connection.request("GET", "/one")
    assert len(runs(tmp_path)) == 2 and last_request()["authorization"] == "Bearer short"


def test_exec_plugin_is_asked_again_after_a_401(tls, tmp_path):
    connection = connect(tls, tmp_path, exec_plugin(tmp_path, {"token": "revoked"}))
    assert connection.request("GET", "/unauthorized")[0] == 401
    assert len(runs(tmp_path)) == 2


def test_exec_plugin_client_certificate(tls, tmp_path):
    pki_dir = tls["dir"]
    status = {"clientCertificateData": (pki_dir / "client.crt").read_text(), "clientKeyData": (pki_dir / "client.key").read_text()}
    connect(tls, tmp_path, exec_plugin(tmp_path, status, "client.authentication.k8s.io/v1beta1")).request("GET", "/exec-cert")
    assert last_request()["client"] == "edge-reader"


def test_exec_plugin_failures_name_the_plugin(tls, tmp_path):
    where = r"kubeconfig .*/config: users\[name=main\].user: exec: "
    with pytest.raises(c.TransportError, match=where + "missing token or clientCertificateData"):
        connect(tls, tmp_path, exec_plugin(tmp_path, {"nothing": "useful"}))
    with pytest.raises(k8s.ReadError, match=where + "missing token"):
        k8s.connect(c.AuthOptions(kubeconfig=str(tmp_path / "config")))
    (tmp_path / "bin" / "credential").write_text("#!/bin/sh\necho 'no such account' >&2\nexit 3\n")
    with pytest.raises(c.TransportError, match=where + "process returned 3. no such account"):
        c.Connection(c.AuthOptions(kubeconfig=str(tmp_path / "config")))


def test_exec_plugin_failing_on_refresh_is_named(tls, tmp_path):
    connection = connect(tls, tmp_path, exec_plugin(tmp_path, {"token": "short", "expirationTimestamp": in_minutes(1)}))
    (tmp_path / "bin" / "credential").write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(c.TransportError, match=r"users\[name=main\].user: exec: process returned 1"):
        connection.request("GET", "/version")


def test_stream_reads_lines_as_they_come_and_can_be_interrupted(tls, tmp_path):
    stream = connect(tls, tmp_path, {"token": "abc"}).stream("/watch", [("watch", "true")], 5, 30)
    lines = iter(stream)
    assert (stream.status, next(lines)) == (200, b'{"n": 1}\n')
    assert next(lines) == b'{"n": 2}\n'
    threading.Timer(0.2, stream.interrupt).start()
    started = time.monotonic()
    with pytest.raises(c.TransportError, match="Response ended prematurely"):
        list(lines)
    assert time.monotonic() - started < 3, "interrupt() unblocks the reader; the server would wait 5 s"
    stream.close()
    stream.interrupt()  # after close: nothing to interrupt, and no error


def test_a_refused_connection_is_a_transport_error():
    connection = c.Connection(c.AuthOptions(host="https://127.0.0.1:1"))
    with pytest.raises(c.TransportError, match=r"https://127.0.0.1:1: .*\[Errno 111\] Connection refused"):
        connection.request("GET", "/version", timeout=5)
    with pytest.raises(c.TransportError, match=r"Connection refused"):
        connection.stream("/watch", [], 5, 5)
