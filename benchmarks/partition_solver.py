"""Solver and estimator speed: can the TUI re-solve and re-estimate on every keystroke?

    .venv/bin/python benchmarks/partition_solver.py [--repeats N]

Targets (issue 6): the exact solver for n = 1000 blocks and k = 8 devices in
under 0.5 s, for a typical model (n <= 300, k <= 4) under 20 ms; the estimate
of one plan of a 300-block model well under a millisecond.

Synthetic cost tables (seeded) of the target sizes, every objective and
communication mode, plus the real op-level chain of resnet50 (cut bytes and
tensor counts from its BlockChain, times from FLOPs at two rates). Each row is
the median (and the minimum) wall time of ``--repeats`` calls in this process.
Prints a markdown table and writes benchmarks/results/partition_solver.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gapp_tui.partition import CostTable, Link, estimate, solve  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def synthetic(n: int, k: int, seed: int = 0) -> CostTable:
    rng = np.random.default_rng(seed)
    times = {f"dev{j}": (rng.lognormal(-7, 1, n) * (4.0 / (j + 1))).tolist() for j in range(k)}
    return CostTable(
        [f"b{i}" for i in range(n)],
        times,
        rng.integers(1_000, 2_000_000, n + 1).tolist(),
        rng.integers(1, 4, n + 1).tolist(),
        rng.integers(0, 5_000_000, n).tolist(),
        sources="flops",
    )


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm the caches (prefix sums) and numpy
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    link = Link.parse("100Mbit/s", "2ms", "50us")
    rows = []

    def add(case: str, n: int, k: int, what: str, target_s: float | None, fn, repeats: int) -> None:
        med, best = timed(fn, repeats)
        rows.append({"case": case, "blocks": n, "devices": k, "what": what, "median_ms": med * 1e3,
                     "min_ms": best * 1e3, "target_ms": None if target_s is None else target_s * 1e3,
                     "ok": None if target_s is None else med <= target_s})

    for n, k, target in ((300, 4, 0.020), (1000, 8, 0.5)):
        table = synthetic(n, k)
        devices = table.devices
        reps = args.repeats if n <= 300 else max(3, args.repeats // 3)
        for comm in ("overlapped", "serial"):
            for obj in ("throughput", "latency"):
                add("synthetic", n, k, f"solve {obj}, {comm}", target,
                    lambda t=table, d=devices, o=obj, c=comm: solve(t, d, link, objective=o, communication=c), reps)
        add("synthetic", n, k, "solve throughput, memory limits, no empty", target,
            lambda t=table, d=devices: solve(t, d, link, allow_empty=False,
                                             memory={d[0]: 0.6 * sum(t.param_bytes)}), reps)

    # the estimator: one plan of a 300-block model (what the TUI does on every keystroke)
    table = synthetic(300, 4)
    plan = solve(table, table.devices, link)
    add("synthetic", 300, 4, "estimate one plan", 0.001, lambda: estimate(table, plan), 2000)
    add("synthetic", 300, 4, "move a cut + estimate (TUI keystroke)", 0.001,
        lambda: estimate(table, plan.with_boundaries([0, 70, 150, 220, 300])), 2000)

    # a real chain: resnet50 cut at every op, FLOP-rate times for a slow and a fast device
    from gapp_tui.blocks import BlockChain
    from gapp_tui.partition.costs import flops_times
    from gapp_tui.zoo import ModelSpec

    chain = BlockChain.from_spec(ModelSpec("resnet50"), "op", device="meta")
    flops = [b.flops for b in chain.blocks]
    real = CostTable.from_chain(chain, {"pi": flops_times(flops, 2e9), "server": flops_times(flops, 50e9),
                                        "edge": flops_times(flops, 10e9), "gpu": flops_times(flops, 500e9)}, "flops")
    n = real.n
    for devs in (["pi", "server"], ["pi", "edge", "server", "gpu"]):
        add(f"resnet50 op-level ({n} blocks)", n, len(devs), "solve throughput, overlapped",
            0.020 if n <= 300 else None, lambda d=devs: solve(real, d, link), args.repeats)
    rplan = solve(real, ["pi", "edge", "server", "gpu"], link)
    add(f"resnet50 op-level ({n} blocks)", n, 4, "estimate one plan", 0.001, lambda: estimate(real, rplan), 2000)

    doc = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "numpy": np.__version__, "load_avg": os.getloadavg()},
        "rows": rows,
    }
    md = ["| case | blocks | devices | what | median ms | min ms | target ms | ok |",
          "|---|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        tgt = "-" if r["target_ms"] is None else f"{r['target_ms']:g}"
        ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "**no**")
        md.append(f"| {r['case']} | {r['blocks']} | {r['devices']} | {r['what']} | {r['median_ms']:.3f} | "
                  f"{r['min_ms']:.3f} | {tgt} | {ok} |")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    md.append("")
    md.append(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}; "
              f"load average at the end {load} (the machine is shared with other work).")
    text = "\n".join(md)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "partition_solver.md").write_text(text + "\n")
    (OUT / "partition_solver.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
