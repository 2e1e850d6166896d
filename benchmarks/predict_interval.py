"""The shipped predictor's interval: calibrated on blocks of families it did not train on (leave-one-family-out).

    .venv/bin/python benchmarks/predict_interval.py [--write]

The shipped predictor has no device samples to calibrate an interval on, so
its interval comes from ``benchmarks/predict_torchvision.py``'s held-out
blocks (``predict_torchvision_blocks.csv.gz``: every corpus block predicted by
a GNN that never saw its family): split conformal on the absolute log error
(the members' spread on those blocks is not in that file, so the interval has
one relative width for every block: ``[t / e^q, t e^q]``). Its coverage is
checked by calibrating on half of the families and testing on the other half,
both ways round, for several random halvings. ``--write`` stores the interval
(fitted on every family) in ``gapp_tui/data/predictor_cpu.pt``; the weights and
every prediction are unchanged (checked). Writes
benchmarks/results/predict_interval.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", default=str(ROOT / "benchmarks" / "results" / "predict_torchvision_blocks.csv.gz"))
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_interval"))
    args = ap.parse_args()

    import numpy as np

    from gapp_tui.predict.interval import IntervalModel, calibrate, coverage

    with gzip.open(args.blocks, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fam = np.array([r["family"] for r in rows])
    y = np.array([float(r["measured_ms"]) for r in rows])
    p = np.array([float(r["GNN"]) for r in rows])
    r = np.log(y / p)
    fams = sorted(set(fam))
    covs, widths = [], []
    for s in range(args.splits):
        half = set(np.random.RandomState(s).permutation(fams)[: len(fams) // 2])
        a = np.array([f in half for f in fam])
        for cal, test in ((a, ~a), (~a, a)):
            m = calibrate(r[cal], None, args.level, grain="block")
            lo, hi = m.bounds(np.log(p[test]), np.zeros(test.sum()))
            covs.append(coverage(y[test], lo, hi))
            widths.append(float(np.exp(m.q * m.tau)))
    full = calibrate(r, None, args.level, grain="block")
    doc = {"blocks": len(rows), "families": fams, "level": args.level, "interval": full.to_dict(),
           "factor": float(np.exp(full.q * full.tau)),
           "split_halves": {"splits": args.splits, "coverage_mean": float(np.mean(covs)), "coverage_min": float(np.min(covs)),
                            "coverage_max": float(np.max(covs)), "factor_mean": float(np.mean(widths))}}
    if args.write:
        import torch

        from gapp_tui.predict.dataset import model_graphs
        from gapp_tui.predict.predictor import DEFAULT_PREDICTOR

        graphs = model_graphs("resnet18", 1, 64)[0] + model_graphs("vit_b_32", 1, 64)[0]
        raw = torch.load(DEFAULT_PREDICTOR, weights_only=True)
        from gapp_tui.predict.predictor import Predictor

        before = Predictor.load(DEFAULT_PREDICTOR).block_times(graphs)
        raw["interval"] = IntervalModel.to_dict(full)
        raw.pop("interval_note", None)
        torch.save(raw, DEFAULT_PREDICTOR)
        after = Predictor.load(DEFAULT_PREDICTOR)
        assert np.array_equal(before, after.block_times(graphs)), "the predictions changed"
        assert after.interval is not None
        doc["written"] = str(DEFAULT_PREDICTOR)
    s = doc["split_halves"]
    text = "\n".join([
        f"# The shipped predictor's {100 * args.level:.0f} % interval (leave-one-family-out residuals)", "",
        f"{len(rows)} held-out corpus blocks of {len(fams)} families (each predicted by a GNN that never saw its family).",
        f"Interval: prediction times or divided by **{doc['factor']:.3f}** (q = {full.q:.3f} in units of tau = {full.tau}).", "",
        f"Calibrated on half of the families and tested on the other half ({s['splits']} random halvings, both ways):"
        f" coverage {s['coverage_mean']:.1f} % on average (min {s['coverage_min']:.1f} %, max {s['coverage_max']:.1f} %),"
        f" factor {s['factor_mean']:.3f} on average.", "",
        f"Command: `.venv/bin/python benchmarks/predict_interval.py {' '.join(sys.argv[1:])}`"]) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
