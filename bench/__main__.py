"""python -m bench [--quick] [--out DIR] [NAME...]: run benchmarks, write <name>.json, SUMMARY.md and the figures (<name>.png).

python -m bench --check [--quick] [--out DIR] [NAME...]: check the files a run wrote (shape only).
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path

from bench import _lab, _plots, harness
from lab.testlib import steps

LAB_UP_SECONDS = 600 + steps.CLEANUP_RESERVE  # the bound of `labctl up` when the run holds the lab


def parse_args(argv: list[str], known: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small parameters, results in bench/results/quick/")
    parser.add_argument("--out", type=Path, help="where to write results (default: bench/results[/quick])")
    parser.add_argument("--check", action="store_true", help="only check the results in --out")
    parser.add_argument("--hold-lab", action="store_true",
                        help="bring the lab up once for the whole run (if it is down) instead of once per benchmark")
    parser.add_argument("--lab-discarded", action="store_true",
                        help="the caller takes the lab down after this run (make test): do not restore the edges")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(known)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}")
    args.names = args.names or known
    args.out = args.out or (harness.QUICK_RESULTS if args.quick else harness.RESULTS)
    return args


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C, so every benchmark's cleanup (finally) still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    modules = harness.discover()
    args = parse_args(sys.argv[1:] if argv is None else argv, list(modules))
    if args.check:
        problems = harness.check_results(args.out, args.names)
        for problem in problems:
            print(f"bench: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if args.lab_discarded:
        _lab.discard_after_run()
    machine = harness.machine_facts()
    failed = False
    # The benchmarks on the lab leave it as they find it: held up, each skips its own up and down.
    with _lab.lab(time.monotonic() + LAB_UP_SECONDS) if args.hold_lab else contextlib.nullcontext():
        for name in args.names:
            print(f"bench: {name} ({'quick' if args.quick else 'full'}) ...", flush=True)
            result = harness.run_one(name, modules[name], args.quick, machine)
            harness.write_result(args.out, result)
            print("bench: " + " | ".join(harness.summary_row(result)), flush=True)
            for error in result["errors"]:
                print(f"bench: {name}: {error}", file=sys.stderr)
            failed = failed or result["verdict"] == "error"
    print(f"bench: wrote {harness.write_summary(args.out)}")
    for figure in _plots.draw(args.out):
        print(f"bench: drew {figure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
