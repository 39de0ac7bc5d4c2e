#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_state
short_description: Record where an edge host is in a rollout, for keepalived's tracking
version_added: 0.1.0
description:
  - Writes C({"generation", "status", "since"}) as JSON to O(path), the contract between the
    rollout (C(playbooks/site.yml), role C(edge_probe)) and role C(edge_keepalived)'s track
    script, which keeps the VIPs off a host whose generation failed its probes.
  - Writes only when the generation or the status change, so C(since) is when the status began
    and a run that changes nothing leaves the file alone. The file is replaced atomically.
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
    description: C(applying) (the host is taking the generation), C(passed) or C(failed) (its probes' verdict).
    type: str
    required: true
    choices: [applying, passed, failed]
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
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._files import write_atomically
from ansible_collections.k8sedge.lb.plugins.module_utils._rollout_state import next_state, parse


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/k8sedge/rollout.json"},
            "generation": {"type": "str", "required": True},
            "status": {"type": "str", "required": True, "choices": ["applying", "passed", "failed"]},
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
    state = next_state(previous, module.params["generation"], module.params["status"], int(time.time()))
    if state is not None and not module.check_mode:
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            write_atomically(path, json.dumps(state).encode(), 0o644)
        except OSError as exc:
            module.fail_json(msg=f"writing {path}: {exc}")
    module.exit_json(changed=state is not None, state=state or previous, previous=previous)


if __name__ == "__main__":
    main()
