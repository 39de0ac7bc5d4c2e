# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The haproxy view of the model and the config it gives, in one call on the controller.

Ansible's templating checks and wraps every value it hands a template, and every value a task
stores: at 5,000 Services the view (about 20 MB of data) cost 15 s as a fact and its template
11 s more. Here the view is built from the model and rendered with plain Jinja2 (the options the
template action uses: trim_blocks, a kept trailing newline), and only what the role acts on
leaves this function; the view's backends never become a variable. The template is the role's
own file, so it stays the one place that says what a config line looks like.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import jinja2
from ansible.plugins.filter.core import comment
from ansible.template import generate_ansible_template_vars

from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_files import listing, tree_files
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import desired_slots
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewError, ViewOptions, haproxy_view
from ansible_collections.k8sedge.lb.plugins.module_utils._model import model_document
from ansible_collections.k8sedge.lb.plugins.module_utils._view import plain_certificates

ARGUMENT_SPEC: dict[str, Any] = {
    "model": {"type": "raw", "required": True},
    "template": {"type": "str", "required": True},
    "variables": {"type": "dict", "default": {}},
    "pools": {"type": "list", "elements": "str", "default": ["default"]},
    "certificates": {"type": "dict", "default": {}, "no_log": True},
    "slots": {"type": "int", "default": 10},
    "admin_address": {"type": "str", "default": "127.0.0.1"},
    "admin_port": {"type": "int", "default": 8404},
    "bind_address": {"type": "str", "default": ""},
    "udp_frontends": {"type": "str", "choices": ["fail", "skip"], "default": "skip"},
    "previous": {"type": "raw", "default": {}},
}

# What leaves the call besides the config: small, or handed on as it is.
ANSWERED = ("generation", "structure", "maps", "certificates", "routes", "findings")


def view_options(args: dict[str, Any]) -> ViewOptions:
    """The view's options from arguments validated against ARGUMENT_SPEC; `previous` may be the
    JSON text haproxy_runtime returns as servers_json. Raises ViewError for one that is not."""
    previous = args["previous"]
    if isinstance(previous, str):
        try:
            previous = json.loads(previous) if previous else {}
        except ValueError as exc:
            raise ViewError(f"previous: expected the running slots or their JSON text (servers_json): {exc}") from None
    return ViewOptions(
        pools=tuple(args["pools"]), certificates=plain_certificates(args["certificates"]), slots=args["slots"],
        admin_address=args["admin_address"], admin_port=args["admin_port"], bind_address=args["bind_address"],
        udp_frontends=args["udp_frontends"], previous=previous)


def ansible_managed(templar: Any, name: str, source: str, variables: dict[str, Any]) -> str:
    """`ansible_managed` as ansible.builtin.template gives it: the play's variable if set, else
    the configured string (DEFAULT_MANAGED_STR) expanded for this template."""
    if "ansible_managed" in variables:
        return str(templar.template(variables["ansible_managed"]))
    generated = generate_ansible_template_vars(path=name, fullpath=source)
    return str(templar.copy_with_new_env(available_variables=generated).template(generated["ansible_managed"]))


def environment() -> jinja2.Environment:
    """Jinja2 as ansible.builtin.template configures it for a role's template; undefined
    variables are errors."""
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    env.filters["comment"] = comment
    return env


def render_haproxy(model: Any, options: ViewOptions, template: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The view's answers, `config` (the template rendered with `view` and `variables`),
    `runtime_json` (the desired server slots, as JSON text for k8sedge.lb.haproxy_runtime) and
    `settings`, the digest of everything but the model that shapes the config (the template, its
    variables but `ansible_managed`, the view's options, the certificates' digests), and
    `runtime_differs`, whether the running slots (the options' `previous`) differ from the view's,
    and `listing`, the tree's files as sha256sum lists them (`_haproxy_files.listing`).
    Raises EdgeError when the view refuses the model."""
    view = haproxy_view(model_document(model), options)
    config = environment().from_string(template).render({**variables, "view": view})
    shaped_by = [template, {k: v for k, v in variables.items() if k != "ansible_managed"}, list(options.pools), options.slots,
                 options.admin_address, options.admin_port, options.bind_address, options.udp_frontends, view["certificates"]]
    settings = hashlib.sha256(json.dumps(shaped_by, sort_keys=True, default=str).encode()).hexdigest()
    tree = tree_files(config, view["maps"], {c["name"]: options.certificates[c["name"]] for c in view["certificates"]})
    return {**{key: view[key] for key in ANSWERED}, "config": config, "settings": settings, "listing": listing(tree),
            "runtime_json": json.dumps(view["runtime"], separators=(",", ":")),
            "runtime_differs": desired_slots(view["runtime"]) != options.previous}


def render_task(args: dict[str, Any], source: str, templar: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """What the action does with arguments validated against ARGUMENT_SPEC, the template found at
    `source`, and the task's templar and variables. Raises EdgeError (the view) or
    jinja2.TemplateError (the template)."""
    with open(source, encoding="utf-8") as handle:
        template = handle.read()
    given = {"ansible_managed": ansible_managed(templar, args["template"], source, variables), **args["variables"]}
    return render_haproxy(args["model"], view_options(args), template, given)
