"""The probe module takes every field of a probe that module_utils/_probe reads."""
from __future__ import annotations

import dataclasses

from ansible_collections.k8sedge.lb.plugins.module_utils._probe import Probe
from ansible_collections.k8sedge.lb.plugins.modules.probe import PROBE_OPTIONS


def test_every_probe_field_is_an_option_of_the_module():
    # `send` travels as text and `status_code` as a list; the fields are the options' names.
    assert {field.name for field in dataclasses.fields(Probe)} <= set(PROBE_OPTIONS)
