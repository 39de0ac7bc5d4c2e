# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what the edge model needs from the Kubernetes API: all of it, or an error.

Lists are paginated and read as raw JSON (the client's typed models cost seconds at
scale). A failed page, a broken continue chain, a 410 mid-list or the deadline passing
raise ReadError: the caller must never build a model from a partial read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.basic import env_fallback
from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState

try:
    from kubernetes import config as k8s_config
    from kubernetes.client import ApiClient, Configuration
except ImportError:
    HAS_KUBERNETES = False
else:
    HAS_KUBERNETES = True


class ReadError(Exception):
    """The cluster could not be read completely."""


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


@dataclass(frozen=True)
class AuthOptions:
    """Connection options, named as in kubernetes.core."""

    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    api_key: str | None = None
    ca_cert: str | None = None
    validate_certs: bool = True


@dataclass(frozen=True)
class ReadOptions:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    label_selector: str | None = None  # applies to Services
    tcp_services_configmap: str = "ingress-nginx/tcp-services"
    udp_services_configmap: str = "ingress-nginx/udp-services"
    read_ingresses: bool = True
    page_size: int = 500
    timeout: float = 30.0


def auth_options(params: dict[str, Any]) -> AuthOptions:
    return AuthOptions(**{name: params[name] for name in AUTH_ARGUMENT_SPEC})


def api_client(auth: AuthOptions) -> ApiClient:
    """An ApiClient from explicit host + token, else a kubeconfig, else in-cluster config."""
    if auth.host:
        configuration = Configuration(host=auth.host)
        if auth.api_key:
            configuration.api_key = {"BearerToken": auth.api_key}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
    else:
        configuration = Configuration()
        try:
            k8s_config.load_kube_config(config_file=auth.kubeconfig, context=auth.context,
                                        client_configuration=configuration)
        except k8s_config.ConfigException as kube_error:
            if auth.kubeconfig:
                raise ReadError(f"kubeconfig {auth.kubeconfig}: {kube_error}") from None
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                raise ReadError(f"no Kubernetes credentials: {kube_error}; set kubeconfig, "
                                "or host and api_key") from None
    if auth.ca_cert:
        configuration.ssl_ca_cert = auth.ca_cert
    configuration.verify_ssl = auth.validate_certs
    return ApiClient(configuration)


class Reader:
    """GETs against one API server within one deadline, counting what they cost."""

    def __init__(self, client: ApiClient, timeout: float) -> None:
        self._client = client
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        self.requests = 0
        self.seconds = 0.0

    def get(self, path: str, query: list[tuple[str, Any]] | None = None) -> dict[str, Any] | None:
        """The decoded JSON at path; None on 404 (absent is an answer, not a failure)."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise ReadError(f"GET {path}: gave up after the {self._timeout:g} s read timeout")
        params = self._client.param_serialize(
            method="GET", resource_path=path, query_params=query or [],
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        started = time.monotonic()
        try:
            response = self._client.call_api(*params, _request_timeout=remaining)
            body = response.read()
        except Exception as err:  # urllib3 and ssl raise many types; all mean "not read"
            raise ReadError(f"GET {path}: {err}") from None
        finally:
            self.requests += 1
            self.seconds += time.monotonic() - started
        if response.status == 404:
            return None
        if response.status != 200:
            raise ReadError(f"GET {path}: {_status_message(response.status, body)}")
        try:
            return json.loads(body)
        except ValueError as err:
            raise ReadError(f"GET {path}: the response is not JSON ({err})") from None

    def list(self, path: str, query: list[tuple[str, Any]], page_size: int) -> tuple[list[dict[str, Any]], str]:
        """Every item of a paginated list and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token = None
        version = ""
        while True:
            page_query = [*query, ("limit", page_size)] + ([("continue", token)] if token else [])
            page = self.get(path, page_query)
            if page is None:
                raise ReadError(f"GET {path}: 404, the API does not serve this resource")
            page_items = page.get("items")
            metadata = page.get("metadata") or {}
            if not isinstance(page_items, list) or not isinstance(metadata, dict):
                raise ReadError(f"GET {path}: expected a list with items and metadata")
            items.extend(page_items)
            version = version or str(metadata.get("resourceVersion", ""))
            token = metadata.get("continue")
            if not token:
                return items, version


def _status_message(code: int, body: bytes) -> str:
    try:
        status = json.loads(body)
        return f"{code} {status.get('reason', '')}: {status.get('message', '')}".strip()
    except ValueError:
        return f"{code}: {body[:200]!r}"


def read_cluster(reader: Reader, options: ReadOptions) -> tuple[ClusterState, dict[str, Any]]:
    """Everything the model reads, and metadata about the read (counts, versions, time)."""
    has_slices = reader.get("/apis/discovery.k8s.io/v1") is not None
    namespaced = {"services": "/api/v1/{}services"}
    if has_slices:
        namespaced["endpoint_slices"] = "/apis/discovery.k8s.io/v1/{}endpointslices"
    else:
        namespaced["endpoints"] = "/api/v1/{}endpoints"
    if options.read_ingresses:
        namespaced["ingresses"] = "/apis/networking.k8s.io/v1/{}ingresses"

    lists: dict[str, list[dict[str, Any]]] = {}
    versions: dict[str, str] = {}
    scopes = [f"namespaces/{ns}/" for ns in options.namespaces] or [""]
    for kind, template in namespaced.items():
        query = [("labelSelector", options.label_selector)] if kind == "services" and options.label_selector else []
        lists[kind] = []
        for scope in scopes:
            items, version = reader.list(template.format(scope), query, options.page_size)
            lists[kind].extend(items)
            versions[f"{kind}{'@' + scope if scope else ''}"] = version
    lists["nodes"], versions["nodes"] = reader.list("/api/v1/nodes", [], options.page_size)

    config_maps = []
    for ref in (options.tcp_services_configmap, options.udp_services_configmap):
        namespace, name = ref.split("/", 1)
        found = reader.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        if found is not None:
            config_maps.append(found)

    state = ClusterState(
        services=lists["services"],
        endpoint_slices=lists.get("endpoint_slices") if has_slices else None,
        endpoints=lists.get("endpoints", []),
        nodes=lists["nodes"],
        ingresses=lists.get("ingresses", []),
        config_maps=config_maps,
    )
    meta = {
        "api_version_endpoint_slices": "discovery.k8s.io/v1" if has_slices else None,
        "counts": {kind: len(items) for kind, items in sorted(lists.items())} | {"config_maps": len(config_maps)},
        "resource_versions": dict(sorted(versions.items())),
        "requests": reader.requests,
        "api_seconds": round(reader.seconds, 3),
    }
    return state, meta
