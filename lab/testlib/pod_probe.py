"""Which pod answers through each edge, request after request.

Run in the lab's client namespace by converge.py: HTTP GETs with a Host header, each on a
new connection, to the edges in turn, every --every seconds, for at most --seconds (at most 120,
and 50,000 requests). One line per request, flushed at once, so the caller reads it live and
stops the probe (SIGTERM) once it has seen what it waits for:

    <epoch sent> <edge> <pod that answered 200, or -> <seconds taken>
"""
from __future__ import annotations

import argparse
import http.client
import re
import sys
import time

MAX_REQUESTS = 50_000
_HOSTNAME = re.compile(rb"^Hostname: (\S+)", re.M)


def ask(edge: str, host: str, timeout: float) -> str | None:
    """The pod that answered 200 through `edge`, or None."""
    connection = http.client.HTTPConnection(edge, 80, timeout=timeout)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    match = _HOSTNAME.search(body) if response.status == 200 else None
    return match.group(1).decode() if match else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.testlib.pod_probe")
    parser.add_argument("--edges", required=True, help="comma-separated edge addresses")
    parser.add_argument("--host", required=True, help="Host header")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=0.005)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 120 or not 0 <= args.every <= 1 or not 0 < args.timeout <= 5:
        parser.error("--seconds must be in (0, 120], --every in [0, 1], --timeout in (0, 5]")
    edges = args.edges.split(",")
    until = time.monotonic() + args.seconds
    requests = 0
    while time.monotonic() < until and requests < MAX_REQUESTS:
        for edge in edges:
            sent, started = time.time(), time.monotonic()
            pod = ask(edge, args.host, args.timeout)
            print(f"{sent:.6f} {edge} {pod or '-'} {time.monotonic() - started:.4f}", flush=True)
            requests += 1
        time.sleep(args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
