"""execution-environment.yml: ansible-builder accepts it, and it pins what requirements.txt pins."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BUILDER = REPO / ".venv/bin/ansible-builder"


def pins() -> dict[str, str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return {name.lower(): version for name, version in (line.split("==") for line in lines if "==" in line)}


def test_the_ee_pins_what_requirements_txt_pins():
    spec = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    deps = spec["dependencies"]
    wanted = [deps["ansible_core"]["package_pip"], deps["ansible_runner"]["package_pip"], *deps["python"]]
    locked = pins()
    for requirement in wanted:
        name, version = requirement.split("==")
        assert locked[name.lower()] == version, f"{requirement} in execution-environment.yml, {name}=={locked[name.lower()]} in requirements.txt"


@pytest.mark.skipif(not BUILDER.exists(), reason="ansible-builder is not installed")
def test_ansible_builder_creates_the_build_context(tmp_path):
    context = tmp_path / "context"
    result = subprocess.run([str(BUILDER), "create", "-f", "execution-environment.yml", "-c", str(context),
                             "--output-filename", "Containerfile"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"' in containerfile
    assert re.search(r"^COPY _build/k8sedge-lb /usr/share/ansible/collections/ansible_collections/k8sedge/lb$", containerfile, re.M)
    # The collection travels whole: its modules, module_utils and the rulebook event source.
    copied = context / "_build" / "k8sedge-lb"
    for part in ("galaxy.yml", "plugins/modules/edge_info.py", "plugins/module_utils/_watch.py",
                 "extensions/eda/plugins/event_source/k8s_model.py"):
        assert (copied / part).is_file(), part
    assert (context / "_build" / "requirements.txt").read_text().split() == ["kubernetes==37.0.2", "PyYAML==6.0.4", "jmespath==1.1.0"]
    assert "openssh-clients [platform:rpm]" in (context / "_build" / "bindep.txt").read_text()
