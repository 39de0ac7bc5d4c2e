# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fail_static
short_description: Hold back backends a model would empty, refuse one that removes too many targets
version_added: 0.1.0
description:
  - Compares a new edge model with the model each edge host serves now (the last one applied and
    proven there) and says whether applying it is safe.
  - A backend that has targets now and would have none is held - RV(_value.model) keeps the
    targets it has now, with a warning on its Service - and every other change goes through.
  - Unsafe is more than O(max_removed_share) of a host's targets removed (held backends counted as
    kept), which is what a partial read looks like. The caller decides what an unsafe result means
    (C(site.yml) stops unless the operator sets its override, which also applies held emptyings).
  - Models may be given as JSON text, the fast way at scale (Ansible hands one string over far
    faster than thousands of objects); RV(_value.model) is then JSON text too.
author:
  - k8sedge developers (@k8sedge)
positional: _input
options:
  _input:
    description: The new model, as M(k8sedge.lb.edge_info) returns it under C(model) (or its JSON text, C(model_json)).
    type: raw
    required: true
  live:
    description:
      - Edge host to what it serves now, the C(serving) part of its state record (its C(backends)
        are compared) or that part's JSON text, as M(k8sedge.lb.edge_state) returns it in
        RV(k8sedge.lb.edge_state#module:serving_json); an empty value for a host that serves nothing yet.
    type: dict
    required: true
  max_removed_share:
    description: The largest share (0 to 1) of a host's targets one change may remove.
    type: float
    default: 0.3
"""

EXAMPLES = r"""
- name: Compare the new model with what the edges serve
  ansible.builtin.set_fact:
    guard: "{{ edge.model | k8sedge.lb.fail_static(live={'edge1': edge1_model, 'edge2': {}}) }}"
"""

RETURN = r"""
_value:
  description: The comparison.
  type: dict
  contains:
    ok:
      description: Whether the change is within the limits.
      type: bool
    reasons:
      description: One line per limit exceeded, naming the host and the backend or the share.
      type: list
      elements: str
    hosts:
      description: Per host - C(total) targets now, C(removed), C(emptied) (held) backends, the live C(generation).
      type: dict
    held:
      description: One line per backend held at the targets it has now.
      type: list
      elements: str
    model:
      description:
        - The model to apply - the input with the held backends' targets kept and its generation for that.
        - JSON text when the input was; the input itself when nothing is held.
      type: raw
    generation:
      description: The generation of RV(_value.model).
      type: str
    new_generation:
      description: The generation of the input model (RV(_value.generation) when nothing is held).
      type: str
    refused:
      description: The objects the input model refused (its C(errors)), each with C(kind), C(namespace), C(name), C(field), C(message).
      type: list
      elements: dict
    warnings:
      description: What the input model warns of (its C(warnings), e.g. an annotation its contract does not know), same fields.
      type: list
      elements: dict
    max_removed_share:
      description: The limit applied.
      type: float
"""

import re
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._guard import GuardError, check, serving_document
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document, model_text


def fail_static(model: Any, live: Any, max_removed_share: Any = 0.3) -> dict[str, Any]:
    try:
        if not isinstance(live, dict):
            raise GuardError("live: expected host -> model")
        if isinstance(max_removed_share, str) and re.fullmatch(r"[0-9]*\.?[0-9]+", max_removed_share.strip()):
            max_removed_share = float(max_removed_share)
        if isinstance(max_removed_share, bool) or not isinstance(max_removed_share, (int, float)):
            raise GuardError(f"max_removed_share: expected a number from 0 to 1, got {max_removed_share!r}")
        verdict = check(model_document(model), {host: serving_document(host, value) for host, value in live.items()},
                        float(max_removed_share))
        if isinstance(model, str):
            verdict["model"] = model_text(verdict["model"]) if verdict["held"] else model
        return verdict
    except EdgeError as exc:
        raise AnsibleFilterError(f"k8sedge.lb.fail_static: {exc}") from None


class FilterModule:
    """The fail-static guard."""

    def filters(self) -> dict[str, Any]:
        return {"fail_static": fail_static}
