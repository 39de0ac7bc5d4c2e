# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: state_record
short_description: Read an edge host's state record from the file's text
version_added: 0.1.0
description:
  - Checks the text of an edge host's state record (C(/var/lib/k8sedge/state.json), which only
    M(k8sedge.lb.edge_state) writes) and returns what a rollout takes from it at its start.
  - Empty text is the record of a host before its first run. A record that cannot be read is an
    error naming the file, never a fresh start; it holds the host's last-known-good.
  - The rollout reads the file with one shell command (C(ansible.builtin.raw)) and this filter, on
    the controller; a module would cost every host a Python start and the file's megabytes twice.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The file's text; empty when there is no file.
    type: str
    required: true
  path:
    description: Where the text was read, for the error messages.
    type: str
    default: /var/lib/k8sedge/state.json
"""

EXAMPLES = r"""
- name: Read the state record
  ansible.builtin.raw: if [ -e /var/lib/k8sedge/state.json ]; then cat /var/lib/k8sedge/state.json; fi
  register: state_text
  changed_when: false

- name: Take it
  ansible.builtin.set_fact:
    state: "{{ state_text.stdout | k8sedge.lb.state_record }}"
"""

RETURN = r"""
_value:
  description: What the run takes from the record.
  type: dict
  contains:
    record:
      description: The record without the backends and the check digests (C({}) before the first run).
      type: dict
    serving_json:
      description:
        - The record's C(serving) as JSON text, backends included, what the P(k8sedge.lb.fail_static#filter)
          guard compares with; empty when the host serves nothing yet.
      type: str
    proven_checks:
      description:
        - The check digests the last-known-good config passed (C(last_good.checks)), separated by
          spaces; empty when there is none. What the probes of the next rollout start from.
      type: str
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.k8sedge.lb.plugins.module_utils._edge_state import StateError, parse, run_inputs


def _state_record(text: Any, path: str = "/var/lib/k8sedge/state.json") -> dict[str, Any]:
    if not isinstance(text, str):
        raise AnsibleFilterError(f"k8sedge.lb.state_record: {path}: expected the file's text, got {type(text).__name__}")
    try:
        return run_inputs(parse(text, path))
    except StateError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.state_record: {exc}") from None


class FilterModule:
    """An edge host's state record, read on the controller."""

    def filters(self) -> dict[str, Any]:
        return {"state_record": _state_record}
