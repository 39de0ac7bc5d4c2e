"""The collection as it ships: the built tarball, installed into an empty collections path, documents
every plugin from there, and carries nothing that should not ship."""
from __future__ import annotations

import ast
import functools
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[3] / "collections/ansible_collections/k8sedge/lb"
BIN = Path(sys.executable).parent
FQCN = "k8sedge.lb"
# plugins/ directories ansible-doc documents, and its type for each. Action plugins are documented
# by the module of the same name, doc fragments through the plugins that extend them.
DOC_TYPES = {"modules": "module", "filter": "filter", "inventory": "inventory", "callback": "callback"}
NOT_DOCUMENTED = {"action", "doc_fragments", "module_utils", "plugin_utils"}
EVENT_SOURCES = "extensions/eda/plugins/event_source"
# Planted in the copy that is built: a tarball that carries them ships build output.
JUNK = ("tests/output/junk.txt", "plugins/modules/__pycache__/junk.cpython-311.pyc")


@dataclass(frozen=True)
class Installed:
    tarball: Path
    root: Path  # the installed collection: <collections path>/ansible_collections/k8sedge/lb
    env: dict[str, str]
    cwd: Path


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    # ansible-doc reports a plugin it cannot find or parse as a warning, with a zero exit.
    assert result.returncode == 0 and "[WARNING]" not in result.stderr and "[ERROR]" not in result.stderr, \
        result.stdout + result.stderr
    return result.stdout


def names(directory: Path) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.py") if path.stem != "__init__")


