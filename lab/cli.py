"""labctl: bring the lab up and down, look at it, run commands inside its hosts.

    lab/labctl up | down | status | exec <host> -- <command...>
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.request

from lab import credentials, image, network, procs, vm
from lab.topology import (
    API_PORT, API_URL, GATEWAY_IP, HOSTS, KNOWN_HOSTS, KUBECONFIG, KUBECONFIG_ADMIN, KUBECTL, LAB_DIR,
    MANIFESTS, MIRROR_PORT, RBAC_POLICIES, REPO, RUN_DIR, SSH_KEY, TOKEN_FILE, VENV_PYTHON, Host, host,
)

STATE = RUN_DIR / "state.json"


def log(message: str) -> None:
    print(f"lab: {message}", flush=True)


def _python(module: str, *args: str) -> list[str]:
    return [str(VENV_PYTHON), "-m", module, *args]


def _in_netns(netns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def _api_ready() -> bool:
    context = ssl.create_default_context(cafile=str(credentials.CA_CERT))
    try:
        with urllib.request.urlopen(f"{API_URL}/readyz", context=context, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUBECTL), f"--kubeconfig={KUBECONFIG_ADMIN}", *args],
                          check=check, capture_output=True, text=True)


def _jsonpath(*args: str) -> str:
    return kubectl(*args, check=False).stdout


def _nodes_ready() -> bool:
    out = _jsonpath("get", "nodes", "-o",
                    'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}')
    states = dict(item.split("=", 1) for item in out.split())
    return all(states.get(h.name) == "True" for h in HOSTS if h.role == "node")


def _seed_ready() -> bool:
    """Every Deployment in the seed has all its replicas ready."""
    out = _jsonpath("get", "deployments", "-A", "-o",
                    "jsonpath={range .items[*]}{.spec.replicas}/{.status.readyReplicas} {end}")
    pairs = [item.split("/") for item in out.split()]
    return bool(pairs) and all(want == have for want, have in pairs)


def build_image(_: argparse.Namespace) -> None:
    """What `up` does first; alone, so that `make test` downloads it while the linters run."""
    if os.geteuid() != 0:
        sys.exit("labctl: the lab needs root (debootstrap, chroot)")
    image.build(log)


def up(_: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        sys.exit("labctl: the lab needs root (network namespaces, mounts, nspawn)")
    if is_up():
        log("already up")
        status(None)
        return
    down(None, quiet=True)  # clear any half-built leftovers first
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    credentials.ensure()
    image.build(log)

    log("creating the lab network")
    network.create_bridge()
    for h in HOSTS:
        if not h.on_demand:
            network.create_host_netns(h)

    log("booting the edge VMs")
    for h in HOSTS:
        if h.is_vm and not h.on_demand:
            vm.create(h)
            vm.boot(h)

    log("starting the package mirror and the Kubernetes API server")
    procs.start("mirror", [str(VENV_PYTHON), "-m", "http.server", "--bind", GATEWAY_IP,
                           "--directory", str(image.MIRROR_DIR), str(MIRROR_PORT)])
    procs.start("kube-apiserver", _python(
        "lab.kubeapi", "--bind", GATEWAY_IP, "--port", str(API_PORT),
        "--tls-cert", str(credentials.SERVER_CERT), "--tls-key", str(credentials.SERVER_KEY),
        "--token-auth-file", str(TOKEN_FILE), "--root-ca-file", str(credentials.CA_CERT),
        *(arg for policy in RBAC_POLICIES for arg in ("--authorization-policy", str(policy)))))
    procs.wait_until(_api_ready, 30, f"the API server on {API_URL}")

    procs.start("kube-controllers", _python("lab.cluster.controllers",
                                            "--kubeconfig", str(KUBECONFIG_ADMIN)))
    for h in HOSTS:
        if h.role == "node":
            procs.start(f"kubelet-{h.name}", _in_netns(h.netns, _python(
                "lab.cluster.kubelet", "--kubeconfig", str(KUBECONFIG_ADMIN),
                "--node-name", h.name, "--node-ip", h.ip, "--pod-cidr", str(h.pod_cidr),
                "--zone", str(h.zone), "--state-dir", str(RUN_DIR / "kubelet" / h.name))))
    procs.wait_until(_nodes_ready, 60, "both Kubernetes nodes to be Ready")

    log(f"loading the cluster content from {MANIFESTS.relative_to(REPO)}/")
    kubectl("create", "-f", str(MANIFESTS))
    procs.wait_until(_seed_ready, 90, "the seed's pods to be ready")

    for h in HOSTS:
        if h.is_vm and not h.on_demand:
            procs.wait_until(lambda h=h: vm.ssh_ready(h), 60, f"SSH on {h.name} ({h.ip})")
    STATE.write_text(json.dumps({"hosts": [h.name for h in HOSTS]}))
    log("up")
    _print_usage()


def is_up() -> bool:
    if not STATE.exists():
        return False
    running = procs.running()
    return all(name in running for name in _expected_processes())


def _expected_processes() -> list[str]:
    names = ["mirror", "kube-apiserver", "kube-controllers"]
    names += [f"kubelet-{h.name}" for h in HOSTS if h.role == "node"]
    names += [vm.proc_name(h) for h in HOSTS if h.is_vm and not h.on_demand]
    return names


def down(_: argparse.Namespace | None, quiet: bool = False) -> None:
    """Stop everything the lab started and remove its network; the image cache stays."""
    if os.geteuid() != 0:
        sys.exit("labctl: the lab needs root")
    if not quiet:
        log("stopping the lab")
    STATE.unlink(missing_ok=True)
    for h in HOSTS:
        if h.is_vm:
            vm.stop(h)
    for name in sorted(procs.running()):
        procs.stop(name)
    # Anything still inside a lab namespace was started there by the lab (pods, strays).
    for netns in network.lab_namespaces():
        procs.kill_pids(network.netns_pids(netns))
    network.delete_all()
    for h in HOSTS:
        if h.is_vm:
            vm.stop(h)  # retry unmounts now that nothing runs inside
    if RUN_DIR.exists() and not vm.mounted_roots():
        subprocess.run(["rm", "-rf", "--one-file-system", str(RUN_DIR)], check=False)
    if not quiet:
        log("down")


def leftovers() -> dict[str, list[str]]:
    """What of the lab is still on the machine; empty lists when it is fully down."""
    return {
        "namespaces": network.lab_namespaces(),
        "links": network.lab_links(),
        "mounts": vm.mounted_roots(),
        "processes": [f"{name}={pid}" for name, pid in procs.running().items()],
    }


def status(_: argparse.Namespace | None) -> None:
    running = procs.running()
    print(f"{'HOST':8} {'ROLE':7} {'ADDRESS':14} STATE")
    for h in HOSTS:
        if h.is_vm:
            state = "running" if vm.is_running(h) else "down"
        else:
            state = "up" if h.netns in network.lab_namespaces() else "down"
        print(f"{h.name:8} {h.role:7} {h.ip:14} {state}")
    print(f"\n{'PROCESS':18} PID")
    for name in _expected_processes():
        print(f"{name:18} {running.get(name, '-')}")
    print(f"\nAPI server: {API_URL}  ({'ready' if _api_ready() else 'not answering'})")


def _on_demand(name: str) -> Host:
    target = host(name)
    if not target.on_demand or not is_up():
        sys.exit(f"labctl: {name} is not an on-demand edge VM of a running lab")
    return target


def start(args: argparse.Namespace) -> None:
    """Boot an on-demand edge VM (a fresh OS; its host key goes into the lab's known_hosts)."""
    target = _on_demand(args.host)
    network.create_host_netns(target)
    vm.create(target)
    vm.boot(target)
    procs.wait_until(lambda: vm.ssh_ready(target), 60, f"SSH on {target.name} ({target.ip})")
    log(f"{target.name} up")


def stop(args: argparse.Namespace) -> None:
    """Power an on-demand edge VM off and remove it, its network namespace included."""
    target = _on_demand(args.host)
    vm.stop(target)
    network.delete_host_netns(target)
    log(f"{target.name} down")


def rebuild(args: argparse.Namespace) -> None:
    """An edge VM dies and comes back as a fresh OS under the same name and address: new SSH host
    keys (not written to the lab's known_hosts: accepting them is the operator's step), no state,
    and a fresh network interface (no VIP, route, nftables table or sysctl of the old one)."""
    target = host(args.host)
    if not target.is_vm or not is_up():
        sys.exit(f"labctl rebuild: {args.host} is not an edge VM of a running lab")
    vm.stop(target)
    network.delete_host_netns(target)
    network.create_host_netns(target)
    vm.create(target, record_host_key=False)
    vm.boot(target)
    procs.wait_until(lambda: vm.ssh_ready(target), 60, f"SSH on {target.name} ({target.ip})")
    log(f"{target.name} rebuilt: a fresh OS with new SSH host keys, not in {os.path.relpath(KNOWN_HOSTS)}")


def in_host_argv(name: str, command: list[str]) -> list[str]:
    """The argv that runs command inside lab host `name` (what `labctl exec` runs)."""
    target = host(name)
    return vm.exec_argv(target, command) if target.is_vm else _in_netns(target.netns, command)


def exec_(args: argparse.Namespace) -> None:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("labctl exec: give a command after --")
    argv = in_host_argv(args.host, command)
    os.execvp(argv[0], argv)


def _print_usage() -> None:
    rel = os.path.relpath
    print(f"""
The lab is up. Try:
  lab/labctl status
  lab/labctl exec client -- curl -s http://{host('node1').ip}:31780/
  .venv/bin/kubectl --kubeconfig {rel(KUBECONFIG_ADMIN)} get svc -A
  .venv/bin/ansible -i inventory/lab edges -m ansible.builtin.ping
  ssh -i {rel(SSH_KEY)} root@{host('edge1').ip}    (host keys: {rel(LAB_DIR / 'ssh/known_hosts')})
Read-only kubeconfig for the edge tooling: {rel(KUBECONFIG)}
Tear it down with: make lab-down
""")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="labctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("up", help="build (first time) and start the lab").set_defaults(func=up)
    sub.add_parser("image", help="build the edge image and the package mirror if missing").set_defaults(func=build_image)
    sub.add_parser("down", help="stop the lab and remove all it made").set_defaults(func=down)
    sub.add_parser("status", help="list hosts and processes").set_defaults(func=status)
    sub.add_parser("leftovers", help="print what of the lab remains, as JSON").set_defaults(
        func=lambda _: print(json.dumps(leftovers())))
    for verb, func, what in (("start", start, "boot an on-demand edge VM"), ("stop", stop, "remove an on-demand edge VM")):
        on_demand = sub.add_parser(verb, help=what)
        on_demand.add_argument("host", choices=[h.name for h in HOSTS if h.on_demand])
        on_demand.set_defaults(func=func)
    rb = sub.add_parser("rebuild", help="replace an edge VM by a fresh OS with new host keys")
    rb.add_argument("host", choices=[h.name for h in HOSTS if h.is_vm])
    rb.set_defaults(func=rebuild)
    ex = sub.add_parser("exec", help="run a command inside a lab host")
    ex.add_argument("host", choices=[h.name for h in HOSTS])
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=exec_)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (TimeoutError, RuntimeError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", None) or ""
        sys.exit(f"labctl {args.verb}: {err}\n{detail}".rstrip())


if __name__ == "__main__":
    main()
