# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of k8sedge.lb.edge_info: on the controller, the model is built in this process.

The playbooks read the model on the controller (delegate_to localhost). Running the module there
costs a payload to assemble, an interpreter to start, Ansible's module imports and the whole model
encoded and decoded once more: about half a second a call, a quarter of a build at scale. With
the local connection the same code runs here instead, with the task's environment applied to
the options as the module would see it. Any other connection, or async, runs the module.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash
from ansible_collections.k8sedge.lb.plugins.module_utils._edge_info import EDGE_INFO_ARGUMENT_SPEC, edge_info
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if self._connection.transport != "local" or self._task.async_val:
            return self._module(result, task_vars)
        environment: dict[str, str] = {}
        self._compute_environment_string(environment)
        validated = ArgumentSpecValidator(EDGE_INFO_ARGUMENT_SPEC).validate(with_environment(self._task.args, environment))
        if validated.error_messages:
            return {**result, "failed": True, "msg": "; ".join(validated.error_messages)}
        try:
            return {**result, **edge_info(validated.validated_parameters)}
        except EdgeError as err:
            return {**result, "failed": True, "msg": str(err)}

    def _module(self, result: dict[str, Any], task_vars: dict[str, Any] | None) -> dict[str, Any]:
        """The module on the task's host, as ansible.builtin's normal action runs one."""
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result


def with_environment(args: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    """Options left unset take the task's `environment:` (K8S_AUTH_*), as the module would find
    them in its process; the validator then falls back to this process's environment."""
    filled = dict(args)
    for name, spec in EDGE_INFO_ARGUMENT_SPEC.items():
        fallback = spec.get("fallback")
        if not fallback or fallback[0] is not env_fallback:
            continue
        if any(filled.get(key) is not None for key in (name, *spec.get("aliases", ()))):
            continue
        for variable in fallback[1]:
            if variable in environment:
                filled[name] = environment[variable]
                break
    return filled
