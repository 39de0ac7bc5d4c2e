# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connect to the Kubernetes API: credentials from the official client, JSON as bytes.

The official Python client (kubernetes.config) finds and refreshes the credentials: an explicit
host and token; else a kubeconfig (C(KUBECONFIG), several files merged, or ~/.kube/config) with
tokens, token files, client certificates, exec plugins or auth providers; else the in-cluster
service account. Requests go over that client's urllib3 pool, and bodies are returned undecoded:
the client's typed models cost seconds at scale, and the collection only sends GETs, a merge
PATCH and watches. What this module adds: kubectl's order of sources, the checks that make a
mistake in a kubeconfig name its field, and one retry with fresh credentials after a 401.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterator

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import ReadError

try:
    import urllib3
    import yaml
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger
except ImportError as err:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR: ImportError | None = err
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None


class TransportError(ReadError):
    """The API could not be used: no usable credentials, or no answer (connection, TLS, timeout).
    The message names the file and field, or the server."""


# The connection options of kubernetes.core, with the same environment variables, so AWX's
# Kubernetes credential and operators' habits carry over.
AUTH_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"],
                "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": (env_fallback, ["K8S_AUTH_CERT_FILE"])},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": False,  # a path, not the key
                   "fallback": (env_fallback, ["K8S_AUTH_KEY_FILE"])},
    "validate_certs": {"type": "bool", "default": True, "aliases": ["verify_ssl"],
                       "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"])},
}

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
USER_AGENT = "k8sedge.lb"


@dataclass(frozen=True)
class AuthOptions:
    """Connection options, named as in kubernetes.core."""

    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    api_key: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    validate_certs: bool = True


def auth_options(params: dict[str, Any]) -> AuthOptions:
    return AuthOptions(**{name: params[name] for name in AUTH_ARGUMENT_SPEC})


class Connection:
    """Requests to one API server. Threads may share it: the pool keeps connections alive, and
    each watch stream holds one of its own until closed."""

    def __init__(self, auth: AuthOptions) -> None:
        if not HAS_KUBERNETES:
            raise TransportError(f"{missing_required_lib('kubernetes')} ({KUBERNETES_IMPORT_ERROR})")
        self.auth = auth
        self._lock = threading.Lock()
        self._configuration, self._where = load_configuration(auth)
        self._pool = ApiClient(self._configuration).rest_client.pool_manager

    @property
    def server(self) -> str:
        return self._configuration.host

    def request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        """(status, body)."""
        retried = reloaded = False
        while True:
            used, pool, sent = self._prepare(headers)
            try:
                response = pool.request(method, self._url(path, query), body=body, headers=sent, retries=False,
                                        timeout=urllib3.Timeout(connect=timeout, read=timeout))
            except urllib3.exceptions.ProtocolError as err:
                if retried:
                    raise TransportError(f"{self.server}: {err}") from None
                retried = True  # once: the server closed a kept-alive connection as we sent on it
                continue
            except urllib3.exceptions.HTTPError as err:  # refused, TLS, timeout
                raise TransportError(f"{self.server}: {err}") from None
            # Refused credentials may have changed since they were read: a revoked exec plugin token,
            # a rotated token file, a kubeconfig rewritten by a login. Read them again, once.
            if response.status == 401 and not reloaded and not self.auth.host:
                self._reload(used)
                reloaded = True
                continue
            return response.status, response.data

    def stream(self, path: str, query: list[tuple[str, Any]], connect_timeout: float, idle_timeout: float) -> Stream:
        """A GET whose body is read as it comes (a watch), on a connection of its own until closed."""
        _used, pool, sent = self._prepare(None)
        try:
            response = pool.request("GET", self._url(path, query), headers=sent, retries=False, preload_content=False,
                                    timeout=urllib3.Timeout(connect=connect_timeout, read=idle_timeout))
        except urllib3.exceptions.HTTPError as err:
            raise TransportError(f"{self.server}: {err}") from None
        return Stream(response, self.server)

    def _url(self, path: str, query: list[tuple[str, Any]] | None) -> str:
        return self.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def _prepare(self, extra: dict[str, str] | None) -> tuple[Configuration, urllib3.PoolManager, dict[str, str]]:
        """The configuration and pool to use, and the headers with the current credential (the
        loader's hook runs an exec plugin again once its token expired; one thread at a time)."""
        with self._lock, _plugin_errors(self._where):
            authorization = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
            used, pool = self._configuration, self._pool
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(extra or {})}
        if authorization:
            headers["Authorization"] = authorization
        return used, pool, headers

    def _reload(self, refused: Configuration) -> None:
        with self._lock:
            if self._configuration is not refused:  # another thread has reloaded since
                return
            old = self._pool
            self._configuration, self._where = load_configuration(self.auth)
            self._pool = ApiClient(self._configuration).rest_client.pool_manager
        old.clear()  # idle connections; those in use close when released


