"""The watcher's fast path (module_utils/_fast_path.py): the edges from runtime_hosts.yml, the plan
per host (the role's view and guard on the running servers), the apply with the haproxy_runtime
module's Cli against a real haproxy started from the role's config, and the SSH forward that
carries it: its command line, and end to end through a real sshd on loopback.

The sshd runs unprivileged (as nobody, so the tests need root to start it), which makes nobody
the login user: the stats socket is handed to nobody where an edge has root log in and own it.
Every process is stopped by its PID.
"""
from __future__ import annotations

import copy
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.k8sedge.lb.plugins.module_utils import _fast_path as fp
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_runtime import (
    Cli, CliError, current_slots, parse_servers_state, plan)
from ansible_collections.k8sedge.lb.plugins.module_utils._haproxy_view import ViewOptions, haproxy_view
from lab.testlib.role_render import NOT_RUNNING, loaded_roles
from lab.topology import REPO

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
    "become": False, "socket": "/run/haproxy/admin.sock", "pools": ["default"],
    "certificates": {"web": {"cert": PEM_CERT, "key": PEM_KEY}}, "slots": 10, "admin_address": "127.0.0.1", "admin_port": 8404,
    "bind_address": "", "udp_frontends": "skip", "max_removed_share": 0.3, "override": False,
}
LOOPBACK = "127.0.0.1"
HAPROXY, SSH, SSHD = shutil.which("haproxy"), shutil.which("ssh"), shutil.which("sshd") or "/usr/sbin/sshd"
needs_haproxy = pytest.mark.skipif(not HAPROXY or os.geteuid() != 0,
                                   reason="haproxy (make setup installs it), run as root: the role's config drops privileges to haproxy")
needs_sshd = pytest.mark.skipif(not SSH or not Path(SSHD).exists() or os.geteuid() != 0,
                                reason="OpenSSH's client and server, and root to run sshd as nobody")


def host(name: str = "edge1", **changes: Any) -> fp.EdgeHost:
    return fp.EdgeHost(name, "haproxy", "10.0.0.1", view=OPTIONS, **changes)


def with_targets(backend: str, targets: list[tuple[str, int]], model: dict[str, Any] = MODEL) -> dict[str, Any]:
    model = copy.deepcopy(model)
    for entry in model["backends"]:
        if entry["name"] == backend:
            entry["targets"] = [{"address": a, "port": p, "node": "node1", "zone": "lab-a", "state": "ready"} for a, p in targets]
    return model


S2 = [("10.213.0.21", 31780), ("10.213.0.22", 31780)]


def started_from(model: dict[str, Any], options: ViewOptions = OPTIONS) -> tuple[dict[tuple[str, str], Any], str]:
    """`show servers state` and the structure digest of a worker started from the role's config
    for `model`: its servers as the config declares them (a free slot `disabled`, 0.0.0.0:0)."""
    view = haproxy_view(copy.deepcopy(model), options)
    lines = []
    for backend in view["backends"]:
        for s in backend["servers"]:
            maint = s["state"] == "maint"
            address, port, admin, weight = ("0.0.0.0", 0, 5, 1) if maint else (s["address"], s["port"], 0, 0 if s["state"] == "drain" else 1)
            lines.append(f"3 {backend['name']} 1 {s['name']} {address} 2 {admin} {weight} 1 7 6 3 4 6 0 0 0 - {port} - 0 0 - - 0")
    return parse_servers_state("\n".join(["1", HEADER, *lines]) + "\n"), view["structure"]


def commands(model: dict[str, Any], edge: fp.EdgeHost, servers: dict[tuple[str, str], Any], structure: str) -> list[str]:
    """What the fast path would send: the module's plan toward plan_host()'s slots."""
    return plan(fp.plan_host(model, edge, servers, structure).runtime, servers)


# --- the edges from the inventory ---------------------------------------------------------------

