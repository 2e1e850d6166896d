"""Models the shipped predictor never saw: predicted block times (features only) against a fresh measurement.

    .venv/bin/python benchmarks/predict_unseen.py [--models mobilenet_v3_large wide_resnet50_2 ...]

Each model is measured here the way the corpus was (standalone blocks, 1 thread,
batch 1, input 128; label = the minimum over runs) and predicted by
gapp_tui/data/predictor_cpu.pt from its BlockGraphs alone. Writes
benchmarks/results/predict_unseen.md and .json.
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
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_unseen"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.timer import Precision
    from gapp_tui.predict.evaluate import metrics
    from gapp_tui.predict.predictor import Predictor, default_predictor_path
    from gapp_tui.zoo import ModelSpec

    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    pred = Predictor.load(default_predictor_path())
    precision = Precision(warmup_runs=2, warmup_s=0.02, min_runs=5, max_runs=30, target_ci=0.03, max_time_s=0.4)
    cfg = MeasureConfig(modes=("standalone",), threads=1, precision=precision, full=False)
    res, allp, ally = {}, [], []
    for name in args.models:
        spec = ModelSpec(name, input_size=args.input_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = pred.predict_model(spec)
        rows = measure(spec, cfg).rows["standalone"]
        y = np.array([r["min_ms"] for r in rows])
        p = np.array([b["predicted_ms"] for b in doc["blocks"]])
        res[name] = {"metrics": metrics(p, y), "predicted_sum_ms": float(p.sum()), "measured_sum_ms": float(y.sum())}
        allp += p.tolist()
        ally += y.tolist()
        print(name, res[name]["metrics"]["within10"], file=sys.stderr, flush=True)
    overall = metrics(np.array(allp), np.array(ally))
    lines = [f"# Unseen models: shipped CPU predictor vs a fresh measurement (batch 1, {args.input_size} px, 1 thread)", "",
             "| model | blocks | Spearman | MAPE % | within ±10 % | predicted sum ms | measured sum ms |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        m = r["metrics"]
        lines.append(f"| {name} | {m['n']} | {m['spearman']:.3f} | {m['mape']:.1f} | {m['within10']:.0f} |"
                     f" {r['predicted_sum_ms']:.2f} | {r['measured_sum_ms']:.2f} |")
    lines.append(f"| **all** | {overall['n']} | {overall['spearman']:.3f} | {overall['mape']:.1f} | {overall['within10']:.0f} | | |")
    lines += ["", f"Command: `.venv/bin/python benchmarks/predict_unseen.py {' '.join(sys.argv[1:])}` (load average"
              f" {load_start:.1f} when measuring started, {os.getloadavg()[0]:.1f} at the end)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"models": res, "overall": overall}, indent=1) + "\n")


if __name__ == "__main__":
    main()
