"""The rollout's Lease against the lab API server, with the reader's credential (docs/rbac.yaml):
take, wait and fail naming the holder, take over once run out, release; Keeper for the watcher;
and the module as a playbook runs it."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from ansible_collections.k8sedge.lb.plugins.module_utils import _k8s_read as k8s
from ansible_collections.k8sedge.lb.plugins.module_utils._k8s_client import AuthOptions
from ansible_collections.k8sedge.lb.plugins.module_utils._lease import LeaseError
from ansible_collections.k8sedge.lb.plugins.module_utils._lease_api import Keeper, Lease, LeaseHeld, give_up, peek, take
from lab.topology import REPO
from tests.lab.kubeapi_fixtures import kubeapi, kubectl  # noqa: F401  pylint: disable=unused-import
from lab.testlib.apiserver import LabApi

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def namespace(kubeapi: LabApi, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    manifest = tmp_path_factory.mktemp("ns") / "ns.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: k8sedge}\n")
    kubectl(kubeapi, "apply", "-f", str(manifest))
    return "k8sedge"


@pytest.fixture
def lease(kubeapi: LabApi, namespace: str, request: pytest.FixtureRequest) -> Iterator[Lease]:  # noqa: F811
    name = request.node.name.replace("_", "-")[:60].strip("-")
    yield Lease(k8s.connect(AuthOptions(kubeconfig=str(kubeapi.reader_kubeconfig))), namespace, name, timeout=10)


def holder_of(kubeapi: LabApi, lease: Lease) -> str:  # noqa: F811
    return json.loads(kubectl(kubeapi, "get", "lease", "-n", lease.namespace, lease.name, "-o", "json").stdout)["spec"].get(
        "holderIdentity", "")


def test_take_renew_release(kubeapi: LabApi, lease: Lease) -> None:  # noqa: F811
    assert take(lease, "awx/site", 900, 0).action == "create"
    assert holder_of(kubeapi, lease) == "awx/site"
    assert take(lease, "awx/site", 900, 0).action == "renew"
    assert give_up(lease, "k8sedge-watch@ctl") is False  # not its Lease
    assert give_up(lease, "awx/site") is True
    assert holder_of(kubeapi, lease) == ""
    taken = take(lease, "k8sedge-watch@ctl", 900, 0)
    assert (taken.action, taken.previous.holder) == ("take", "")
    assert lease.read()["spec"]["leaseTransitions"] == 1


def test_another_holder_is_waited_for_then_named(lease: Lease) -> None:
    take(lease, "k8sedge-watch@ctl", 900, 0)
    started = time.monotonic()
    with pytest.raises(LeaseHeld) as refused:
        take(lease, "awx/site", 900, 1.0)
    assert time.monotonic() - started >= 1.0
    message = str(refused.value)
    assert message.startswith(f"Lease k8sedge/{lease.name} is held by 'k8sedge-watch@ctl' until ")
    assert "waited 1 s for it" in message and f"kubectl -n k8sedge get lease {lease.name}" in message
    assert peek(lease, "awx/site", 900).action == "wait"


def test_a_lease_run_out_is_taken_over_and_a_release_is_waited_for(lease: Lease) -> None:
    take(lease, "crashed@ctl", 1, 0)
    taken = take(lease, "awx/site", 900, 5)  # it runs out a second after its renewal
    assert (taken.action, taken.previous.holder) == ("take", "crashed@ctl")
    assert 0 < taken.waited < 5
    # A holder that gives it up lets the waiter in at once, not when its duration is over.
    releaser = threading.Timer(0.5, give_up, (lease, "awx/site"))
    releaser.start()
    taken = take(lease, "k8sedge-watch@ctl", 900, 10)
    releaser.join()
    assert taken.action == "take" and taken.waited < 5


def test_two_takers_at_once_one_wins(lease: Lease) -> None:
    """The resourceVersion read is the one written: a race ends with one holder, the other waits."""
    results: dict[str, object] = {}

    def attempt(holder: str) -> None:
        try:
            results[holder] = take(lease, holder, 900, 0).action
        except LeaseHeld as err:
            results[holder] = err

    threads = [threading.Thread(target=attempt, args=(f"taker-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [h for h, r in results.items() if r in ("create", "take")]
    assert len(winners) == 1, results
    assert all(isinstance(r, LeaseHeld) for h, r in results.items() if h not in winners)
    assert lease.read()["spec"]["holderIdentity"] == winners[0]


def test_keeper_holds_while_any_thread_needs_it_and_renews(kubeapi: LabApi, lease: Lease) -> None:  # noqa: F811
    said: list[str] = []
    keeper = Keeper(lease, "k8sedge-watch@ctl", 3, said.append)
    with keeper.held(0):
        renewed = lease.read()["spec"]["renewTime"]
        with keeper.held(0):  # the fast path inside a playbook run: one hold
            pass
        assert holder_of(kubeapi, lease) == "k8sedge-watch@ctl"
        deadline = time.monotonic() + 10
        while lease.read()["spec"]["renewTime"] == renewed:  # renewed every second (3 s / 3)
            assert time.monotonic() < deadline, "the keeper did not renew the Lease"
            time.sleep(0.2)
        with pytest.raises(LeaseHeld, match="is held by 'k8sedge-watch@ctl'"):
            take(lease, "awx/site", 900, 0)
    assert holder_of(kubeapi, lease) == ""
    assert said == []


def test_a_forbidden_namespace_says_what_to_grant(kubeapi: LabApi) -> None:  # noqa: F811
    elsewhere = Lease(k8s.connect(AuthOptions(kubeconfig=str(kubeapi.reader_kubeconfig))), "default", "k8sedge-rollout", 10)
    with pytest.raises(LeaseError, match=r"^Lease default/k8sedge-rollout: GET: 403 Forbidden: .*docs/rbac.yaml's Role"):
        take(elsewhere, "awx/site", 900, 0)


def ansible_module(kubeapi: LabApi, check: bool = False, **args: object) -> dict:  # noqa: F811
    """The module's result, as `ansible localhost -m k8sedge.lb.rollout_lease -o` prints it."""
    command = [str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-m", "k8sedge.lb.rollout_lease",
               "-a", json.dumps({"kubeconfig": str(kubeapi.reader_kubeconfig), **args}), "-o"]
    if check:
        command.append("--check")
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False).stdout
    status, result = out.split(" => ", 1)
    return {**json.loads(result), "status": status.split(" | ")[1]}


