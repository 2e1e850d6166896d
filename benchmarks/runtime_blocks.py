"""Per-block times under each runtime, the sum against the full model, and how the optimal cut moves.

For every model (batch 1) this script

1. builds the chain (seed 0) and compiles every block and the unsplit model for each configuration --
   ``eager`` (the chain's own modules), ``executorch`` (XNNPACK, float32), ``executorch-int8`` (PT2E, XNNPACK
   quantizer), ``onnxruntime`` (float32) and ``onnxruntime-int8`` (static QDQ) -- exactly as
   ``gapp measure --runtime`` and ``gapp export`` do (``gapp_tui.runtime``; int8 calibrated on 8 random inputs),
   and checks each compiled full model against eager on an input never calibrated on (max abs diff, cosine);
2. times a **Pi-like device**: every thread of this process pinned to one CPU (``--pi-cpu``) with two
   intra-op threads (``--pi-threads``: torch's, the XNNPACK pool's, ONNX Runtime's). The configurations are
   timed **interleaved, in one process**: each round runs every configuration's chain once end to end (one clock
   reading between blocks, as ``gapp measure``'s in-context mode) and its full model once, in a rotating order,
   so a machine whose load drifts moves every runtime alike; per-block medians, chain and full-model medians,
   and per-round ratios to eager (median of the paired ratios) are reported;
3. times a **server** column: eager float32, one thread, pinned to another CPU (``--server-cpu``);
4. solves the optimal 2-stage plan (pi -> server, output returned, ``--bandwidth``/``--latency``) with the
   pi's times under each configuration and the server's, the cut bytes being what an exported boundary
   sends (int8 after an int8 stage), and reports where the cut lands and what planning with *eager* times
   costs a deployment that runs another runtime (the eager plan's cut, estimated with the runtime's times).

    .venv/bin/python benchmarks/runtime_blocks.py [--models resnet18,mobilenet_v2,efficientnet_b0,vit_b_16]
        [--configs eager,executorch,executorch-int8,onnxruntime,onnxruntime-int8] [--rounds 20] [--input-size 224]

Prints markdown and writes benchmarks/results/runtime_blocks.md and .json (``--out``). The load average is
recorded before and after every model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# OpenMP's idle threads must sleep, not spin: with two torch threads on one pinned core a spinning thread holds
# the core its partner needs (resnet18 measured 956 ms instead of 51 ms). Read once, when torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gapp_tui import runtime as runtime_mod  # noqa: E402
from gapp_tui import stage_runner  # noqa: E402
from gapp_tui.blocks import BlockChain  # noqa: E402
from gapp_tui.measure import device as device_mod  # noqa: E402
from gapp_tui.measure.timer import Precision, time_sequence  # noqa: E402
from gapp_tui.partition import CostTable, Link, estimate, solve  # noqa: E402
from gapp_tui.zoo import ModelSpec  # noqa: E402

MODELS = ["resnet18", "mobilenet_v2", "efficientnet_b0", "vit_b_16"]
CONFIGS = {
    "eager": ("eager", None),
    "executorch": ("executorch", None),
    "executorch-int8": ("executorch", "int8"),
    "onnxruntime": ("onnxruntime", None),
    "onnxruntime-int8": ("onnxruntime", "int8"),
}


def load() -> float:
    return os.getloadavg()[0]


def pin_all(cpus: set[int]) -> None:
    """Every thread of this process (those to come inherit it) on ``cpus``."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def prepare(name: str, input_size: int | None, configs: list[str], calib_n: int, workdir: Path) -> dict:
    """Chain, recorded inputs and every configuration's compiled artifacts (paths), with the compile times."""
    spec = ModelSpec(name, input_size=input_size)
    torch.manual_seed(0)
    chain = BlockChain.from_spec(spec)
    x = spec.example_input(seed=0)
    calib_x = [spec.example_input(seed=1 + j) for j in range(calib_n)]
    with torch.inference_mode():
        recorded = chain.block_inputs(x)
        calib = [chain.block_inputs(c) for c in calib_x]
        check_inputs = chain.block_inputs(spec.example_input(seed=10_000))
    arts: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for cfg in configs:
        rt, q = CONFIGS[cfg]
        if rt == "eager":
            continue
        t0 = time.perf_counter()
        blocks = []
        try:
            for i, b in enumerate(chain.blocks):
                a = runtime_mod.compile_artifact(b.module, recorded[i], rt, workdir / f"{name}-{cfg}-b{i}", q,
                                                 [c[i] for c in calib] if q else None)
                blocks.append(str(a.path))
            full = runtime_mod.compile_artifact(chain.model, (x,), rt, workdir / f"{name}-{cfg}-full", q,
                                                [(c,) for c in calib_x] if q else None)
        except Exception as exc:  # one runtime failing on one model is a result, not the end of the run
            failed[cfg] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            print(f"  {name}: {cfg} failed to compile: {failed[cfg]}", file=sys.stderr, flush=True)
            continue
        arts[cfg] = {"blocks": blocks, "full": str(full.path), "compile_s": time.perf_counter() - t0,
                     "bytes": sum(Path(p).stat().st_size for p in blocks), "full_bytes": full.bytes}
        print(f"  {name}: {cfg} compiled in {arts[cfg]['compile_s']:.0f} s (load {load():.1f})", file=sys.stderr,
              flush=True)
    return {"spec": spec, "chain": chain, "x": x, "artifacts": arts, "check_inputs": check_inputs, "failed": failed}


