# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connect to the Kubernetes API: credentials from where client-go finds them, requests over HTTPS.

The official Python client is not on this path: importing it costs about 0.3 s (its config
loader pulls OAuth, pydantic, dateutil...), a sixth of a model build at scale, while the
collection only sends GETs, a merge PATCH and watch requests. Credentials come from an explicit
host and token; else a kubeconfig (C(KUBECONFIG), several files merged, or ~/.kube/config) with
tokens, token files, client certificates, CAs, insecure-skip-tls-verify, tls-server-name or exec
plugins; else the in-cluster service account. A kubeconfig user with a legacy auth-provider is
read by the official client's loader when that is installed.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from ansible.module_utils.basic import env_fallback


class ConfigError(Exception):
    """No usable credentials; the message names the file, the entry and the field."""


class TransportError(Exception):
    """The request did not get an answer (connection, TLS, timeout)."""


# The connection options of kubernetes.core, with the same environment variables, so AWX's
# Kubernetes credential and operators' habits carry over.
AUTH_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"],
                "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "validate_certs": {"type": "bool", "default": True, "aliases": ["verify_ssl"],
                       "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"])},
}

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
USER_AGENT = "k8sedge.lb"


@dataclass(frozen=True)
class AuthOptions:
    """Connection options, named as in kubernetes.core."""

    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    api_key: str | None = None
    ca_cert: str | None = None
    validate_certs: bool = True


def auth_options(params: dict[str, Any]) -> AuthOptions:
    return AuthOptions(**{name: params[name] for name in AUTH_ARGUMENT_SPEC})


@dataclass(frozen=True)
class ExecPlugin:
    """A client-go credential plugin (users[].user.exec)."""

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    cluster: dict[str, Any] | None  # given to the plugin when it asks (provideClusterInfo)
    where: str


@dataclass(frozen=True)
class Credentials:
    """Where the API server is, how to trust it and how to prove who we are."""

    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None
    verify: bool = True
    server_name: str | None = None  # tls-server-name: the name to check the certificate against
    token: str | None = None
    token_file: str | None = None  # read on each request: bound service account tokens rotate
    basic: tuple[str, str] | None = None
    client_cert: tuple[str, str] | None = None  # files
    client_cert_pem: bytes | None = None  # certificate and key, from -data fields
    exec_plugin: ExecPlugin | None = None


def credentials(auth: AuthOptions) -> Credentials:
    """Explicit host and token, else a kubeconfig, else the in-cluster service account; then
    ca_cert and validate_certs override what was found."""
    if auth.host:
        found = Credentials(server=_server_url(auth.host, "option host"), token=auth.api_key)
    else:
        paths = [auth.kubeconfig] if auth.kubeconfig else _default_kubeconfigs()
        existing = [path for path in paths if os.path.isfile(path)]
        if auth.kubeconfig and not existing:
            raise ConfigError(f"kubeconfig {auth.kubeconfig}: no such file")
        if existing:
            found = _from_kubeconfig(existing, auth.context)
        else:
            in_cluster = _in_cluster()
            if in_cluster is None:
                raise ConfigError("no Kubernetes credentials: no kubeconfig (KUBECONFIG, ~/.kube/config) and not in a"
                                  " cluster; set kubeconfig, or host and api_key")
            found = in_cluster
    if auth.ca_cert:
        found = replace(found, ca_file=auth.ca_cert, ca_data=None)
    return replace(found, verify=found.verify and auth.validate_certs)


# --- kubeconfig -------------------------------------------------------------------------------

def _default_kubeconfigs() -> list[str]:
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        return [os.path.expanduser(path) for path in listed.split(os.pathsep) if path]
    return [os.path.expanduser("~/.kube/config")]


@dataclass
class _Kubeconfig:
    """Several kubeconfig files merged as client-go merges them: the first file that names an
    entry or sets current-context wins; relative paths are relative to the file that holds them."""

    files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def load(cls, paths: list[str]) -> _Kubeconfig:
        try:
            import yaml
        except ImportError:
            raise ConfigError("reading a kubeconfig needs PyYAML") from None
        merged = cls()
        for path in paths:
            try:
                with open(path, encoding="utf-8") as handle:
                    document = yaml.safe_load(handle) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
                raise ConfigError(f"kubeconfig {path}: {err}") from None
            if not isinstance(document, dict):
                raise ConfigError(f"kubeconfig {path}: expected a Config object")
            merged.files.append((path, document))
        return merged

    def current_context(self) -> str | None:
        for _path, document in self.files:
            if document.get("current-context"):
                return _string(document["current-context"], f"kubeconfig {_path}: current-context")
        return None

    def entry(self, section: str, name: str, body: str) -> tuple[dict[str, Any], str, str]:
        """(the entry's body, the directory relative paths start from, where it is, for errors)."""
        for path, document in self.files:
            entries = document.get(section) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: {section}: expected a list")
            for entry in entries:
                if isinstance(entry, dict) and entry.get("name") == name:
                    value = entry.get(body) or {}
                    where = f"kubeconfig {path}: {section}[name={name}].{body}"
                    if not isinstance(value, dict):
                        raise ConfigError(f"{where}: expected an object")
                    return value, os.path.dirname(os.path.abspath(path)), where
        where = ", ".join(path for path, _document in self.files)
        raise ConfigError(f"kubeconfig {where}: no {section[:-1]} named {name!r}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string")
    return value


