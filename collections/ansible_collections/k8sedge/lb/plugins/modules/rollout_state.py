#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_state
short_description: Record where an edge host is in a rollout, for keepalived's tracking
version_added: 0.1.0
description:
  - Writes C({"generation", "status", "since"}) (and C(failed_generation) after a rollback) as
    JSON to O(path), the contract between every path that changes what the proxy runs
    (C(playbooks/site.yml), C(playbooks/endpoints.yml), role C(edge_probe)) and role
    C(edge_keepalived)'s track script, which keeps the VIPs off a host that serves a config no
    probe proved. C(generation) is always what the proxy should run now.
  - Writes only when the generation or the status change, so C(since) is when the status began
    and a run that changes nothing leaves the file alone. The file is replaced atomically.
  - With O(served), also keeps what the host serves once its rollout passed in O(served_path)
    (the fail-static guard of the next run compares the new model with it), written only when it
    differs.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Says whether it would write; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description: The rollout state file; its directory is created if missing.
    type: path
    default: /var/lib/k8sedge/rollout.json
  generation:
    description: The model generation the status is about.
    type: str
    required: true
  status:
    description:
      - C(applying) (the host is taking the generation), C(passed) or C(failed) (its probes' verdict).
      - C(rolled-back) (O(failed_generation) failed its probes; the host went back to its
        last-known-good config, which is O(generation)).
      - C(unchanged) (the proxy now runs O(generation) after an endpoint-only change; the status
        and C(since) stay; nothing is written on a host that has no rollout state yet).
    type: str
    required: true
    choices: [applying, passed, failed, rolled-back, unchanged]
  failed_generation:
    description: With O(status=rolled-back), the generation that failed.
    type: str
    default: ""
  served:
    description: What the host now serves (C(playbooks/site.yml) passes the model's generation and backends).
    type: dict
  served_path:
    description: Where O(served) is kept.
    type: path
    default: /var/lib/k8sedge/model.json
"""

EXAMPLES = r"""
- name: Record that this host is applying the new generation
  k8sedge.lb.rollout_state:
    generation: "{{ model.generation }}"
    status: applying
"""

RETURN = r"""
state:
  description: What the file says after the task.
  returned: always
  type: dict
  sample: {"generation": "9f2c...", "status": "passed", "since": 1795792800}
previous:
  description: What the file said before (empty when there was no readable file).
  returned: always
  type: dict
served_changed:
  description: Whether O(served_path) was (or in check mode would be) written.
  returned: always
  type: bool
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._files import same_content, write_atomically
from ansible_collections.k8sedge.lb.plugins.module_utils._rollout_state import next_state, parse


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/k8sedge/rollout.json"},
            "generation": {"type": "str", "required": True},
            "status": {"type": "str", "required": True, "choices": ["applying", "passed", "failed", "rolled-back", "unchanged"]},
            "failed_generation": {"type": "str", "default": ""},
            "served": {"type": "dict"},
            "served_path": {"type": "path", "default": "/var/lib/k8sedge/model.json"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        with open(path, encoding="utf-8") as f:
            previous = parse(f.read())
    except FileNotFoundError:
        previous = {}
    except OSError as exc:
        module.fail_json(msg=f"reading {path}: {exc}")
    try:
        state = next_state(previous, module.params["generation"], module.params["status"], int(time.time()),
                           module.params["failed_generation"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    writes = {path: json.dumps(state).encode()} if state is not None else {}
    served = module.params["served"]
    served_text = json.dumps(served, sort_keys=True).encode() if served is not None else None
    if served_text is not None and not same_content(module.params["served_path"], served_text):
        writes[module.params["served_path"]] = served_text
    if not module.check_mode:
        for target, content in writes.items():
            try:
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                write_atomically(target, content, 0o644)
            except OSError as exc:
                module.fail_json(msg=f"writing {target}: {exc}")
    module.exit_json(changed=bool(writes), state=state or previous, previous=previous,
                     served_changed=module.params["served_path"] in writes)


if __name__ == "__main__":
    main()
