"""The ansible-rulebook event source k8sedge.lb.k8s_model, loaded and driven the way ansible-rulebook
does (runpy.run_path, `main(queue, args)` on a queue of one), against the lab API server on
loopback; and ansible-rulebook itself running a rulebook with the source."""
from __future__ import annotations

import asyncio
import json
import os
import runpy
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.lab.test_watch import add_service, api_server, seed, set_endpoints

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "collections/ansible_collections/k8sedge/lb/extensions/eda/plugins/event_source/k8s_model.py"
RULEBOOK = REPO / ".venv/bin/ansible-rulebook"


async def _events(args: dict, changes, count: int) -> list[dict]:
    """Run the source's main() as ansible-rulebook does; apply changes[i] after the i-th event."""
    module = runpy.run_path(str(SOURCE))
    queue: asyncio.Queue = asyncio.Queue(1)  # the engine's source queue holds one event
    task = asyncio.create_task(module["main"](queue, args))
    events = []
    try:
        for index in range(count):
            events.append(await asyncio.wait_for(queue.get(), timeout=20))
            if index < len(changes):
                await asyncio.to_thread(changes[index])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return events


def test_the_event_source_emits_structural_then_endpoint_only_changes(tmp_path):
    with api_server(tmp_path) as (api, (_procs, admin)):
        seed(admin)
        args = {"host": api.url, "api_key": api.reader_token, "ca_cert": str(api.ca), "debounce": 0.05, "max_delay": 0.5}
        events = asyncio.run(_events(args, [
            lambda: set_endpoints(admin, "web", ["10.244.1.5", "10.244.1.7"]),
            lambda: add_service(admin, "shop", "shop.test"),
        ], 3))
    first, scaled, added = (e["k8sedge"] for e in events)
    assert (first["change"], first["previous"]) == ("structural", None)
    assert (scaled["change"], scaled["backends"], scaled["previous"]) == ("endpoints", ["default_web_80"], first["generation"])
    assert scaled["counts"]["targets"] == 2 and scaled["first_event"] <= scaled["built"]
    assert added["change"] == "structural" and added["parts"] == ["frontends", "backends"]
    json.dumps(events)  # what the engine and the playbooks' extra vars get must be plain JSON


def test_bad_source_arguments_fail_by_name(tmp_path):
    module = runpy.run_path(str(SOURCE))
    with pytest.raises(ValueError, match="unknown option.*kubecfg"):
        asyncio.run(module["main"](asyncio.Queue(1), {"kubecfg": "/nowhere"}))
    with pytest.raises(ValueError, match="option max_delay"):
        asyncio.run(module["main"](asyncio.Queue(1), {"debounce": 2, "max_delay": 1}))


@pytest.mark.skipif(not RULEBOOK.exists() or not shutil.which("java"), reason="ansible-rulebook (and Java 17) not installed")
def test_ansible_rulebook_runs_the_source_and_a_rule_fires(tmp_path):
    """ansible-rulebook finds the source in the collection (ansible.cfg's collections_path) and fires
    the rule for an endpoint-only change; the action runs a real playbook on localhost."""
    marker = tmp_path / "fired.json"
    playbook = tmp_path / "record.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - name: Record the change
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Write the change the rule passed
              ansible.builtin.copy:
                content: "{{{{ k8sedge_change | to_json }}}}"
                dest: {marker}
                mode: "0644"
        """))
    rulebook = tmp_path / "rulebook.yml"
    rulebook.write_text(textwrap.dedent(f"""\
        - name: Test
          hosts: localhost
          sources:
            - k8sedge.lb.k8s_model:
                debounce: 0.05
          rules:
            - name: Endpoint-only change
              condition: event.k8sedge.change == "endpoints"
              action:
                run_playbook:
                  name: {playbook}
                  extra_vars:
                    k8sedge_change: "{{{{ event.k8sedge }}}}"
        """))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n")
    (tmp_path / "api").mkdir()
    with api_server(tmp_path / "api") as (api, (_procs, admin)):
        seed(admin)
        env = {**os.environ, "K8S_AUTH_HOST": api.url, "K8S_AUTH_API_KEY": api.reader_token, "K8S_AUTH_SSL_CA_CERT": str(api.ca),
               "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
        rulebook_run = subprocess.Popen([str(RULEBOOK), "-r", str(rulebook), "-i", str(inventory), "-v"], cwd=REPO, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # The first generation is structural (no rule for it). Endpoint changes, one every 2 s
            # until the rule fired (the source may not have listed yet when the first is made).
            started = time.monotonic()
            last = 5
            while not marker.exists() and time.monotonic() - started < 90 and rulebook_run.poll() is None:
                last += 1
                set_endpoints(admin, "web", ["10.244.1.5", f"10.244.1.{last}"])
                until = time.monotonic() + 2
                while not marker.exists() and time.monotonic() < until:
                    time.sleep(0.1)
        finally:
            rulebook_run.terminate()
            try:
                output, _ = rulebook_run.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                rulebook_run.kill()
                output, _ = rulebook_run.communicate()
        assert marker.exists(), output[-4000:]
        change = json.loads(marker.read_text())
        assert change["change"] == "endpoints" and change["backends"] == ["default_web_80"]
