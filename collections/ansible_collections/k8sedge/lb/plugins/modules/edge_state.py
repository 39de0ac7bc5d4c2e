#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: edge_state
short_description: Read and write the one state record of an edge host
version_added: 0.1.0
description:
  - Every edge host keeps one state record, a versioned JSON file that this module alone writes
    (atomically) and that a run reads once, at its start. It holds what the proxy serves now
    (C(serving)), the last configuration that passed its probes there (C(last_good)) and where the
    host stands in a rollout (C(rollout)) and whether an operator has drained it (C(maintenance)),
    which role C(edge_keepalived)'s check reads to keep the
    VIPs off a host that serves a config no probe proved. The schema is in C(docs/architecture.md).
  - Without O(serving), O(restore), O(promote), O(status) or O(maintenance) it only reads. Updates
    apply in this order; O(serving) or O(restore), then O(promote), then O(status), then
    O(maintenance). It writes only when the record changes, so C(rollout.since)
    is when the status began.
  - A record that cannot be read is an error naming the file, never a fresh start, since it holds
    the last-known-good.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Says whether it would write and returns the record it would write; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description: The state record; its directory is created if missing.
    type: path
    default: /var/lib/k8sedge/state.json
  serving:
    description: What the proxy runs now, recorded by the proxy roles once the engine runs it.
    type: dict
    suboptions:
      generation:
        description: The model generation.
        type: str
        required: true
      routes:
        description: The pod-network routes its config needs (C({cidr, via}) each).
        type: list
        elements: dict
        required: true
      model:
        description:
          - The model it serves, as C(edge_info) returns it under C(model), or its JSON text under
            C(model_json). Its backends are recorded (name and targets), what the next run's fail-static guard compares
            with, and the digests of its probe checks, which the rollout compares with what the
            host proved (C(last_good)) to probe in full only what changed.
          - The JSON text is the fast way at scale; Ansible hands one string over far faster than
            thousands of objects.
        type: raw
        required: true
      settings:
        description:
          - The digest of the settings the engine renders the model with (the proxy role's inputs
            besides the model); the check digests are taken under it.
        type: str
      release:
        description: The nginx release directory it runs (role C(edge_nginx)).
        type: str
  restore:
    description: Record that the host serves its last-known-good again (after a rollback). Not with O(serving).
    type: bool
    default: false
  promote:
    description: Make what the host serves its last-known-good (after its probes passed).
    type: bool
    default: false
  status:
    description:
      - Start a rollout status. C(applying) (the host is taking O(generation)), C(passed) (what it
        serves passed its probes), C(failed) (O(failed_generation) failed and could not be rolled
        back), C(rolled-back) (O(failed_generation) failed, the host serves its last-known-good).
    type: str
    choices: [applying, passed, failed, rolled-back]
  generation:
    description: With O(status=applying), the generation the rollout puts in place.
    type: str
    default: ""
  failed_generation:
    description: With O(status=failed) or O(status=rolled-back), the generation that failed.
    type: str
    default: ""
  maintenance:
    description:
      - V(true) records that the host is drained (playbooks/drain.yml), and keepalived's check keeps
        every VIP off it until V(false) (playbooks/undrain.yml) removes the mark.
    type: bool
  reason:
    description: With O(maintenance=true), the operator's words, up to 200 printable ASCII characters.
    type: str
    default: ""
  serving_json:
    description:
      - Also return the record's C(serving), its backends included, as JSON text in RV(serving_json),
        what the fail-static guard compares with. RV(record) never carries the backends (megabytes
        on a large cluster; one string crosses Ansible far faster than their objects).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the state record, and what the host serves for the guard
  k8sedge.lb.edge_state:
    serving_json: true
  register: state

- name: Record that this host is applying the new generation
  k8sedge.lb.edge_state:
    status: applying
    generation: "{{ model.generation }}"
"""

RETURN = r"""
record:
  description: The record after the task (C({}) on a host that has none yet), without the backends and the check digests.
  returned: always
  type: dict
  sample: {"version": 1, "serving": {"generation": "9f2c...", "routes": []}, "rollout": {"status": "passed", "since": 1795792800}}
proven_checks:
  description:
    - The check digests the last-known-good config passed (the record's C(last_good.checks)), separated by
      spaces; empty when there is none. One string, because Ansible walks every item of a list each time a
      task takes it, and a large cluster has thousands.
  returned: always
  type: str
  sample: "00132347cdcb246c28904d9f 003570e215984da0ff3e881b"
serving_json:
  description: The record's C(serving) as JSON text, backends included; empty when the host serves nothing yet.
  returned: when O(serving_json=true)
  type: str
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_state import STATUSES, StateError, parse, update, without_bulk
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._files import write_atomically
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document
from ansible_collections.k8sedge.lb.plugins.module_utils._probe_plan import check_digests


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/k8sedge/state.json"},
            "serving": {"type": "dict", "options": {
                "generation": {"type": "str", "required": True},
                "routes": {"type": "list", "elements": "dict", "required": True},
                "model": {"type": "raw", "required": True},
                "settings": {"type": "str"},
                "release": {"type": "str"}}},
            "restore": {"type": "bool", "default": False},
            "promote": {"type": "bool", "default": False},
            "status": {"type": "str", "choices": list(STATUSES)},
            "generation": {"type": "str", "default": ""},
            "failed_generation": {"type": "str", "default": ""},
            "maintenance": {"type": "bool"},
            "reason": {"type": "str", "default": ""},
            "serving_json": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("serving", "restore")],
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    serving = params["serving"]
    if serving is not None:
        try:
            model = model_document(serving["model"])
            checks = check_digests(model, serving["settings"] or "")
        except EdgeError as exc:
            module.fail_json(msg=f"serving: {exc}")
        # The guard compares with, and holds, each backend's targets: the rest of a backend is the config's.
        backends = [{"name": b.get("name"), "targets": b.get("targets") or []} for b in model["backends"]]
        serving = {"generation": serving["generation"], "routes": serving["routes"], "backends": backends,
                   "checks": checks, **({"settings": serving["settings"]} if serving["settings"] else {}),
                   **({"release": serving["release"]} if serving["release"] is not None else {})}
    try:
        with open(path, "rb") as f:
            previous = parse(f.read(), path)
    except FileNotFoundError:
        previous = {}
    except OSError as exc:
        module.fail_json(msg=f"reading {path}: {exc}")
    try:
        record = update(previous, int(time.time()), serving, params["restore"], params["promote"], params["status"],
                        params["generation"], params["failed_generation"], params["maintenance"], params["reason"])
    except StateError as exc:
        module.fail_json(msg=f"{path}: {exc}")
    if record is not None and not module.check_mode:
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            write_atomically(path, json.dumps(record, sort_keys=True, separators=(",", ":")).encode(), 0o644)
        except OSError as exc:
            module.fail_json(msg=f"writing {path}: {exc}")
    after = record if record is not None else previous
    answer = {"serving_json": json.dumps(after["serving"]) if "serving" in after else ""} if params["serving_json"] else {}
    proven = " ".join(after.get("last_good", {}).get("checks", []))
    module.exit_json(changed=record is not None, record=without_bulk(after), proven_checks=proven, **answer)


if __name__ == "__main__":
    main()
