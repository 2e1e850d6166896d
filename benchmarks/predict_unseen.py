"""Models the shipped predictor never saw: predicted block times (features only) against a fresh measurement.

    .venv/bin/python benchmarks/predict_unseen.py [--models mobilenet_v3_large wide_resnet50_2 ...]

Each model is measured here the way the corpus was (standalone blocks, 1 thread,
batch 1, input 128; label = the minimum over runs) and predicted by
gapp_tui/data/predictor_cpu.pt from its BlockGraphs alone. Writes
benchmarks/results/predict_unseen.md and .json.

The predictor predicts the corpus machine's clock. A shared VM is not always
as fast as when the corpus was measured, so the script first measures a corpus
model (``--reference``, default resnet18) the same way and compares it with its
corpus labels: the median ratio is how much slower this machine runs now.
When it is more than 5 % away from 1, the table also shows the unseen models'
times divided by it (on the corpus machine's clock); the reference model is
training data, so the scale comes from no unseen block.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=["mobilenet_v3_large", "efficientnet_b1", "regnet_y_800mf", "wide_resnet50_2"])
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--reference", default="resnet18",
                    help="a corpus model measured first, to tell how fast this machine runs against the corpus labels")
    ap.add_argument("--compare", default=None, metavar="PREDICTOR",
                    help="another predictor file, scored on the same measurements (e.g. the one shipped before)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_unseen"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.timer import Precision
    from gapp_tui.predict.dataset import CORPUS_PATH, load_corpus
    from gapp_tui.predict.evaluate import metrics
    from gapp_tui.predict.predictor import Predictor, default_predictor_path
    from gapp_tui.zoo import ModelSpec

    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    pred = Predictor.load(default_predictor_path())
    other = Predictor.load(Path(args.compare)) if args.compare else None
    precision = Precision(warmup_runs=2, warmup_s=0.02, min_runs=5, max_runs=30, target_ci=0.03, max_time_s=0.4)
    cfg = MeasureConfig(modes=("standalone",), threads=1, precision=precision, full=False)
    labels = {r["block"]: r["median_ms"] for r in load_corpus(CORPUS_PATH)
              if r["model"] == args.reference and r["batch_size"] == 1 and r["input_size"] == args.input_size}
    if not labels:
        raise SystemExit(f"--reference {args.reference}: no corpus rows at batch 1, input {args.input_size}")
    ref_rows = measure(ModelSpec(args.reference, input_size=args.input_size), cfg).rows["standalone"]
    speed = float(np.median([r["min_ms"] / labels[r["block"]] for r in ref_rows if r["block"] in labels]))
    print(f"{args.reference}: this machine runs at {speed:.2f}x the corpus labels' times", file=sys.stderr, flush=True)
    scaled = abs(speed - 1) > 0.05
    res, allp, ally, allo = {}, [], [], []
    for name in args.models:
        spec = ModelSpec(name, input_size=args.input_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = pred.predict_model(spec)
            p_other = np.array([b["predicted_ms"] for b in other.predict_model(spec)["blocks"]]) if other else None
        rows = measure(spec, cfg).rows["standalone"]
        y = np.array([r["min_ms"] for r in rows])
        p = np.array([b["predicted_ms"] for b in doc["blocks"]])
        res[name] = {"metrics": metrics(p, y), "predicted_sum_ms": float(p.sum()), "measured_sum_ms": float(y.sum()),
                     "metrics_corpus_clock": metrics(p, y / speed),
                     "blocks": [{"measured_ms": float(a), "predicted_ms": float(b)} for a, b in zip(y, p)]}
        if other:
            res[name]["compare_corpus_clock"] = metrics(p_other, y / speed)
            allo += p_other.tolist()
        allp += p.tolist()
        ally += y.tolist()
        print(name, res[name]["metrics"]["within10"], file=sys.stderr, flush=True)
    overall = metrics(np.array(allp), np.array(ally))
    overall_clock = metrics(np.array(allp), np.array(ally) / speed)
    lines = [f"# Unseen models: shipped CPU predictor vs a fresh measurement (batch 1, {args.input_size} px, 1 thread)", "",
             f"This machine ran at **{speed:.2f}x** the corpus labels' times on {args.reference} (a corpus model, median"
             f" over its {len(ref_rows)} blocks)" + ("; the last columns divide the measured times by that." if scaled
                                                  else ", within 5 %: times are compared as measured."), "",
             "| model | blocks | Spearman | MAPE % | within ±10 % | predicted sum ms | measured sum ms |"
             + (" MAPE % (corpus clock) | within ±10 % (corpus clock) |" if scaled else ""),
             "|---|---|---|---|---|---|---|" + ("---|---|" if scaled else "")]
    for name, r in res.items():
        m, c = r["metrics"], r["metrics_corpus_clock"]
        lines.append(f"| {name} | {m['n']} | {m['spearman']:.3f} | {m['mape']:.1f} | {m['within10']:.0f} |"
                     f" {r['predicted_sum_ms']:.2f} | {r['measured_sum_ms']:.2f} |"
                     + (f" {c['mape']:.1f} | {c['within10']:.0f} |" if scaled else ""))
    lines.append(f"| **all** | {overall['n']} | {overall['spearman']:.3f} | {overall['mape']:.1f} | {overall['within10']:.0f} | | |"
                 + (f" {overall_clock['mape']:.1f} | {overall_clock['within10']:.0f} |" if scaled else ""))
    if other:
        o = metrics(np.array(allo), np.array(ally) / speed)
        lines += ["", f"`{args.compare}` on the same measurements (corpus clock): "
                  + ", ".join(f"{n} {r['compare_corpus_clock']['within10']:.0f} % / {r['compare_corpus_clock']['mape']:.1f} %"
                              for n, r in res.items())
                  + f"; all {o['within10']:.0f} % within ±10 %, MAPE {o['mape']:.1f} %."]
    lines += ["", f"Command: `.venv/bin/python benchmarks/predict_unseen.py {' '.join(sys.argv[1:])}` (load average"
              f" {load_start:.1f} when measuring started, {os.getloadavg()[0]:.1f} at the end)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"reference": args.reference, "speed": speed, "models": res, "overall": overall,
                                                      "overall_corpus_clock": overall_clock}, indent=1) + "\n")


if __name__ == "__main__":
    main()
