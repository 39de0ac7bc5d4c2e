#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nginx_release
short_description: Write an nginx release, a whole configuration tree in a directory of its own
version_added: 0.1.0
description:
  - Writes the files of one release of role C(edge_nginx) into O(dest) in one step, the rendered
    configuration (O(files)) and the certificates and keys (O(certificates)), creating O(dest),
    its parents and its C(certs) directory as needed.
  - A release directory is named after what it contains, so writing the same release again
    changes nothing, and writing a new one never touches the live tree. Each file is replaced
    atomically and only when its content differs. Files already in O(dest) that are not named
    are left alone.
  - Validation (C(nginx -t)) and the switch to the release are the role's next steps.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Says what it would write; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  dest:
    description: The release directory.
    type: path
    required: true
  files:
    description:
      - Relative path (a file name, or C(certs/<name>)) to text; written with mode C(0644).
    type: dict
    required: true
  certificates:
    description:
      - Name to C({cert, key}) as PEM text, written as C(certs/<name>.crt) (C(0644)) and
        C(certs/<name>.key) (C(0600)) in a C(0700) directory.
      - Never logged.
    type: dict
    default: {}
  validate:
    description:
      - Check mode only, so that a plan proves the release as the real run would. The tree is
        written into a scratch directory instead of O(dest) (each mention of O(dest) in the files
        becomes the scratch's path), this command checks it, with C(%s) for the scratch's
        C(nginx.conf) (for example C(nginx -t -q -c %s)), and the scratch is removed. A command
        that fails fails the module, with what it said.
      - Outside check mode it is not run; the role checks the release it wrote before it goes live.
    type: str
"""

EXAMPLES = r"""
- name: Write the release
  k8sedge.lb.nginx_release:
    dest: /etc/nginx/k8sedge/releases/0123456789abcdef
    files:
      nginx.conf: "{{ lookup('ansible.builtin.template', 'nginx.conf.j2') }}"
    certificates: "{{ edge_nginx_certificates }}"
"""

RETURN = r"""
written:
  description: Relative paths that were (or in check mode would be) written.
  returned: always
  type: list
  elements: str
  sample: [nginx.conf, certs/web.crt, certs/web.key]
validated:
  description: What O(validate) said of the release in check mode (its output; empty when quiet).
  returned: in check mode, when O(validate) is given and the release passed it
  type: str
  sample: ""
"""

import os
import shlex
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_release import contents, pending, relocated, write


def validate_in_scratch(module: AnsibleModule, dest: str, tree: dict) -> str:
    """Check mode: the release written into a scratch directory and checked there; its output."""
    with tempfile.TemporaryDirectory(prefix="k8sedge-nginx-check-") as scratch:
        write(scratch, relocated(tree, dest, scratch), sorted(tree))
        command = module.params["validate"].replace("%s", shlex.quote(os.path.join(scratch, "nginx.conf")))
        rc, out, err = module.run_command(command)
        said = (out + err).replace(scratch, dest).strip()  # name the release, not the scratch
    if rc != 0:
        module.fail_json(msg=f"release {dest}: `{module.params['validate']}` refused it (exit {rc}): {said}; "
                             "check mode wrote nothing but a scratch copy, removed")
    return said


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "files": {"type": "dict", "required": True},
            "certificates": {"type": "dict", "default": {}, "no_log": True},
            "validate": {"type": "str"},
        },
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    try:
        tree = contents(module.params["files"], module.params["certificates"])
    except EdgeError as exc:
        module.fail_json(msg=f"release {dest}: {exc}")
    written = pending(dest, tree)
    result = {"changed": bool(written), "written": written}
    if module.check_mode and module.params["validate"]:
        try:
            result["validated"] = validate_in_scratch(module, dest, tree)
        except OSError as exc:
            module.fail_json(msg=f"release {dest}: writing its scratch copy: {exc}")
    if written and not module.check_mode:
        try:
            write(dest, tree, written)
        except OSError as exc:
            module.fail_json(msg=f"writing release {dest}: {exc}", written=written)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
