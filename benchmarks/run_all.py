"""Run the benchmarks whose tables the README shows, one after another, and say how long each took.

    .venv/bin/python benchmarks/run_all.py                  # the quick ones (minutes)
    .venv/bin/python benchmarks/run_all.py --all            # every one (hours: leave-one-family-out, measurements)
    .venv/bin/python benchmarks/run_all.py --only partition_solver tui_responsiveness

Each benchmark writes its own table to benchmarks/results/ (and prints it); this
script only runs them in the order of the data flow, with their default
arguments, and ends with one line per benchmark: its time and exit status. The
load average is printed beside each, since the machine may be shared. A
benchmark that needs what this machine lacks (root for network namespaces) is
skipped with the reason. ``make bench`` runs this script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, takes long), in the order of the data flow
BENCHMARKS: list[tuple[str, bool]] = [
    ("blocks_all", False),
    ("measure_gap", True),
    ("remote_overhead", True),
    ("predict_nb201", True),
    ("predict_fewshot", True),
    ("predict_torchvision", True),
    ("predict_unseen", True),
    ("partition_solver", False),
    ("partition_quality", True),
    ("pipeline_netns", True),
    ("tui_responsiveness", False),
    ("tui_walkthrough", True),
]


def unavailable(name: str) -> str | None:
    """Why ``name`` cannot run on this machine, or None."""
    if name == "pipeline_netns" and os.geteuid() != 0:
        return "needs root (it creates network namespaces)"
    if name == "remote_overhead" and not Path("/usr/sbin/sshd").exists():
        return "needs the OpenSSH server (apt-get install openssh-server)"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also the long benchmarks (hours)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="just these (names without .py)")
    args = ap.parse_args(argv)
    known = [name for name, _ in BENCHMARKS]
    if args.only:
        unknown = [n for n in args.only if n not in known]
        if unknown:
            ap.error(f"unknown benchmark {unknown[0]!r}; give one of {', '.join(known)}")
        chosen = [n for n in known if n in args.only]
    else:
        chosen = [n for n, long in BENCHMARKS if args.all or not long]
    report = []
    for name in chosen:
        why = unavailable(name)
        if why:
            report.append(f"{name:<22} skipped: {why}")
            continue
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        print(f"\n=== {name} (load {load:.1f})", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        report.append(f"{name:<22} {time.monotonic() - t0:8.1f} s  exit {rc}  (load {load:.1f} at start)")
    print("\n" + "\n".join(report))
    return 0 if all("exit 0" in r or "skipped" in r for r in report) else 1


if __name__ == "__main__":
    sys.exit(main())
