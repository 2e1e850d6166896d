"""Estimate versus reality for *exported* stages: `gapp pipeline run --from-export` across a shaped veth link.

Run as root (it creates network namespaces)::

    .venv/bin/python benchmarks/pipeline_netns_export.py [--models resnet18,mobilenet_v2]
        [--configs onnxruntime] [--rates 50mbit,20mbit] [--input-size 160] [--items 20]

The sibling of ``benchmarks/pipeline_netns.py`` (same namespaces, shaping, TCP probe, sender-CPU probe,
pinning and priorities; see its docstring), for stages that run their exported artifact under an on-device
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

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pipeline_netns as base  # noqa: E402  (the namespaces, the probes, the estimate helpers)

RESULTS = ROOT / "benchmarks" / "results"


def compile_blocks(chain, runtime: str, quantize: str | None, workdir: Path):
    """The chain's blocks as the runtime's artifacts (as `gapp measure --runtime` compiles them), loaded."""
    import torch

    from gapp_tui import stage_runner
    from gapp_tui.measure.engine import MeasureConfig, compile_chain

    x = chain.spec.example_input(seed=0)
    with torch.inference_mode():
        recorded = chain.block_inputs(x)
    cfg = MeasureConfig(runtime=runtime, quantize=quantize, full=False, calibration=8)
    t0 = time.perf_counter()
    arts, _, info = compile_chain(chain, recorded, x, cfg, workdir)
    fns = [stage_runner.load_artifact(a.path, runtime, threads=1) for a in arts]
    return fns, {**info, "compile_wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--configs", default="onnxruntime", help="runtime[-int8], comma-separated")
    ap.add_argument("--rates", default="50mbit,20mbit")
    ap.add_argument("--input-size", type=int, default=160)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--probe-bytes", type=int, default=2_000_000)
    ap.add_argument("--out", default=str(RESULTS / "pipeline_netns_export"))
    args = ap.parse_args()

    if "GLIBC_TUNABLES" not in os.environ:
        from gapp_tui.pipeline.run import STAGE_MALLOC

        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, GLIBC_TUNABLES=STAGE_MALLOC))
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    for tool in ("ip", "tc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing; install iproute2")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two CPUs (one per stage)")

    import torch

    from gapp_tui import runtime as runtime_mod
    from gapp_tui.blocks import BlockChain
    from gapp_tui.partition.costs import CostTable
    from gapp_tui.partition.devices import parse_runtime_text
    from gapp_tui.partition.link import Link
    from gapp_tui.partition.solver import solve
    from gapp_tui.pipeline import run_plan
    from gapp_tui.pipeline.export import export_plan
    from gapp_tui.units import parse_bandwidth
    from gapp_tui.zoo import ModelSpec

    torch.set_num_threads(1)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        runtime_mod.require(parse_runtime_text(c, "the benchmark")[0])
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows: list[dict] = []
    probes: dict[str, float] = {}
    cpu_costs: dict[str, float] = {}
    started = time.time()
    load_before = os.getloadavg()
    tag = str(os.getpid() % 100000)
    work = Path(tempfile.mkdtemp(prefix="gapp-netns-export-"))
    compiled: dict[tuple[str, str], tuple] = {}
    try:
        for rate in rates:
            with base.NetnsPair(tag) as pair:
                pair.shape(rate)
                rate_Bps = parse_bandwidth(rate)
                probes[rate] = base.probe(pair, args.probe_bytes)
                cpu_costs[rate] = base.link_cpu_cost(pair, int(rate_Bps * 1.5))
                print(f"# {rate}: TCP probe {probes[rate] * 8 / 1e6:.2f} Mbit/s; sender CPU"
                      f" {cpu_costs[rate] * 1e9:.1f} ns/byte", file=sys.stderr, flush=True)
                framed = Link(rate_Bps * base.FRAMED, source="tbf rate x 1448/1514")
                naive = Link(rate_Bps, source="tbf rate")
                for name in models:
                    spec = ModelSpec(name, input_size=args.input_size)
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(0)  # the weights `gapp export --seed 0` builds
                        chain = BlockChain.from_spec(spec)
                    for config in configs:
                        rt, q = parse_runtime_text(config, "the benchmark")
                        if (name, config) not in compiled:
                            compiled[(name, config)] = compile_blocks(chain, rt, q, work / f"{name}-{config}")
                            print(f"# {name} {config}: blocks compiled in"
                                  f" {compiled[(name, config)][1]['compile_wall_s']:.0f} s", file=sys.stderr, flush=True)
                        fns, info = compiled[(name, config)]
                        times = base.block_times(chain, cpu=0, fns=fns)
                        sends = {"stage0": "int8", "stage1": "int8"} if q else None
                        table = CostTable.from_chain(chain, {"stage0": times, "stage1": times}, send_dtype=sends)
                        plan = solve(table, ["stage0", "stage1"], framed, return_output=True, allow_empty=False)
                        plan.runtimes = {"stage0": config, "stage1": config}
                        est_before = base.estimate_with(table, plan, framed)
                        print(f"# {name} {config} @ {rate}: plan {plan.boundaries}, estimate"
                              f" {est_before.throughput:.2f}/s ({est_before.bottleneck['name']})",
                              file=sys.stderr, flush=True)
                        out = work / f"export-{name}-{config}-{rate}"
                        t0 = time.perf_counter()
                        exported = export_plan(plan.to_dict(), out)
                        export_s = time.perf_counter() - t0
                        result = run_plan(
                            from_export=out, items=args.items, warmup=args.warmup, latency_items=3,
                            master_addr=pair.addr[0], master_port=base.PORT + 2 + len(rows), timeout=60, deadline=600,
                            threads=1, cpus=[[0], [1]], prefixes=[pair.exec_prefix(0), pair.exec_prefix(1)],
                            nice=base.NICE, ifnames=list(pair.dev), estimate=est_before.to_dict(),
                        )
                        after = base.block_times(chain, cpu=0, fns=fns)
                        drift = sum(after) / sum(times)
                        mean = [(a + b) / 2 for a, b in zip(times, after)]
                        table = table.with_times("stage0", mean, "measured").with_times("stage1", mean, "measured")
                        est = base.estimate_with(table, plan, framed)
                        est_naive = base.estimate_with(table, plan, naive)
                        est_cpu = base.estimate_with(table, plan, framed, cpu_per_byte=cpu_costs[rate])
                        measured_compute = [st["compute_s"]["mean"] for st in result.stages]
                        est_run = base.estimate_with(table, plan, framed, compute=measured_compute)
                        b = plan.boundaries[1]
                        row = {
                            "model": name, "config": config, "input": list(spec.shape), "rate": rate,
                            "boundaries": plan.boundaries, "cut": b,
                            "cut_bytes_sent": table.bytes_sent("stage0")[b], "cut_tensors": table.cut_tensors[b],
                            "bottleneck": est.bottleneck["name"],
                            "measured_per_s": result.throughput_per_s,
                            "est_framed_per_s": est.throughput, "ratio_framed": result.throughput_per_s / est.throughput,
                            "est_naive_per_s": est_naive.throughput,
                            "ratio_naive": result.throughput_per_s / est_naive.throughput,
                            "est_framed_cpu_per_s": est_cpu.throughput,
                            "ratio_framed_cpu": result.throughput_per_s / est_cpu.throughput,
                            "est_framed_before_per_s": est_before.throughput,
                            "ratio_framed_before": result.throughput_per_s / est_before.throughput,
                            "est_run_compute_per_s": est_run.throughput,
                            "ratio_run_compute": result.throughput_per_s / est_run.throughput,
                            "block_time_drift": drift,
                            "compute_est_ms": [s.compute_s * 1e3 for s in est.stages],
                            "compute_run_ms": [c * 1e3 for c in measured_compute],
                            "compute_run_cpu_ms": [st["compute_cpu_s"]["mean"] * 1e3 for st in result.stages],
                            "link_est_ms": est.transfers[0].seconds * 1e3,
                            "latency_est_ms": est.latency_s * 1e3,
                            "latency_run_ms": result.latency_isolated_s["p50"] * 1e3,
                            "runtimes": [st.get("runtime") for st in result.stages],
                            "runtime_versions": [st.get("runtime_version") for st in result.stages],
                            "artifacts_match": result.weights_match,
                            "output_max_abs_diff": result.output_max_abs_diff,
                            "output_cosine": result.output_cosine, "output_ok": result.output_ok,
                            "export_check_ok": exported.ok, "export_s": export_s,
                            "block_compile_s": info.get("compile_s"),
                            "load_1min": os.getloadavg()[0],
                        }
                        rows.append(row)
                        print(f"#   measured {row['measured_per_s']:.2f}/s: /framed {row['ratio_framed']:.3f},"
                              f" /framed+cpu {row['ratio_framed_cpu']:.3f}, /run-compute {row['ratio_run_compute']:.3f};"
                              f" stage compute est {row['compute_est_ms']} run {row['compute_run_ms']}"
                              f" (load {row['load_1min']:.1f})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(rows, probes, cpu_costs, args, started, load_before, os.getloadavg())


def write(rows, probes, cpu_costs, args, started, load_before, load_after) -> None:
    lines = [
        "# Exported stages across shaped network namespaces: estimate versus reality",
        "",
        f"`benchmarks/pipeline_netns_export.py` on {platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}),"
        f" {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}. As `pipeline_netns.py` (two namespaces joined"
        " by a veth pair shaped with `tc tbf`, stages pinned to their own CPU at nice -20, one thread, output"
        " returned), but the blocks are timed *under the runtime* (each block compiled to its artifact as"
        " `gapp measure --runtime` does, loaded by the stand-alone runner, timed in context on the pinned CPU),"
        " the plan is exported with that runtime (`gapp export`: one artifact per stage) and run with"
        f" `gapp pipeline run --from-export`. Input {args.input_size}x{args.input_size}, batch 1, {args.items} items"
        f" after {args.warmup} warm-up items. Block times are taken before and after each run; the estimates use"
        " their mean (`drift` = after/before).",
        "",
        f"**The machine was shared** with other work: load average {load_before[0]:.1f} before,"
        f" {load_after[0]:.1f} after (2 cores); the load at the end of each run is in the last column.",
        "",
        "TCP probe of the shaped link: " + ", ".join(f"{r}: {v * 8 / 1e6:.2f} Mbit/s" for r, v in probes.items())
        + f" (framed model {base.FRAMED:.4f} of the rate). Sender CPU per byte: "
        + ", ".join(f"{r}: {v * 1e9:.1f} ns/B" for r, v in cpu_costs.items()) + ".",
        "",
        "| model | runtime | rate | cut (bytes sent) | bottleneck (estimate) | measured items/s | framed est. | ratio |"
        " framed + link CPU est. | ratio | est. with run's compute | ratio | stage compute est. (block artifacts) /"
        " run (stage artifact) ms | drift | output vs unsplit (max diff, cosine) | load |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['config']} | {r['rate']} | {r['cut']} ({r['cut_bytes_sent'] / 1024:.0f} KiB) |"
            f" {r['bottleneck']} | {r['measured_per_s']:.2f} | {r['est_framed_per_s']:.2f} | **{r['ratio_framed']:.3f}** |"
            f" {r['est_framed_cpu_per_s']:.2f} | **{r['ratio_framed_cpu']:.3f}** | {r['est_run_compute_per_s']:.2f} |"
            f" {r['ratio_run_compute']:.3f} |"
            f" {' + '.join(f'{a:.1f}' for a in r['compute_est_ms'])} / {' + '.join(f'{a:.1f}' for a in r['compute_run_ms'])} |"
            f" {r['block_time_drift']:.3f} | {r['output_max_abs_diff']:.1e}, {r['output_cosine']:.5f} | {r['load_1min']:.1f} |"
        )
    within = sum(1 for r in rows if abs(r["ratio_framed"] - 1) <= 0.10)
    within_cpu = sum(1 for r in rows if abs(r["ratio_framed_cpu"] - 1) <= 0.10)
    within_run = sum(1 for r in rows if abs(r["ratio_run_compute"] - 1) <= 0.10)
    models = sorted({r["model"] for r in rows if abs(r["ratio_framed_cpu"] - 1) <= 0.10})
    lines += [
        "",
        f"Measured throughput within 10% of the estimate from times measured under the runtime (framed link):"
        f" **{within} of {len(rows)} runs**; with the link's CPU cost: **{within_cpu} of {len(rows)}**"
        f" (models: {', '.join(models) or 'none'}); of the estimate re-made with the stage compute times measured"
        f" during the run: {within_run} of {len(rows)}.",
    ]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "probes_Bps": probes, "framed": base.FRAMED,
                                                    "cpu_per_byte_s": cpu_costs,
                                                    "load": [load_before, load_after]}, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    import contextlib
    import signal

    signal.signal(signal.SIGTERM, base._terminate)
    with contextlib.suppress(KeyboardInterrupt):
        main()
