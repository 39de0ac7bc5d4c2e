#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_config
short_description: Stage a haproxy configuration tree, validate it and put it in place atomically
version_added: 0.1.0
description:
  - With O(config), first makes O(src) (the staging directory) hold exactly that tree, that is
    C(haproxy.cfg), the O(maps) and the O(certificates); managed files it does not name are
    removed. Without O(config), O(src) is taken as it is (a last-known-good copy, or the live
    tree being promoted).
  - Compares the tree in O(src) (C(haproxy.cfg), C(maps/*.map), C(certs/*.pem)) with the one in
    O(dest). When they differ, validates O(src) with the real binary (C(haproxy -c)), then
    copies each changed file into O(dest) atomically, C(haproxy.cfg) last, and removes the
    managed files O(src) does not have.
  - When the validator refuses the tree, nothing in O(dest) is touched and the module fails with
    the validator's own message.
  - Says what kind of change it made (RV(change)) so that the caller can decide between a runtime
    update and a reload; C(servers) when only the server lines of C(haproxy.cfg) differ
    (addresses, weights, C(disabled)) and comments, C(structural) otherwise.
  - The config must name its maps and certificates relative to itself (C(default-path config)),
    so that a tree validates wherever it is. What the tree serves (generation, routes) is the
    caller's to record (M(k8sedge.lb.edge_state)); nothing is read back from comments.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Stages into a temporary directory, compares and validates; writes nothing.
  diff_mode:
    support: full
    details: Shows C(haproxy.cfg) and the map files; never the certificates.
  platform:
    platforms: posix
options:
  src:
    description: The tree to put in place (the staging directory, or a last-known-good copy).
    type: path
    required: true
  dest:
    description: Where it goes (C(/etc/haproxy), or the last-known-good directory).
    type: path
    required: true
  config:
    description: The text of C(haproxy.cfg) to stage into O(src) first.
    type: str
  maps:
    description: Map files to stage with O(config), as the C(k8sedge.lb.haproxy_view) filter lists them.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: C(maps/<name>.map), relative to the tree.
        type: str
        required: true
      lines:
        description: The map's lines, without line ends.
        type: list
        elements: str
        required: true
  certificates:
    description:
      - Certificates to stage with O(config) as C(certs/<name>.pem), the certificate then the key.
      - Never logged, never shown in a diff.
    type: dict
    default: {}
  validate:
    description: Run C(haproxy -c) on O(src) before anything changes.
    type: bool
    default: true
  haproxy:
    description: The haproxy binary.
    type: path
    default: /usr/sbin/haproxy
"""

EXAMPLES = r"""
- name: Stage the rendered configuration, validate it and put it in place
  k8sedge.lb.haproxy_config:
    config: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
    maps: "{{ view.maps }}"
    src: /var/lib/k8sedge/haproxy/staging
    dest: /etc/haproxy
  register: applied

- name: Keep a copy of the live configuration as last-known-good
  k8sedge.lb.haproxy_config:
    src: /etc/haproxy
    dest: /var/lib/k8sedge/haproxy/last-good
    validate: false
"""

RETURN = r"""
change:
  description: C(none), C(servers) (only server lines of C(haproxy.cfg) differ) or C(structural).
  returned: always
  type: str
  sample: servers
files:
  description: Paths, relative to O(dest), that were (or in check mode would be) replaced.
  returned: always
  type: list
  elements: str
removed:
  description: Managed paths removed from O(dest).
  returned: always
  type: list
  elements: str
structure:
  description: The structure digest O(src)'s C(haproxy.cfg) gives its worker (C(proc.k8sedge_structure)), if any.
  returned: always
  type: str
validator:
  description:
    - What C(haproxy -c) said.
    - In check mode on a host without O(haproxy), says that the tree was not validated (a warning too).
  returned: when the tree changes and O(validate) is true
  type: str
"""

import os
import tempfile
from contextlib import nullcontext

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_files import (
    CONFIG, StageError, compare, digest_of, install, read_tree, stage, tree_files)


def _text(files: dict[str, bytes], paths: list[str]) -> str:
    return "".join(f"### {p}\n{files[p].decode(errors='replace')}" for p in paths if p in files and not p.startswith("certs/"))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "config": {"type": "str"},
            "maps": {"type": "list", "elements": "dict", "default": [],
                     "options": {"path": {"type": "str", "required": True},
                                 "lines": {"type": "list", "elements": "str", "required": True}}},
            "certificates": {"type": "dict", "default": {}, "no_log": True},
            "validate": {"type": "bool", "default": True},
            "haproxy": {"type": "path", "default": "/usr/sbin/haproxy"},
        },
        supports_check_mode=True,
    )
    params = module.params
    dest = params["dest"]
    # Check mode stages into a directory of its own, so that the tree is validated for real and
    # the host's staging directory stays as the last real run left it.
    in_scratch = module.check_mode and params["config"] is not None
    with tempfile.TemporaryDirectory(prefix="k8sedge-haproxy-check-") if in_scratch else nullcontext() as scratch:
        src = os.path.join(scratch, "staging") if in_scratch else params["src"]
        if params["config"] is not None:
            try:
                stage(src, tree_files(params["config"], params["maps"], params["certificates"]))
            except (StageError, OSError) as exc:
                module.fail_json(msg=f"staging into {params['src']}: {exc}")
        staged = read_tree(src)
        if CONFIG not in staged and module.check_mode:
            # Check mode before the first real run (e.g. promoting a tree not installed yet).
            module.exit_json(changed=True, change="structural", files=[CONFIG], removed=[], structure="")
        if CONFIG not in staged:
            module.fail_json(msg=f"{os.path.join(src, CONFIG)} does not exist: nothing to put in place")
        live = read_tree(dest)
        difference = compare(staged, live)
        result = {"changed": difference.change != "none", "change": difference.change, "files": difference.changed,
                  "removed": difference.removed, "structure": digest_of(staged[CONFIG])}
        # A plan for a host haproxy is not installed on yet (the real run installs it first).
        unvalidated = module.check_mode and not os.path.exists(params["haproxy"])
        if difference.change != "none" and params["validate"] and unvalidated:
            result["validator"] = f"not validated: {params['haproxy']} is not installed on this host yet"
            module.warn(result["validator"])
        elif difference.change != "none" and params["validate"]:
            rc, out, err = module.run_command([params["haproxy"], "-c", "-f", os.path.join(src, CONFIG)])
            result["validator"] = (out + err).strip()
            if rc != 0:
                module.fail_json(msg=f"haproxy -c refused {os.path.join(params['src'], CONFIG)}; {dest} is untouched:\n{result['validator']}",
                                 **result)
        if module._diff and difference.change != "none":
            paths = difference.changed + difference.removed
            result["diff"] = {"before_header": dest, "before": _text(live, paths), "after_header": params["src"],
                              "after": _text(staged, paths)}
        if difference.change != "none" and not module.check_mode:
            try:
                install(src, dest, difference)
            except OSError as exc:
                module.fail_json(msg=f"putting {src} in place at {dest}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
