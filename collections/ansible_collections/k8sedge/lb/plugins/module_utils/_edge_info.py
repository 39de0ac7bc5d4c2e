# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the cluster and build the model: the one path edge_info and the inventory plugin share."""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC, auth_options
from ansible_collections.k8sedge.lb.plugins.module_utils._manifests import load_state
from ansible_collections.k8sedge.lb.plugins.module_utils._model import (
    ClusterState, ModelJson, ModelOptions, build_model, build_model_json, paused_gc)

# Mirrors the k8sedge.lb.model_options doc fragment.
MODEL_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "namespaces": {"type": "list", "elements": "str", "default": []},
    "label_selector": {"type": "str"},
    "ingress_class": {"type": "str", "default": "k8sedge"},
    "read_ingresses": {"type": "bool", "default": True},
    "readiness_gates": {"type": "bool", "default": False},
    "tcp_services_configmap": {"type": "str", "default": ""},
    "udp_services_configmap": {"type": "str", "default": ""},
    "reserved_ports": {"type": "list", "elements": "int", "default": [8404, 8405]},
    "http_port": {"type": "int", "default": 80},
    "https_port": {"type": "int", "default": 443},
    "nodeport_subset_size": {"type": "int", "default": 25},
    "timeout": {"type": "float", "default": 30},
    "page_size": {"type": "int", "default": 500},
}


# The options of the edge_info module (and of its action, which runs it on the controller).
EDGE_INFO_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    **AUTH_ARGUMENT_SPEC,
    **MODEL_ARGUMENT_SPEC,
    "pool": {"type": "str"},
    "src": {"type": "path"},
    "model_format": {"type": "str", "choices": ["dict", "json"], "default": "dict"},
}


def edge_info(params: dict[str, Any]) -> dict[str, Any]:
    """What edge_info returns for validated params; ReadError or InvalidValue when it cannot."""
    state, read = read_state(params, params["src"])
    # Objects of a src file that could not even be told apart (Ansible shows these as warnings).
    warnings = {"warnings": read["refused"]} if read.get("refused") else {}
    if params["model_format"] == "json":
        built = model_json_of(state, params, params["pool"], read)
        return {"changed": False, "read": read, "model_json": built.text, "generation": built.generation, "gates": built.gates,
                **warnings}
    model = model_of(state, params, params["pool"], read)
    return {"changed": False, "read": read, "model": model, "generation": model["generation"], "gates": model["gates"], **warnings}


def read_options(params: dict[str, Any]) -> k8s.ReadOptions:
    """What to read, from the module options (shared by edge_info, the inventory and the watcher)."""
    return k8s.ReadOptions(
        namespaces=tuple(params["namespaces"]),
        label_selector=params["label_selector"],
        tcp_services_configmap=params["tcp_services_configmap"],
        udp_services_configmap=params["udp_services_configmap"],
        read_ingresses=params["read_ingresses"],
        read_pods=params["readiness_gates"],
        page_size=params["page_size"],
        timeout=params["timeout"],
    )


def read_state(params: dict[str, Any], src: str | None = None) -> tuple[ClusterState, dict[str, Any]]:
    """The cluster state, from manifests under src or from the API; whole or ReadError."""
    with paused_gc():
        if src:
            return load_state(src)
        reader = k8s.Reader(k8s.connect(auth_options(params)), params["timeout"])
        return k8s.read_cluster(reader, read_options(params))


def read_nodes(params: dict[str, Any], src: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cluster's Nodes only (manifests under src, or the API), and how they were read."""
    if src:
        state, read = load_state(src)
        return state.nodes, read
    reader = k8s.Reader(k8s.connect(auth_options(params)), params["timeout"])
    return k8s.read_nodes(reader, read_options(params))


def model_of(state: ClusterState, params: dict[str, Any], pool: str | None, read: dict[str, Any]) -> dict[str, Any]:
    """build_model with the options in params, its time added to read["build_seconds"]."""
    started = time.monotonic()
    model = build_model(state, model_options(params, pool))
    read["build_seconds"] = round(read.get("build_seconds", 0) + time.monotonic() - started, 3)
    return model


def model_json_of(state: ClusterState, params: dict[str, Any], pool: str | None, read: dict[str, Any]) -> ModelJson:
    """model_of as JSON text; see build_model_json."""
    started = time.monotonic()
    built = build_model_json(state, model_options(params, pool))
    read["build_seconds"] = round(read.get("build_seconds", 0) + time.monotonic() - started, 3)
    return built


def model_options(params: dict[str, Any], pool: str | None) -> ModelOptions:
    return ModelOptions(
        pool=pool,
        ingress_class=params["ingress_class"],
        tcp_services_configmap=params["tcp_services_configmap"],
        udp_services_configmap=params["udp_services_configmap"],
        http_port=params["http_port"],
        reserved_ports=tuple(params["reserved_ports"]),
        https_port=params["https_port"],
        nodeport_subset_size=params["nodeport_subset_size"],
    )
