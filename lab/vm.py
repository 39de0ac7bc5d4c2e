"""Edge VMs: the cached image under a per-host overlay, booted by systemd-nspawn.

Each VM has its own filesystem view (overlayfs), hostname, PID namespace with
systemd as PID 1, and the network namespace the lab made for it; Ansible reaches it
over real SSH with the lab's key.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from lab import network, procs
from lab.image import IMAGE_ROOT
from lab.topology import KNOWN_HOSTS, LOGIN_USER, RUN_DIR, SSH_KEY, Host

VM_DIR = RUN_DIR / "vm"


def _paths(h: Host) -> tuple[Path, Path, Path]:
    base = VM_DIR / h.name
    return base / "upper", base / "work", base / "root"


def proc_name(h: Host) -> str:
    return f"vm-{h.name}"


def mounted_roots() -> list[str]:
    """Mount points of lab VM roots still in the mount table."""
    prefix = str(VM_DIR) + "/"
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


def create(h: Host, record_host_key: bool = True) -> None:
    """A VM on a fresh overlay of the image; its new SSH host key goes into the lab's known_hosts
    unless `record_host_key` is false (a rebuild: the operator accepts the new key deliberately)."""
    upper, work, root = _paths(h)
    for d in (upper, work, root):
        d.mkdir(parents=True, exist_ok=True)
    if str(root) not in mounted_roots():
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={IMAGE_ROOT},upperdir={upper},workdir={work}", str(root)],
                       check=True)
    (root / "etc/hostname").write_text(f"{h.name}\n")
    (root / "etc/hosts").write_text(network.hosts_file())
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text(network.RESOLV_CONF)
    for home in (root / "root", root / "home" / LOGIN_USER):
        _authorize(home)
    if not (root / "etc/ssh/ssh_host_ed25519_key").exists():
        subprocess.run(["ssh-keygen", "-A", "-f", str(root)], check=True, capture_output=True)
    if record_host_key:
        _record_host_key(h, (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])


def _authorize(home: Path) -> None:
    """The lab's key in the authorized_keys of the user whose home this is, owned by that user."""
    owner = home.stat()
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(SSH_KEY.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    for path in (ssh_dir, authorized):
        os.chown(path, owner.st_uid, owner.st_gid)


def _record_host_key(h: Host, key: list[str]) -> None:
    others = []
    if KNOWN_HOSTS.exists():
        others = [line for line in KNOWN_HOSTS.read_text().splitlines()
                  if not line.startswith(f"{h.ip},{h.name} ")]
    KNOWN_HOSTS.write_text("\n".join([*others, f"{h.ip},{h.name} {' '.join(key)}"]) + "\n")


def boot(h: Host) -> int:
    _, _, root = _paths(h)
    argv = [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
        f"--directory={root}", f"--machine={h.name}",
        f"--network-namespace-path=/run/netns/{h.netns}",
        # keepalived manages addresses and sends VRRP.
        "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
    ]
    # Let the VM set its own net.* sysctls (ip_nonlocal_bind for keepalived), as a VM could. The
    # legacy cgroup hierarchy: in the unified one, the VM's systemd (not this machine's: there is
    # none) fails to kill a unit's cgroup ("Input/output error") and now and then to start the unit
    # again (219/CGROUP), which a VM never does.
    return procs.start(proc_name(h), argv, env={"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network",
                                                "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "0"})


def ssh_ready(h: Host) -> bool:
    try:
        with socket.create_connection((h.ip, 22), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def leader_pid(h: Host) -> int | None:
    """PID (in our namespace) of the VM's init, the child of systemd-nspawn."""
    nspawn = procs.pid_of(proc_name(h))
    if nspawn is None:
        return None
    for task in Path(f"/proc/{nspawn}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


def is_running(h: Host) -> bool:
    pid = leader_pid(h)
    if pid is None:
        return False
    result = subprocess.run(["nsenter", "-t", str(pid), "-a", "systemctl", "is-system-running"],
                            capture_output=True, text=True)
    return result.stdout.strip() in ("running", "degraded")


def exec_argv(h: Host, command: list[str]) -> list[str]:
    pid = leader_pid(h)
    if pid is None:
        raise RuntimeError(f"VM {h.name} is not running")
    # A login-like environment of the VM's own, not the caller's.
    env = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME=/root", "LANG=C.UTF-8", f"TERM={os.environ.get('TERM', 'dumb')}"]
    return ["nsenter", "-t", str(pid), "-a", "--wdns=/root", *env, *command]


def stop(h: Host) -> None:
    """Power the VM off (SIGTERM makes nspawn halt it), unmount and drop its overlay."""
    procs.stop(proc_name(h), grace=15.0)
    upper, work, root = _paths(h)
    if str(root) in mounted_roots():
        subprocess.run(["umount", str(root)], check=False)
    if str(root) in mounted_roots():
        subprocess.run(["umount", "--lazy", str(root)], check=False)
    if str(root) not in mounted_roots():  # never delete through a live mount
        shutil.rmtree(root.parent, ignore_errors=True)
