#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_runtime
short_description: Bring haproxy's server slots to the model through the runtime API, without a reload
version_added: 0.1.0
description:
  - Reads the servers of the running haproxy worker (C(show servers state) on the stats socket)
    and sends the C(set server <backend>/<server> addr <ip> port <port>),
    C(set server ... state ready|drain|maint) and C(set weight) commands that take them to the
    desired slots, then reads them back to prove it.
  - The desired slots are the C(runtime) list of the P(k8sedge.lb.haproxy_view#filter) filter, or
    RV(k8sedge.lb.haproxy_render#module:runtime_json).
    A backend or server the worker does not have is a structural change; the module fails and
    says a reload is needed.
  - Without O(backends) it only reports the running slots (RV(servers)).
  - Runs on the haproxy host, as a user that may use the stats socket.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the commands it would send; sends none.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  socket:
    description: The admin-level stats socket of haproxy.
    type: path
    default: /run/haproxy/admin.sock
  backends:
    description:
      - The desired slots, a list of C(backend) and C(servers), each server with C(name), C(address), C(port) and C(state), C(state) one
        of C(ready), C(drain) or C(maint).
      - Or the JSON text of that list, as M(k8sedge.lb.haproxy_render) returns it in RV(k8sedge.lb.haproxy_render#module:runtime_json).
        At scale Ansible hands one string over far faster than thousands of objects.
    type: raw
  structure:
    description:
      - Wait until the worker that answers has this value in its C(proc.k8sedge_structure)
        variable (a reload is asynchronous), and fail if it does not within O(wait_seconds).
    type: str
  wait_seconds:
    description: How long to wait for O(structure).
    type: int
    default: 30
  settle_seconds:
    description:
      - After the changes, wait until haproxy has finished the first health check of every server
        in service (a reload starts every check again), and return its verdict per backend
        (RV(health)). Not settled within this many seconds is a failure. C(0) does not wait.
      - The rollout's probes count only once the engine has an opinion on every target it sends
        traffic to; before that haproxy counts every server up.
    type: int
    default: 0
  health:
    description:
      - Without O(backends), answer haproxy's verdict per backend (RV(health)) as it stands,
        without waiting, when every checked server in service has finished its first check;
        nothing when some have not. With RV(structure), what the role needs to see that the
        running worker already serves what it would apply.
    type: bool
    default: false
  servers_json:
    description:
      - Return the running slots as JSON text in RV(servers_json) instead of RV(servers). At scale
        (tens of thousands of slots) Ansible hands one string over far faster than their objects.
    type: bool
    default: false
  socket_mode:
    description:
      - Make the stats socket owned by root with this mode (e.g. C("0600")) when haproxy runs. A
        reload hands the socket over with the mode it was first created with (the package's
        default config makes it C(0660)), so setting it once keeps it.
    type: str
"""

EXAMPLES = r"""
- name: Read the running slots
  k8sedge.lb.haproxy_runtime:
  register: running

- name: Apply endpoint changes without a reload (rendered is k8sedge.lb.haproxy_render's result)
  k8sedge.lb.haproxy_runtime:
    backends: "{{ rendered.runtime_json }}"
    structure: "{{ rendered.structure }}"
"""

RETURN = r"""
running:
  description: Whether the stats socket answered.
  returned: always
  type: bool
servers:
  description: The running slots that are not in maintenance, backend to server to C({address, port, state}), after the changes.
  returned: unless O(servers_json)
  type: dict
  sample: {default_s2_80: {s1: {address: 10.213.0.21, port: 31780, state: ready}}}
servers_json:
  description: RV(servers) as JSON text.
  returned: with O(servers_json)
  type: str
commands:
  description: The commands sent (or, in check mode, that would be sent).
  returned: always
  type: list
  elements: str
  sample: [set server default_s2_80/s3 addr 10.213.0.22 port 31780, set server default_s2_80/s3 state ready]
health:
  description: haproxy's own verdict per backend on its checked servers in service.
  returned: >-
    when haproxy runs: with O(settle_seconds) (not in check mode); with O(health) and without O(backends) when every checked
    server has finished its first check
  type: dict
  sample: {default_s2_80: {up: 2, down: 0}}
structure:
  description: The running worker's C(proc.k8sedge_structure) (empty when it has none).
  returned: when haproxy runs
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import (
    STRUCTURE_VARIABLE, Cli, CliError, NotRunning, current_slots, desired_slots, health, plan)


def _lines(slots: dict) -> str:
    return "".join(f"{b}/{s} {v['address']}:{v['port']} {v['state']}\n" for b, servers in sorted(slots.items()) for s, v in sorted(servers.items()))


def desired(value: object) -> list | None:
    """The desired slots from O(backends): the list, or its JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise CliError(f"backends: expected a list or its JSON text: {exc}") from None
    if value is not None and not (isinstance(value, list) and all(isinstance(entry, dict) for entry in value)):
        raise CliError("backends: expected a list of objects (backend, servers) or its JSON text")
    return value


def run(module: AnsibleModule) -> dict:
    params = dict(module.params, backends=desired(module.params["backends"]))
    cli = Cli(params["socket"])
    result: dict = {"changed": False, "running": True, "servers": {}, "commands": []}
    try:
        cli.run("show info")
    except NotRunning as exc:
        result["running"] = False
        if params["backends"] and not module.check_mode:
            raise CliError(f"haproxy is not running: {exc}") from None
        return result
    if params["socket_mode"]:
        wanted = {"path": params["socket"], "mode": params["socket_mode"], "owner": "root", "group": "root"}
        result["changed"] = module.set_fs_attributes_if_different(module.load_file_common_arguments(wanted), False)
    wait = params["wait_seconds"] if params["structure"] and not module.check_mode else 0
    result["structure"] = cli.wait_for(STRUCTURE_VARIABLE, params["structure"] or "", wait)
    if params["structure"] and result["structure"] != params["structure"] and not module.check_mode:
        raise CliError(f"the running worker has structure {result['structure'] or 'unknown'}, not {params['structure']}"
                       f" after {params['wait_seconds']} s: the reload did not take (see journalctl -u haproxy)")
    servers = cli.servers()
    before = current_slots(servers)
    result["servers"] = before
    if not params["backends"]:
        if params["health"]:
            unsettled, backends = health(servers)
            if not unsettled:
                result["health"] = backends
        return result
    if params["structure"] and result["structure"] != params["structure"]:
        return result
    if module.check_mode:
        result["commands"] = plan(params["backends"], servers)
    else:
        result["commands"], servers = cli.apply(params["backends"], servers)
        result["servers"] = current_slots(servers)
    result["changed"] = result["changed"] or bool(result["commands"])
    if params["settle_seconds"] > 0 and not module.check_mode:
        result["health"] = cli.settled_health(params["settle_seconds"])
    if module._diff:
        result["diff"] = {"before": _lines(before), "after": _lines(desired_slots(params["backends"]))}
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
            "backends": {"type": "raw"},
            "structure": {"type": "str"},
            "wait_seconds": {"type": "int", "default": 30},
            "socket_mode": {"type": "str"},
            "settle_seconds": {"type": "int", "default": 0},
            "servers_json": {"type": "bool", "default": False},
            "health": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        result = run(module)
        if module.params["servers_json"]:
            result["servers_json"] = json.dumps(result.pop("servers"), separators=(",", ":"))
        module.exit_json(**result)
    except CliError as err:
        module.fail_json(msg=str(err))


if __name__ == "__main__":
    main()