def callables(prep: dict, configs: list[str], threads: int) -> dict[str, tuple[list, object]]:
    """Per configuration: (block callables, full-model callable), loaded now (after pinning)."""
    chain = prep["chain"]
    out = {}
    for cfg in configs:
        rt, _ = CONFIGS[cfg]
        if rt == "eager":
            out[cfg] = ([b.module for b in chain.blocks], chain.model)
            continue
        a = prep["artifacts"][cfg]
        out[cfg] = ([stage_runner.load_artifact(p, rt, threads) for p in a["blocks"]],
                    stage_runner.load_artifact(a["full"], rt, threads))
    return out


def accuracy(prep: dict, fns: dict) -> dict[str, dict]:
    """Each configuration's full model against eager float32, on an input no artifact was calibrated on."""
    x = prep["spec"].example_input(seed=10_000)
    with torch.inference_mode():
        ref = prep["chain"].model(x)
        out = {}
        for cfg, (blocks, full) in fns.items():
            got = full(x)
            got = got[0] if isinstance(got, tuple) else got
            chained = (x,)
            for f in blocks:
                chained = f(*chained)
                chained = chained if isinstance(chained, tuple) else (chained,)
            # each block alone on its float32 inputs: meaningful even where a random-init network's output
            # vanishes (efficientnet_b0's logits are ~1e-20, where a cosine of the final output is noise)
            per_block = []
            for f, b, inp in zip(blocks, prep["chain"].blocks, prep["check_inputs"]):
                got_b, want_b = f(*inp), b.module(*inp)
                got_b = got_b if isinstance(got_b, tuple) else (got_b,)
                per_block.append(min(runtime_mod.cosine(g, w) for g, w in zip(got_b, want_b)))
            out[cfg] = {"full_max_abs_diff": float((got - ref).abs().max()), "full_cosine": runtime_mod.cosine(got, ref),
                        "output_scale": float(ref.abs().max()),
                        "blocks_cosine": runtime_mod.cosine(chained[0], ref),
                        "blocks_max_abs_diff": float((chained[0] - ref).abs().max()),
                        "block_cosine_median": statistics.median(per_block), "block_cosine_worst": min(per_block)}
    return out