def test_runtime_hosts_yml_resolves_the_edges_without_reaching_them(tmp_path: Path):
    """The play asks edge_haproxy for the view's inputs (the inventory's, else the role's
    defaults) and connects to no host: these addresses answer nothing."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"edges": {"hosts": {
        "edge1": {"ansible_host": "192.0.2.11", "ansible_user": "root", "ansible_port": 2222, "edge_haproxy_slots": 20,
                  "ansible_ssh_common_args": "-o UserKnownHostsFile=/k/known_hosts"},
        "edge2": {"ansible_host": "192.0.2.12", "k8sedge_engine": "nginx"}}}}))
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "playbooks/runtime_hosts.yml",
                          "-e", json.dumps({"k8sedge_runtime_hosts_file": str(tmp_path / "out.json"), "k8sedge_pools": ["default", "blue"]})],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o600
    edge1, edge2 = fp.hosts_from(json.loads((tmp_path / "out.json").read_text()))
    assert (edge1.address, edge1.user, edge1.port, edge1.ssh_args, edge1.unsupported) == (
        "192.0.2.11", "root", 2222, ("-o", "UserKnownHostsFile=/k/known_hosts"), "")
    assert (edge1.socket, edge1.view.slots, edge1.view.admin_port, edge1.view.pools) == ("/run/haproxy/admin.sock", 20, 8404, ("default", "blue"))
    assert edge2.unsupported.startswith("engine nginx")


def test_hosts_from_reads_what_runtime_hosts_writes():
    nginx = {**LAB_HOST, "engine": "nginx", "address": "10.213.0.12"}
    edge1, edge2 = fp.hosts_from({"edge2": nginx, "edge1": LAB_HOST})
    assert (edge1.name, edge1.address, edge1.user, edge1.port, edge1.unsupported) == ("edge1", "10.213.0.11", "root", None, "")
    assert edge1.ssh_args == ("-o", "UserKnownHostsFile=/work/.lab/ssh/known_hosts", "-o", "StrictHostKeyChecking=yes")
    assert edge1.view.pools == ("default",) and edge1.view.slots == 10 and edge1.max_removed_share == 0.3
    assert edge2.unsupported.startswith("engine nginx: no runtime API")


@pytest.mark.parametrize("change, unsupported", [
    ({"connection": "local"}, "connection local: the fast path speaks OpenSSH only"),
    ({"user": "deploy", "become": True}, "login user deploy with become: the fast path reaches the stats socket /run/haproxy/admin.sock"
                                         " through an SSH forward, as the login user, and the role keeps it root's (mode 0600)"),
    ({"user": "deploy"}, "login user deploy: the fast path reaches"),
    ({"user": "", "become": True}, "login user (SSH default) with become: "),
    ({"user": ""}, ""),  # the SSH config's user, root as the playbooks need without become
    ({"become": True}, ""),  # root that also becomes root
    ({"connection": "smart", "port": 2222}, ""),
])
def test_hosts_the_fast_path_cannot_reach_are_named(change, unsupported):
    found = fp.hosts_from({"edge1": {**LAB_HOST, **change}})[0].unsupported
    assert found.startswith(unsupported) and bool(found) == bool(unsupported)


@pytest.mark.parametrize("change, message", [
    ({"address": "-oProxyCommand=x"}, r"edge host edge1: address: expected a host name or address"),
    ({"user": "root -x"}, r"edge host edge1: user: expected a user name"),
    ({"port": 70000}, r"edge host edge1: port: expected a port 1-65535"),
    ({"private_key": "-i"}, r"private_key: expected a file path"),
    ({"socket": "admin.sock"}, r"socket: expected an absolute path"),
    ({"socket": "/run/a:/etc/shadow"}, r"socket: expected an absolute path"),
    ({"ssh_args": "-o 'open"}, r"ssh_args: No closing quotation"),
    ({"max_removed_share": 2}, r"max_removed_share: expected a share from 0 to 1"),
    ({"engine": "envoy"}, r"engine: expected haproxy or nginx"),
    ({"certificates": "secret"}, r"certificates: expected name -> \{cert, key\}, got \(not shown\)"),
    ({"slots": 0}, r"edge host edge1: options: slots: expected a number of server slots"),
    ({"certificates": {"web": {"cert": "x", "key": PEM_KEY}}}, r"edge host edge1: certificate \"web\": cert: expected PEM"),
])
def test_bad_host_variables_are_refused_by_name(change, message):
    with pytest.raises(fp.FastPathError, match=message):
        fp.hosts_from({"edge1": {**LAB_HOST, **change}})


def test_no_hosts_is_refused():
    with pytest.raises(fp.FastPathError, match="at least one host"):
        fp.hosts_from({})


# --- the plan per host (pure) -----------------------------------------------------------------

def test_a_host_on_the_model_needs_nothing():
    servers, structure = started_from(MODEL)
    assert fp.plan_host(MODEL, host(), servers, structure).generation == MODEL["generation"]
    assert commands(MODEL, host(), servers, structure) == []


def test_a_new_target_takes_the_lowest_free_slot():
    model = with_targets("default_s2_80", [*S2, ("10.213.0.23", 31780)])
    assert commands(model, host(), *started_from(MODEL)) == [
        "set server default_s2_80/s3 addr 10.213.0.23 port 31780", "set server default_s2_80/s3 state ready"]


def test_targets_keep_their_running_slots():
    """A target the config put in s2 but that runs in s5 (moved at runtime) stays in s5."""
    servers, structure = started_from(MODEL)
    servers[("default_s2_80", "s5")] = replace(servers[("default_s2_80", "s2")], name="s5")
    servers[("default_s2_80", "s2")] = replace(servers[("default_s2_80", "s2")], address="0.0.0.0", port=0, admin=5)
    assert commands(MODEL, host(), servers, structure) == []
    model = with_targets("default_s2_80", [S2[1], ("10.213.0.23", 31780)])
    assert commands(model, host(), servers, structure) == ["set server default_s2_80/s1 addr 10.213.0.23 port 31780"]


def test_a_structural_difference_is_left_to_the_playbook():
    model = copy.deepcopy(MODEL)
    model["frontends"][0]["routes"][0]["path"] = "/api/v2"
    with pytest.raises(fp.FastPathError, match=r"edge1: haproxy runs structure \w{12}, the model needs \w{12}: more than server slots"):
        fp.plan_host(model, host(), *started_from(MODEL))
    with pytest.raises(fp.FastPathError, match="edge1: haproxy runs structure unknown"):
        fp.plan_host(MODEL, host(), started_from(MODEL)[0], "")


def test_more_targets_than_slots_is_a_structural_difference():
    model = with_targets("default_s2_80", [(f"10.213.0.{i}", 31780) for i in range(21, 32)])
    with pytest.raises(fp.FastPathError, match="more than server slots differ"):
        fp.plan_host(model, host(), *started_from(MODEL))


def test_the_fail_static_guard_compares_with_the_running_servers():
    running = started_from(MODEL)
    emptied = with_targets("default_s2_80", [])
    # The emptied backend is held at its running servers; nothing to send.
    assert commands(emptied, host(), *running) == []
    assert commands(emptied, host(override=True), *running) == ["set server default_s2_80/s1 state maint", "set server default_s2_80/s2 state maint"]
    with pytest.raises(fp.FastPathError, match=r"fail-static: edge1: 1 of \d+ targets .* more than the 0% allowed"):
        fp.plan_host(with_targets("default_s2_80", S2[:1]), host(max_removed_share=0.0), *running)


# --- the apply, with the module's Cli, on a real haproxy ------------------------------------------

def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def on_loopback(model: dict[str, Any]) -> dict[str, Any]:
    """The model with every frontend on a free loopback port and every target on a loopback
    address where nothing listens: haproxy's checks fail at once and nothing leaves the host."""
    model = copy.deepcopy(model)
    for frontend, port in zip(model["frontends"], free_ports(len(model["frontends"]))):
        frontend["port"] = port
    for backend in model["backends"]:
        for i, target in enumerate(backend["targets"]):
            target["address"] = f"127.0.0.{21 + i}"
    return model


