"""A client that sends one HTTP request (HTTPS with --ca) every --every seconds to a VIP, each on a new connection,
from --start (CLOCK_MONOTONIC seconds, shared by every network namespace) for --seconds, and
prints one JSON list: [sent_at, answered 2xx within --timeout, seconds taken] per request.
SIGTERM stops it early, and it prints what it sent until then.

Run inside the lab's client namespace by bench/failover.py and lab/testlib/rolling.py; bounded in count
and time."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import sys
import time

MAX_REQUESTS = 20_000


async def request(address: str, port: int, host_header: str, path: str, timeout: float,
                  tls: ssl.SSLContext | None) -> tuple[float, bool, float]:
    sent = time.monotonic()
    ok = False
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            address, port, ssl=tls, server_hostname=host_header if tls else None), timeout)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host_header}\r\n\r\n".encode("ascii"))
            status = await asyncio.wait_for(reader.readline(), max(0.001, sent + timeout - time.monotonic()))
            ok = status.split(b" ")[1:2] == [b"200"]
            # Read the whole answer, so the proxy sees a client that finished cleanly.
            await asyncio.wait_for(reader.read(), max(0.001, sent + timeout - time.monotonic()))
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, IndexError, ssl.SSLError):
        ok = False
    return sent, ok, time.monotonic() - sent


async def run(args: argparse.Namespace) -> list[tuple[float, bool, float]]:
    """SIGTERM ends the run early: no request is sent after it, the ones under way finish."""
    count = min(MAX_REQUESTS, int(args.seconds / args.every))
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    tls = ssl.create_default_context(cafile=args.ca) if args.ca else None
    tasks = []
    for index in range(count):
        try:
            await asyncio.wait_for(stopped.wait(), max(0.0, args.start + index * args.every - time.monotonic()))
            break
        except asyncio.TimeoutError:
            pass
        tasks.append(asyncio.create_task(request(args.address, args.port, args.host_header, args.path, args.timeout, tls)))
    return list(await asyncio.gather(*tasks))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.testlib.vip_client")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--host-header", default="s2.pctest")
    parser.add_argument("--path", default="/")
    parser.add_argument("--ca", default="", help="HTTPS: trust this CA file and check the Host header's name")
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--every", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 300 or not 0.001 <= args.every <= 10:
        parser.error("--seconds must be in (0, 300] and --every in [0.001, 10]")
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
