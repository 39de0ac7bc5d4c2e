# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of k8sedge.lb.haproxy_render: runs on the controller, never on the host. The view
and the config are built in this process (plugin_utils/_haproxy_render.py says why); the template
is found as ansible.builtin.template finds it, in the role's templates/ first."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.plugin_utils._haproxy_render import ARGUMENT_SPEC, render_task
from jinja2 import TemplateError


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(ARGUMENT_SPEC)[1]
        try:
            source = self._find_needle("templates", args["template"])
        except AnsibleActionFail as exc:
            return {**result, "failed": True, "msg": f"template: {exc}"}
        try:
            return {**result, "changed": False, **render_task(args, source, self._templar, task_vars or {})}
        except EdgeError as exc:
            return {**result, "failed": True, "msg": f"k8sedge.lb.haproxy_render: {exc}"}
        except TemplateError as exc:
            return {**result, "failed": True, "msg": f"k8sedge.lb.haproxy_render: {source}: {exc}"}
