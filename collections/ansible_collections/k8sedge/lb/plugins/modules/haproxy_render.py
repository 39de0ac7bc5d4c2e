#!/usr/bin/python
# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_render
short_description: Build the haproxy view of the edge model and render the config, on the controller
version_added: 0.1.0
description:
  - Takes the model that M(k8sedge.lb.edge_info) returns and, in one call on the controller, builds
    the haproxy view of it (what the P(k8sedge.lb.haproxy_view#filter) filter returns) and renders a
    template with it as C(view). Only what the next tasks act on is returned; the view's backends
    never become a variable, which keeps a run at thousands of Services in seconds.
  - The template is plain Jinja2 with the options M(ansible.builtin.template) uses (C(trim_blocks),
    the trailing newline kept) and Ansible's C(comment) filter. It sees C(view), C(ansible_managed)
    and O(variables), nothing else; an undefined name is an error.
  - The view checks every value again against a grammar that cannot break a config line. A value
    that fails, a missing backend, or a port two served pools share is an error naming the frontend
    or backend, the field and what to change. A tenant's claim haproxy cannot serve is left out with
    a finding in RV(findings).
  - This is an action that runs on the controller only; nothing is sent to the host, and this file
    holds only its documentation.
author:
  - k8sedge developers (@k8sedge)
extends_documentation_fragment:
  - k8sedge.lb.haproxy_view
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
attributes:
  check_mode:
    support: full
    details: It only computes, on the controller.
  diff_mode:
    support: none
  action:
    description: The action plugin of the same name does all the work, in Ansible's process on the controller.
    support: full
  become:
    support: none
  connection:
    support: none
  delegation:
    support: none
    details: It runs on the controller whatever the task's host.
  platform:
    platforms: posix
options:
  model:
    description: The model, as C(edge_info) returns it under C(model), or its JSON text under C(model_json).
    type: raw
    required: true
  template:
    description: The template file, looked up as M(ansible.builtin.template) looks up O(ansible.builtin.template#module:src).
    type: str
    required: true
  variables:
    description: Further variables the template uses, name to value.
    type: dict
    default: {}
  previous:
    description:
      - The slots of the running haproxy, C(servers) as M(k8sedge.lb.haproxy_runtime) returns
        it, or its JSON text C(servers_json), so that targets keep their slot.
    type: raw
    default: {}
seealso:
  - plugin: k8sedge.lb.haproxy_view
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Build the view and render the config of the default pool
  k8sedge.lb.haproxy_render:
    model: "{{ edge.model_json }}"
    template: haproxy.cfg.j2
    variables:
      stats_socket: /run/haproxy/admin.sock
  register: rendered

- name: Stage, validate and install it
  k8sedge.lb.haproxy_config:
    config: "{{ rendered.config }}"
    maps: "{{ rendered.maps }}"
    src: /var/lib/k8sedge/haproxy/staging
    dest: /etc/haproxy
"""

RETURN = r"""
config:
  description: The rendered template.
  returned: success
  type: str
maps:
  description: Map files, C(path) relative to the config and C(lines).
  returned: success
  type: list
  elements: dict
certificates:
  description: Certificate files the config names, C(name), C(path) and C(sha256).
  returned: success
  type: list
  elements: dict
routes:
  description: Pod routes (C(cidr), C(via)) when a served backend is in pod mode, else empty.
  returned: success
  type: list
  elements: dict
runtime_json:
  description:
    - Per backend, the desired state of each server slot, for M(k8sedge.lb.haproxy_runtime), as
      JSON text (megabytes on a large cluster; one string is cheap for Ansible to hand on).
  returned: success
  type: str
listing:
  description:
    - The files of the tree M(k8sedge.lb.haproxy_config) would stage (C(haproxy.cfg), then the
      maps, then the certificates), each as C(sha256sum) prints it in the C locale
      (C(<sha256>  <path>)). A host whose C(sha256sum haproxy.cfg maps/*.map certs/*.pem) prints
      the same lines already has this tree.
  returned: success
  type: list
  elements: str
runtime_differs:
  description:
    - Whether the running slots given in O(previous) differ from the view's (RV(runtime_json)).
      When they do not, M(k8sedge.lb.haproxy_runtime) would send nothing.
  returned: success
  type: bool
structure:
  description: SHA-256 of everything that needs a reload to change (not server addresses or states).
  returned: success
  type: str
generation:
  description: The model's generation.
  returned: success
  type: str
settings:
  description:
    - SHA-256 of everything but the model that shapes the config - the template, O(variables),
      the view's options and the certificates' digests. A rollout proves a host's checks under it.
  returned: success
  type: str
findings:
  description: What was left out, and why, C(where) (the frontend), C(field) and C(message).
  returned: success
  type: list
  elements: dict
"""