def test_the_module_as_a_playbook_runs_it(kubeapi: LabApi, namespace: str) -> None:  # noqa: F811
    base = {"name": "module-test"}
    taken = ansible_module(kubeapi, holder="awx/site", **base)
    assert (taken["action"], taken["held"], taken["changed"]) == ("create", True, True)
    planned = ansible_module(kubeapi, holder="k8sedge-watch@ctl", **base, check=True)
    assert (planned["action"], planned["previous_holder"], planned["status"]) == ("wait", "awx/site", "SUCCESS")
    refused = ansible_module(kubeapi, holder="k8sedge-watch@ctl", wait=0, **base)
    assert refused["status"] == "FAILED!"
    assert refused["msg"].startswith("Lease k8sedge/module-test is held by 'awx/site' until ")
    renewed = ansible_module(kubeapi, holder="awx/site", **base)
    assert (renewed["action"], renewed["held"]) == ("renew", True)
    released = ansible_module(kubeapi, holder="awx/site", state="absent", **base)
    assert (released["action"], released["changed"]) == ("release", True)
    assert ansible_module(kubeapi, holder="awx/site", state="absent", **base)["changed"] is False
    assert ansible_module(kubeapi, holder="k8sedge-watch@ctl", wait=0, **base)["action"] == "take"


def test_a_run_that_fails_after_taking_the_lease_gives_it_up_at_its_end(kubeapi: LabApi, namespace: str,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    """The project's ansible.cfg enables the callback k8sedge.lb.rollout_lease: a run that holds the
    Lease and stopped before its last play (here: a task that fails) gives it up as it ends, also
    one that renewed what an earlier run of its holder left; a Lease the run did not take (the
    watcher's, around its runs) is left alone."""
    playbook = tmp_path / "fails.yml"
    playbook.write_text(f"""\
- hosts: localhost
  gather_facts: false
  tasks:
    - k8sedge.lb.rollout_lease: {{kubeconfig: {kubeapi.reader_kubeconfig}, name: callback-test, holder: "{{{{ holder }}}}", wait: 0}}
    - ansible.builtin.fail: {{msg: the canary failed}}
""")

    def run(holder: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-e", f"holder={holder}"],
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)

    failed = run("awx/site")
    assert failed.returncode == 2, failed.stdout[-2000:]
    assert "k8sedge: the run ended before its last play: gave up Lease k8sedge/callback-test (awx/site)" in failed.stdout
    lease = Lease(k8s.connect(AuthOptions(kubeconfig=str(kubeapi.reader_kubeconfig))), namespace, "callback-test", 10)
    assert "holderIdentity" not in lease.read()["spec"]
    take(lease, "awx/site", 900, 0)  # left by a run of the same holder that could not give it up
    renewed = run("awx/site")
    assert "gave up Lease k8sedge/callback-test (awx/site)" in renewed.stdout, renewed.stdout[-2000:]
    assert "holderIdentity" not in lease.read()["spec"]
    take(lease, "k8sedge-watch@ctl", 900, 0)  # the watcher's: its runs do not take it
    other = run("someone@else")
    assert other.returncode == 2 and "gave up" not in other.stdout, other.stdout[-2000:]
    assert lease.read()["spec"]["holderIdentity"] == "k8sedge-watch@ctl"