EDGE_MODEL = on_loopback(MODEL)
LOOPBACK_S2 = [("127.0.0.21", 31780), ("127.0.0.22", 31780)]


@dataclass
class Edge:
    """haproxy started from edge_haproxy's config for EDGE_MODEL; its stats socket in a directory
    every user may pass through (the socket itself is root's, mode 0600, as the role makes it)."""

    socket: str
    options: ViewOptions
    process: subprocess.Popen[bytes]

    def servers(self) -> dict[str, dict[str, dict[str, Any]]]:
        return current_slots(Cli(self.socket).servers())


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(name="edge")
def fixture_edge(tmp_path: Path) -> Iterator[Edge]:
    shared = Path(tempfile.mkdtemp(prefix="k8sedge-edge-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        shared.chmod(0o711)
        (tmp_path / "chroot").mkdir()
        options = ViewOptions(udp_frontends="skip", bind_address=LOOPBACK, admin_port=free_ports(1)[0])
        params = {"edge_haproxy_model": EDGE_MODEL, "edge_haproxy_bind_address": LOOPBACK, "edge_haproxy_admin_port": options.admin_port,
                  "edge_haproxy_chroot": str(tmp_path / "chroot"), "edge_haproxy_stats_socket": str(shared / "admin.sock"),
                  "edge_haproxy_state_dir": str(tmp_path / "state"), "__edge_haproxy_config_dir": str(tmp_path / "etc")}
        with loaded_roles() as roles:
            variables = roles["haproxy"].run(params, NOT_RUNNING)
            config = Path(roles["haproxy"].value(variables, "__edge_haproxy_staging")) / "haproxy.cfg"
        log = tmp_path / "haproxy.log"
        with log.open("wb") as out:
            process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        edge = Edge(str(shared / "admin.sock"), options, process)
        deadline = time.monotonic() + 10
        while True:
            try:
                Cli(edge.socket, timeout=1).run("show info")
                break
            except CliError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"haproxy did not answer on {edge.socket}:\n{log.read_text()}")
                time.sleep(0.05)
        yield edge
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(shared, ignore_errors=True)


def on(edge: Edge, name: str = "edge1", **changes: Any) -> fp.EdgeHost:
    return fp.EdgeHost(name, "haproxy", LOOPBACK, socket=edge.socket, view=edge.options, **changes)


@needs_haproxy
def test_apply_takes_haproxy_to_the_model_and_then_finds_it_current(edge: Edge):
    model = with_targets("default_s2_80", [LOOPBACK_S2[0], ("127.0.0.23", 31780)], EDGE_MODEL)  # one replaced
    core = fp.FastPath([on(edge)], lambda h: Cli(h.socket))
    try:
        [outcome] = core.apply(model)
        assert (outcome.status, outcome.commands) == ("applied", ("set server default_s2_80/s2 addr 127.0.0.23 port 31780",)), outcome
        assert edge.servers()["default_s2_80"]["s2"] == {"address": "127.0.0.23", "port": 31780, "state": "ready"}
        assert [o.status for o in core.apply(model)] == ["current"]
        # A new target in a free slot: the address, then out of maintenance, as the role does it.
        grown = with_targets("default_s2_80", [LOOPBACK_S2[0], ("127.0.0.23", 31780), ("127.0.0.24", 31780)], EDGE_MODEL)
        [outcome] = core.apply(grown)
        assert outcome.commands == ("set server default_s2_80/s3 addr 127.0.0.24 port 31780", "set server default_s2_80/s3 state ready")
        assert edge.servers()["default_s2_80"]["s3"] == {"address": "127.0.0.24", "port": 31780, "state": "ready"}
    finally:
        core.close()


@needs_haproxy
def test_apply_says_why_a_host_is_left_to_the_playbook(edge: Edge):
    before = edge.servers()

    def connect(h: fp.EdgeHost) -> Cli:
        if h.name == "edge2":
            raise fp.FastPathError("edge2: ssh 10.0.0.2: exit 255: Host key verification failed.")
        return Cli(h.socket)

    changed = copy.deepcopy(with_targets("default_s2_80", [*LOOPBACK_S2, ("127.0.0.23", 31780)], EDGE_MODEL))
    changed["frontends"][0]["routes"][0]["path"] = "/api/v2"  # and a structural change
    hosts = [on(edge, "edge1"), on(edge, "edge2"), on(edge, "edge3", unsupported="engine nginx: no runtime API")]
    core = fp.FastPath(hosts, connect)
    try:
        outcomes = core.apply(changed)
    finally:
        core.close()
    assert [(o.host, o.status) for o in outcomes] == [("edge1", "fallback"), ("edge2", "fallback"), ("edge3", "skipped")]
    assert "edge1: haproxy runs structure" in outcomes[0].reason and "(a reload)" in outcomes[0].reason
    assert outcomes[1].reason == "edge2: ssh 10.0.0.2: exit 255: Host key verification failed."
    assert edge.servers() == before


def test_a_stats_socket_that_does_not_answer_is_left_to_the_playbook(tmp_path: Path):
    core = fp.FastPath([host()], lambda h: Cli(str(tmp_path / "gone.sock"), timeout=1))
    try:
        [outcome] = core.apply(MODEL)
    finally:
        core.close()
    assert outcome.status == "fallback" and outcome.reason.startswith(f"edge1: stats socket {tmp_path / 'gone.sock'}: ")


# --- SSH ------------------------------------------------------------------------------------------

def test_ssh_forwards_a_private_socket_and_forces_its_own_options_first(tmp_path):
    edge = fp.hosts_from({"edge1": {**LAB_HOST, "port": 2222, "ssh_args": "-o StrictHostKeyChecking=no -o ControlPath=/tmp/cp-%h"}})[0]
    ssh = fp.Ssh(edge, tmp_path)
    argv = ssh.argv()
    assert argv[:3] == ["ssh", "-o", "StrictHostKeyChecking=yes"]
    assert argv.index("StrictHostKeyChecking=yes") < argv.index("StrictHostKeyChecking=no")
    # No master of Ansible's (a ControlPath from the inventory) may carry the forward.
    assert argv.index("ControlMaster=no") < argv.index("ControlPath=none") < argv.index("ControlPath=/tmp/cp-%h")
    for option in ("BatchMode=yes", "ExitOnForwardFailure=yes", "StreamLocalBindMask=0177", "StreamLocalBindUnlink=yes"):
        assert argv.index(option) < argv.index("StrictHostKeyChecking=no"), option
    assert argv[argv.index("-L") + 1] == f"{ssh.local}:/run/haproxy/admin.sock" and "-N" in argv
    assert ssh.local.parent == tmp_path and "edge1" not in ssh.local.name  # an inventory name may hold ':'
    assert argv[argv.index("-i") + 1] == "/work/.lab/ssh/id_ed25519"
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "root"
    assert argv[-2:] == ["--", "10.213.0.11"]


@pytest.mark.skipif(not SSH, reason="OpenSSH's client")
def test_ssh_that_cannot_connect_says_so_and_leaves_nothing(workdir: Path):
    """Nothing listens on loopback port 1: the connection fails at once, and a Cli asked for
    afterwards tries again and fails the same way."""
    ssh = fp.Ssh(fp.EdgeHost("edge1", "haproxy", LOOPBACK, port=1, ssh_args=("-F", "/dev/null")), workdir, timeout=3)
    with pytest.raises(fp.FastPathError, match=r"edge1: ssh 127.0.0.1: exit 255: .*(refused|Connection)"):
        ssh.open()
    with pytest.raises(fp.FastPathError, match=r"edge1: ssh 127.0.0.1: exit 255"):
        ssh.cli()
    assert ssh.process is None and not ssh.local.exists()


@dataclass
class Sshd:
    """sshd on loopback, as nobody, taking the key `key` for nobody; `known_hosts` knows it."""

    port: int
    key: Path
    known_hosts: Path
    log: Path

    def host(self, edge: Edge, name: str = "edge1", **changes: Any) -> fp.EdgeHost:
        args = ("-F", "/dev/null", "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null")
        return fp.EdgeHost(name, "haproxy", LOOPBACK, user="nobody", port=self.port, private_key=str(self.key),
                           ssh_args=args, socket=edge.socket, view=edge.options, **changes)


@pytest.fixture(name="sshd")
def fixture_sshd(tmp_path: Path) -> Iterator[Sshd]:
    nobody = pwd.getpwnam("nobody")
    served = Path(tempfile.mkdtemp(prefix="k8sedge-sshd-"))  # read by nobody
    process: subprocess.Popen[bytes] | None = None
    try:
        served.chmod(0o755)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(served / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
        (served / "authorized_keys").write_text((tmp_path / "key.pub").read_text())
        port = free_ports(1)[0]
        (served / "sshd_config").write_text("\n".join([
            f"ListenAddress {LOOPBACK}", f"Port {port}", f"HostKey {served / 'host_key'}", f"AuthorizedKeysFile {served / 'authorized_keys'}",
            "PidFile none", "StrictModes no", "UsePAM yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no", ""]))
        for path in served.iterdir():
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"[{LOOPBACK}]:{port} {(served / 'host_key.pub').read_text()}")
        log = tmp_path / "sshd.log"
        with log.open("wb") as out:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(served / "sshd_config")], stdout=out, stderr=subprocess.STDOUT,
                                       user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1) as conn:
                    if conn.recv(4) == b"SSH-":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not answer on port {port}:\n{log.read_text()}")
            time.sleep(0.05)
        yield Sshd(port, tmp_path / "key", known_hosts, log)
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(served, ignore_errors=True)


