"""Benchmark 6: VIP failover: how fast a VIP leaves a failed edge, and how many requests are lost.

The lab's two edges run haproxy and keepalived; VIP 10.213.0.200 is primary on edge1, .201 on
edge2. A client in the lab's client namespace sends one request every 20 ms through .200 (a new
connection each, answered within 1 s or lost), and a fault hits edge1: its haproxy killed by PID
(kept down: Debian's unit would restart it), its keepalived stopped, or its link taken down. The
failover time is from the fault to the VIP appearing on edge2 (`ip monitor address` in edge2's
namespace); after each sample the fault is repaired and the VIP must come back to edge1.

Ours: the edge_keepalived role's defaults, VRRPv3 with `advert_int 0.2` and the track script
watching the proxy every 50 ms. Baseline: VRRPv2 with `advert_int 1` and the same script probing
once a run (keepalived's whole-second interval), the common setup. Samples: requests lost when
the proxy is killed; every fault's failover times and losses are in the parameters. Full mode also runs both
edges healthy for 2 minutes and counts VIP moves (the goal: none).

Full mode applies the roles (molecule/edge_keepalived/converge.yml, the lab's model through
edge_haproxy) and measures 3 samples of every fault per side. Quick mode (a smoke: one proxy kill
per side) installs haproxy and keepalived directly, with a small haproxy config and the
keepalived config rendered by the role's own filter and template, so it stays short. Both end
with the edges purged of haproxy and keepalived (molecule/edge_keepalived/cleanup.yml's result).
The lab is brought up if it was down, and then taken down again; run it under the lab lock
(`flock /tmp/k8sedge-lab.lock .venv/bin/python -m bench failover`).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

import jinja2
from ansible.plugins.filter.core import comment

from bench import _lab
from bench.harness import Goal, Measurement, Sample
from lab import vm
from lab.testlib import steps
from lab.topology import REPO, host

# The role's view is the collection's pure code; the bench renders the quick config with it.
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.k8sedge.lb.plugins.module_utils._keepalived_view import (  # noqa: E402
    CheckOptions, Member, ViewOptions, keepalived_view)

TITLE = "VIP failover (keepalived)"
# Lost requests are the binding figure: a dead proxy refuses at once, so a client loses about one
# request per 20 ms of takeover, and 5 lost means a takeover near 0.1 s, well under the 1 s goal.
GOAL = Goal("<= 5 requests lost (takeover < 1 s) when the proxy dies; no VIP move in a 2 min steady run", max_ours=5)
TIME_BOUND = {"full": 1200, "quick": 120}

MASTER, BACKUP = "edge1", "edge2"
VIP, OTHER_VIP = "10.213.0.200", "10.213.0.201"
EVERY = 0.02
STEADY_SECONDS = 120
CLEANUP_RESERVE = 25.0
ROLE = REPO / "roles/edge_keepalived"
LIBEXEC = "/usr/local/lib/k8sedge"
NOTIFY_FIFO = "/run/k8sedge-keepalived.fifo"  # the role's __edge_keepalived_notify_fifo
DROP_IN = "/run/systemd/system/haproxy.service.d/k8sedge-bench.conf"
FAULTS = ("proxy_killed", "keepalived_stopped", "link_down")
SIDES = {
    "ours": {"edge_keepalived_vrrp_version": 3, "edge_keepalived_advert_int": 0.2, "edge_keepalived_check_poll": 0.05},
    "baseline": {"edge_keepalived_vrrp_version": 2, "edge_keepalived_advert_int": 1, "edge_keepalived_check_poll": 0},
}
QUICK_HAPROXY = """# k8sedge bench/failover.py quick mode: the lab's s2 service through both node ports.
global
    master-worker
    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind :80
    default_backend s2
backend s2
    server node1 10.213.0.21:31780 check inter 1s
    server node2 10.213.0.22:31780 check inter 1s
