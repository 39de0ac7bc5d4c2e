"""lab/testlib/vip_client.py and bench/failover.py's summary: what the failover benchmark counts as lost."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.failover import summarise

REPO = Path(__file__).resolve().parents[3]


def test_the_client_counts_refused_and_unanswered_requests_as_lost():
    """A loopback server answers 200 for 0.3 s, then stops listening: the rest are lost."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.02)
    port = server.getsockname()[1]
    stop_at = time.monotonic() + 1.3

    def serve() -> None:
        while time.monotonic() < stop_at:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic() + 1.0
    out = subprocess.run([sys.executable, "-m", "lab.testlib.vip_client", "--address", "127.0.0.1", "--port", str(port),
                          "--start", f"{start}", "--seconds", "0.6", "--every", "0.02", "--timeout", "0.5"],
                         cwd=REPO, capture_output=True, text=True, timeout=30, check=True).stdout
    results = json.loads(out)
    assert len(results) == 30
    sent = [r[0] for r in results]
    # One request every 20 ms (each task's own start time: jitter on a loaded machine is fine).
    assert 0.5 < sent[-1] - sent[0] < 0.9
    answered = [ok for t, ok, _ in results if t < stop_at - 0.05]
    refused = [ok for t, ok, _ in results if t > stop_at + 0.05]
    assert answered and all(answered)
    assert refused and not any(refused)


def test_summarise_takes_medians_per_fault():
    runs = [{"fault": "proxy_killed", "takeover_s": 0.1, "lost": 5}, {"fault": "proxy_killed", "takeover_s": 0.3, "lost": 9},
            {"fault": "proxy_killed", "takeover_s": None, "lost": 150}, {"fault": "link_down", "takeover_s": 0.7, "lost": 30}]
    summary = summarise(runs)
    assert summary["proxy_killed"] == {"median_takeover_s": 0.2, "max_takeover_s": 0.3, "median_lost": 9, "max_lost": 150}
    assert summary["link_down"]["median_takeover_s"] == 0.7
    assert "keepalived_stopped" not in summary and summary["runs"] == runs


def test_the_vip_client_stops_at_sigterm_and_reports_what_it_sent():
    start = time.monotonic() + 0.5
    client = subprocess.Popen([sys.executable, "-m", "lab.testlib.vip_client", "--address", "127.0.0.1", "--port", "9",
                               "--start", f"{start}", "--seconds", "60", "--every", "0.1", "--timeout", "0.2"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(max(0.0, start + 1.0 - time.monotonic()))  # about ten requests sent
        client.terminate()
        out, _ = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0
    results = json.loads(out)
    assert 3 <= len(results) < 100 and not any(ok for _t, ok, _s in results)  # nothing listens on port 9