@pytest.fixture(name="workdir")
def fixture_workdir() -> Iterator[Path]:
    """A directory as private as the watcher's (mkdtemp: 0700), short enough for socket paths."""
    directory = Path(tempfile.mkdtemp(prefix="k8sedge-watch-test-"))
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        yield directory
    finally:
        shutil.rmtree(directory)


@needs_haproxy
@needs_sshd
def test_the_change_goes_through_the_ssh_forward_and_the_forward_goes_at_close(edge: Edge, sshd: Sshd, workdir: Path):
    os.chown(edge.socket, pwd.getpwnam("nobody").pw_uid, -1)  # the login user's, as root's on an edge
    ssh = fp.Ssh(sshd.host(edge), workdir)
    core = fp.FastPath([ssh.host], lambda h: ssh.cli())
    try:
        ssh.open()
        assert stat.S_IMODE(ssh.local.stat().st_mode) == 0o600, "the forward's socket is the watcher's only"
        model = with_targets("default_s2_80", [LOOPBACK_S2[0], ("127.0.0.23", 31780)], EDGE_MODEL)
        [outcome] = core.apply(model)
        assert (outcome.status, outcome.commands) == ("applied", ("set server default_s2_80/s2 addr 127.0.0.23 port 31780",)), outcome
        assert edge.servers()["default_s2_80"]["s2"] == {"address": "127.0.0.23", "port": 31780, "state": "ready"}
        # The connection went away (an edge rebooted): the next change opens a new one.
        first = ssh.process
        first.kill()
        first.wait()
        [outcome] = core.apply(with_targets("default_s2_80", LOOPBACK_S2, EDGE_MODEL))
        assert outcome.status == "applied" and ssh.process is not None and ssh.process.pid != first.pid, outcome
        assert edge.servers()["default_s2_80"]["s2"] == {"address": "127.0.0.22", "port": 31780, "state": "ready"}
        process = ssh.process
    finally:
        core.close()
        ssh.close()
    assert process.returncode is not None and ssh.process is None and not ssh.local.exists()


