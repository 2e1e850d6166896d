"""Estimate versus reality for *exported* stages: `gapp pipeline run --from-export` across a shaped veth link.

Run as root (it creates network namespaces)::

    .venv/bin/python benchmarks/pipeline_netns_export.py [--models resnet18,mobilenet_v2]
        [--configs onnxruntime] [--rates 50mbit,20mbit] [--input-size 160] [--items 20]

The sibling of ``benchmarks/pipeline_netns.py`` (same namespaces, shaping, TCP probe, sender-CPU probe,
pinning and priorities, from ``benchmarks/_netns.py``; see its docstring), for stages that run their exported artifact under an on-device
runtime. For every configuration (``onnxruntime``, ``executorch``, with ``-int8``), model and link rate it

1. compiles every block of the chain (seed 0, the weights `gapp export --seed 0` builds) to the runtime's
   artifact exactly as ``gapp measure --runtime`` does (``gapp_tui.measure.engine.compile_chain``; int8
   calibrated on 8 random inputs), loads them with the stand-alone runner and times each block in context
   with one thread pinned to the CPU stage 0 will use (nice -20) -- block times *measured under the runtime*;
2. builds the CostTable (both stages get those times; an int8 device sends int8 at its cut), lets the solver
   choose the best 2-stage plan for the framed link (output returned), records the devices' runtime in the
   plan and exports it (``gapp_tui.pipeline.export.export_plan``: one fused artifact per stage, the check
   against the unsplit model);
3. runs the export with ``run_plan(from_export=...)`` -- each stage in its own namespace, pinned, loading its
   artifact with the stand-alone runner -- and times the blocks again after the run (the estimate uses the
   mean of both timings, as the eager benchmark does);
4. compares the measured throughput with the estimate made from those times (framed link; with the sender's
   CPU cost per byte; with the stage compute times measured during the run).

A stage runs its blocks as *one* artifact (the runtime may fuse across block boundaries) while the estimate
adds per-block artifacts; the table shows both stage compute times. Results:
``benchmarks/results/pipeline_netns_export.md`` and ``.json``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _netns import (  # noqa: E402  (after the repository root is on the path)
    FRAMED, Sweep, block_times, compare, estimate_with, main_unwinding, names, parse_args, require_machine, seeded_chain,
    stage_times, within,
)


def compile_blocks(chain, runtime: str, quantize: str | None, workdir: Path):
    """The chain's blocks as the runtime's artifacts (as `gapp measure --runtime` compiles them), loaded."""
    import torch  # slow (torch)

    from gapp_tui import stage_runner  # slow (torch)
    from gapp_tui.measure.engine import MeasureConfig, compile_chain  # slow (torch)

    x = chain.spec.example_input(seed=0)
    with torch.inference_mode():
        recorded = chain.block_inputs(x)
    cfg = MeasureConfig(runtime=runtime, quantize=quantize, full=False, calibration=8)
    t0 = time.perf_counter()
    arts, _, info = compile_chain(chain, recorded, x, cfg, workdir)
    fns = [stage_runner.load_artifact(a.path, runtime, threads=1) for a in arts]
    return fns, {**info, "compile_wall_s": time.perf_counter() - t0}


def main() -> None:
    args = parse_args(__doc__, "pipeline_netns_export", "resnet18,mobilenet_v2", configs="onnxruntime")
    require_machine()

    import torch  # slow (torch): after the re-exec

    from gapp_tui import runtime as runtime_mod  # slow (torch)
    from gapp_tui.partition.costs import CostTable  # slow (torch)
    from gapp_tui.partition.devices import parse_runtime_text  # slow (torch)
    from gapp_tui.partition.solver import solve  # slow (torch)
    from gapp_tui.pipeline.export import export_plan  # slow (torch)

    torch.set_num_threads(1)
    configs = names(args.configs)
    for c in configs:
        runtime_mod.require(parse_runtime_text(c, "the benchmark")[0])
    sweep = Sweep()
    work = Path(tempfile.mkdtemp(prefix="gapp-netns-export-"))
    compiled: dict[tuple[str, str], tuple] = {}
    try:
        for rate in names(args.rates):
            with sweep.shaped(rate, args.probe_bytes) as (pair, link):
                print(f"# {rate}: TCP probe {link.goodput_Bps * 8 / 1e6:.2f} Mbit/s; sender CPU"
                      f" {link.cpu_per_byte * 1e9:.1f} ns/byte", file=sys.stderr, flush=True)
                for name in names(args.models):
                    chain = seeded_chain(name, args.input_size)  # the weights `gapp export --seed 0` builds
                    for config in configs:
                        rt, q = parse_runtime_text(config, "the benchmark")
                        if (name, config) not in compiled:
                            compiled[(name, config)] = compile_blocks(chain, rt, q, work / f"{name}-{config}")
                            print(f"# {name} {config}: blocks compiled in"
                                  f" {compiled[(name, config)][1]['compile_wall_s']:.0f} s", file=sys.stderr, flush=True)
                        fns, info = compiled[(name, config)]
                        times = block_times(chain, cpu=0, fns=fns)
                        sends = {"stage0": "int8", "stage1": "int8"} if q else None
                        table = CostTable.from_chain(chain, {"stage0": times, "stage1": times}, send_dtype=sends)
                        plan = solve(table, ["stage0", "stage1"], link.framed, return_output=True, allow_empty=False)
                        plan.runtimes = {"stage0": config, "stage1": config}
                        est_before = estimate_with(table, plan, link.framed)
                        print(f"# {name} {config} @ {rate}: plan {plan.boundaries}, estimate"
                              f" {est_before.throughput:.2f}/s ({est_before.bottleneck['name']})",
                              file=sys.stderr, flush=True)
                        out = work / f"export-{name}-{config}-{rate}"
                        t0 = time.perf_counter()
                        exported = export_plan(plan.to_dict(), out)
                        export_s = time.perf_counter() - t0
                        result = sweep.run(pair, est_before, args.items, args.warmup, from_export=out)
                        c = compare(chain, table, plan, times, link, result, est_before, fns=fns)
                        b = plan.boundaries[1]
                        row = {
                            "model": name, "config": config, "input": list(chain.spec.shape), "rate": rate,
                            "boundaries": plan.boundaries, "cut": b,
                            "cut_bytes_sent": table.bytes_sent("stage0")[b], "cut_tensors": table.cut_tensors[b],
                            "bottleneck": c.est.bottleneck["name"],
                            **c.fields,
                            "runtimes": [st.get("runtime") for st in result.stages],
                            "runtime_versions": [st.get("runtime_version") for st in result.stages],
                            "artifacts_match": result.weights_match,
                            "output_max_abs_diff": result.output_max_abs_diff,
                            "output_cosine": result.output_cosine, "output_ok": result.output_ok,
                            "export_check_ok": exported.ok, "export_s": export_s,
                            "block_compile_s": info.get("compile_s"),
                            "load_1min": os.getloadavg()[0],
                        }
                        sweep.rows.append(row)
                        print(f"#   measured {row['measured_per_s']:.2f}/s: /framed {row['ratio_framed']:.3f},"
                              f" /framed+cpu {row['ratio_framed_cpu']:.3f}, /run-compute {row['ratio_run_compute']:.3f};"
                              f" stage compute est {row['compute_est_ms']} run {row['compute_run_ms']}"
                              f" (load {row['load_1min']:.1f})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sweep.finish()
    write(sweep, args)


def write(sweep: Sweep, args) -> None:
    rows = sweep.rows
    table = [
        "| model | runtime | rate | cut (bytes sent) | bottleneck (estimate) | measured items/s | framed est. | ratio |"
        " framed + link CPU est. | ratio | est. with run's compute | ratio | stage compute est. (block artifacts) /"
        " run (stage artifact) ms | drift | output vs unsplit (max diff, cosine) | load |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['model']} | {r['config']} | {r['rate']} | {r['cut']} ({r['cut_bytes_sent'] / 1024:.0f} KiB) |"
            f" {r['bottleneck']} | {r['measured_per_s']:.2f} | {r['est_framed_per_s']:.2f} | **{r['ratio_framed']:.3f}** |"
            f" {r['est_framed_cpu_per_s']:.2f} | **{r['ratio_framed_cpu']:.3f}** | {r['est_run_compute_per_s']:.2f} |"
            f" {r['ratio_run_compute']:.3f} | {stage_times(r)} |"
            f" {r['block_time_drift']:.3f} | {r['output_max_abs_diff']:.1e}, {r['output_cosine']:.5f} | {r['load_1min']:.1f} |"
        )
    models = sorted({r["model"] for r in rows if abs(r["ratio_framed_cpu"] - 1) <= 0.10})
    sweep.save(args.out, "Exported stages across shaped network namespaces: estimate versus reality",
               "pipeline_netns_export.py",
               "As `pipeline_netns.py` (two namespaces joined by a veth pair shaped with `tc tbf`, stages pinned to"
               " their own CPU at nice -20, one thread, output returned), but the blocks are timed *under the runtime*"
               " (each block compiled to its artifact as `gapp measure --runtime` does, loaded by the stand-alone runner,"
               " timed in context on the pinned CPU), the plan is exported with that runtime (`gapp export`: one"
               " artifact per stage) and run with `gapp pipeline run --from-export`. Input"
               f" {args.input_size}x{args.input_size}, batch 1, {args.items} items after {args.warmup} warm-up items."
               " Block times are taken before and after each run; the estimates use their mean (`drift` ="
               " after/before).", [
                   f"**The machine was shared** with other work: load average {sweep.load_before[0]:.1f} before,"
                   f" {sweep.load_after[0]:.1f} after (2 cores); the load at the end of each run is in the last column.",
                   f"TCP probe of the shaped link: {sweep.goodputs()} (framed model {FRAMED:.4f} of the rate)."
                   f" Sender CPU per byte: {sweep.sender_costs()}.",
                   "\n".join(table),
                   f"Measured throughput within 10% of the estimate from times measured under the runtime (framed link):"
                   f" **{within(rows, 'ratio_framed')} of {len(rows)} runs**; with the link's CPU cost:"
                   f" **{within(rows, 'ratio_framed_cpu')} of {len(rows)}** (models: {', '.join(models) or 'none'}); of"
                   " the estimate re-made with the stage compute times measured during the run:"
                   f" {within(rows, 'ratio_run_compute')} of {len(rows)}.",
               ])


if __name__ == "__main__":
    main_unwinding(main)
