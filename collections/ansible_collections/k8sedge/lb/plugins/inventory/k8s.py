# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s
short_description: Kubernetes nodes as hosts, and on request the edge model for the edge hosts
version_added: 0.1.0
description:
  - Reads the cluster once. By default only its Nodes; with O(edge_models), also what
    M(k8sedge.lb.edge_info) reads, to build the same model.
  - Adds every Node as a host in the group C(k8s_nodes), with its address, labels and readiness,
    and gives the hosts of O(edge_group) how the cluster was read as C(k8sedge_model_read).
  - With O(edge_models=summary), the hosts of O(edge_group) also get a summary of the edge model of
    each pool as the group variable C(k8sedge_model_summary) (pool name to its C(generation) and how
    many C(frontends), C(backends), C(targets) and C(refused) objects it has).
  - With O(edge_models=full), also the models themselves as C(k8sedge_models) (a mapping of pool
    name to model, the shape RV(k8sedge.lb.edge_info#module:model) documents).
  - Every value that comes from the cluster is marked unsafe, so it is never templated.
  - A failed or partial read fails the inventory source; it never yields an empty model.
  - Configuration files must end in C(k8s.yml) or C(k8s.yaml).
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - k8sedge.lb.k8s_auth.plugin
  - k8sedge.lb.model_options
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; it makes a configuration file this plugin's.
    type: str
    required: true
    choices: [ k8sedge.lb.k8s ]
  edge_group:
    description: The group whose hosts get C(k8sedge_models); created if no other source has it.
    type: str
    default: edges
  edge_models:
    description:
      - V(none) reads the Nodes only. V(summary) reads the Services and their endpoints too and
        gives the edge hosts C(k8sedge_model_summary); V(full) adds the models as C(k8sedge_models).
      - The playbooks read the model themselves (M(k8sedge.lb.edge_info)) and use neither. Every
        parse of the inventory (every C(ansible-playbook) run that names this source, every AWX
        inventory update) pays for what this reads. At 5,000 Services the summary costs about
        1.5 s, and the full models are tens of MB.
    type: str
    choices: [ none, summary, full ]
    default: none
  pools:
    description:
      - The pools to build models for. Empty means every pool the cluster's Services name.
    type: list
    elements: str
    default: []
  src:
    description:
      - A file or directory of manifests (YAML or JSON, including C(kubectl get -o yaml) lists)
        to read instead of the API, as M(k8sedge.lb.edge_info) O(k8sedge.lb.edge_info#module:src).
      - The connection options are ignored when this is set.
    type: path
"""

EXAMPLES = r"""
# inventory/prod/k8s.yml: credentials from the environment (what AWX injects for a
# Kubernetes bearer-token credential: K8S_AUTH_HOST, K8S_AUTH_API_KEY, ...).
plugin: k8sedge.lb.k8s
edge_group: edges
keyed_groups:
  - key: k8s_labels['topology.kubernetes.io/zone'] | default('none')
    prefix: zone
groups:
  k8s_ready_nodes: k8s_ready
# The lab's source, inventory/lab/k8s.yml, sets kubeconfig: .lab/kubeconfig instead.
"""

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.k8sedge.lb.plugins.module_utils import _grammar as grammar
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import MODEL_ARGUMENT_SPEC, model_of, read_nodes, read_state
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._model import ClusterState, InvalidValue

NODE_GROUP = "k8s_nodes"


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions if isinstance(c, dict))


def _internal_ip(node: dict[str, Any]) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if isinstance(address, dict) and address.get("type") == "InternalIP":
            try:
                return grammar.ip(address.get("address"))[1]
            except InvalidValue:
                return None
    return None


def node_hosts(nodes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One host entry per Node with a valid name, sorted; and warnings for the rest."""
    hosts, warnings = [], []
    for node in nodes:
        metadata = node.get("metadata") or {}
        try:
            name = grammar.dns_subdomain(metadata.get("name"))
        except InvalidValue as err:
            warnings.append(f"Node skipped: metadata.name: {err}")
            continue
        spec = node.get("spec") or {}
        labels = metadata.get("labels")
        hosts.append({
            "name": name,
            "address": _internal_ip(node),
            "labels": labels if isinstance(labels, dict) else {},
            "ready": _ready(node),
            "unschedulable": spec.get("unschedulable") is True,
            "pod_cidrs": spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []),
        })
    return sorted(hosts, key=lambda h: h["name"]), warnings


def summary(model: dict[str, Any]) -> dict[str, Any]:
    """What identifies a pool's model and how large it is."""
    return {"generation": model["generation"], "frontends": len(model["frontends"]), "backends": len(model["backends"]),
            "targets": sum(len(backend["targets"]) for backend in model["backends"]), "refused": len(model["errors"])}


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "k8sedge.lb.k8s"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("k8s.yml", "k8s.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        data = self._cache.get(cache_key) if use_cache else None
        if data is None:
            data = self._fetch()
            if self.get_option("cache"):
                self._cache[cache_key] = data
        self._populate(data)

    def _fetch(self) -> dict[str, Any]:
        src = self.get_option("src")
        params = {name: self.get_option(name) for name in (*AUTH_ARGUMENT_SPEC, *MODEL_ARGUMENT_SPEC)}
        edge_models = self.get_option("edge_models")
        try:
            if edge_models == "none":
                nodes, read = read_nodes(params, src)
                hosts, warnings = node_hosts(nodes)
                return {"hosts": hosts, "warnings": warnings, "read": read}
            state, read = read_state(params, src)
            pools = self.get_option("pools") or self._pools(state, params)
            models = {pool: model_of(state, params, pool, read) for pool in pools}
        except EdgeError as err:
            raise AnsibleError(f"k8sedge.lb.k8s: {err}") from None
        hosts, warnings = node_hosts(state.nodes)
        data = {"hosts": hosts, "warnings": warnings, "summary": {pool: summary(model) for pool, model in models.items()},
                "read": read}
        if edge_models == "full":
            data["models"] = models
        return data

    @staticmethod
    def _pools(state: ClusterState, params: dict[str, Any]) -> list[str]:
        everything = model_of(state, params, None, {})
        return sorted({frontend["pool"] for frontend in everything["frontends"]}) or ["default"]

    def _populate(self, data: dict[str, Any]) -> None:
        for warning in data["warnings"]:
            self.display.warning(f"k8sedge.lb.k8s: {warning}")
        self.inventory.add_group(NODE_GROUP)
        strict = self.get_option("strict")
        for host in data["hosts"]:
            name = self.inventory.add_host(host["name"], group=NODE_GROUP)
            variables = {
                "k8s_labels": host["labels"],
                "k8s_ready": host["ready"],
                "k8s_unschedulable": host["unschedulable"],
                "k8s_pod_cidrs": host["pod_cidrs"],
            }
            if host["address"]:
                variables["ansible_host"] = host["address"]
            for key, value in variables.items():
                self.inventory.set_variable(name, key, wrap_var(value))
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
        edge_group = self.inventory.add_group(self.get_option("edge_group"))
        if "summary" in data:
            self.inventory.set_variable(edge_group, "k8sedge_model_summary", wrap_var(data["summary"]))
        if "models" in data:
            self.inventory.set_variable(edge_group, "k8sedge_models", wrap_var(data["models"]))
        self.inventory.set_variable(edge_group, "k8sedge_model_read", wrap_var(data["read"]))
