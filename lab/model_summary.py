"""Print an edge model (edge_info's JSON result on stdin) as one line per route: for the demo."""
from __future__ import annotations

import json
import sys


def summary(model: dict) -> list[str]:
    targets = {b["name"]: ", ".join(f"{t['address']}:{t['port']}" for t in b["targets"]) for b in model["backends"]}
    lines = [f"generation {model['generation'][:12]}"]
    for frontend in model["frontends"]:
        for route in frontend.get("routes", []):
            where = f"{route['host']}{route['path']}"
            lines.append(f"{frontend['name']:18} {where:20} -> {route['backend']:26} {targets[route['backend']]}")
        for entry in frontend.get("sni") or []:  # TLS passthrough: routed by the name the client sends
            lines.append(f"{frontend['name']:18} {'sni ' + entry['host']:20} -> {entry['backend']:26} {targets[entry['backend']]}")
        if frontend.get("backend"):
            backend = frontend["backend"]
            lines.append(f"{frontend['name']:18} {'':20} -> {backend:26} {targets[backend]}")
    lines.append(f"{len(model['errors'])} errors, {len(model['warnings'])} warnings")
    return lines


if __name__ == "__main__":
    print("\n".join(summary(json.load(sys.stdin)["model"])))
