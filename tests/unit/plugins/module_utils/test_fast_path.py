"""The watcher's fast path (module_utils/_fast_path.py): the edges from runtime_hosts.yml, the plan
per host (the role's view and guard on the running servers), and the apply against a stats socket
that keeps state the way haproxy does."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils import _fast_path as fp
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import ADMIN_FDRAIN, ADMIN_FMAINT
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewOptions, haproxy_view

MODEL = yaml.safe_load((Path(__file__).parent / "fixtures" / "haproxy_view_model.yaml").read_text())
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
OPTIONS = ViewOptions(udp_frontends="skip", certificates={"web": {"cert": PEM_CERT, "key": PEM_KEY}})
HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change"
          " srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id"
          " srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port")
LAB_HOST = {  # what playbooks/runtime_hosts.yml writes for a lab edge
    "engine": "haproxy", "connection": "ssh", "address": "10.213.0.11", "user": "root", "port": None,
    "private_key": "/work/.lab/ssh/id_ed25519", "ssh_args": "-o UserKnownHostsFile=/work/.lab/ssh/known_hosts -o StrictHostKeyChecking=yes ",
    "become": False, "become_method": "sudo", "socket": "/run/haproxy/admin.sock", "pools": ["default"],
    "certificates": {"web": {"cert": PEM_CERT, "key": PEM_KEY}}, "slots": 10, "admin_address": "127.0.0.1", "admin_port": 8404,
    "bind_address": "", "udp_frontends": "skip", "max_removed_share": 0.3, "override": False,
}


def host(name: str = "edge1", **changes: Any) -> fp.EdgeHost:
    return fp.EdgeHost(name, "haproxy", "10.0.0.1", view=OPTIONS, **changes)


def with_targets(backend: str, targets: list[tuple[str, int]], model: dict[str, Any] = MODEL) -> dict[str, Any]:
    model = copy.deepcopy(model)
    for entry in model["backends"]:
        if entry["name"] == backend:
            entry["targets"] = [{"address": a, "port": p, "node": "node1", "zone": "lab-a", "state": "ready"} for a, p in targets]
    return model


S2 = [("10.213.0.21", 31780), ("10.213.0.22", 31780)]


class FakeHaproxy:
    """The stats socket of a worker started from the role's config for `model`: its servers as
    the config declares them, changed by `set server`/`set weight` as haproxy changes them."""

    def __init__(self, model: dict[str, Any], refuse: str = "") -> None:
        view = haproxy_view(copy.deepcopy(model), OPTIONS)
        self.structure = view["structure"]
        self.refuse = refuse
        self.servers: dict[tuple[str, str], list[Any]] = {}
        for backend in view["backends"]:
            for s in backend["servers"]:
                maint = s["state"] == "maint"
                self.servers[(backend["name"], s["name"])] = [
                    "0.0.0.0" if maint else s["address"], 0 if maint else s["port"], 0x05 if maint else 0, 0 if s["state"] == "drain" else 1]
        self.received: list[list[str]] = []

    def show(self) -> str:
        lines = [f"3 {b} 1 {s} {a} 2 {admin} {weight} 1 7 6 3 4 6 0 0 0 - {port} - 0 0 - - 0"
                 for (b, s), (a, port, admin, weight) in sorted(self.servers.items())]
        return "\n".join(["1", HEADER, *lines]) + "\n"

    def answer(self, command: str) -> str:
        if command == "show servers state":
            return self.show()
        if command == "get var proc.k8sedge_structure":
            return f"proc.k8sedge_structure: type=str value=<{self.structure}>\n"
        if self.refuse and command.startswith(self.refuse):
            return "No such server.\n"
        match = re.fullmatch(r"set (server|weight) ([^/ ]+)/(\S+) (.*)", command)
        server = self.servers.get((match.group(2), match.group(3))) if match else None
        if server is None:
            return "Unknown command.\n"
        words = match.group(4).split()
        if match.group(1) == "weight":
            server[3] = int(words[0])
        elif words[0] == "addr":
            server[0], server[1] = words[1], int(words[3])
        elif words[1] == "ready":
            server[2] &= ~(ADMIN_FMAINT | ADMIN_FDRAIN)
        elif words[1] == "drain":
            server[2] = (server[2] | ADMIN_FDRAIN) & ~ADMIN_FMAINT
        else:
            server[2] |= ADMIN_FMAINT
        return "\n"

    def exchange(self, _host: fp.EdgeHost, commands: list[str]) -> list[str]:
        self.received.append(commands)
        return [self.answer(c) for c in commands]


# --- the edges from the inventory ---------------------------------------------------------------

def test_hosts_from_reads_what_runtime_hosts_writes():
    nginx = {**LAB_HOST, "engine": "nginx", "address": "10.213.0.12"}
    edge1, edge2 = fp.hosts_from({"edge2": nginx, "edge1": LAB_HOST})
    assert (edge1.name, edge1.address, edge1.user, edge1.port, edge1.unsupported) == ("edge1", "10.213.0.11", "root", None, "")
    assert edge1.ssh_args == ("-o", "UserKnownHostsFile=/work/.lab/ssh/known_hosts", "-o", "StrictHostKeyChecking=yes")
    assert edge1.view.pools == ("default",) and edge1.view.slots == 10 and edge1.max_removed_share == 0.3
    assert edge2.unsupported.startswith("engine nginx: no runtime API")


@pytest.mark.parametrize("change, unsupported", [
    ({"connection": "local"}, "connection local: the fast path speaks OpenSSH only"),
    ({"become": True, "become_method": "su"}, "become_method su: the fast path becomes root with sudo -n only"),
    ({"become": True}, ""),
    ({"connection": "smart", "port": 2222}, ""),
])
def test_hosts_the_fast_path_cannot_reach_are_named(change, unsupported):
    assert fp.hosts_from({"edge1": {**LAB_HOST, **change}})[0].unsupported == unsupported


@pytest.mark.parametrize("change, message", [
    ({"address": "-oProxyCommand=x"}, r"edge host edge1: address: expected a host name or address"),
    ({"user": "root -x"}, r"edge host edge1: user: expected a user name"),
    ({"port": 70000}, r"edge host edge1: port: expected a port 1-65535"),
    ({"private_key": "-i"}, r"private_key: expected a file path"),
    ({"socket": "admin.sock"}, r"socket: expected an absolute path"),
    ({"ssh_args": "-o 'open"}, r"ssh_args: No closing quotation"),
    ({"max_removed_share": 2}, r"max_removed_share: expected a share from 0 to 1"),
    ({"engine": "envoy"}, r"engine: expected haproxy or nginx"),
    ({"certificates": "secret"}, r"certificates: expected name -> \{cert, key\}, got \(not shown\)"),
    ({"slots": 0}, r"edge host edge1: options: slots: expected a number of server slots"),
    ({"certificates": {"web": {"cert": "x", "key": PEM_KEY}}}, r"edge host edge1: certificate \"web\": cert: expected a PEM string"),
])
def test_bad_host_variables_are_refused_by_name(change, message):
    with pytest.raises(fp.FastPathError, match=message):
        fp.hosts_from({"edge1": {**LAB_HOST, **change}})


def test_no_hosts_is_refused():
    with pytest.raises(fp.FastPathError, match="at least one host"):
        fp.hosts_from({})


# --- the plan per host ------------------------------------------------------------------------

def test_a_host_on_the_model_needs_nothing():
    haproxy = FakeHaproxy(MODEL)
    plan = fp.plan_host(MODEL, host(), *haproxy.exchange(host(), list(fp.READ)))
    assert plan.commands == () and plan.generation == MODEL["generation"]


def test_a_new_target_takes_the_lowest_free_slot():
    haproxy = FakeHaproxy(MODEL)
    model = with_targets("default_s2_80", [*S2, ("10.213.0.23", 31780)])
    plan = fp.plan_host(model, host(), *haproxy.exchange(host(), list(fp.READ)))
    assert plan.commands == ("set server default_s2_80/s3 addr 10.213.0.23 port 31780", "set server default_s2_80/s3 state ready")


def test_targets_keep_their_running_slots():
    """A target the config put in s2 but that runs in s5 (moved at runtime) stays in s5."""
    haproxy = FakeHaproxy(MODEL)
    haproxy.servers[("default_s2_80", "s5")] = haproxy.servers.pop(("default_s2_80", "s2"))
    haproxy.servers[("default_s2_80", "s2")] = ["0.0.0.0", 0, 0x05, 1]
    assert fp.plan_host(MODEL, host(), *haproxy.exchange(host(), list(fp.READ))).commands == ()
    model = with_targets("default_s2_80", [S2[1], ("10.213.0.23", 31780)])
    assert fp.plan_host(model, host(), *haproxy.exchange(host(), list(fp.READ))).commands == (
        "set server default_s2_80/s1 addr 10.213.0.23 port 31780",)


def test_a_structural_difference_is_left_to_the_playbook():
    model = copy.deepcopy(MODEL)
    model["frontends"][0]["routes"][0]["path"] = "/api/v2"
    haproxy = FakeHaproxy(MODEL)
    with pytest.raises(fp.FastPathError, match=r"edge1: haproxy runs structure \w{12}, the model needs \w{12}: more than server slots"):
        fp.plan_host(model, host(), *haproxy.exchange(host(), list(fp.READ)))


def test_more_targets_than_slots_is_a_structural_difference():
    haproxy = FakeHaproxy(MODEL)
    model = with_targets("default_s2_80", [(f"10.213.0.{i}", 31780) for i in range(21, 32)])
    with pytest.raises(fp.FastPathError, match="more than server slots differ"):
        fp.plan_host(model, host(), *haproxy.exchange(host(), list(fp.READ)))


def test_the_fail_static_guard_compares_with_the_running_servers():
    haproxy = FakeHaproxy(MODEL)
    emptied = with_targets("default_s2_80", [])
    # The emptied backend is held at its running servers; nothing to send.
    assert fp.plan_host(emptied, host(), *haproxy.exchange(host(), list(fp.READ))).commands == ()
    plan = fp.plan_host(emptied, host(override=True), *haproxy.exchange(host(), list(fp.READ)))
    assert plan.commands == ("set server default_s2_80/s1 state maint", "set server default_s2_80/s2 state maint")
    with pytest.raises(fp.FastPathError, match=r"fail-static: edge1: 1 of \d+ targets .* more than the 0% allowed"):
        fp.plan_host(with_targets("default_s2_80", S2[:1]), host(max_removed_share=0.0), *haproxy.exchange(host(), list(fp.READ)))


def test_an_unreadable_answer_is_left_to_the_playbook():
    with pytest.raises(fp.FastPathError, match="edge1: show servers state: expected format version 1"):
        fp.plan_host(MODEL, host(), "Permission denied.\n", "")


def test_remaining_checks_each_answer_and_what_is_left():
    haproxy = FakeHaproxy(MODEL)
    model = with_targets("default_s2_80", [*S2, ("10.213.0.23", 31780)])
    plan = fp.plan_host(model, host(), *haproxy.exchange(host(), list(fp.READ)))
    assert fp.remaining(plan, plan.commands, ["\n", "\n", haproxy.show()]) == list(plan.commands)
    with pytest.raises(fp.FastPathError, match="haproxy refused 'set server default_s2_80/s3 addr"):
        fp.remaining(plan, plan.commands, ["No such server.\n", "\n", haproxy.show()])
    with pytest.raises(fp.FastPathError, match="expected 3 answers from the stats socket, got 1"):
        fp.remaining(plan, plan.commands, [haproxy.show()])


# --- the apply, every host at once ----------------------------------------------------------------

def test_apply_takes_every_host_to_the_model_in_two_round_trips():
    edges = {"edge1": FakeHaproxy(MODEL), "edge2": FakeHaproxy(MODEL)}
    core = fp.FastPath([host("edge1"), host("edge2")], lambda h, commands: edges[h.name].exchange(h, commands))
    model = with_targets("default_s2_80", [S2[0], ("10.213.0.23", 31780)])  # one replaced
    try:
        outcomes = core.apply(model)
        assert [(o.host, o.status) for o in outcomes] == [("edge1", "applied"), ("edge2", "applied")]
        assert outcomes[0].commands == ("set server default_s2_80/s2 addr 10.213.0.23 port 31780",)
        for haproxy in edges.values():
            assert len(haproxy.received) == 2 and haproxy.received[1][-1] == "show servers state"
            assert haproxy.servers[("default_s2_80", "s2")][:3] == ["10.213.0.23", 31780, 0]
        assert [o.status for o in core.apply(model)] == ["current", "current"]
    finally:
        core.close()


def test_apply_says_why_a_host_is_left_to_the_playbook():
    edges = {"edge1": FakeHaproxy(MODEL, refuse="set server default_s2_80/s3 state"), "edge3": FakeHaproxy(MODEL)}

    def exchange(h: fp.EdgeHost, commands: list[str]) -> list[str]:
        if h.name == "edge2":
            raise fp.FastPathError("edge2: exit 255: Host key verification failed.")
        return edges[h.name].exchange(h, commands)

    hosts = [host("edge1"), host("edge2"), host("edge3", unsupported="engine nginx: no runtime API")]
    core = fp.FastPath(hosts, exchange)
    try:
        outcomes = core.apply(with_targets("default_s2_80", [*S2, ("10.213.0.23", 31780)]))
    finally:
        core.close()
    assert [(o.host, o.status) for o in outcomes] == [("edge1", "fallback"), ("edge2", "fallback"), ("edge3", "skipped")]
    assert "haproxy refused 'set server default_s2_80/s3 state ready': No such server." in outcomes[0].reason
    assert outcomes[1].reason == "edge2: exit 255: Host key verification failed."
    assert edges["edge3"].received == []


# --- SSH ------------------------------------------------------------------------------------------

def test_ssh_forces_strict_host_keys_before_the_inventory_s_options(tmp_path):
    edge = fp.hosts_from({"edge1": {**LAB_HOST, "port": 2222, "ssh_args": "-o StrictHostKeyChecking=no"}})[0]
    argv = fp.Ssh(edge, tmp_path).argv("-o", "ControlMaster=no")
    assert argv[:3] == ["ssh", "-o", "StrictHostKeyChecking=yes"]
    assert argv.index("StrictHostKeyChecking=yes") < argv.index("StrictHostKeyChecking=no")
    assert f"ControlPath={tmp_path / 'edge1'}" in argv and "BatchMode=yes" in argv
    assert argv[argv.index("-i") + 1] == "/work/.lab/ssh/id_ed25519"
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "root"


def test_the_remote_program_is_python_that_compiles():
    compile(fp.REMOTE, "remote", "exec")


def test_ssh_that_cannot_connect_says_so(tmp_path):
    """Nothing listens on loopback port 1: the master fails at once, and an exchange, which opens
    the master first, fails the same way."""
    ssh = fp.Ssh(fp.EdgeHost("edge1", "haproxy", "127.0.0.1", port=1), tmp_path, timeout=3)
    with pytest.raises(fp.FastPathError, match=r"edge1: ssh 127.0.0.1: exit 255: .*(refused|Connection)"):
        ssh.open()
    with pytest.raises(fp.FastPathError, match=r"edge1: ssh 127.0.0.1: exit 255"):
        ssh.exchange(list(fp.READ))
    ssh.close()
