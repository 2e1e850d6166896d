"""Sum of blocks versus the full model, and run-to-run spread, on this machine.

For each model (batch 1, natural blocks) the chain is measured ``--runs`` times
(both modes and the full model, nothing taken from a store). Reported:

* gap: (sum of block medians - full model median) / full model median, per mode
  (mean over the runs, and the worst run);
* spread: for every block whose median is over 1 ms, the relative standard
  deviation of its median over the runs; the median and the worst block, per mode.

Targets (issue 3): in-context |gap| <= 3 %; spread < 2 % on blocks over 1 ms.

    .venv/bin/python benchmarks/measure_gap.py [--threads 1] [--runs 3] [--models resnet18,...]
    python3 benchmarks/measure_gap.py --device cuda --adjust-for-overhead --out benchmarks/results/measure_gap_cuda

On a GPU (``--device cuda``) blocks are timed with CUDA events and
``--adjust-for-overhead`` also times an empty block in each mode and reports
the gap with that per-block cost subtracted.

Prints a markdown table and writes benchmarks/results/measure_gap.{md,json}.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gapp_tui.blocks import BlockChain  # noqa: E402
from gapp_tui.measure import device as device_mod  # noqa: E402
from gapp_tui.measure.engine import MeasureConfig, measure  # noqa: E402
from gapp_tui.measure.timer import Precision  # noqa: E402
from gapp_tui.zoo import ModelSpec  # noqa: E402

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "inception_v3", "vgg16", "vit_b_16"]
TARGET_GAP = 3.0
TARGET_SPREAD = 2.0


def bench_model(name: str, runs: int, threads: int, precision: Precision, clock: str = "wall", device: str = "cpu",
                adjust: bool = False, batch_size: int = 1) -> dict:
    chain = BlockChain.from_spec(ModelSpec(name, batch_size=batch_size))
    per_run = []
    for k in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        r = measure(chain, MeasureConfig(threads=threads, precision=precision, clock=clock, device=device,
                                         adjust_for_overhead=adjust))
        wall = time.perf_counter() - t0
        per_run.append(
            {
                "seconds": wall,
                # the share of the wall time this process had a CPU: 1.0 on an idle machine (one thread)
                "cpu_share": (time.process_time() - c0) / wall,
                "full_ms": r.full["median_ms"],
                "chain_ms": r.chain_ms.get("in-context"),
                "sums": {m: s["sum_ms"] for m, s in r.sums.items()},
                "gaps": {m: s["gap_pct"] for m, s in r.sums.items()},
                "gaps_mean": {m: s.get("gap_mean_pct") for m, s in r.sums.items()},
                "gaps_adjusted": {m: s.get("adjusted_gap_pct") for m, s in r.sums.items()},
                "overhead_ms": {m: s.get("overhead_ms_per_block") for m, s in r.sums.items()},
                "blocks": {m: [row["median_ms"] for row in rows] for m, rows in r.rows.items()},
                "loadavg": os.getloadavg()[0],
            }
        )
        print(f"  {name} run {k + 1}/{runs}: full {r.full['median_ms']:.2f} ms, gaps "
              + ", ".join(f"{m} {g:+.2f}%" for m, g in per_run[-1]["gaps"].items())
              + f" ({per_run[-1]['seconds']:.0f} s, CPU share {per_run[-1]['cpu_share']:.2f},"
              f" load {per_run[-1]['loadavg']:.1f})", file=sys.stderr, flush=True)
    out = {"model": name, "blocks": len(chain), "names": chain.names, "runs": per_run}
    for mode in ("standalone", "in-context"):
        gaps = [p["gaps"][mode] for p in per_run]
        meds = list(zip(*[p["blocks"][mode] for p in per_run]))  # per block, its medians over the runs
        spreads = [
            statistics.stdev(m) / statistics.mean(m) * 100
            for m in meds
            if statistics.mean(m) > 1.0 and len(m) > 1
        ]
        out[mode] = {
            "gap_of_means_pct": statistics.mean(p["gaps_mean"][mode] for p in per_run),
            "gap_mean_pct": statistics.mean(gaps),
            "gap_worst_pct": max(gaps, key=abs),
            "gap_adjusted_pct": (statistics.mean(p["gaps_adjusted"][mode] for p in per_run)
                                 if all(p["gaps_adjusted"][mode] is not None for p in per_run) else None),
            "overhead_ms": (statistics.mean(p["overhead_ms"][mode] for p in per_run)
                            if all(p["overhead_ms"][mode] is not None for p in per_run) else None),
            "sum_ms": statistics.mean(p["sums"][mode] for p in per_run),
            "spread_blocks": len(spreads),
            "spread_median_pct": statistics.median(spreads) if spreads else None,
            "spread_max_pct": max(spreads) if spreads else None,
        }
    out["full_ms"] = statistics.mean(p["full_ms"] for p in per_run)
    out["cpu_share"] = statistics.mean(p["cpu_share"] for p in per_run)
    fulls = [p["full_ms"] for p in per_run]
    out["full_spread_pct"] = statistics.stdev(fulls) / statistics.mean(fulls) * 100 if len(fulls) > 1 else None
    return out


def table(results: list[dict], threads: int, load: tuple[float, float], precision: Precision, runs: int,
          clock: str, device: dict | None = None, batch_size: int = 1) -> str:
    adjusted = any(r["in-context"]["gap_adjusted_pct"] is not None for r in results)
    on = ""
    if device and device.get("device_type") == "cuda":
        on = f"GPU: {device.get('accelerator')} (CUDA events), "
    lines = [
        f"{on}Batch {batch_size}, natural blocks, {threads} thread(s), {clock} clock, {runs} runs per model, "
        f"precision: target CI ±{precision.target_ci * 100:g}%, {precision.min_runs}-{precision.max_runs} runs, "
        f"≤{precision.max_time_s:g} s per block. Machine: {device_mod.cpu_model()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {platform.system()}. Load average (1 min) {load[0]:.1f} at start, "
        f"{load[1]:.1f} at end.",
        "",
        "| model | blocks | full ms | standalone sum ms | standalone gap % | in-context sum ms | in-context gap % "
        "(worst run) | in-context gap on means % | spread standalone % (median / max) | spread in-context % (median / max) "
        "| full-model spread % | CPU share |" + (" overhead µs per block (standalone / in-context) | adjusted gap % "
                                                  "(standalone / in-context) |" if adjusted else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if adjusted else ""),
    ]

    def sp(d: dict) -> str:
        if d["spread_median_pct"] is None:
            return "no block > 1 ms"
        return f"{d['spread_median_pct']:.2f} / {d['spread_max_pct']:.2f} ({d['spread_blocks']} blocks)"

    for r in results:
        s, c = r["standalone"], r["in-context"]
        ok_gap = "✓" if abs(c["gap_worst_pct"]) <= TARGET_GAP else "✗"
        ok_sp = "✓" if (c["spread_max_pct"] or 0) < TARGET_SPREAD else "✗"
        lines.append(
            f"| {r['model']} | {r['blocks']} | {r['full_ms']:.2f} | {s['sum_ms']:.2f} | {s['gap_mean_pct']:+.2f} | "
            f"{c['sum_ms']:.2f} | {c['gap_mean_pct']:+.2f} ({c['gap_worst_pct']:+.2f}) {ok_gap} | "
            f"{c['gap_of_means_pct']:+.2f} | {sp(s)} | "
            f"{sp(c)} {ok_sp} | {'-' if r['full_spread_pct'] is None else format(r['full_spread_pct'], '.2f')} | {r['cpu_share']:.2f} |"
            + (f" {s['overhead_ms'] * 1e3:.1f} / {c['overhead_ms'] * 1e3:.1f} | {s['gap_adjusted_pct']:+.2f} / "
               f"{c['gap_adjusted_pct']:+.2f} |" if adjusted else "")
        )
    lines += [
        "",
        f"Targets: in-context gap within ±{TARGET_GAP:g}% (✓ on the worst run); run-to-run spread "
        f"(relative std of a block's median over the runs) under {TARGET_SPREAD:g}% on blocks over 1 ms "
        "(✓ on the worst block, in context). Gaps are of sums of block medians against the full model's median "
        "(mean over the runs; the worst run in brackets); 'gap on means' compares sums of block means with the "
        "full model's mean instead. CPU share: process CPU time / wall time of the runs -- 1.00 means the "
        "measuring thread had a core to itself all along; 0.30 means it was descheduled 70% of the time.",
    ]
    if adjusted:
        lines.append("Overhead: an empty block timed the same way as the real ones in each mode (what the clock, "
                     "the events and the launch add per block); the adjusted gap subtracts it once per block from "
                     "the sum of blocks.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--target-ci", type=float, default=0.01)
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=200)
    ap.add_argument("--max-time", type=float, default=3.0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--adjust-for-overhead", action="store_true",
                    help="also time an empty block per mode and report gaps with that cost subtracted")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "measure_gap"))
    args = ap.parse_args()
    precision = Precision(min_runs=args.min_runs, max_runs=args.max_runs, target_ci=args.target_ci,
                          max_time_s=args.max_time)
    load0 = os.getloadavg()[0]
    results = []
    for name in args.models.split(","):
        results.append(bench_model(name.strip(), args.runs, args.threads, precision, args.clock, args.device,
                                   args.adjust_for_overhead, args.batch_size))
    load1 = os.getloadavg()[0]
    desc = device_mod.describe(args.device)
    md = table(results, args.threads, (load0, load1), precision, args.runs, args.clock, desc, args.batch_size)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("# Measurement: sum of blocks versus full model, run-to-run spread\n\n" + md + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"batch_size": args.batch_size, "threads": args.threads, "clock": args.clock, "runs": args.runs, "precision": precision.to_dict(), "loadavg": [load0, load1],
         "device": desc, "results": results}, indent=2))


if __name__ == "__main__":
    main()
