"""Few-shot adaptation to a new device (HELP's meta-test devices) from 10, 20 and 50 of its measurements.

    .venv/bin/python benchmarks/predict_fewshot.py [--seeds 0 1 2 3 4] [--n-source-train 2000]

One GNN with an output per source device is trained on every device of the
NAS-Bench-201 latency table that is not a target (HELP's meta-training
devices); for each target and each k, k networks are drawn (per seed), the
adaptation is chosen and fitted on them alone (mixture of source devices or
one calibrated source, by leave-one-out error), and tested on the remaining
networks of the evaluation pool. Writes benchmarks/results/predict_fewshot.md and .json.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HELP_PUBLISHED = {"raspi4": 0.890}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--n-source-train", type=int, default=2000)
    ap.add_argument("--n-eval", type=int, default=None, help="evaluation pool size (default: every other network)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_fewshot"))
    args = ap.parse_args()

    import torch

    from gapp_tui.predict.fewshot import nb201_fewshot_protocol
    from gapp_tui.predict.train import TrainConfig

    torch.set_num_threads(args.threads)
    t0 = time.time()
    res = nb201_fewshot_protocol(seeds=args.seeds, n_source_train=args.n_source_train, n_eval=args.n_eval,
                                 config=TrainConfig(steps=args.steps),
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    res["seconds"] = round(time.time() - t0, 1)
    shots = res["shots"]
    lines = [
        f"# Few-shot adaptation on NAS-Bench-201: {len(res['sources'])} source devices, {res['n_source_train']} source"
        f" networks, {res['n_eval']} networks in the evaluation pool, seeds {', '.join(map(str, res['seeds']))}",
        "",
        "Spearman rank correlation on the pool less the k adaptation networks (mean ± std over seeds);"
        " in brackets the share within ±10 % on networks ≥ 1 ms.",
        "",
        "| target | " + " | ".join(f"k = {k}" for k in shots) + " | adaptation chosen (k = 10) |",
        "|---|" + "---|" * len(shots) + "---|",
    ]
    for t, per in res["results"].items():
        cells = []
        for k in shots:
            s = per[str(k)]["summary"]
            cells.append(f"{s['spearman']['mean']:.3f} ± {s['spearman']['std']:.3f} ({s['within10_ge1ms']['mean']:.0f} %)")
        chosen = collections.Counter(per[str(shots[0])]["methods"]).most_common(2)
        lines.append(f"| {t} | " + " | ".join(cells) + " | " + ", ".join(f"{m} ×{n}" for m, n in chosen) + " |")
    lines += ["", "Published (HELP, 10 samples on raspi4): Spearman 0.890.",
              "", f"Source devices: {', '.join(res['sources'])}.",
              "", f"Command: `.venv/bin/python benchmarks/predict_fewshot.py {' '.join(sys.argv[1:])}`"
              f" ({res['seconds']:.0f} s on a 2-core CPU shared with other engineers' jobs)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
