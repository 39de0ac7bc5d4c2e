"""Pod processes of the lab kubelet: start, probe, restart, graceful stop, and what survives a
kubelet restart.

One asyncio task per pod (like the kubelet's pod workers) owns the pod's address, process and
status. A pod's process is a ``lab.cluster.echo`` in its own session (so its process group id is
its PID) and is signalled by that PID only. Each pod's state is kept in ``<state-dir>/<uid>.json``,
so a restarted kubelet adopts the processes of pods that still exist and cleans up the rest.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.cluster import _hostnet
from lab.cluster._kubelet_model import Probe, Runtime, container_env, echo_ports, pod_status, readiness_probe, status_differs
from lab.cluster._model import Obj, format_time, key, now, pod_is_terminating

if TYPE_CHECKING:
    from lab.cluster.kubelet import Kubelet

log = logging.getLogger("lab.cluster.pods")

REPO = Path(__file__).resolve().parents[2]
SYNC_SECONDS = 1.0
PROBE_TIMEOUT = 1.0
DEFAULT_GRACE = 30


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, which tells a process from a later one with the same PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


@dataclass
class PodRecord:
    """What the state dir keeps of a pod."""

    uid: str
    namespace: str
    name: str
    ip: str
    pid: int = 0
    proc_start: str = ""
    started_at: str = ""
    restart_count: int = 0


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "logs").mkdir(parents=True, exist_ok=True)

    def save(self, record: PodRecord) -> None:
        tmp = self.path / f"{record.uid}.json.tmp"
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(self.path / f"{record.uid}.json")

    def remove(self, uid: str) -> None:
        (self.path / f"{uid}.json").unlink(missing_ok=True)

    def load(self) -> list[PodRecord]:
        out = []
        for file in sorted(self.path.glob("*.json")):
            try:
                out.append(PodRecord(**json.loads(file.read_text())))
            except (OSError, ValueError, TypeError):
                log.warning("state file %s is unreadable; ignoring it", file)
                file.unlink(missing_ok=True)
        return out

    def log_file(self, pod: Obj) -> Path:
        meta = pod["metadata"]
        return self.path / "logs" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}.log"


class PodProcess:
    """A pod's process: our child, or one adopted from a previous kubelet run (then polled via /proc)."""

    def __init__(self, pid: int, proc_start: str, started_at: str, popen: subprocess.Popen | None = None) -> None:
        self.pid, self.proc_start, self.started_at, self.popen = pid, proc_start, started_at, popen

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _proc_start_time(self.pid) == self.proc_start

    def exit_code(self) -> int:
        code = self.popen.returncode if self.popen is not None else None
        if code is None:
            return 255  # an adopted process: its exit status went to someone else
        return 128 - code if code < 0 else code

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the process group (the echo server's and anything it left)."""
        if not self.alive():
            return  # a PID that is gone may have been reused: never signal it
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen is not None:
            self.popen.wait()


def kill_recorded(record: PodRecord) -> None:
    """Stop the process of a record from an earlier kubelet run, if it is still that process."""
    if record.pid and _proc_start_time(record.pid) == record.proc_start:
        PodProcess(record.pid, record.proc_start, record.started_at).kill_group()


async def probe(ip: str, check: Probe | None) -> bool:
    if check is None:
        return True
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, check.port), PROBE_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        if check.path is None:
            return True
        writer.write(f"GET {check.path} HTTP/1.1\r\nHost: {ip}:{check.port}\r\nUser-Agent: kube-probe/1.37\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
        parts = line.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: Obj, record: PodRecord | None = None) -> None:
        self.kubelet = kubelet
        self.uid = pod["metadata"]["uid"]
        self.key = key(pod)
        self.changed = asyncio.Event()
        self.ip = record.ip if record else None
        self.proc = PodProcess(record.pid, record.proc_start, record.started_at) if record and record.pid else None
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        self.restart_count = max(record.restart_count if record else 0, statuses[0].get("restartCount") or 0)
        self.last_exit: tuple[int, str, str] | None = None
        self.ready = False
        self.waiting_reason = "ContainerCreating"
        self.seen_version: str | None = None  # resourceVersion of the pod as last acted on

    def pod(self) -> Obj | None:
        pod = self.kubelet.pods.get(self.key)
        if pod is None or pod["metadata"].get("uid") != self.uid:
            return None
        self.seen_version = pod["metadata"].get("resourceVersion")
        return pod

    async def run(self) -> None:
        while True:
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the pod managed; try again
                log.exception("pod %s: worker failed; retrying", self.key)
                await asyncio.sleep(SYNC_SECONDS)

    async def _run(self) -> None:
        pod = self.pod()
        if pod is None:
            await self._teardown()
            return
        if pod_is_terminating(pod):  # e.g. deleted while the kubelet was down: no address needed
            await self._terminate(pod)
            return
        if self.ip is None:
            self.ip = self.kubelet.allocate_ip()
        await asyncio.to_thread(_hostnet.add_pod_address, self.ip)
        self._save(pod)
        while True:
            pod = self.pod()
            if pod is None:
                log.info("pod %s: removed from the API; stopping it now", self.key)
                await self._teardown()
                return
            if pod_is_terminating(pod):
                await self._terminate(pod)
                return
            await self._ensure_running(pod)
            self.ready = self.proc is not None and self.proc.alive() and await probe(self.ip, readiness_probe(pod))
            await self._post_status(pod)
            await self._wait(SYNC_SECONDS)

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.changed.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self.changed.clear()

    def _save(self, pod: Obj) -> None:
        assert self.ip is not None
        record = PodRecord(self.uid, pod["metadata"]["namespace"], pod["metadata"]["name"], self.ip,
                           restart_count=self.restart_count)
        if self.proc is not None:
            record.pid, record.proc_start, record.started_at = self.proc.pid, self.proc.proc_start, self.proc.started_at
        self.kubelet.state.save(record)

    async def _ensure_running(self, pod: Obj) -> None:
        if self.proc is not None and self.proc.alive():
            return
        if self.proc is not None:
            code = self.proc.exit_code()
            self.last_exit = (code, self.proc.started_at, format_time(now()))
            self.restart_count += 1
            self.proc = None
            self.ready = False
            self.waiting_reason = "CrashLoopBackOff"
            log.warning("pod %s: process exited with %s; restart %d", self.key, code, self.restart_count)
            await self._post_status(pod)
            await asyncio.sleep(min(10.0, 0.5 * 2 ** min(self.restart_count, 5)))
        self.proc = self._start(pod)
        self._save(pod)

    def _start(self, pod: Obj) -> PodProcess:
        assert self.ip is not None
        cfg = self.kubelet.cfg
        meta = pod["metadata"]
        argv = [sys.executable, "-m", "lab.cluster.echo", "--pod", meta["name"], "--namespace", meta["namespace"],
                "--node", cfg.name, "--ip", self.ip]
        for option, port in echo_ports(pod).items():
            argv += [option, str(port)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
               **container_env(pod, cfg.name, cfg.ip, self.ip)}
        with open(self.kubelet.state.log_file(pod), "ab") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO, start_new_session=True)
        log.info("pod %s: started pid %d on %s", self.key, popen.pid, self.ip)
        return PodProcess(popen.pid, _proc_start_time(popen.pid) or "", format_time(now()), popen)

    def _runtime(self) -> Runtime:
        assert self.ip is not None
        running = self.proc is not None and self.proc.alive()
        return Runtime(
            pod_ip=self.ip,
            started_at=self.proc.started_at if running and self.proc else None,
            ready=self.ready and running,
            restart_count=self.restart_count,
            last_exit=self.last_exit,
            container_id=f"lab://{self.uid}/{self.restart_count}",
            waiting_reason=self.waiting_reason,
        )

    async def _post_status(self, pod: Obj) -> None:
        desired = pod_status(pod, self._runtime(), self.kubelet.cfg.ip, format_time(now()))
        if status_differs(pod, desired):
            await self.kubelet.patch_pod_status(pod, desired)

    async def _terminate(self, pod: Obj) -> None:
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        deadline = time.monotonic() + float(grace)
        if self.proc is not None and self.proc.alive():
            log.info("pod %s: deleting; SIGTERM to pid %d, grace %s s", self.key, self.proc.pid, grace)
            self.proc.signal(signal.SIGTERM)
        while self.proc is not None and self.proc.alive() and time.monotonic() < deadline:
            current = self.pod()
            if current is None:
                break
            # Keep probing: a draining pod that still answers stays "serving".
            self.ready = await probe(self.ip or "", readiness_probe(current))
            await self._post_status(current)
            await asyncio.sleep(0.5)
        await self._stop_and_release()
        await self.kubelet.delete_pod_now(pod)
        self.kubelet.forget_worker(self.uid)

    async def _stop_and_release(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(self.proc.kill_group)
        if self.ip is not None:
            await asyncio.to_thread(_hostnet.remove_pod_address, self.ip)
        self.kubelet.state.remove(self.uid)

    async def _teardown(self) -> None:
        await self._stop_and_release()
        self.kubelet.forget_worker(self.uid)
