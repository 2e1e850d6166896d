"""Leave-one-family-out on torchvision blocks measured on this CPU: the GNN against every baseline.

    .venv/bin/python benchmarks/predict_torchvision.py [--steps 2500] [--members 3] [--families resnet vgg ...] [--no-synthetic] [--jobs 2] [--seed 3] [--cache-mb 0]

For each family, the GNN and the baselines are trained on the blocks of every
other family plus the synthetic blocks (10% of them held out for the GNN's
early stopping) and tested on all blocks of the held-out family (both batch
sizes, both input sizes). ``--no-synthetic`` trains on the torchvision
families alone. Writes benchmarks/results/predict_torchvision.md and .json, and every held-out
block's measured and predicted times to predict_torchvision_blocks.csv.gz
(``predict_torchvision_nosynthetic.*`` with ``--no-synthetic``; ``_nocache`` with ``--cache-mb 0``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--members", type=int, default=3, help="GNN ensemble size (geometric mean of members' predictions)")
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--jobs", type=int, default=1, help="hold out this many families at once, one process each (same numbers)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the first ensemble member (the others: seed+1, ...) and of the validation split;"
                         " a seed other than 0 writes predict_torchvision_seedN.*")
    ap.add_argument("--cache-mb", type=float, default=16.0,
                    help="the GNN sees whether a block's weights exceed this many MB (BlockGNN(cache_mb=...));"
                         " 0: off (writes predict_torchvision_nocache[_seedS].*), another size: _cacheN[_seedS].*")
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--no-synthetic", action="store_true", help="train on the torchvision families only")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out is None:
        args.out = str(ROOT / "benchmarks" / "results" / ("predict_torchvision" + ("_nosynthetic" if args.no_synthetic else "")
                                                                   + ("" if args.cache_mb == 16 else f"_cache{args.cache_mb:g}" if args.cache_mb else "_nocache")
                                                                   + (f"_seed{args.seed}" if args.seed else "")))

    import torch

    from gapp_tui.predict.dataset import training_dataset
    from gapp_tui.predict.synthetic import FAMILY
    from gapp_tui.predict.evaluate import lofo_protocol
    from gapp_tui.predict.train import TrainConfig

    torch.set_num_threads(args.threads)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    ds = training_dataset(args.corpus, synthetic=not args.no_synthetic, progress=log)
    n_syn = sum(f == FAMILY for f in ds.family)
    held = [f for f in ds.families() if f != FAMILY]
    n_tv = len(ds) - n_syn
    cfg = TrainConfig(steps=args.steps, members=args.members, seed=args.seed, cache_mb=args.cache_mb or None)
    res = lofo_protocol(ds, cfg, args.families, progress=log,
                        jobs=args.jobs, keep_blocks=True)
    res["seconds"] = round(time.time() - t0, 1)
    res["data"] = ds.describe()
    methods = list(res["overall"])
    head = "| held-out family | blocks | " + " | ".join(methods) + " |"
    lines = [
        f"# Leave-one-family-out on torchvision blocks measured on this CPU ({n_tv} blocks,"
        f" {len(held)} families, batch 1 and 4, input 64 and 128)",
        "",
        "Each cell: share of blocks within ±10 % of the measured time / MAPE %. Training: every other family"
        + (f" and {n_syn} synthetic blocks (never held out)." if n_syn else " (no synthetic blocks)."),
        "",
        head,
        "|---|---|" + "---|" * len(methods),
    ]
    for fam, per in res["families"].items():
        n = next(iter(per.values()))["n"]
        lines.append(f"| {fam} | {n} | " + " | ".join(f"{per[m]['within10']:.0f} / {per[m]['mape']:.1f}" for m in methods) + " |")
    n = next(iter(res["overall"].values()))["n"]
    lines.append(f"| **all held-out blocks** | {n} | " + " | ".join(
        f"**{res['overall'][m]['within10']:.1f} / {res['overall'][m]['mape']:.1f}**" for m in methods) + " |")
    lines += ["", "Spearman over all held-out blocks: " + ", ".join(
        f"{m} {res['overall'][m]['spearman']:.3f}" for m in methods) + "."]
    lines += ["", f"Command: `.venv/bin/python benchmarks/predict_torchvision.py {' '.join(sys.argv[1:])}`"
              f" ({res['seconds']:.0f} s on the 2-core machine; GNN: {args.members}-member ensemble, {args.steps} steps each"
              + (f", cache flag at {args.cache_mb:g} MB" if args.cache_mb else ", no cache flag") +
              f"; load average {os.getloadavg()[0]:.1f} at the end; timing does not affect these numbers)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text)
    blocks = res.pop("blocks")
    Path(args.out + ".json").write_text(json.dumps(res, indent=1) + "\n")
    with gzip.open(args.out + "_blocks.csv.gz", "wt", newline="") as fh:  # every held-out block: measured and predicted
        w = csv.DictWriter(fh, fieldnames=list(blocks[0]))
        w.writeheader()
        w.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in b.items()} for b in blocks)


if __name__ == "__main__":
    main()
