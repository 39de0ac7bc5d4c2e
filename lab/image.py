"""The edge VM image and the lab's Debian package mirror, built once and cached.

The image is a debootstrap'd Debian bookworm that boots with systemd and runs sshd
and python3, like a minimal cloud VM. The mirror is a flat apt repository of the
packages the edge roles install (and everything they pull in), served on the lab
bridge, so apt inside a VM installs real packages while nothing routes out.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess

from lab.topology import CACHE_DIR, LOGIN_USER, MIRROR_URL

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
IMAGE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "procps", "openssh-server",
    "python3", "python3-apt", "ca-certificates", "sudo",
)
# What the edge roles may install from the lab mirror; add here when a role needs more.
MIRROR_PACKAGES = (
    "haproxy", "nginx", "libnginx-mod-stream", "keepalived", "curl", "socat", "iputils-ping",
    "prometheus-nginx-exporter", "nftables", "conntrack",
)
# Of these the mirror keeps every version Debian's suites have (the release and its security
# updates), so that the lab can change an edge's version as playbooks/upgrade.yml does.
VERSIONED_PACKAGES = ("haproxy",)

# Bump when _configure() changes, so cached images are rebuilt.
IMAGE_REVISION = 3

IMAGE_DIR = CACHE_DIR / "image"
IMAGE_ROOT = IMAGE_DIR / "root"
MIRROR_DIR = CACHE_DIR / "mirror"
_STAMP = IMAGE_DIR / "recipe"


def _recipe() -> str:
    text = repr((IMAGE_REVISION, DEBIAN_SUITE, DEBIAN_MIRROR, DEBIAN_SECURITY, IMAGE_PACKAGES, MIRROR_PACKAGES,
                 VERSIONED_PACKAGES, MIRROR_URL))
    return hashlib.sha256(text.encode()).hexdigest()


def is_built() -> bool:
    return _STAMP.is_file() and _STAMP.read_text() == _recipe()


def build(log) -> None:
    """Build the image and the mirror unless the cached ones match the recipe."""
    if is_built():
        return
    tmp = CACHE_DIR / "image.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(IMAGE_DIR, ignore_errors=True)
    shutil.rmtree(MIRROR_DIR, ignore_errors=True)
    root = tmp / "root"
    root.mkdir(parents=True)
    log(f"building the edge VM image (debootstrap {DEBIAN_SUITE}, about a minute, once)")
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(IMAGE_PACKAGES)}",
          DEBIAN_SUITE, str(root), DEBIAN_MIRROR])
    log("downloading the packages of the lab mirror")
    _chroot(root, "apt-get", "clean")
    _chroot(root, "apt-get", "install", "--download-only", "-y", "-q", *MIRROR_PACKAGES)
    _download_every_version(root, VERSIONED_PACKAGES)
    MIRROR_DIR.mkdir(parents=True)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        shutil.move(str(deb), MIRROR_DIR / deb.name)
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=MIRROR_DIR,
                              check=True, capture_output=True, text=True).stdout
    (MIRROR_DIR / "Packages").write_text(packages)
    _configure(root)
    tmp.rename(IMAGE_DIR)
    _STAMP.write_text(_recipe())


def _configure(root) -> None:
    """Make the image a VM template: lab mirror only, no per-host identity baked in."""
    _chroot(root, "apt-get", "clean")
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    # No package lists: say so with an old timestamp, or apt's cache_valid_time (Ansible) takes
    # the fresh directory for a fresh update and never fetches the lists.
    for stamp in (root / "var/lib/apt/lists", root / "var/lib/apt/lists/partial"):
        os.utime(stamp, (0, 0))
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] {MIRROR_URL}/ ./\n")
    # Host keys and machine-id are made per VM when it is created.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    # A login user with sudo, as a real edge VM has (docs/getting-started.md: never SSH as root);
    # vm.create authorizes the lab's key for it as for root.
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", LOGIN_USER)
    sudoers = root / "etc/sudoers.d" / LOGIN_USER
    sudoers.write_text(f"{LOGIN_USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)


def _download_every_version(root, names: tuple[str, ...]) -> None:
    """Every version of `names` in the suite and its security updates, into apt's archive cache."""
    (root / "etc/apt/sources.list").write_text(f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
                                               f"deb {DEBIAN_SECURITY} {DEBIAN_SUITE}-security main\n")
    _chroot(root, "apt-get", "update", "-q")
    for name in names:
        listed = subprocess.run(["chroot", str(root), "apt-cache", "madison", name], check=True, capture_output=True,
                                text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).stdout
        versions = sorted({line.split("|")[1].strip() for line in listed.splitlines() if line.count("|") >= 2})
        _chroot(root, "sh", "-c", "cd /var/cache/apt/archives && apt-get download -q "
                + " ".join(shlex.quote(f"{name}={version}") for version in versions))


def _chroot(root, *argv: str) -> None:
    _run(["chroot", str(root), *argv], env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n{result.stderr[-2000:]}")
