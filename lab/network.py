"""The lab's private network: one bridge, one network namespace per host.

Nothing routes out: namespaces get no default route, and the machine only has an
address on the bridge, so lab traffic stays between lab addresses.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lab.topology import BRIDGE, GATEWAY_IP, HOSTS, SUBNET_PREFIXLEN, Host

NETNS_ETC = Path("/etc/netns")  # `ip netns exec` bind-mounts files from here over /etc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def in_netns(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return ip("netns", "exec", netns, *args, check=check)


def lab_namespaces() -> list[str]:
    out = ip("netns", "list").stdout
    existing = {line.split()[0] for line in out.splitlines()}
    return sorted(existing & {h.netns for h in HOSTS})


def lab_links() -> list[str]:
    """The lab's links in the machine's own namespace (bridge and veth ends)."""
    out = ip("-o", "link", "show").stdout
    existing = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    return sorted(existing & {BRIDGE, *(h.veth for h in HOSTS)})


def hosts_file() -> str:
    lines = ["127.0.0.1\tlocalhost", f"{GATEWAY_IP}\tgateway api mirror"]
    lines += [f"{h.ip}\t{h.name}" for h in HOSTS]
    return "\n".join(lines) + "\n"


# Nothing listens on loopback port 53 in the hosts: lookups fail at once instead of
# stalling on an unreachable resolver.
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def create_bridge() -> None:
    if BRIDGE not in lab_links():
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{GATEWAY_IP}/{SUBNET_PREFIXLEN}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")


def create_host_netns(h: Host) -> None:
    """A namespace for h, joined to the bridge by a veth pair named eth0 inside."""
    if h.netns not in lab_namespaces():
        ip("netns", "add", h.netns)
    if h.veth not in lab_links():
        ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
        ip("link", "set", h.veth, "master", BRIDGE, "up")
        in_netns(h.netns, "ip", "addr", "add", f"{h.ip}/{SUBNET_PREFIXLEN}", "dev", "eth0")
    in_netns(h.netns, "ip", "link", "set", "lo", "up")
    in_netns(h.netns, "ip", "link", "set", "eth0", "up")
    etc = NETNS_ETC / h.netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(RESOLV_CONF)
    (etc / "hosts").write_text(hosts_file())


def delete_host_netns(h: Host) -> None:
    """h's namespace and link (the veth pair goes with the namespace); safe to run twice."""
    if h.netns in lab_namespaces():
        ip("netns", "delete", h.netns)
    if h.veth in lab_links():
        ip("link", "delete", h.veth, check=False)


def delete_all() -> None:
    """Remove every lab namespace, link and /etc/netns entry; safe to run twice."""
    for netns in lab_namespaces():
        ip("netns", "delete", netns, check=False)
        shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)
    for link in lab_links():
        ip("link", "delete", link, check=False)
    for h in HOSTS:
        shutil.rmtree(NETNS_ETC / h.netns, ignore_errors=True)


def netns_pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split()]