@needs_haproxy
@needs_sshd
def test_a_stats_socket_the_login_user_may_not_open_is_named(edge: Edge, sshd: Sshd, workdir: Path):
    """The socket stays root's: sshd cannot open it for nobody, ssh drops the forwarded
    connection, and the reason quotes ssh and names the socket and the user."""
    ssh = fp.Ssh(sshd.host(edge), workdir)
    core = fp.FastPath([ssh.host], lambda h: ssh.cli())
    try:
        [outcome] = core.apply(with_targets("default_s2_80", [LOOPBACK_S2[0], ("127.0.0.23", 31780)], EDGE_MODEL))
    finally:
        core.close()
        ssh.close()
    assert outcome.status == "fallback", outcome
    assert outcome.reason.startswith(f"edge1: stats socket {ssh.local}: ") and "open failed" in outcome.reason, outcome.reason
    assert f"sshd there did not open {edge.socket} as nobody" in outcome.reason, outcome.reason


@needs_haproxy
@needs_sshd
def test_strict_host_key_checking_holds_against_the_inventory_s_options(edge: Edge, sshd: Sshd, tmp_path: Path, workdir: Path):
    (tmp_path / "empty_known_hosts").write_text("")
    strange = sshd.host(edge)
    strange = replace(strange, ssh_args=("-F", "/dev/null", "-o", f"UserKnownHostsFile={tmp_path / 'empty_known_hosts'}",
                                         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"))
    ssh = fp.Ssh(strange, workdir)
    try:
        with pytest.raises(fp.FastPathError, match=r"(?s)edge1: ssh 127.0.0.1: exit 255: .*Host key verification failed"):
            ssh.open()
    finally:
        ssh.close()
    assert not (tmp_path / "empty_known_hosts").read_text(), "the host key was not learnt"


class _Checks:
    """A Cli whose one server is checked by haproxy: the first check has not finished for `rounds` reads."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def servers(self) -> dict[tuple[str, str], Any]:
        self.rounds -= 1
        status = 1 if self.rounds >= 0 else 6  # INI, then L7OK
        return {("shop_web_80", "s1"): fp.Server("shop_web_80", "s1", "10.244.1.6", 8080, 0, 1, 2, status, 6)}


def test_gate_evidence_waits_for_haproxys_first_check_from_each_host_and_leaves_nginx_to_the_playbook():
    gates = [{"namespace": "shop", "name": "new", "uid": "u1", "nodeport_backends": [],
              "targets": [{"backend": "shop_web_80", "pools": ["default"], "address": "10.244.1.6", "port": 8080,
                           "protocol": "TCP", "check": {"type": "tcp"}}]}]
    clis = {"edge1": _Checks(rounds=2)}
    hosts = [host("edge1"), host("edge2", unsupported="engine nginx: no runtime API")]
    core = fp.FastPath(hosts, lambda h: clis[h.name])
    try:
        found = core.gate_evidence(gates, seconds=5)
    finally:
        core.close()
    assert found["edge2"] is None
    assert [(row["ok"], row["why"]) for row in found["edge1"]] == [(True, "")]
    # Not within the time given: the rows say why, and the Pod waits.
    core = fp.FastPath([host("edge1")], lambda h: _Checks(rounds=1000))
    try:
        [row] = core.gate_evidence(gates, seconds=0.3)["edge1"]
    finally:
        core.close()
    assert not row["ok"] and row["why"] == "haproxy has not finished its first check of shop_web_80/s1"
