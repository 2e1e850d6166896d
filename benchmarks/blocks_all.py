"""Every torchvision classification model: blocks, feature-extraction time, composition check.

    .venv/bin/python benchmarks/blocks_all.py [--size N] [--models a,b,...]

For each model: the natural block chain traced on meta tensors and its
BlockGraphs extracted (the time reported is this, from a cold ModelSpec), then
the model built for real (random init) and the chain run on a real input and
compared with the unsplit model (max abs diff; target <= 1e-4). Prints a
markdown table and writes it to benchmarks/results/blocks_all.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gapp_tui.blocks import BlockChain  # noqa: E402
from gapp_tui.features import extract  # noqa: E402
from gapp_tui.zoo import ModelSpec, model_names  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None, help="input size for the real run (default: natural)")
    ap.add_argument("--models", default=None, help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else list(model_names())
    rows = []
    t_all = time.perf_counter()
    feature_total = 0.0
    for name in names:
        spec = ModelSpec(name, input_size=args.size)
        t0 = time.perf_counter()
        chain = BlockChain.from_spec(spec, device="meta")
        graphs = extract(chain, warn=False)
        feat_s = time.perf_counter() - t0
        feature_total += feat_s
        t1 = time.perf_counter()
        torch.manual_seed(0)
        real = BlockChain.from_spec(spec, device="cpu")
        diff = real.composition_error()
        run_s = time.perf_counter() - t1
        del real
        row = {"model": name, "input": "x".join(map(str, spec.shape)), "blocks": len(chain),
               "max_cut_tensors": max(c.count for c in chain.cuts), "nodes": sum(g.data.num_nodes for g in graphs),
               "features_s": round(feat_s, 3), "composition_max_abs_diff": diff, "real_run_s": round(run_s, 1),
               "ok": diff <= 1e-4}
        rows.append(row)
        print(f"{name:22s} {row['blocks']:4d} blocks  features {feat_s:6.2f} s  diff {diff:.1e}  ({run_s:.1f} s)", flush=True)
    wall = time.perf_counter() - t_all
    r50 = min(_time_resnet50() for _ in range(3))
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads.",
        "",
        f"- features for all blocks of resnet50 (trace on meta + extraction, best of 3): **{r50:.2f} s** (target < 2 s)",
        f"- features for all {len(rows)} models: **{feature_total:.1f} s** (target < 180 s)",
        f"- chains reproducing the unsplit model within 1e-4: **{sum(r['ok'] for r in rows)} / {len(rows)}**",
        f"- wall time of this benchmark: {wall:.0f} s",
        "",
        "| model | input | blocks | max tensors at a cut | graph nodes | features (s) | composition max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['input']} | {r['blocks']} | {r['max_cut_tensors']} | {r['nodes']} | "
                     f"{r['features_s']:.2f} | {r['composition_max_abs_diff']:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "blocks_all.md").write_text(text)
    (OUT / "blocks_all.json").write_text(json.dumps({"resnet50_features_s": r50, "all_features_s": feature_total,
                                                     "rows": rows}, indent=1))


def _time_resnet50() -> float:
    t = time.perf_counter()
    extract(BlockChain.from_spec(ModelSpec("resnet50"), device="meta"), warn=False)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
