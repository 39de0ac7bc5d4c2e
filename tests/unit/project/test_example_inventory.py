"""inventory/example: Ansible reads it, and every variable it sets is one the project takes (a
role's argument spec, playbooks/README.md's table) or a connection or vault variable."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def known_variables() -> set[str]:
    known = set(re.findall(r"^\| `(k8sedge_\w+)`", (REPO / "playbooks/README.md").read_text(), re.M))
    known |= {name for row in re.findall(r"^\| (`k8sedge_\w+`(?:, `k8sedge_\w+`)*) \|", (REPO / "playbooks/README.md").read_text(), re.M)
              for name in re.findall(r"`(\w+)`", row)}
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            known |= set(entry.get("options") or {})
    return known


def test_the_example_inventory_parses_and_sets_only_known_variables():
    result = subprocess.run([str(REPO / ".venv/bin/ansible-inventory"), "-i", str(REPO / "inventory/example"), "--list"],
                            capture_output=True, text=True, timeout=120, check=True)
    inventory = json.loads(result.stdout)
    assert sorted(inventory["edges"]["children"]) == ["edges_dns", "edges_web"]
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["edge-dns-1"]["k8sedge_engine"] == "nginx" and hostvars["edge-web-1"]["k8sedge_pools"] == ["default"]
    known = known_variables()
    unknown = {name for variables in hostvars.values() for name in variables
               if name not in known and not name.startswith(("ansible_", "vault_"))}
    assert not unknown, f"variables no role or playbook takes: {sorted(unknown)}"
    vault = yaml.safe_load((REPO / "inventory/example/group_vars/edges/vault.yml.example").read_text())
    used = set(re.findall(r"\bvault_\w+", json.dumps(hostvars)))
    assert used == set(vault), (used, set(vault))