def interleaved(prep: dict, fns: dict, rounds: int, max_s: float) -> dict[str, dict]:
    """Rounds of every configuration's chain (per-block clock readings) and full model, in rotating order."""
    x = prep["x"]
    cfgs = list(fns)
    n = len(prep["chain"].blocks)
    samples = {c: {"blocks": [[] for _ in range(n)], "chain": [], "full": []} for c in cfgs}

    def chain_run(blocks) -> list[float]:
        marks = [0.0] * (n + 1)
        values: tuple = (x,)
        marks[0] = time.perf_counter()
        for i, f in enumerate(blocks):
            v = f(*values)
            values = v if isinstance(v, tuple) else (v,)
            marks[i + 1] = time.perf_counter()
        return [marks[i + 1] - marks[i] for i in range(n)]

    def full_run(full) -> float:
        t0 = time.perf_counter()
        full(x)
        return time.perf_counter() - t0

    t_start = time.perf_counter()
    with torch.inference_mode():
        for c in cfgs:  # warm-up
            for _ in range(2):
                chain_run(fns[c][0])
                full_run(fns[c][1])
        done = 0
        for r in range(rounds):
            order = cfgs[r % len(cfgs):] + cfgs[:r % len(cfgs)]
            for c in order:
                per = chain_run(fns[c][0])
                for i, s in enumerate(per):
                    samples[c]["blocks"][i].append(s)
                samples[c]["chain"].append(sum(per))
                samples[c]["full"].append(full_run(fns[c][1]))
            done = r + 1
            if time.perf_counter() - t_start > max_s and done >= 5:
                break
    out = {}
    for c in cfgs:
        s = samples[c]
        out[c] = {
            "rounds": done,
            "blocks_ms": [statistics.median(b) * 1e3 for b in s["blocks"]],
            "chain_ms": statistics.median(s["chain"]) * 1e3,
            "full_ms": statistics.median(s["full"]) * 1e3,
            "sum_ms": sum(statistics.median(b) for b in s["blocks"]) * 1e3,
            # paired per-round ratios to eager: a drift of the machine between rounds cancels
            "chain_ratio": statistics.median(a / b for a, b in zip(s["chain"], samples["eager"]["chain"])) if "eager" in samples else None,
            "full_ratio": statistics.median(a / b for a, b in zip(s["full"], samples["eager"]["full"])) if "eager" in samples else None,
        }
        out[c]["gap_pct"] = (out[c]["sum_ms"] - out[c]["full_ms"]) / out[c]["full_ms"] * 100
    return out


def server_times(prep: dict, cpu: int) -> list[float]:
    """Eager float32 block medians (ms), in context, one thread on ``cpu``."""
    pin_all({cpu})
    torch.set_num_threads(1)
    per, _, _ = time_sequence([b.module for b in prep["chain"].blocks], (prep["x"],), "cpu",
                           Precision(min_runs=10, max_runs=60, target_ci=0.02, max_time_s=1.0))
    return [s.median_ms for s in per]


def plans(prep: dict, pi: dict, server_ms: list[float], link: Link) -> dict[str, dict]:
    """The optimal pi -> server plan under each configuration, and the eager plan's cut under it."""
    chain = prep["chain"]
    out: dict[str, dict] = {}
    eager_b = None
    for cfg, res in pi.items():
        table = _table(chain, res["blocks_ms"], server_ms, int8=CONFIGS[cfg][1] == "int8")
        plan = solve(table, ["pi", "server"], link.between("pi", "server"), return_output=True)
        est = estimate(table, plan)
        b = list(plan.boundaries)
        if cfg == "eager":
            eager_b = b
        entry = {"boundaries": b, "cut_before": chain.names[b[1]] if b[1] < len(chain) else "(end)",
                 "cut_bytes": table.cut_bytes[b[1]], "period_ms": est.period_s * 1e3,
                 "throughput_per_s": est.throughput, "bottleneck": est.bottleneck["name"],
                 "pi_ms": est.stages[0].compute_s * 1e3, "server_ms": est.stages[1].compute_s * 1e3}
        if eager_b is not None and cfg != "eager":
            wrong = estimate(table, plan.with_boundaries(eager_b))
            entry["eager_cut_throughput_per_s"] = wrong.throughput
            entry["eager_cut_share"] = wrong.throughput / est.throughput
        out[cfg] = entry
    return out


