"""Estimate versus reality: 2-stage pipelines across a shaped veth link between two network namespaces.

Run as root (it creates network namespaces)::

    .venv/bin/python benchmarks/pipeline_netns.py [--models resnet18,mobilenet_v2,densenet121]
        [--rates 50mbit,20mbit] [--input-size 160] [--items 20]

For every link rate it

1. creates two namespaces joined by a veth pair whose addresses
   (10.213.77.1/30 and .2/30) exist only inside them, and shapes both
   directions with ``tc qdisc ... tbf rate R`` (this kernel has no netem, so
   no added delay);
2. probes the shaped link with a plain TCP transfer (the goodput the link
   really gives);

and for every model

3. times each block with one thread pinned to the CPU stage 0 will use
   (``gapp_tui.measure.timer.time_sequence``), builds the CostTable, and lets
   the solver choose the best 2-stage plan for a link of the shaped rate
   (output returned to stage 0); the blocks are timed again after the run and
   the estimate uses the mean of both timings (the machine is shared: its
   load drifts);
4. runs that plan for real (``run_plan``): stage 0 in one namespace pinned to
   CPU 0, stage 1 in the other pinned to CPU 1, one intra-op thread each,
   rendezvous on 10.213.77.1;
5. compares the measured throughput with the estimate of two link models:
   ``naive`` (bandwidth = the tbf rate) and ``framed`` (the rate times the
   share of each Ethernet frame that is TCP payload: 1448 / 1514, because tbf
   meters whole frames and the TCP/IP/Ethernet headers ride on the same
   tokens). A third column re-estimates with each stage's compute time as
   measured during the run, which separates the link model from the noise of
   a shared machine.

The namespaces are always removed (try/finally), traffic stays inside them, and
every loop is bounded. Results: ``benchmarks/results/pipeline_netns.md`` and ``.json``.
What this script shares with ``pipeline_netns_export.py`` lives in ``benchmarks/_netns.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _netns import (  # noqa: E402  (after the repository root is on the path)
    FRAMED, Sweep, block_times, compare, estimate_with, main_unwinding, names, parse_args, require_machine, seeded_chain,
    stage_times, within,
)


def main() -> None:
    args = parse_args(__doc__, "pipeline_netns", "resnet18,mobilenet_v2,densenet121", io=True)
    require_machine()

    import torch  # slow (torch): after the re-exec

    from gapp_tui.partition.costs import CostTable  # slow (torch)
    from gapp_tui.partition.solver import solve  # slow (torch)

    torch.set_num_threads(1)
    sweep = Sweep()
    for rate in names(args.rates):
        with sweep.shaped(rate, args.probe_bytes) as (pair, link):
            print(f"# {rate}: sending costs the sender's CPU {link.cpu_per_byte * 1e9:.1f} ns/byte", file=sys.stderr)
            print(f"# {rate}: {pair.qdisc()}; TCP probe {link.goodput_Bps * 8 / 1e6:.2f} Mbit/s"
                  f" ({link.goodput_Bps / link.rate_Bps:.3f} of the rate; framed model {FRAMED:.3f})", file=sys.stderr)
            for name in names(args.models):
                chain = seeded_chain(name, args.input_size)
                times = block_times(chain, cpu=0)
                table = CostTable.from_chain(chain, {"stage0": times, "stage1": times})
                plan = solve(table, ["stage0", "stage1"], link.framed, return_output=True, allow_empty=False)
                est_before = estimate_with(table, plan, link.framed)
                print(f"# {name} @ {rate}: plan {plan.boundaries}, estimate {est_before.throughput:.2f}/s"
                      f" ({est_before.bottleneck['name']})", file=sys.stderr)
                result = sweep.run(pair, est_before, args.items, args.warmup, plan=plan.to_dict(), io=args.io)
                c = compare(chain, table, plan, times, link, result, est_before)
                b = plan.boundaries[1]
                row = {
                    "model": name,
                    "input": list(chain.spec.shape),
                    "rate": rate,
                    "boundaries": plan.boundaries,
                    "cut": b,
                    "cut_bytes": table.cut_bytes[b],
                    "cut_tensors": table.cut_tensors[b],
                    "bottleneck": c.est.bottleneck["name"],
                    **c.fields,
                    "cpu_per_byte_s": link.cpu_per_byte,
                    "compute_run_p50_ms": [st["compute_s"]["p50"] * 1e3 for st in result.stages],
                    "recv_run_ms": [st["recv_s"]["mean"] * 1e3 for st in result.stages],
                    "period_run_ms": result.period_s * 1e3,
                    "period_est_ms": c.est.period_s * 1e3,
                    "send_run_ms": result.stages[0]["send_s"]["mean"] * 1e3,
                    "load_1min": os.getloadavg()[0],
                    "output_max_abs_diff": result.output_max_abs_diff,
                    "weights_match": result.weights_match,
                }
                sweep.rows.append(row)
                print(f"#   block times after/before the run {row['block_time_drift']:.3f}; /framed with the times"
                      f" before only {row['ratio_framed_before']:.3f}", file=sys.stderr)
                print(f"#   /framed+link CPU {row['ratio_framed_cpu']:.3f}", file=sys.stderr)
                print(f"#   measured {row['measured_per_s']:.2f}/s: /naive {row['ratio_naive']:.3f},"
                      f" /framed {row['ratio_framed']:.3f}, /run-compute {row['ratio_run_compute']:.3f}",
                      file=sys.stderr)
    sweep.finish()
    write(sweep, args)


def write(sweep: Sweep, args) -> None:
    rows = sweep.rows
    table = [
        "| model | rate | cut (bytes, tensors) | bottleneck (estimate) | measured items/s | naive est. | ratio | framed est. | ratio | framed + link CPU est. | ratio | est. with run's compute | ratio | stage compute est. / run (ms) | link est. (ms) | latency est. / run p50 (ms) | drift | output diff |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['model']} | {r['rate']} | {r['cut']} ({r['cut_bytes'] / 1024:.0f} KiB, {r['cut_tensors']}) | {r['bottleneck']} |"
            f" {r['measured_per_s']:.2f} | {r['est_naive_per_s']:.2f} | {r['ratio_naive']:.3f} |"
            f" {r['est_framed_per_s']:.2f} | **{r['ratio_framed']:.3f}** | {r['est_framed_cpu_per_s']:.2f} | **{r['ratio_framed_cpu']:.3f}** |"
            f" {r['est_run_compute_per_s']:.2f} | {r['ratio_run_compute']:.3f} |"
            f" {stage_times(r)} | {r['link_est_ms']:.1f} | {r['latency_est_ms']:.1f} / {r['latency_run_ms']:.1f} |"
            f" {r['block_time_drift']:.3f} | {r['output_max_abs_diff']:.1e} |"
        )
    sweep.save(args.out, "Pipeline runs across shaped network namespaces: estimate versus reality", "pipeline_netns.py",
               "Two stages, each a process in its own network namespace pinned to its own CPU with one intra-op thread,"
               " joined by a veth pair shaped in both directions with `tc qdisc ... tbf rate R burst 16kb latency 100ms`;"
               f" gloo rendezvous on 10.213.77.1. Stages overlap communication with `io={args.io}`. Input"
               f" {args.input_size}x{args.input_size}, batch 1, {args.items} items streamed after {args.warmup} warm-up"
               " items. The plan is the solver's optimum for the framed link; the output returns to stage 0. Block"
               " times (one thread, pinned, nice -20) are taken before and after each run; the estimates use their mean"
               " (`drift` = after/before).", [
                   f"**The machine was shared** with other engineers' work: load average {sweep.load_before[0]:.1f}"
                   f" before, {sweep.load_after[0]:.1f} after (2 cores), so compute times drift between the block timing"
                   " and the run.",
                   f"TCP probe of the shaped link (one 2 MB transfer): {sweep.goodputs()} (framed model: {FRAMED:.4f} of"
                   " the rate). CPU time the sender's CPU loses per byte sent (a compute loop pinned beside a TCP"
                   f" sender, 1.5 s of traffic): {sweep.sender_costs()}.",
                   "\n".join(table),
                   f"Measured throughput within 10% of the framed estimate: **{within(rows, 'ratio_framed')} of"
                   f" {len(rows)} runs**; of the framed estimate with the link's CPU cost:"
                   f" **{within(rows, 'ratio_framed_cpu')} of {len(rows)}**; within 10% of the estimate re-made with the"
                   f" stage compute times measured during the run (same link model): {within(rows, 'ratio_run_compute')}"
                   f" of {len(rows)}.",
               ])


if __name__ == "__main__":
    main_unwinding(main)