def python_constant(path: Path, name: str, owner: str | None = None) -> str:
    """A string constant of a plugin file, read without importing it (module level, or a class's)."""
    tree = ast.parse(path.read_text())
    body = next(node.body for node in tree.body if isinstance(node, ast.ClassDef) and node.name == owner) if owner else tree.body
    return next(node.value.value for node in body
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("collection")
    # Built from a copy with build output planted, so the exclusions are tested on every run
    # (ansible-test's own output is left out of the copy: it is large).
    source = tmp / "source"
    shutil.copytree(COLLECTION, source, ignore=lambda path, _: {"output"} if Path(path) == COLLECTION / "tests" else set())
    for junk in JUNK:
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("not to ship\n")
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp / "dist")], source)
    (tarball,) = (tmp / "dist").glob("k8sedge-lb-*.tar.gz")

    collections = tmp / "collections"
    config = tmp / "ansible.cfg"
    config.write_text("")
    # Only the empty path: no ansible.cfg of the project, no collections on sys.path or in ~/.ansible.
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_") and key != "PYTHONPATH"}
    env.update(ANSIBLE_CONFIG=str(config), ANSIBLE_HOME=str(tmp / "home"), ANSIBLE_COLLECTIONS_PATH=str(collections),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1")
    run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", str(tarball), "-p", str(collections)], tmp, env)
    return Installed(tarball=tarball, root=collections / "ansible_collections/k8sedge/lb", env=env, cwd=tmp)


def ansible_doc(installed: Installed, *args: str) -> str:
    return run([str(BIN / "ansible-doc"), *args], installed.cwd, installed.env)


@pytest.fixture(scope="module")
def docs(installed: Installed) -> Callable[[str], dict[str, Any]]:
    """ansible-doc's JSON for every plugin of a plugins/ directory, one call per directory, made
    when a test first asks (a broken plugin fails the tests of its type only)."""
    @functools.cache
    def of(directory: str) -> dict[str, Any]:
        wanted = (f"{FQCN}.{name}" for name in names(installed.root / "plugins" / directory))
        return json.loads(ansible_doc(installed, "-t", DOC_TYPES[directory], "--json", *wanted))
    return of


def test_the_tarball_ships_no_build_output(installed: Installed):
    with tarfile.open(installed.tarball) as tar:
        shipped = tar.getnames()
    assert "plugins/modules/edge_info.py" in shipped
    leaked = [name for name in shipped
              if name.startswith("tests/output") or "__pycache__" in name.split("/") or name.endswith(".pyc")]
    assert not leaked


def test_nothing_shipped_points_at_a_placeholder(installed: Installed):
    with tarfile.open(installed.tarball) as tar:
        placeholders = [member.name for member in tar.getmembers()
                        if member.isfile() and b"example.invalid" in tar.extractfile(member).read()]
    assert not placeholders


def test_every_plugin_type_is_checked(installed: Installed):
    types = {path.name for path in (installed.root / "plugins").iterdir()}
    assert types <= DOC_TYPES.keys() | NOT_DOCUMENTED, "a new plugin type: give it to ansible-doc here"


@pytest.mark.parametrize("directory", sorted(DOC_TYPES))
def test_every_plugin_renders_from_the_installed_tree(installed: Installed, docs: Callable[[str], dict[str, Any]], directory: str):
    plugin_type = DOC_TYPES[directory]
    wanted = names(installed.root / "plugins" / directory)
    assert wanted
    assert sorted(docs(directory)) == [f"{FQCN}.{name}" for name in wanted]
    for fqcn, doc in docs(directory).items():
        assert Path(doc["doc"]["filename"]).is_relative_to(installed.root), fqcn
        assert doc["doc"]["short_description"] and doc["examples"], fqcn

    text = ansible_doc(installed, "-t", plugin_type, *(f"{FQCN}.{name}" for name in wanted))
    for name in wanted:
        assert f"> {plugin_type.upper()} {FQCN}.{name} ({installed.root}/plugins/{directory}/{name}.py)" in text


def test_action_plugins_are_documented_by_their_module(installed: Installed, docs: Callable[[str], dict[str, Any]]):
    actions = names(installed.root / "plugins/action")
    assert set(actions) <= set(names(installed.root / "plugins/modules"))
    for name in actions:
        assert docs("modules")[f"{FQCN}.{name}"]["doc"]["attributes"]["action"]["support"] == "full", name


def test_doc_fragments_are_merged_into_the_plugins_that_extend_them(installed: Installed, docs: Callable[[str], dict[str, Any]]):
    used: set[str] = set()
    for directory in DOC_TYPES:
        for name in names(installed.root / "plugins" / directory):
            doc = yaml.safe_load(python_constant(installed.root / "plugins" / directory / f"{name}.py", "DOCUMENTATION"))
            ours = [entry for entry in doc.get("extends_documentation_fragment", []) if entry.startswith(f"{FQCN}.")]
            for entry in ours:
                fragment, _, variant = entry.removeprefix(f"{FQCN}.").partition(".")
                source = python_constant(installed.root / "plugins/doc_fragments" / f"{fragment}.py",
                                         variant.upper() or "DOCUMENTATION", "ModuleDocFragment")
                rendered = docs(directory)[f"{FQCN}.{name}"]["doc"]["options"]
                assert yaml.safe_load(source)["options"].keys() <= rendered.keys(), (entry, name)
                used.add(fragment)
    assert used == set(names(installed.root / "plugins/doc_fragments")), "a doc fragment no plugin extends"


def test_the_event_sources_document_themselves(installed: Installed):
    sources = sorted((installed.root / EVENT_SOURCES).glob("*.py"))
    assert sources
    for path in sources:
        doc = yaml.safe_load(python_constant(path, "DOCUMENTATION"))
        assert doc["short_description"] and doc["options"], path.name
        assert yaml.safe_load(python_constant(path, "EXAMPLES")), path.name


def test_the_readme_names_every_plugin(installed: Installed):
    readme = (installed.root / "README.md").read_text()
    directories = [*DOC_TYPES, "action", "doc_fragments"]
    plugins = [name for directory in directories for name in names(installed.root / "plugins" / directory)]
    plugins += names(installed.root / EVENT_SOURCES)
    assert not [name for name in plugins if f"`{FQCN}.{name}`" not in readme]
