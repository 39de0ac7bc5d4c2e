#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_lease
short_description: Hold or give up the rollout's Lease, so that two rollouts never change the edges at once
version_added: 0.1.0
description:
  - The rollout's lock is a C(coordination.k8s.io/v1) Lease in the cluster, held as Kubernetes'
    own leader election holds one. Whoever changes the edges holds it meanwhile (C(site.yml),
    C(endpoints.yml), C(bin/k8sedge-watch)), so a scheduled AWX job and the watcher never roll out
    at the same time. Both reach the API already; nothing else is shared between them.
  - O(state=present) takes it, or renews it when O(holder) holds it already. While another holder
    has it, waits up to O(wait) seconds, then fails naming the holder and until when. A Lease whose
    holder did not renew it within its duration is taken over (C(leaseTransitions) counts it).
  - O(state=absent) gives it up, if O(holder) holds it (no holder, as client-go leaves it).
  - A run that ends before it gives it up (a failed rollout) gives it up at its end through the
    callback C(k8sedge.lb.rollout_lease), which the project's C(ansible.cfg) enables. A holder that
    dies (a killed controller) leaves it to run out after O(duration) seconds, unless the same
    holder runs again; C(kubectl -n k8sedge delete lease k8sedge-rollout) frees it at once.
  - The credential needs get, create and update on leases in O(namespace)
    (C(docs/rbac.yaml), Role C(k8sedge:rollout-lease)). The holders' clocks must agree (NTP).
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - k8sedge.lb.k8s_auth
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the Lease and says what it would do (never waits, never fails on a holder); writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description: V(present) to hold it, V(absent) to give it up.
    type: str
    choices: [present, absent]
    default: present
  holder:
    description:
      - Who holds it, as C(spec.holderIdentity) shows it. Runs with the same holder share it, so a
        playbook run by the watcher with the watcher's holder renews the watcher's hold.
      - Default C(<user>@<host>) of the host the module runs on.
    type: str
  namespace:
    description: The Lease's namespace (C(docs/rbac.yaml) creates it).
    type: str
    default: k8sedge
  name:
    description: The Lease's name.
    type: str
    default: k8sedge-rollout
  duration:
    description: Seconds the Lease is held after this call without another renewal; longer than the longest rollout.
    type: int
    default: 900
  wait:
    description: Seconds to wait while another holder has it; V(0) fails at once.
    type: float
    default: 600
  timeout:
    description: Seconds for each request to the API server.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Take the rollout's Lease
  k8sedge.lb.rollout_lease:
    kubeconfig: "{{ k8sedge_kubeconfig }}"
    holder: awx/site
  delegate_to: localhost
  run_once: true
  register: lease

- name: Give it up
  k8sedge.lb.rollout_lease:
    kubeconfig: "{{ k8sedge_kubeconfig }}"
    holder: awx/site
    state: absent
  delegate_to: localhost
  run_once: true
  when: lease.held
"""

RETURN = r"""
holder:
  description: The holder this call took it or gave it up for.
  returned: always
  type: str
  sample: awx/site
action:
  description:
    - What was done, or in check mode would be done; C(create), C(take) (free or run out),
      C(renew) (the holder had it), C(wait) (check mode only; another holder has it),
      C(release), C(none) (O(state=absent) and not ours).
  returned: always
  type: str
  sample: take
held:
  description:
    - Whether O(holder) holds it after this call (created, taken or renewed), so whoever runs it
      gives it up at the end; false after O(state=absent) and in check mode (nothing is taken).
  returned: always
  type: bool
previous_holder:
  description: Who held it before (empty when nobody did).
  returned: always
  type: str
held_until:
  description: Until when the previous holder held it (RFC 3339; empty when nobody did).
  returned: always
  type: str
waited:
  description: Seconds waited for another holder.
  returned: success
  type: float
msg:
  description: What happened, in a sentence.
  returned: always
  type: str
"""

import getpass
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AUTH_ARGUMENT_SPEC, auth_options
from ansible_collections.k8sedge.lb.plugins.module_utils._lease import micro_time
from ansible_collections.k8sedge.lb.plugins.module_utils._lease_api import Lease, give_up, peek, take


def _previous(holding) -> dict:
    return {"previous_holder": holding.holder, "held_until": micro_time(holding.until) if holding.holder else ""}


def run(module: AnsibleModule) -> dict:
    params = module.params
    holder = params["holder"] or f"{getpass.getuser()}@{socket.gethostname()}"
    lease = Lease(k8s.connect(auth_options(params)), params["namespace"], params["name"], params["timeout"])
    result = {"holder": holder}
    if params["state"] == "absent":
        if module.check_mode:
            mine = peek(lease, holder, params["duration"]).current.holder == holder
            return {**result, "changed": mine, "action": "release" if mine else "none", "held": False,
                    "previous_holder": holder if mine else "", "held_until": "",
                    "msg": f"{lease.where}: would give it up" if mine else f"{lease.where}: not held by {holder!r}: nothing to give up"}
        released = give_up(lease, holder)
        return {**result, "changed": released, "action": "release" if released else "none", "held": False,
                "previous_holder": holder if released else "", "held_until": "",
                "msg": f"{lease.where}: given up" if released else f"{lease.where}: not held by {holder!r}: nothing to give up"}
    if module.check_mode:
        decision = peek(lease, holder, params["duration"])
        msg = {"create": "would create and hold it", "renew": "would renew it (held by this holder)",
               "take": "would take it (free, or its holder's time ran out)",
               "wait": f"held by {decision.current.holder!r} until {micro_time(decision.current.until)}: "
                       f"a run would wait up to {params['wait']:.0f} s for it"}[decision.action]
        return {**result, "changed": decision.action != "wait", "action": decision.action, "held": False,
                **_previous(decision.current), "msg": f"{lease.where}: {msg}"}
    taken = take(lease, holder, params["duration"], params["wait"])
    return {**result, "changed": True, "action": taken.action, "held": True,
            **_previous(taken.previous), "waited": round(taken.waited, 3),
            "msg": f"{lease.where}: held by {holder!r} for {params['duration']} s"
                   + (f" after waiting {taken.waited:.0f} s for {taken.previous.holder!r}" if taken.waited >= 1 else "")}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **AUTH_ARGUMENT_SPEC,
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "holder": {"type": "str"},
            "namespace": {"type": "str", "default": "k8sedge"},
            "name": {"type": "str", "default": "k8sedge-rollout"},
            "duration": {"type": "int", "default": 900},
            "wait": {"type": "float", "default": 600},
            "timeout": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    if module.params["duration"] <= 0:
        module.fail_json(msg=f"duration: expected seconds above 0, got {module.params['duration']}")
    if module.params["wait"] < 0:
        module.fail_json(msg=f"wait: expected seconds from 0 up, got {module.params['wait']}")
    try:
        module.exit_json(**run(module))
    except EdgeError as err:
        module.fail_json(msg=str(err))


if __name__ == "__main__":
    main()
