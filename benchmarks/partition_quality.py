"""Plan quality: is a plan chosen from predicted times as good as one chosen from measured times?

    .venv/bin/python benchmarks/partition_quality.py --db PATH \\
        --device pi=PI_KEY --device server=SERVER_KEY \\
        --models resnet18,mobilenet_v2,googlenet,efficientnet_b0,squeezenet1_1 \\
        --bandwidth 50Mbit/s,100Mbit/s,1Gbps [--latency 2ms] [--candidate predicted|flops] \\
        [--predict pi] [--rate pi=2GFLOPs ...] [--input-size 224] [--granularity natural]

For every model and link rate:

1. the *reference* cost table: measured block times of every device, from the
   store (``gapp measure`` / ``gapp measure --host``);
2. the *candidate* cost table: the same, except that the devices named by
   ``--predict`` (default: all) use the candidate source — ``predicted`` (the
   GNN predictor, the real question) or ``flops`` (FLOPs / ``--rate``, a
   baseline any predictor must beat);
3. the optimal plan of each table (exact solver, throughput objective), both
   **evaluated on the measured table**: quality = throughput of the candidate's
   plan / throughput of the measured plan (1.0 = as good; target >= 0.97).

Prints a markdown table and writes benchmarks/results/partition_quality.md (+ .json).
Needs measurements of every model on every device; ``--candidate predicted``
also needs the predictor (``gapp_tui.predict``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gapp_tui.errors import BadInput  # noqa: E402
from gapp_tui.partition import Link, estimate, solve  # noqa: E402
from gapp_tui.partition.costs import parse_flops_rate  # noqa: E402
from gapp_tui.partition.times import cost_table, parse_assignments  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
TARGET = 0.97


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="the measurement store")
    ap.add_argument("--device", action="append", required=True, help="NAME=STORED_KEY[/SETTING], in pipeline order")
    ap.add_argument("--models", required=True, help="comma-separated model names (at least 5 for the target)")
    ap.add_argument("--bandwidth", default="50Mbit/s,100Mbit/s,1Gbps", help="link rates, comma-separated")
    ap.add_argument("--latency", default="1ms")
    ap.add_argument("--candidate", default="predicted", choices=("predicted", "flops"))
    ap.add_argument("--predict", default=None, help="devices that use the candidate source (default: all)")
    ap.add_argument("--rate", action="append", default=[], help="NAME=RATE for --candidate flops")
    ap.add_argument("--calibrate", default=None,
                    help="for --candidate flops: each device's rate = this model's FLOPs / its measured time (the model is then not evaluated)")
    ap.add_argument("--predictor", default=None, help="predictor file or name")
    ap.add_argument("--mode", default="in-context", choices=("in-context", "standalone"))
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--granularity", default="natural")
    ap.add_argument("--name", default="partition_quality", help="results file name")
    args = ap.parse_args()

    from gapp_tui.blocks import BlockChain
    from gapp_tui.store import Store
    from gapp_tui.zoo import ModelSpec

    keys = parse_assignments(args.device, "--device")
    devices = list(keys)
    predicted = [d.strip() for d in args.predict.split(",")] if args.predict else devices
    rates = {d: parse_flops_rate(v) for d, v in parse_assignments(args.rate, "--rate").items()}
    links = [Link.parse(bw, args.latency) for bw in args.bandwidth.split(",") if bw.strip()]
    rows, problems = [], []
    with Store(args.db, readonly=True) as store:
        if args.calibrate:
            chain = BlockChain.from_spec(ModelSpec(args.calibrate, input_size=args.input_size), args.granularity, device="meta")
            ref = cost_table(chain, {d: "measured" for d in devices}, store=store, device_keys=keys, mode=args.mode)
            flops = sum(b.flops for b in chain.blocks)
            rates = {d: flops / ref.total(d) for d in devices}
            print("calibrated rates (GFLOP/s): " + ", ".join(f"{d} {r / 1e9:.2f}" for d, r in rates.items()), file=sys.stderr)
        for name in [m.strip() for m in args.models.split(",") if m.strip() and m.strip() != args.calibrate]:
            spec = ModelSpec(name, input_size=args.input_size)
            chain = BlockChain.from_spec(spec, args.granularity, device="meta")
            try:
                measured = cost_table(chain, {d: "measured" for d in devices}, store=store, device_keys=keys,
                                      mode=args.mode)
                candidate = cost_table(
                    chain, {d: (args.candidate if d in predicted else "measured") for d in devices}, store=store,
                    device_keys=keys, rates=rates, mode=args.mode, predictor=args.predictor,
                )
            except BadInput as exc:
                problems.append(f"{name}: {exc}")
                print(f"skipped {name}: {exc}", file=sys.stderr)
                continue
            for link in links:
                best = solve(measured, devices, link)
                chosen = solve(candidate, devices, link)
                # the candidate's cuts, run on the measured times
                on_measured = estimate(measured, best.with_boundaries(chosen.boundaries))
                quality = best.estimate["period_s"] / on_measured.period_s
                rows.append({
                    "model": name, "blocks": measured.n, "link": link.describe(),
                    "measured_plan": best.boundaries, "candidate_plan": chosen.boundaries,
                    "measured_period_ms": best.estimate["period_s"] * 1e3,
                    "candidate_period_on_measured_ms": on_measured.period_s * 1e3,
                    "candidate_period_as_estimated_ms": chosen.estimate["period_s"] * 1e3,
                    "quality": quality, "ok": quality >= TARGET,
                })
    md = [f"Plans from **{args.candidate}** times (devices {', '.join(predicted)}) evaluated on measured times; "
          f"quality = measured-optimal period / candidate plan's measured period (target >= {TARGET}).", "",
          "| model | blocks | link | measured plan | candidate plan | measured-optimal period ms | "
          "candidate on measured ms | quality | ok |",
          "|---|---:|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['blocks']} | {r['link']} | {r['measured_plan']} | {r['candidate_plan']} | "
                  f"{r['measured_period_ms']:.2f} | {r['candidate_period_on_measured_ms']:.2f} | "
                  f"{r['quality']:.3f} | {'yes' if r['ok'] else '**no**'} |")
    models_ok = sorted({r["model"] for r in rows} - {r["model"] for r in rows if not r["ok"]})
    md += ["", f"{len(models_ok)} of {len({r['model'] for r in rows})} models within {100 * (1 - TARGET):.0f}% "
           f"at every link rate: {', '.join(models_ok) or 'none'}."]
    if problems:
        md += ["", "Skipped: " + "; ".join(problems)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.calibrate:
        md += ["", f"FLOP rates calibrated on {args.calibrate}: "
               + ", ".join(f"{d} {r / 1e9:.2f} GFLOP/s" for d, r in rates.items()) + "."]
    md += ["", f"Store {args.db}; devices {keys}; load average {load}."]
    text = "\n".join(md)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.md").write_text(text + "\n")
    (OUT / f"{args.name}.json").write_text(json.dumps({"args": vars(args), "rows": rows, "skipped": problems}, indent=2) + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