class Stream:
    """A response read as it arrives; interrupt() unblocks a reader in another thread."""

    def __init__(self, response: urllib3.BaseHTTPResponse, server: str) -> None:
        self._response = response
        self._server = server
        self.status = response.status

    def body(self, limit: int = 4096) -> bytes:
        try:
            return self._response.read(limit)
        except urllib3.exceptions.HTTPError as err:
            raise TransportError(f"{self._server}: {err}") from None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response  # line by line, as the chunks arrive
        except urllib3.exceptions.HTTPError as err:  # cut, interrupted, idle too long
            raise TransportError(f"{self._server}: {err}") from None

    def interrupt(self) -> None:
        try:
            self._response.shutdown()
        except (ValueError, RuntimeError, OSError):  # already closed or released: nothing to interrupt
            pass

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


# --- credentials ------------------------------------------------------------------------------

def load_configuration(auth: AuthOptions) -> tuple[Configuration, str]:
    """The client configuration the options lead to, and where its credentials come from (for
    errors): an explicit host, else a kubeconfig, else the in-cluster service account; then
    ca_cert, client_cert, client_key and validate_certs override what was found."""
    if auth.host:
        found, where = Configuration(), "option host"
        found.host = _server_url(auth.host.rstrip("/"), where)
        if auth.api_key:
            found.api_key["BearerToken"] = f"Bearer {auth.api_key}"
    else:
        files = _kubeconfig_files(auth.kubeconfig)
        if files:
            found, where = _from_kubeconfig(files, auth.context)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            found, where = _in_cluster(), "in-cluster"
        else:
            raise TransportError("no Kubernetes credentials: no kubeconfig (KUBECONFIG, ~/.kube/config) and not in a"
                                 " cluster; set kubeconfig, or host and api_key")
    found.ssl_ca_cert = auth.ca_cert or found.ssl_ca_cert
    found.cert_file = auth.client_cert or found.cert_file
    found.key_file = auth.client_key or found.key_file
    found.verify_ssl = found.verify_ssl and auth.validate_certs is not False  # unset: verify
    for what, path in (("certificate authority", found.ssl_ca_cert), ("client certificate", found.cert_file),
                       ("client key", found.key_file)):
        if path:
            try:
                with open(path, "rb"):  # else the first request fails, and ssl's error names no file
                    pass
            except OSError as err:
                raise TransportError(f"{what}: {err}") from None
    return found, where


def _kubeconfig_files(explicit: str | None) -> list[str]:
    """The kubeconfig files that exist, as kubectl looks for them."""
    if explicit:
        if not os.path.isfile(explicit):
            raise TransportError(f"kubeconfig {explicit}: no such file")
        return [explicit]
    listed = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [path for path in (os.path.expanduser(p) for p in listed.split(os.pathsep) if p) if os.path.isfile(path)]


