"""Each proxy role's path from the model to files, run outside a play: the tasks that build the
view and write the tree, read from the role's own files and run with Ansible's templating
(Templar, as a play renders them: `ansible_managed | comment`, trim_blocks, role defaults and
vars). Host actions (apt, systemd, routes, the apply modules) are not run. Shared by the
real-binary property test and the render benchmark, so both measure what the roles really do.
"""
from __future__ import annotations

import datetime
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ansible._internal._templating._template_vars import generate_ansible_template_vars
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab.topology import REPO


class Role:
    """The part of a role that turns the model into files: its defaults and vars, and the tasks
    that build the view and write the tree, run with Ansible's templating. Host actions (apt,
    systemd, routes, the apply modules) are not run."""

    def __init__(self, name: str, steps: list[tuple[str, str | None]]) -> None:
        self.name = name
        self.path = REPO / "roles" / name
        self.loader = DataLoader()
        self.loader.set_basedir(str(self.path))
        self.defaults = self._load("defaults/main.yml")
        self.vars = self._load("vars/main.yml")
        self.tasks = []
        for file, task_name in steps:
            chosen = [task for task in self._load(file) if task_name is None or task.get("name") == task_name]
            assert chosen, f"roles/{name}/{file}: no task named {task_name!r} (was it renamed?)"
            self.tasks += chosen

    def _load(self, relative: str) -> Any:
        # Trusted as templates, as Ansible loads a role's own files.
        return self.loader.load_from_file(str(self.path / relative), trusted_as_template=True) or {}

    def run(self, params: dict[str, Any], registered: dict[str, Any] | None = None) -> dict[str, Any]:
        """The variables after the steps; params have the precedence of role parameters."""
        variables = {**self.defaults, **self.vars, **params, **(registered or {}),
                     "role_path": str(self.path), "role_name": self.name, "ansible_check_mode": False,
                     "ansible_search_path": [str(self.path)]}
        for task in self.tasks:
            self._task(task, variables)
        return variables

    def value(self, variables: dict[str, Any], name: str) -> Any:
        """A variable as a task would see it (role vars are templates)."""
        return Templar(loader=self.loader, variables=variables).template(variables[name])

    def _task(self, task: dict[str, Any], variables: dict[str, Any]) -> None:
        action = next(key for key in task if key.startswith("ansible.builtin.") or key in (
            "k8sedge.lb.haproxy_render", "k8sedge.lb.haproxy_config", "k8sedge.lb.nginx_release"))
        if action == "ansible.builtin.debug":
            return
        args = task[action]
        scope = {**variables, **task.get("vars", {})}
        items = Templar(loader=self.loader, variables=scope).template(task["loop"]) if "loop" in task else [None]
        loop_var = task.get("loop_control", {}).get("loop_var", "item")
        for item in items:
            templar = Templar(loader=self.loader, variables={**scope, loop_var: item} if "loop" in task else scope)
            if action == "ansible.builtin.set_fact":
                variables.update({key: templar.template(value) for key, value in args.items()})
            elif action == "ansible.builtin.file":
                assert args.get("state") == "directory", f"{task['name']}: only state=directory is stood in for"
                path = Path(templar.template(args["path"]))
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(int(templar.template(args["mode"]), 8))
            elif action == "ansible.builtin.copy":
                self._write(Path(templar.template(args["dest"])), templar.template(args["content"]), templar.template(args["mode"]))
            elif action == "k8sedge.lb.haproxy_render":
                variables[task["register"]] = self._haproxy_render(templar, {key: templar.template(value) for key, value in args.items()})
            elif action == "k8sedge.lb.haproxy_config":
                # The module's staging half (the same module_utils code, importable once loaded_roles() put
                # the collection loader in place); validation and install are the binary's and the host's.
                from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_files import stage, tree_files
                staged = {key: templar.template(args[key]) for key in ("config", "maps", "certificates", "src")}
                stage(staged["src"], tree_files(staged["config"], staged["maps"], staged["certificates"]))
            elif action == "k8sedge.lb.nginx_release":
                # The module's own code (importable once loaded_roles() put the collection loader in place).
                from ansible_collections.k8sedge.lb.plugins.module_utils._nginx_release import contents, write
                release = {key: templar.template(args[key]) for key in ("dest", "files", "certificates")}
                tree = contents(release["files"], release["certificates"])
                write(release["dest"], tree, sorted(tree))
            elif action == "ansible.builtin.template":
                self._write(Path(templar.template(args["dest"])), self._template(templar, templar.template(args["src"]), args), templar.template(args["mode"]))
            else:
                raise AssertionError(f"roles/{self.name}: task {task.get('name')!r} uses {action}, which this test does not stand in for")

    def _haproxy_render(self, templar: Any, args: dict[str, Any]) -> dict[str, Any]:
        """What the action k8sedge.lb.haproxy_render does (its own code; importable once
        loaded_roles() put the collection loader in place): arguments checked, the role's template
        rendered by the action's renderer."""
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
        from ansible_collections.k8sedge.lb.plugins.plugin_utils._haproxy_render import ARGUMENT_SPEC, render_task
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(args)
        assert not validated.error_messages, validated.error_messages
        args = validated.validated_parameters
        try:
            return render_task(args, str(self.path / "templates" / args["template"]), templar, templar.available_variables)
        except EdgeError as exc:
            raise AnsibleError(f"k8sedge.lb.haproxy_render: {exc}") from None

    def _template(self, templar: Any, src: str, args: dict[str, Any]) -> str:
        """What ansible.builtin.template's action plugin does with the file (its defaults:
        trim_blocks, no lstrip_blocks, '\\n'), ansible_managed included."""
        source = self.path / "templates" / src
        text = trust_as_template(self.loader.get_text_file_contents(str(source)))
        scope = dict(templar.available_variables)
        scope.update(generate_ansible_template_vars(path=src, fullpath=str(source), dest_path=templar.template(args["dest"]),
                                                    include_ansible_managed="ansible_managed" not in scope))
        renderer = templar.copy_with_new_env(searchpath=[str(self.path / "templates"), str(self.path)], available_variables=scope)
        return renderer.template(text, escape_backslashes=False, overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"})

    @staticmethod
    def _write(path: Path, content: str, mode: str) -> None:
        path.write_text(content)
        path.chmod(int(mode, 8))


@contextmanager
def loaded_roles() -> Iterator[dict[str, Role]]:
    """Both roles, with Ansible's collection loader in place so that `k8sedge.lb.haproxy_render` and
    `k8sedge.lb.nginx_view` resolve as in a play. The loader must import `ansible_collections`
    itself: the modules imported before from the plain path are set aside and put back."""
    def ours(name: str) -> bool:
        return name == "ansible_collections" or name.startswith("ansible_collections.")

    aside = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in aside:
        del sys.modules[name]
    init_plugin_loader([str(REPO / "collections")])
    try:
        yield {
            "haproxy": Role("edge_haproxy", [
                ("tasks/plan.yml", "Build the haproxy view of the model and render the config"),
                ("tasks/main.yml", "Stage the configuration, validate it and put it in place"),
            ]),
            "nginx": Role("edge_nginx", [("tasks/plan.yml", None), ("tasks/release.yml", None)]),
        }
    finally:
        _AnsibleCollectionFinder._remove()
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(aside)


def throwaway_certificate() -> dict[str, str]:
    """A self-signed certificate and key (PEM), for every name a model asks for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8sedge.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("k8sedge.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    return {
        "cert": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    }


def certificate_names(model: dict[str, Any]) -> set[str]:
    return {name for f in model["frontends"] for name in f.get("certificates", [])} | {
        r["certificate"] for f in model["frontends"] for r in f.get("routes", []) if r.get("certificate")}


# What the role's first task (k8sedge.lb.haproxy_runtime) registers on a host where haproxy does not run yet.
NOT_RUNNING = {"__edge_haproxy_running": {"changed": False, "running": False, "servers_json": "{}", "commands": []}}


def haproxy_tree(roles: dict[str, Role], model: Any, certificates: dict[str, dict[str, str]], root: Path, *,
                 pools: list[str], bind_address: str = "", slots: int = 10) -> Path:
    """The staging tree edge_haproxy writes, under root; its haproxy.cfg. AnsibleError when the
    view refuses the model."""
    params = {
        "edge_haproxy_model": model, "edge_haproxy_pools": pools, "edge_haproxy_udp_frontends": "skip",
        "edge_haproxy_certificates": certificates,
        "edge_haproxy_bind_address": bind_address, "edge_haproxy_slots": slots,
        "edge_haproxy_state_dir": f"{root}/var/lib/k8sedge/haproxy", "__edge_haproxy_config_dir": f"{root}/etc/haproxy",
    }
    variables = roles["haproxy"].run(params, NOT_RUNNING)
    return Path(roles["haproxy"].value(variables, "__edge_haproxy_staging")) / "haproxy.cfg"


def nginx_release(roles: dict[str, Role], model: Any, certificates: dict[str, dict[str, str]], root: Path, *,
                  pools: list[str], pool_addresses: dict[str, str] | None = None) -> Path:
    """The release edge_nginx writes, under root; its nginx.conf. AnsibleError when the view
    refuses the model."""
    params = {
        "edge_nginx_model": model, "edge_nginx_pools": pools, "edge_nginx_pool_addresses": pool_addresses or {},
        "edge_nginx_certificates": certificates,
        "edge_nginx_access_log": f"{root}/access.log",
        "__edge_nginx_root": f"{root}/etc/nginx/k8sedge", "__edge_nginx_state": f"{root}/var/lib/k8sedge/nginx",
    }
    variables = roles["nginx"].run(params)
    return Path(roles["nginx"].value(variables, "__edge_nginx_dir")) / "nginx.conf"


def nginx_check_command(nginx: str, modules: Path, config: Path, root: Path) -> list[str]:
    """`nginx -t` as edge_nginx's handler runs it, on an unprivileged copy of the release's
    nginx.conf (see unprivileged_copy). The prefix stands in for Debian's /usr/share/nginx:
    `load_module modules/...` in /etc/nginx/modules-enabled/ is relative to it. nginx -t also
    binds the listeners (it tolerates ports in use, not addresses the host lacks)."""
    checked = unprivileged_copy(config, root)
    (root / "prefix").mkdir(exist_ok=True)
    if not (root / "prefix" / "modules").exists():
        (root / "prefix" / "modules").symlink_to(modules)
    return [nginx, "-t", "-q", "-p", f"{root}/prefix/", "-e", f"{root}/startup.log", "-c", str(checked)]


def unprivileged_copy(config: Path, root: Path) -> Path:
    """The release's nginx.conf with its pid file and error log moved under root, so that
    checking it does not touch /run or /var/log; nothing else differs."""
    text = config.read_text()
    for line, moved in (("pid /run/nginx.pid;", f"pid {root}/nginx.pid;"), ("error_log /var/log/nginx/error.log;", f"error_log {root}/error.log;")):
        assert text.count(f"\n{line}\n") == 1, f"{config}: expected the line {line!r} once (did nginx.conf.j2 change?)"
        text = text.replace(f"\n{line}\n", f"\n{moved}\n")
    checked = root / "nginx-check.conf"
    checked.write_text(text)
    return checked