def _table(chain, pi_ms: list[float], server_ms: list[float], int8: bool) -> CostTable:
    table = CostTable.from_chain(chain, {"pi": [t / 1e3 for t in pi_ms], "server": [t / 1e3 for t in server_ms]})
    if int8:  # what an exported int8 stage sends: its cut's floating tensors as int8 (the output stays float32)
        n = len(chain)
        for c in range(1, n):
            table.cut_bytes[c] = sum(t.bytes // 4 if "float" in str(t.dtype) else t.bytes for t in chain.cuts[c].tensors)
    return table


def bench_model(name: str, args, configs: list[str], link: Link, workdir: Path) -> dict:
    load0 = load()
    pin_all(set(range(os.cpu_count() or 1)))
    torch.set_num_threads(os.cpu_count() or 1)
    prep = prepare(name, args.input_size, configs, args.calibration, workdir)
    configs = [c for c in configs if c not in prep["failed"]]
    pin_all({args.pi_cpu})
    torch.set_num_threads(args.pi_threads)
    fns = callables(prep, configs, args.pi_threads)
    acc = accuracy(prep, fns)
    load1 = load()
    pi = interleaved(prep, fns, args.rounds, args.max_seconds)
    load2 = load()
    del fns
    server = server_times(prep, args.server_cpu)
    load3 = load()
    chain = prep["chain"]
    out = {
        "model": name, "input_shape": list(prep["spec"].shape), "blocks": chain.names, "pi": pi, "server_ms": server,
        "accuracy": acc, "plans": plans(prep, pi, server, link),
        "compile": {c: {k: v for k, v in a.items() if k not in ("blocks", "full")} for c, a in prep["artifacts"].items()},
        "load": {"start": load0, "before_timing": load1, "after_pi": load2, "after_server": load3},
        "failed": prep["failed"],
    }
    print(f"  {name}: " + ", ".join(f"{c} {r['chain_ms']:.1f} ms (x{r['chain_ratio']:.2f})" for c, r in pi.items())
          + f"; load {load0:.1f} -> {load3:.1f}", file=sys.stderr, flush=True)
    return out


def markdown(results: list[dict], args, link: Link, configs: list[str]) -> str:
    lines = [
        f"`benchmarks/runtime_blocks.py` on {platform.node()} ({device_mod.cpu_model()}, {os.cpu_count()} CPUs),"
        f" torch {torch.__version__.split('+')[0]}, " + ", ".join(
            f"{rt} {v}" for rt, v in runtime_mod.installed().items() if rt != "eager" and v)
        + f", {time.strftime('%Y-%m-%d %H:%M')}. Batch 1, natural blocks.",
        "",
        f"**Pi-like device**: every thread pinned to CPU {args.pi_cpu}, {args.pi_threads} intra-op threads (torch,"
        " XNNPACK's pool, ONNX Runtime's session). All configurations are timed interleaved in one process (rounds"
        " rotate the order; each round runs every configuration's chain once, one clock reading between blocks, and"
        f" its full model once; up to {args.rounds} rounds or {args.max_seconds:g} s per model). **Server**: eager"
        f" float32, 1 thread on CPU {args.server_cpu}. int8: calibrated on {args.calibration} random inputs.",
        "",
        "### Sum of blocks against the full model, per runtime (pi, medians in ms)",
        "",
        "| model | load (start → end) | " + " | ".join(f"{c}: sum / full (gap %)" for c in configs)
        + " | " + " | ".join(f"{c} ÷ eager (chain / full)" for c in configs if c != "eager") + " |",
        "|---|---|" + "---:|" * (2 * len(configs) - 1),
    ]
    for r in results:
        cells = [f"{r['pi'][c]['sum_ms']:.2f} / {r['pi'][c]['full_ms']:.2f} ({r['pi'][c]['gap_pct']:+.1f})"
                 if c in r["pi"] else "failed" for c in configs]
        ratios = [f"{r['pi'][c]['chain_ratio']:.3f} / {r['pi'][c]['full_ratio']:.3f}" if c in r["pi"] else "-"
                  for c in configs if c != "eager"]
        ld = r["load"]
        lines.append(f"| {r['model']} | {ld['start']:.1f} → {ld['after_server']:.1f} | " + " | ".join(cells) + " | "
                     + " | ".join(ratios) + " |")
    lines += ["", "### Each runtime against eager float32 (an input never calibrated on)", "",
              "Full model: cosine similarity / max abs diff of the output (and the output's largest magnitude);"
              " blocks: each block's artifact alone on its float32 inputs, median / worst cosine over the blocks.", "",
              "| model | output scale | " + " | ".join(f"{c}: full model | blocks" for c in configs if c != "eager") + " |",
              "|---|---:|" + "---|---|" * (len(configs) - 1)]
    for r in results:
        a = r["accuracy"]
        lines.append(f"| {r['model']} | {a['eager']['output_scale']:.1e} | " + " | ".join(
            f"{a[c]['full_cosine']:.5f} / {a[c]['full_max_abs_diff']:.1e} | {a[c]['block_cosine_median']:.5f} /"
            f" {a[c]['block_cosine_worst']:.5f}" if c in a else "failed | -" for c in configs if c != "eager") + " |")
    lines += ["", f"### Optimal plan pi → server ({link.describe()}, output returned), cut bytes as the exported"
              " boundary sends them", "",
              "| model | runtime on the pi | cut before block (bytes) | pi ms | server ms | bottleneck | items/s |"
              " eager plan's cut under this runtime |",
              "|---|---|---|---:|---:|---|---:|---:|"]
    for r in results:
        for c in [c for c in configs if c in r["plans"]]:
            p = r["plans"][c]
            share = f"{p['eager_cut_share'] * 100:.1f}% of the optimum" if "eager_cut_share" in p else "-"
            lines.append(f"| {r['model']} | {c} | {p['boundaries'][1]}: {p['cut_before']} ({int(p['cut_bytes'])} B) |"
                         f" {p['pi_ms']:.2f} | {p['server_ms']:.2f} | {p['bottleneck']} | {p['throughput_per_s']:.2f} |"
                         f" {share} |")
    lines += ["", "### Per-block times on the pi (ms, medians of the interleaved rounds)", ""]
    for r in results:
        lines += [f"**{r['model']}** {'x'.join(map(str, r['input_shape']))}, {r['pi'][configs[0]]['rounds']} rounds;"
                  " server column: eager, 1 thread", "",
                  "| # | block | " + " | ".join(configs) + " | server |", "|---:|---|" + "---:|" * (len(configs) + 1)]
        for i, name in enumerate(r["blocks"]):
            lines.append(f"| {i} | {name} | " + " | ".join(
                f"{r['pi'][c]['blocks_ms'][i]:.3f}" if c in r["pi"] else "-" for c in configs)
                + f" | {r['server_ms'][i]:.3f} |")
        for c, why in r.get("failed", {}).items():
            lines.append(f"{c} failed to compile {r['model']}: {why}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=90.0, help="timing per model at most (after 5 rounds)")
    ap.add_argument("--calibration", type=int, default=8)
    ap.add_argument("--pi-cpu", type=int, default=0)
    ap.add_argument("--pi-threads", type=int, default=2)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--bandwidth", default="50Mbit/s")
    ap.add_argument("--latency", default="1ms")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "runtime_blocks"))
    args = ap.parse_args()
    configs = [c.strip() for c in args.configs.split(",")]
    if "eager" not in configs:
        configs.insert(0, "eager")
    for c in configs:
        runtime_mod.require(CONFIGS[c][0])
    link = Link.parse(args.bandwidth, args.latency)
    results = []
    with tempfile.TemporaryDirectory(prefix="gapp-runtime-bench-") as tmp:
        for name in args.models.split(","):
            results.append(bench_model(name.strip(), args, configs, link, Path(tmp)))
            md = markdown(results, args, link, configs)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".md").write_text("# Blocks under each runtime\n\n" + md + "\n")
            out.with_suffix(".json").write_text(json.dumps(
                {"args": vars(args), "configs": configs, "runtimes": runtime_mod.installed(),
                 "device": device_mod.describe("cpu"), "results": results}, indent=1, default=str))
    print(md)


if __name__ == "__main__":
    main()