def _optional(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    return None if value in (None, "") else _string(value, f"{where}.{key}")


def _server_url(value: str, where: str) -> str:
    """The API server's URL, checked where it is read so that a bad one names its field."""
    expected = f"{where}: expected an https:// URL with a host and a port 1-65535, such as https://api.example.com:6443"
    try:
        url = urllib.parse.urlsplit(value)
        port = url.port  # parsed on access: a port out of range or not a number raises
    except ValueError as err:
        raise ConfigError(f"{expected} ({err})") from None
    if url.scheme not in ("https", "http") or not url.hostname or port == 0:
        raise ConfigError(expected)
    return value


def _relative(path: str | None, base: str) -> str | None:
    return None if path is None else os.path.join(base, os.path.expanduser(path))


def _data(entry: dict[str, Any], key: str, where: str) -> bytes | None:
    value = _optional(entry, key, where)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ConfigError(f"{where}.{key}: expected base64") from None


def _from_kubeconfig(paths: list[str], context: str | None) -> Credentials:
    config = _Kubeconfig.load(paths)
    name = context or config.current_context()
    if not name:
        raise ConfigError(f"kubeconfig {', '.join(paths)}: no current-context; set context")
    ctx, _base, ctx_where = config.entry("contexts", name, "context")
    cluster, cluster_base, cluster_where = config.entry("clusters", _string(ctx.get("cluster"), f"{ctx_where}.cluster"), "cluster")
    user_name = ctx.get("user")
    user, user_base, user_where = config.entry("users", _string(user_name, f"{ctx_where}.user"), "user") if user_name else ({}, "", "")

    if cluster.get("proxy-url"):
        raise ConfigError(f"{cluster_where}.proxy-url: proxies are not supported; reach the API server directly")
    if user.get("auth-provider"):
        return _official_loader(paths, name, user_where)
    server = _server_url(_string(cluster.get("server"), f"{cluster_where}.server"), f"{cluster_where}.server")
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{cluster_where}.insecure-skip-tls-verify: expected true or false")
    cert, key = (_relative(_optional(user, k, user_where), user_base) for k in ("client-certificate", "client-key"))
    cert_data, key_data = (_data(user, k, user_where) for k in ("client-certificate-data", "client-key-data"))
    if bool(cert or cert_data) != bool(key or key_data):
        raise ConfigError(f"{user_where}: expected a client certificate and its key together")
    # ssl loads a certificate only from files; in-line data is kept as PEM (see _load_pem_chain).
    inline_pem = None
    if cert_data or key_data:
        inline_pem = (cert_data or _read(cert, f"{user_where}.client-certificate")) + b"\n" + (key_data or _read(key, f"{user_where}.client-key"))
    username, password = (_optional(user, k, user_where) for k in ("username", "password"))
    ca_data = _data(cluster, "certificate-authority-data", cluster_where)
    return Credentials(
        server=server,
        ca_file=None if ca_data else _relative(_optional(cluster, "certificate-authority", cluster_where), cluster_base),
        ca_data=ca_data,
        verify=not insecure,
        server_name=_optional(cluster, "tls-server-name", cluster_where),
        token=_optional(user, "token", user_where),
        token_file=_relative(_optional(user, "tokenFile", user_where), user_base),
        basic=(username, password or "") if username else None,
        client_cert=(cert, key) if cert and key and inline_pem is None else None,
        client_cert_pem=inline_pem,
        exec_plugin=_exec_plugin(user["exec"], user_base, f"{user_where}.exec", cluster) if user.get("exec") else None,
    )


def _read(path: str | None, where: str) -> bytes:
    try:
        with open(path or "", "rb") as handle:
            return handle.read()
    except OSError as err:
        raise ConfigError(f"{where}: {err}") from None


def _exec_plugin(spec: Any, base: str, where: str, cluster: dict[str, Any]) -> ExecPlugin:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected an object")
    api_version = _string(spec.get("apiVersion"), f"{where}.apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise ConfigError(f"{where}.apiVersion: expected one of {', '.join(EXEC_API_VERSIONS)}, got {api_version!r}")
    if spec.get("interactiveMode") == "Always":
        raise ConfigError(f"{where}.interactiveMode: Always needs a terminal; this runs unattended")
    command = _string(spec.get("command"), f"{where}.command")
    if os.sep in command and not os.path.isabs(command):
        command = os.path.join(base, command)  # as client-go: relative to the kubeconfig
    args = spec.get("args") or []
    env = spec.get("env") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}.args: expected a list of strings")
    if not isinstance(env, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("value"), str) for e in env):
        raise ConfigError(f"{where}.env: expected a list of {{name, value}} strings")
    info = None
    if spec.get("provideClusterInfo"):  # ExecCredential's spec.cluster takes the kubeconfig's field names
        info = {key: cluster[key] for key in ("server", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name") if key in cluster}
    return ExecPlugin(command, tuple(args), tuple((e["name"], e["value"]) for e in env), api_version, info, where)


def _official_loader(paths: list[str], context: str, where: str) -> Credentials:
    """A legacy auth-provider (oidc, gcp, azure): only the official client's loader speaks it."""
    try:
        from kubernetes import config as k8s_config
        from kubernetes.client import Configuration
    except ImportError:
        raise ConfigError(f"{where}.auth-provider: install the kubernetes Python client to use an auth-provider,"
                          " or use an exec credential plugin") from None
    configuration = Configuration()
    try:
        k8s_config.load_kube_config(config_file=paths[0] if len(paths) == 1 else None, context=context,
                                    client_configuration=configuration)
    except Exception as err:  # the loader raises ConfigException and whatever its providers raise
        raise ConfigError(f"{where}.auth-provider: {err}") from None
    authorization = configuration.get_api_key_with_prefix("BearerToken") or ""  # runs the provider's refresh
    return Credentials(
        server=configuration.host,
        ca_file=configuration.ssl_ca_cert,
        verify=configuration.verify_ssl,
        token=authorization[len("Bearer "):] if authorization.startswith("Bearer ") else None,
        client_cert=(configuration.cert_file, configuration.key_file) if configuration.cert_file else None,
    )


def _in_cluster() -> Credentials | None:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    token_file = os.path.join(IN_CLUSTER_DIR, "token")
    if not os.path.isfile(token_file):
        raise ConfigError(f"in-cluster: {token_file} is missing (is a service account token mounted?)")
    host = f"[{host}]" if ":" in host else host
    server = _server_url(f"https://{host}:{port}", "in-cluster KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT")
    return Credentials(server=server, ca_file=os.path.join(IN_CLUSTER_DIR, "ca.crt"), token_file=token_file)


# --- requests ---------------------------------------------------------------------------------

class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS that checks the certificate against tls-server-name when one is set."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str | None, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name or host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


class Connection:
    """Requests to one API server. Threads may share it: each keeps its own keep-alive
    connection, and each watch stream opens one of its own."""

    def __init__(self, creds: Credentials) -> None:
        self.credentials = creds
        url = urllib.parse.urlsplit(_server_url(creds.server, "server"))
        self._tls = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._tls else 80)
        self._prefix = url.path.rstrip("/")
        self._context = self._ssl_context(None) if self._tls else None
        self._exec = _ExecCache(creds.exec_plugin) if creds.exec_plugin else None
        self._exec_context: tuple[bytes | None, ssl.SSLContext | None] = (None, None)
        self._local = threading.local()

    def request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        """(status, body). Raises TransportError when no answer came."""
        target = self._target(path, query)
        retried = False  # once: on a keep-alive connection the server closed, or an exec credential refused
        while True:
            conn, reused = self._pooled(timeout)
            try:
                conn.request(method, target, body=body, headers=self._headers(headers))
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
                self._drop()
                if reused and not retried:  # the server closed an idle keep-alive connection
                    retried = True
                    continue
                raise TransportError(f"{self.credentials.server}: {err or type(err).__name__}") from None
            except (OSError, http.client.HTTPException) as err:  # refused, TLS, timeout, garbled
                self._drop()
                raise TransportError(f"{self.credentials.server}: {err or type(err).__name__}") from None
            if response.will_close:
                self._drop()
            if response.status == 401 and not retried and self._exec is not None:
                self._exec.expire()  # revoked before it expired: ask the plugin again, once
                retried = True
                continue
            return response.status, data

    def stream(self, path: str, query: list[tuple[str, Any]], connect_timeout: float, idle_timeout: float) -> Stream:
        """A GET whose body is read as it comes (a watch), on a connection of its own."""
        conn = self._new(connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(idle_timeout)
            conn.request("GET", self._target(path, query), headers=self._headers(None))
            return Stream(conn, conn.getresponse())
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise TransportError(f"{self.credentials.server}: {err or type(err).__name__}") from None

    def _target(self, path: str, query: list[tuple[str, Any]] | None) -> str:
        return self._prefix + path + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(extra or {})}
        creds = self.credentials
        token = creds.token
        if creds.token_file:
            token = _read(creds.token_file, "tokenFile").decode().strip()
        if self._exec:
            token = self._exec.credential().get("token") or token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif creds.basic:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(creds.basic).encode()).decode()
        return headers

    def _new(self, timeout: float) -> http.client.HTTPConnection:
        if not self._tls:
            return http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        context = self._context
        pem = self._exec.client_cert_pem() if self._exec else None
        if pem:
            if self._exec_context[0] != pem:  # a new certificate from the plugin
                self._exec_context = (pem, self._ssl_context(pem))
            context = self._exec_context[1]
        return _TlsConnection(self._host, self._port, context, self.credentials.server_name, timeout)

    def _pooled(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.sock is None:
            conn = self._local.conn = self._new(timeout)
            return conn, False
        conn.sock.settimeout(timeout)
        return conn, True

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _ssl_context(self, exec_pem: bytes | None) -> ssl.SSLContext:
        creds = self.credentials
        if creds.ca_file or creds.ca_data:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # only the cluster's CA, as client-go
            try:
                context.load_verify_locations(cafile=creds.ca_file, cadata=creds.ca_data.decode() if creds.ca_data else None)
            except (OSError, ssl.SSLError, UnicodeDecodeError) as err:
                raise ConfigError(f"certificate authority {creds.ca_file or '(certificate-authority-data)'}: {err}") from None
        else:
            context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not creds.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        pem = exec_pem or creds.client_cert_pem
        try:
            if creds.client_cert and not exec_pem:
                for what, path in zip(("client certificate", "client key"), creds.client_cert):
                    _read(path, what)  # ssl's own error names no file
                context.load_cert_chain(*creds.client_cert)
            elif pem:
                _load_pem_chain(context, pem)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"client certificate: {err}") from None
        return context


