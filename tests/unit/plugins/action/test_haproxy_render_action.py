"""The haproxy_render action: in one call on the controller it gives the bytes that
ansible.builtin.template gives for the role's template and the haproxy_view filter's view, and
errors name the object, the field, or the template and the variable."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[4]
ENV = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_LOCALHOST_WARNING": "0"}
MODEL = yaml.safe_load((REPO / "tests/unit/plugins/module_utils/fixtures/haproxy_view_model.yaml").read_text())
TEMPLATE = REPO / "roles/edge_haproxy/templates/haproxy.cfg.j2"
SETTINGS = {"edge_haproxy_chroot": "/var/lib/haproxy", "edge_haproxy_stats_socket": "/run/haproxy/admin.sock",
            "edge_haproxy_hard_stop_after": "5m"}


def play(tmp_path: Path, tasks: list[dict], model: dict) -> subprocess.CompletedProcess[str]:
    (tmp_path / "model.json").write_text(json.dumps(model))
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "vars": {"model_json": "{{ lookup('file', '" + str(tmp_path / "model.json") + "') }}"},
                                         "tasks": tasks}]))
    return subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={REPO / '.venv/bin/python'}", str(playbook)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)


def render_task(**overrides) -> dict:
    return {"name": "render", "k8sedge.lb.haproxy_render": {"model": "{{ model_json }}", "template": str(TEMPLATE),
                                                            "variables": SETTINGS, "pools": ["default", "blue"], **overrides},
            "register": "rendered"}


def test_the_action_gives_the_bytes_of_the_template_action(tmp_path):
    tasks = [
        {"name": "view", "ansible.builtin.set_fact": {"view": "{{ model_json | k8sedge.lb.haproxy_view(pools=['default', 'blue']) }}"}},
        {"name": "template", "ansible.builtin.template": {"src": str(TEMPLATE), "dest": str(tmp_path / "template.cfg"), "mode": "0644"},
         "vars": SETTINGS},
        render_task(),
        {"name": "write", "ansible.builtin.copy": {"content": "{{ rendered.config }}", "dest": str(tmp_path / "action.cfg"), "mode": "0644"}},
        {"name": "answers", "ansible.builtin.copy": {
            "content": "{{ {'rendered': rendered | dict2items | rejectattr('key', 'eq', 'config') | items2dict, 'view': view} | to_json }}",
            "dest": str(tmp_path / "answers.json"), "mode": "0644"}},
    ]
    done = play(tmp_path, tasks, MODEL)
    assert done.returncode == 0, done.stdout + done.stderr
    config = (tmp_path / "action.cfg").read_bytes()
    assert config == (tmp_path / "template.cfg").read_bytes()
    assert config.startswith(b"#\n# Ansible managed\n#\n") and b"\nbackend default_s2_80\n" in config
    answers = json.loads((tmp_path / "answers.json").read_text())
    rendered, view = answers["rendered"], answers["view"]
    assert json.loads(rendered["runtime_json"]) == view["runtime"]
    for key in ("generation", "structure", "maps", "certificates", "routes", "findings"):
        assert rendered[key] == view[key], key
    assert rendered["findings"], "the fixture's TLS route without a certificate is a finding"
    assert "backends" not in rendered and "frontends" not in rendered


def test_a_value_that_would_break_a_line_is_refused_naming_the_frontend_and_field(tmp_path):
    hostile = {**MODEL, "frontends": [dict(frontend, backend="x\nbackend evil") if frontend["name"] == "default-tcp-9999" else frontend
                                      for frontend in MODEL["frontends"]]}
    done = play(tmp_path, [render_task()], hostile)
    assert done.returncode != 0
    assert "k8sedge.lb.haproxy_render: frontend default-tcp-9999: backend: expected a name" in done.stdout, done.stdout


def test_a_variable_the_template_needs_and_was_not_given_is_named(tmp_path):
    done = play(tmp_path, [render_task(variables={"edge_haproxy_chroot": "/"})], MODEL)
    assert done.returncode != 0
    assert "haproxy.cfg.j2: 'edge_haproxy_stats_socket' is undefined" in done.stdout, done.stdout


def test_the_running_slots_may_come_as_json_text_and_bad_text_is_named():
    import pytest
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewError
    from ansible_collections.k8sedge.lb.plugins.plugin_utils._haproxy_render import ARGUMENT_SPEC, view_options

    slots = {"default_s2_80": {"s1": {"address": "10.244.1.5", "port": 8080, "state": "ready"}}}

    def options(previous):
        return view_options(ArgumentSpecValidator(ARGUMENT_SPEC).validate(
            {"model": "{}", "template": "t", "previous": previous}).validated_parameters)

    assert options(json.dumps(slots)).previous == options(slots).previous == slots
    assert options("").previous == {}
    with pytest.raises(ViewError, match=r"previous: expected the running slots or their JSON text \(servers_json\)"):
        options("{")


def test_the_settings_digest_follows_the_inputs_besides_the_model():
    from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewOptions
    from ansible_collections.k8sedge.lb.plugins.plugin_utils._haproxy_render import render_haproxy

    template = TEMPLATE.read_text()

    def settings(model=MODEL, options=ViewOptions(pools=("default",)), variables=SETTINGS, text=template):
        return render_haproxy(json.dumps(model), options, text, {"ansible_managed": "x", **variables})["settings"]

    moved = json.loads(json.dumps(MODEL))
    moved["backends"][0]["targets"] = []
    assert settings() == settings(model=moved) == render_haproxy(json.dumps(MODEL), ViewOptions(pools=("default",)), template,
                                                                 {"ansible_managed": "y", **SETTINGS})["settings"]
    assert len({settings(), settings(options=ViewOptions(pools=("default",), slots=20)),
                settings(variables={**SETTINGS, "edge_haproxy_hard_stop_after": "1m"}), settings(text=template + "\n")}) == 4


def test_it_says_whether_the_running_slots_already_are_the_views():
    from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import desired_slots
    from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewOptions
    from ansible_collections.k8sedge.lb.plugins.plugin_utils._haproxy_render import render_haproxy

    def render(previous):
        return render_haproxy(json.dumps(MODEL), ViewOptions(pools=("default",), previous=previous), TEMPLATE.read_text(),
                              {"ansible_managed": "x", **SETTINGS})

    fresh = render({})
    assert fresh["runtime_differs"] is True
    assert [line.split()[1] for line in fresh["listing"]] == ["haproxy.cfg", *sorted(m["path"] for m in fresh["maps"])]
    running = desired_slots(json.loads(fresh["runtime_json"]))
    assert render(running)["runtime_differs"] is False
    backend, slots = next(iter(running.items()))
    slot = next(iter(slots))
    moved = {**running, backend: {**slots, slot: {**slots[slot], "port": slots[slot]["port"] + 1}}}
    assert render(moved)["runtime_differs"] is True