"""


def _left(deadline: float, reserve: float = CLEANUP_RESERVE) -> float:
    return steps.left(deadline, reserve)


def in_vm(edge: str, command: str, deadline: float, stdin: str | None = None, check: bool = True,
          reserve: float = CLEANUP_RESERVE) -> subprocess.CompletedProcess[str]:
    """A shell command inside an edge VM (nsenter: no SSH, works while its link is down)."""
    argv = vm.exec_argv(host(edge), ["sh", "-c", command])
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=min(120.0, _left(deadline, reserve)))
    if check and result.returncode != 0:
        raise steps.LabError(f"{edge}: {command} exited {result.returncode}: {result.stderr[-1000:]}")
    return result


def holders(address: str) -> list[str]:
    """The edges that hold `address` now, read from their namespaces."""
    found = []
    for edge in (MASTER, BACKUP):
        out = subprocess.run(["ip", "-n", host(edge).netns, "-4", "-o", "addr", "show", "dev", "eth0"],
                             capture_output=True, text=True, timeout=10).stdout
        if f" inet {address}/" in out:
            found.append(edge)
    return found


class VipMonitor:
    """`ip monitor address` in both edges' namespaces: when each address came and went where."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, str]] = []  # (monotonic time, edge, address, add|del)
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> VipMonitor:
        for edge in (MASTER, BACKUP):
            proc = subprocess.Popen(["ip", "-n", host(edge).netns, "-o", "monitor", "address"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self._procs.append(proc)
            threading.Thread(target=self._read, args=(edge, proc), daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self._procs:
            proc.terminate()
            proc.wait(5)

    def _read(self, edge: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen = time.monotonic()
            match = re.search(r"\binet (\S+)/", line)
            if match:
                with self._lock:
                    self.events.append((seen, edge, match.group(1), "del" if line.startswith("Deleted") else "add"))

    def since(self, after: float, until: float | None = None) -> list[tuple[float, str, str, str]]:
        with self._lock:
            return [e for e in self.events if e[0] >= after and (until is None or e[0] <= until)]

    def wait_added(self, edge: str, address: str, after: float, seconds: float) -> float | None:
        """When `address` was added on `edge` after `after`; None if not within `seconds`."""
        until = time.monotonic() + seconds
        while True:
            for seen, where, what, kind in self.since(after):
                if (where, what, kind) == (edge, address, "add"):
                    return seen
            if time.monotonic() >= until:
                return None
            time.sleep(0.01)


def steady(deadline: float, seconds: float = 40.0) -> None:
    """Both VIPs at their primary and edge1's checks up; LabError if not within `seconds`."""
    until = time.monotonic() + seconds
    while True:
        if holders(VIP) == [MASTER] and holders(OTHER_VIP) == [BACKUP]:
            status = in_vm(MASTER, "cat /run/k8sedge-keepalived/proxy /run/k8sedge-keepalived/config", deadline, check=False)
            if status.stdout.split() == ["up", "up"]:
                time.sleep(0.5)  # the repaired edge's gratuitous ARPs reach the client
                return
        if time.monotonic() >= until:
            checks = in_vm(MASTER, "head /run/k8sedge-keepalived/*", deadline, check=False).stdout
            raise steps.LabError(f"the VIPs did not settle at their primaries: {VIP} on {holders(VIP)}, "
                                 f"{OTHER_VIP} on {holders(OTHER_VIP)}; {MASTER}'s checks: {checks}")
        time.sleep(0.2)


def client(address: str, start: float, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", host("client").netns, sys.executable, "-m", "lab.testlib.vip_client",
                             "--address", address, "--start", f"{start:.6f}", "--seconds", str(seconds),
                             "--every", str(EVERY)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def client_results(proc: subprocess.Popen[str], seconds: float) -> list[tuple[float, bool, float]]:
    try:
        out, err = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise steps.LabError(f"the VIP client failed: {err[-1000:]}")
    return [tuple(r) for r in json.loads(out)]


def fault(kind: str, monitor: VipMonitor, run_seconds: float, deadline: float) -> dict[str, Any]:
    """One fault on edge1 under the client's load, then its repair."""
    steady(deadline)
    if kind == "proxy_killed":
        in_vm(MASTER, f"mkdir -p {DROP_IN.rsplit('/', 1)[0]} && printf '[Service]\\nRestart=no\\n' > {DROP_IN}"
                      " && systemctl daemon-reload", deadline)
        pid = in_vm(MASTER, "systemctl show --property MainPID --value haproxy", deadline).stdout.strip()
        if not pid.isdigit() or int(pid) <= 0:  # kill 0 would signal our own process group
            raise steps.LabError(f"haproxy is not running on {MASTER} (MainPID {pid!r})")
        inject = vm.exec_argv(host(MASTER), ["kill", "-9", pid])
        repair = f"rm -f {DROP_IN} && systemctl daemon-reload && systemctl start haproxy"
    elif kind == "keepalived_stopped":
        inject = vm.exec_argv(host(MASTER), ["systemctl", "stop", "keepalived"])
        repair = "systemctl start keepalived"
    else:
        inject = ["ip", "-n", host(MASTER).netns, "link", "set", "eth0", "down"]
        repair = "ip link set eth0 up"
    start = time.monotonic() + 0.8  # the client's start-up
    load = client(VIP, start, run_seconds)
    try:
        time.sleep(max(0.0, start + 1.0 - time.monotonic()))
        at = time.monotonic()
        subprocess.run(inject, check=True, capture_output=True, timeout=30)
        taken = monitor.wait_added(BACKUP, VIP, at, run_seconds)
        results = client_results(load, run_seconds)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        in_vm(MASTER, repair, deadline, reserve=0)
    failed = [sent for sent, ok, _ in results if not ok]
    back = min((sent for sent, ok, _ in results if ok and failed and sent > max(failed)), default=None)
    return {"fault": kind, "takeover_s": None if taken is None else round(taken - at, 3), "lost": len(failed),
            "requests": len(results), "traffic_back_s": None if back is None else round(back - at, 3),
            "first_lost_s": round(min(failed) - at, 3) if failed else None}


def steady_run(monitor: VipMonitor, deadline: float) -> dict[str, Any]:
    """Both edges healthy for STEADY_SECONDS under the client's load: VIP moves and lost requests."""
    steady(deadline)
    start = time.monotonic() + 0.8
    results = client_results(client(VIP, start, STEADY_SECONDS), STEADY_SECONDS)
    moves = [e for e in monitor.since(start, start + STEADY_SECONDS) if e[2] in (VIP, OTHER_VIP)]
    return {"seconds": STEADY_SECONDS, "vip_events": [f"{e[3]} {e[2]} on {e[1]} at +{e[0] - start:.2f} s" for e in moves],
            "requests": len(results), "lost": sum(1 for _, ok, _ in results if not ok)}


# --- setting the edges up --------------------------------------------------------------------

def ansible_playbook(path: str, deadline: float, extra_vars: dict[str, Any] | None = None, reserve: float = CLEANUP_RESERVE) -> None:
    """A playbook of the repo on both edges, with typed extra variables."""
    command = [str(REPO / ".venv/bin/ansible-playbook"), path]
    if extra_vars:
        command += ["--extra-vars", json.dumps(extra_vars)]
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=min(600.0, _left(deadline, reserve)),
                                env={**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"})
    except subprocess.TimeoutExpired as exc:
        raise steps.LabError(f"{path}: timed out after {exc.timeout:.0f} s") from exc
    if result.returncode != 0:
        raise steps.LabError(f"{path} failed:\n{result.stdout[-3000:]}\n{result.stderr[-1000:]}")


def quick_config(edge: str, settings: dict[str, Any]) -> str:
    """keepalived.conf for `edge`, from the role's view and template, as the role renders it."""
    members = tuple(Member(name, ("default",), host(name).ip) for name in (MASTER, BACKUP))
    facts = {"interfaces": ["lo", "eth0"], "eth0": {"ipv4": {"address": host(edge).ip, "netmask": "255.255.255.0"}}}
    view = keepalived_view(facts, ViewOptions(
        host=edge, interface="eth0", pool_vips={"default": [VIP, OTHER_VIP]}, members=members,
        version=settings["edge_keepalived_vrrp_version"], advert_int=settings["edge_keepalived_advert_int"],
        check=CheckOptions(program=f"{LIBEXEC}/vrrp-check", poll=settings["edge_keepalived_check_poll"])))
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    environment.filters["comment"] = comment
    return environment.from_string((ROLE / "templates/keepalived.conf.j2").read_text()).render(
        ansible_managed="k8sedge bench/failover.py quick mode", __edge_keepalived_view=view, __edge_keepalived_libexec=LIBEXEC,
        __edge_keepalived_notify_fifo=NOTIFY_FIFO)


def quick_setup(edge: str, settings: dict[str, Any], deadline: float, install: bool) -> None:
    if install:
        in_vm(edge, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy keepalived",
              deadline)
        in_vm(edge, "cat > /etc/haproxy/haproxy.cfg && systemctl restart haproxy", deadline, stdin=QUICK_HAPROXY)
        for script in ("vrrp-check", "notify"):
            in_vm(edge, f"mkdir -p {LIBEXEC} && cat > {LIBEXEC}/{script} && chmod 0755 {LIBEXEC}/{script}", deadline,
                  stdin=(ROLE / "files" / script).read_text())
    in_vm(edge, "cat > /etc/keepalived/keepalived.conf.new && keepalived -t -f /etc/keepalived/keepalived.conf.new"
                " && mv /etc/keepalived/keepalived.conf.new /etc/keepalived/keepalived.conf && systemctl restart keepalived",
          deadline, stdin=quick_config(edge, settings))


def purge(edge: str, deadline: float) -> None:
    in_vm(edge, "systemctl stop keepalived haproxy 2>/dev/null;"
                " DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --autoremove keepalived haproxy >/dev/null;"
                f" rm -rf /etc/keepalived /etc/haproxy {LIBEXEC} /run/k8sedge-keepalived {NOTIFY_FIFO} {DROP_IN};"
                f" for vip in {VIP} {OTHER_VIP}; do ip addr del $vip/24 dev eth0 2>/dev/null; done; systemctl daemon-reload",
          deadline, check=False, reserve=0)


def run(quick: bool, workdir: Path, deadline: float) -> Measurement:
    count, faults, run_seconds = (1, ("proxy_killed",), 2.0) if quick else (3, FAULTS, 7.0)
    measurement = Measurement(
        parameters={"master": MASTER, "backup": BACKUP, "vip": VIP, "load": f"one request every {EVERY * 1000:.0f} ms, "
                    "new connection each, lost if not answered 200 within 1 s", "samples_per_fault": count,
                    "faults": list(faults), "sides": SIDES,
                    "setup": "direct install, small haproxy config (quick smoke)" if quick else
                             "molecule/edge_keepalived/converge.yml (edge_haproxy with the lab model, edge_keepalived)",
                    "measured": "samples: requests lost per proxy kill; takeover_s: fault on edge1 -> VIP added on edge2 "
                                "(ip monitor)"},
        ours=[], baseline=[], unit="requests lost",
        ours_label="VRRPv3 advert_int 0.2 + track script watching every 50 ms",
        baseline_label="VRRPv2 advert_int 1 + track script once a second",
    )
    with _lab.lab(deadline), VipMonitor() as monitor:
        try:
            # A rollout's record left on an edge would make the config check give the VIPs up.
            for edge in (MASTER, BACKUP):
                in_vm(edge, f"rm -f {steps.STATE_RECORD}", deadline)
            for side, settings in SIDES.items():
                if quick:
                    with ThreadPoolExecutor(2) as pool:
                        list(pool.map(lambda edge: quick_setup(edge, settings, deadline, side == "ours"), (MASTER, BACKUP)))
                else:
                    ansible_playbook("molecule/edge_keepalived/converge.yml", deadline, settings)
                samples = measurement.ours if side == "ours" else measurement.baseline
                runs = []
                for kind in faults:
                    for _ in range(count):
                        result = fault(kind, monitor, run_seconds if side == "baseline" or kind != "link_down" else 4.0,
                                       deadline)
                        runs.append(result)
                        if kind == "proxy_killed":
                            samples.append(Sample(float(result["lost"]), error="" if result["takeover_s"] is not None
                                                  else f"the VIP did not reach {BACKUP} within {run_seconds} s"))
                measurement.parameters[side] = summarise(runs)
                if side == "ours" and not quick:
                    measurement.parameters["steady"] = steady_run(monitor, deadline)
        finally:
            if quick:
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(lambda edge: purge(edge, deadline + CLEANUP_RESERVE), (MASTER, BACKUP)))
            else:
                ansible_playbook("molecule/edge_keepalived/cleanup.yml", deadline + CLEANUP_RESERVE, reserve=0)
    return measurement


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per fault: the runs, and the median failover time and lost requests."""
    out: dict[str, Any] = {"runs": runs}
    for kind in FAULTS:
        mine = [r for r in runs if r["fault"] == kind]
        times = [r["takeover_s"] for r in mine if r["takeover_s"] is not None]
        if mine:
            out[kind] = {"median_takeover_s": round(median(times), 3) if times else None,
                         "max_takeover_s": max(times) if times else None,
                         "median_lost": median(r["lost"] for r in mine), "max_lost": max(r["lost"] for r in mine)}
    return out