def _load_pem_chain(context: ssl.SSLContext, pem: bytes) -> None:
    """ssl loads certificates only from files: a private one, removed at once."""
    with tempfile.TemporaryDirectory(prefix="k8sedge-") as private:
        path = os.path.join(private, "client.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        context.load_cert_chain(path)


class Stream:
    """A response read as it arrives; interrupt() unblocks a reader in another thread."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._response = response
        self.status = response.status

    def body(self, limit: int = 4096) -> bytes:
        return self._response.read(limit)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def interrupt(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed: nothing to interrupt
                pass

    def close(self) -> None:
        self._conn.close()


class _ExecCache:
    """Runs an exec plugin when its last credential is missing or expired (client-go's rule)."""

    def __init__(self, plugin: ExecPlugin) -> None:
        self._plugin = plugin
        self._status: dict[str, Any] | None = None
        self._expires: datetime.datetime | None = None
        self._lock = threading.Lock()

    def credential(self) -> dict[str, Any]:
        with self._lock:
            now = datetime.datetime.now(datetime.timezone.utc)
            if self._status is None or (self._expires is not None and now >= self._expires):
                self._status, self._expires = _run_exec(self._plugin)
            return self._status

    def client_cert_pem(self) -> bytes | None:
        status = self.credential()
        if status.get("clientCertificateData"):
            return f"{status['clientCertificateData']}\n{status['clientKeyData']}".encode()
        return None

    def expire(self) -> None:
        with self._lock:
            self._status = None


def _run_exec(plugin: ExecPlugin) -> tuple[dict[str, Any], datetime.datetime | None]:
    where = plugin.where
    info: dict[str, Any] = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    if plugin.cluster is not None:
        info["spec"]["cluster"] = plugin.cluster
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    try:
        done = subprocess.run([plugin.command, *plugin.args], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"{where}: {plugin.command}: {err}") from None
    if done.returncode != 0:
        raise ConfigError(f"{where}: {plugin.command} exited {done.returncode}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    try:
        credential = json.loads(done.stdout)
        status = credential["status"]
        if credential.get("apiVersion") != plugin.api_version or credential.get("kind") != "ExecCredential" or not isinstance(status, dict):
            raise ValueError(f"expected an ExecCredential of {plugin.api_version}")
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{where}: {plugin.command} did not print an ExecCredential: {err}") from None
    has_cert = isinstance(status.get("clientCertificateData"), str) and isinstance(status.get("clientKeyData"), str)
    if not isinstance(status.get("token"), str) and not has_cert:
        raise ConfigError(f"{where}: {plugin.command}: expected status.token, or status.clientCertificateData and clientKeyData")
    expires = status.get("expirationTimestamp")
    if expires is None:
        return status, None
    try:
        when = datetime.datetime.fromisoformat(expires)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {plugin.command}: status.expirationTimestamp: expected an RFC 3339 time, got {expires!r}") from None
    return status, when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)