def _from_kubeconfig(files: list[str], context: str | None) -> tuple[Configuration, str]:
    """(the configuration, where the context's user is)."""
    where = f"kubeconfig {', '.join(files)}"
    found = Configuration()
    try:
        merged = KubeConfigMerger(os.pathsep.join(files))
        # client-go takes the first file's current-context; the merger keeps the last one's.
        name = context or next((doc["current-context"] for doc in merged.config_files.values() if doc.get("current-context")), None)
        if not name:
            raise TransportError(f"{where}: no current-context; set context")
        where = f"{where}, context {name}"
        loader = KubeConfigLoader(merged.config, active_context=name, config_base_path=None)
        user_where = _check_context(merged, loader.current_context["context"]) or where
        with _plugin_errors(user_where):
            loader.load_and_set(found)
    except ConfigException as err:
        raise TransportError(f"{where}: {_without_entries(err)}") from None
    except (OSError, yaml.YAMLError) as err:
        raise TransportError(f"{where}: {err}") from None
    return found, user_where


def _check_context(merged: KubeConfigMerger, context: dict[str, Any]) -> str | None:
    """What the loader takes as given, checked so that a mistake names its field; returns where
    the context's user is, if it names one."""
    cluster_name = context["cluster"]
    cluster_entry = merged.config["clusters"].get_with_name(cluster_name)
    where = f"kubeconfig {cluster_entry.path}: clusters[name={cluster_name}].cluster"
    cluster = cluster_entry.value.get("cluster")
    if not isinstance(cluster, dict):
        raise TransportError(f"{where}: expected an object")
    server = cluster.get("server")
    if not isinstance(server, str):
        raise TransportError(f"{where}.server: expected a string")
    _server_url(server, f"{where}.server")
    if not isinstance(cluster.get("insecure-skip-tls-verify", False), bool):
        raise TransportError(f"{where}.insecure-skip-tls-verify: expected true or false")
    _check_base64(cluster, ("certificate-authority-data",), where)

    user_name = context.get("user")
    user_entry = merged.config["users"].get_with_name(user_name, safe=True) if user_name else None
    if user_entry is None:
        return None
    where = f"kubeconfig {user_entry.path}: users[name={user_name}].user"
    user = user_entry.value.get("user") or {}
    if not isinstance(user, dict):
        raise TransportError(f"{where}: expected an object")
    _check_base64(user, ("client-certificate-data", "client-key-data"), where)
    has_cert, has_key = (bool(user.get(key) or user.get(f"{key}-data")) for key in ("client-certificate", "client-key"))
    if has_cert != has_key:
        raise TransportError(f"{where}: expected a client certificate and its key together")
    return where


def _check_base64(entry: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = entry.get(key)
        if value is not None and not (isinstance(value, str) and _decodes(value)):
            raise TransportError(f"{where}.{key}: expected base64")


def _decodes(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error is one
        return False
    return True


def _without_entries(err: ConfigException) -> str:
    """The loader names a merged entry by its whole content, a user's token and key included."""
    return re.sub(r"\{.*\}", "{...}", str(err))


@contextlib.contextmanager
def _plugin_errors(where: str) -> Iterator[None]:
    """kubernetes.config logs an exec plugin's failure and goes on without credentials: raise it."""
    found = _Collect()
    root = logging.getLogger()
    root.addHandler(found)
    try:
        yield
    finally:
        root.removeHandler(found)
    if found.messages:
        raise TransportError(f"{where}: {'; '.join(found.messages)}")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.module == "kube_config":
            self.messages.append(record.getMessage())


def _in_cluster() -> Configuration:
    found = Configuration()
    try:
        InClusterConfigLoader(os.path.join(IN_CLUSTER_DIR, "token"), os.path.join(IN_CLUSTER_DIR, "ca.crt")).load_and_set(found)
    except ConfigException as err:
        raise TransportError(f"in-cluster: {err}") from None
    _server_url(found.host, "in-cluster KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT")
    return found


def _server_url(value: str, where: str) -> str:
    """The API server's URL, checked where it is read so that a bad one names its field."""
    expected = f"{where}: expected an https:// URL with a host and a port 1-65535, such as https://api.example.com:6443"
    try:
        url = urllib.parse.urlsplit(value)
        port = url.port  # parsed on access: a port out of range or not a number raises
    except ValueError as err:
        raise TransportError(f"{expected} ({err})") from None
    if url.scheme not in ("https", "http") or not url.hostname or port == 0:
        raise TransportError(expected)
    return value
