"""What the device's thread count in the dispatch flags is worth, on the rows a calibration run stored.

    .venv/bin/python benchmarks/predict_calibrate.py --db /tmp/run.sqlite      # first: probes and test blocks
    .venv/bin/python benchmarks/predict_calibrate_flags.py /tmp/run.sqlite [more runs' stores ...]

PyTorch runs a 1x1 convolution at batch 1 on its own kernel single-threaded and on oneDNN with more
threads (unless its input is small); the shipped predictor was trained at one thread, so its dispatch
flags say "own kernel" for every such convolution. ``adapt(..., threads=N)`` shows the base each
convolution on the kernel PyTorch picks at N threads. Nothing is measured here: for each store, the
probe rows are adapted to twice -- flags of 1 thread and of the store's thread count -- and both are
scored on the same stored test blocks (``benchmarks/predict_calibrate.py``'s labels, first pass), so the
comparison is paired: the same probes, the same labels. Writes
benchmarks/results/predict_calibrate_flags.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stores", nargs="+", help="stores written by benchmarks/predict_calibrate.py --db")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_calibrate_flags"))
    args = ap.parse_args()

    import numpy as np

    import predict_calibrate as PC
    from gapp_tui.predict import probes
    from gapp_tui.predict.adapt import adapt, adapted_member_times
    from gapp_tui.predict.dataset import model_graphs
    from gapp_tui.predict.evaluate import metrics
    from gapp_tui.predict.predictor import Predictor, default_predictor_path
    from gapp_tui.store import Store

    base = Predictor.load(str(default_predictor_path()))
    pg = probes.graphs()
    test_graphs = {name: model_graphs(name, 1, args.input_size)[0] for name in PC.MODELS}
    doc = {"base": str(default_predictor_path()), "runs": []}
    for path in args.stores:
        if not Path(path).is_file():
            sys.exit(f"store {path!r} not found; run benchmarks/predict_calibrate.py --db {path} first")
        with Store(path, readonly=True) as st:
            rows = list(st.rows(model="gapp_tui.predict.probes:suite", mode="standalone"))
            labels = {(r["model"], int(r["block"])): float(r["min_ms"] or r["median_ms"])
                      for r in st.rows(mode="standalone") if r["model"] in PC.MODELS}
        threads = sorted({int(r["threads"]) for r in rows})
        if len(threads) != 1 or not rows:
            sys.exit(f"{path}: expected the probe rows of one thread count, found {threads or 'none'}")
        graphs, y = [], []
        for name, gs in test_graphs.items():
            for g in gs:
                if (name, g.block_index) in labels:
                    graphs.append(g)
                    y.append(labels[(name, g.block_index)])
        y = np.array(y)
        run = {"store": path, "threads": threads[0], "probes": len(rows), "blocks": len(y), "results": {},
               "pass2_within10": None}
        second = Path(path).with_suffix(".pass2.sqlite")  # the label-noise ceiling of that run, when it has one
        if second.is_file():
            with Store(str(second), readonly=True) as st2:
                again = {(r["model"], int(r["block"])): float(r["min_ms"] or r["median_ms"]) for r in st2.rows(mode="standalone")}
            both = [(a, again[k]) for k, a in labels.items() if k in again]
            if both:
                run["pass2_within10"] = float(100 * np.mean([abs(b / a - 1) <= 0.1 for a, b in both]))
        for flags in (1, threads[0]):
            ad = adapt(base.model, pg, [[(int(r["block"]), 1)] for r in rows],
                       [float(r["min_ms"] or r["median_ms"]) for r in rows], grain="block", threads=flags)
            p = np.exp(np.log(adapted_member_times(base.model, ad, graphs)).mean(0))
            held = ad.cv["candidates"][ad.cv["chosen"]]
            run["results"][f"flags of {flags} thread(s)"] = {**metrics(p, y), "held_out_probes_within10": held["within10"],
                                                             "lambda": ad.lam}
            print(path, flags, run["results"][f"flags of {flags} thread(s)"]["within10"], file=sys.stderr, flush=True)
        doc["runs"].append(run)
    lines = ["# The device's thread count in the dispatch flags (paired: same probes, same labels)", "",
             "| store | threads | second pass of the labels agrees | flags of | within ±10 % | MAPE % |"
             " blocks ≥ 1 ms within ±10 % | held-out probes within ±10 % |",
             "|---|---|---|---|---|---|---|---|"]
    for run in doc["runs"]:
        agree = f"{run['pass2_within10']:.1f} %" if run["pass2_within10"] is not None else "–"
        for name, r in run["results"].items():
            lines.append(f"| `{run['store']}` | {run['threads']} | {agree} | {name.split()[2]} | {r['within10']:.1f} |"
                         f" {r['mape']:.1f} | {r['within10_ge1ms']:.1f} | {r['held_out_probes_within10']:.1f} |")
    lines += ["", f"Command: `.venv/bin/python benchmarks/predict_calibrate_flags.py {' '.join(args.stores)}`"
              " (no measurement: the stores' rows, adapted twice).", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps(doc, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
