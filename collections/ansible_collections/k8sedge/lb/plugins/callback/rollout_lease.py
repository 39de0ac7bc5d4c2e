# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_lease
type: notification
short_description: Give up the rollout's Lease when a run that took it ends without giving it up
version_added: 0.1.0
description:
  - C(site.yml) and C(endpoints.yml) take the rollout's Lease (M(k8sedge.lb.rollout_lease)) before
    they read the model and give it up in their last play. A run that stops before that play (a
    canary rolled back, an edge unreachable, a read that failed) would leave it held until it runs
    out, and every other rollout, the watcher's included, would wait for it.
  - This callback remembers each Lease a task of the run holds (C(held)) and did not give up, and
    gives it up when the run ends, however it ends. The watcher holds the Lease around its runs
    itself and runs the playbooks without taking it, so nothing of its is given up here.
  - Enable it in C(ansible.cfg) (C(callbacks_enabled)); the project's does, and AWX and
    ansible-rulebook run the playbooks with it.
requirements:
  - kubernetes (the Python client), on the controller
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = k8sedge.lb.rollout_lease
"""

from typing import Any

from ansible.plugins.callback import CallbackBase
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC, AuthOptions
from ansible_collections.k8sedge.lb.plugins.module_utils._lease_api import Lease, give_up

MODULE = "k8sedge.lb.rollout_lease"
# The connection options' aliases, as the module takes them.
_ALIASES = {alias: name for name, option in AUTH_ARGUMENT_SPEC.items() for alias in option.get("aliases", ())}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "k8sedge.lb.rollout_lease"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[tuple[str, str, str], dict[str, Any]] = {}  # (namespace, name, holder) -> the task's args

    def v2_runner_on_ok(self, result: Any) -> None:
        if result._task.action not in (MODULE, "rollout_lease"):
            return
        args, outcome = result._task_fields.get("args") or {}, result._result
        key = (args.get("namespace", "k8sedge"), args.get("name", "k8sedge-rollout"), outcome.get("holder", ""))
        if args.get("state", "present") == "absent":
            self._held.pop(key, None)
        elif outcome.get("held"):
            self._held[key] = args

    def v2_playbook_on_stats(self, stats: Any) -> None:
        for (namespace, name, holder), args in self._held.items():
            given = {_ALIASES.get(key, key): value for key, value in args.items()}
            auth = AuthOptions(**{key: given[key] for key in AUTH_ARGUMENT_SPEC if given.get(key) is not None})
            try:
                released = give_up(Lease(k8s.connect(auth), namespace, name, float(args.get("timeout", 30))), holder)
            except EdgeError as err:
                self._display.warning(f"k8sedge: the run ended holding Lease {namespace}/{name} and could not give it up;"
                                      f" it runs out by itself: {err}")
                continue
            if released:
                self._display.display(f"k8sedge: the run ended before its last play: gave up Lease {namespace}/{name}"
                                      f" ({holder})")
        self._held.clear()
