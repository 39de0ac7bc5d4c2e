"""python -m lab.kubeapi --bind ADDR --port N --tls-cert F --tls-key F
--token-auth-file F --authorization-policy lab/rbac.yaml"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .auth import load_tokens
from .server import build_server, serve


def _port_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit() and 0 < int(first) <= int(last) < 65536):
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST ports, got {text!r}")
    return int(first), int(last)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.kubeapi", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443, help="0 picks a free port")
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--token-auth-file", required=True)
    parser.add_argument("--client-ca-file", help="CA whose client certificates authenticate: CN the user, O the groups")
    parser.add_argument("--authorization-policy", required=True, action="append",
                        help="RBAC manifest (ClusterRoles, bindings) the cluster starts with; repeat to load several."
                             " RBAC objects applied through the API count too")
    parser.add_argument("--root-ca-file", help="the CA written into ServiceAccount token Secrets as ca.crt"
                                               " (kube-controller-manager's flag of that name)")
    parser.add_argument("--watch-cache-size", type=int, default=10000,
                        help="events kept per resource for watches from a resourceVersion")
    parser.add_argument("--bookmark-interval", type=float, default=1.0,
                        help="seconds between BOOKMARK events on watches that allow them")
    parser.add_argument("--list-snapshots", type=int, default=16,
                        help="list snapshots kept for continue tokens")
    parser.add_argument("--service-node-port-range", default="30000-32767", type=_port_range,
                        help="node ports to allocate from, as kube-apiserver's flag (FIRST-LAST)")
    parser.add_argument("--log-file", help="access log (one line per request); default stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        tokens = load_tokens(args.token_auth_file)
        root_ca = Path(args.root_ca_file).read_bytes() if args.root_ca_file else b""
        server = build_server(args.bind, args.port, args.tls_cert, args.tls_key, tokens, args.authorization_policy,
                              args.watch_cache_size, args.bookmark_interval, args.list_snapshots,
                              args.service_node_port_range, args.client_ca_file, root_ca)
    except (OSError, ValueError, KeyError) as exc:
        print(f"kubeapi: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening on https://{args.bind}:{server.server_address[1]}", flush=True)
    serve(server, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
