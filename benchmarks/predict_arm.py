"""Adapting a predictor to real ARM boards from their whole-model latencies (public tables, shared/data/arm).

    .venv/bin/python benchmarks/predict_arm.py [--base FILE] [--pi-base FILE] [--shots 10 20 50] [--seeds 0 1 2 3 4]

* **Jetson Nano CPU** (4x Cortex-A57, ONNX Runtime, 719 timm models): for each
  k and seed, k models are drawn at random, the base predictor is adapted to
  them alone, and every other captured model is predicted. Rows of the same
  architecture and input size are one sample (their latencies' geometric
  mean: they differ only in trained weights). Models GAPP cannot capture are
  left out and listed, from this run.
* **Raspberry Pi 4 and 5 under PyTorch** (13 models each): leave one model
  out, adapt on the others, predict it.

Every method sees the same samples: FLOPs calibrated with the log-affine
correction (``log t = a log FLOPs + b``, ``a`` shrunk towards 1), the base
predictor with the log-affine correction (``gapp train --few-shot --method
log-affine``), and GAPP's adaptation (``gapp train --few-shot --totals``:
the head's efficiencies moved along its embedding's principal directions,
the prior's strength chosen by cross-validation on the samples).
``--base`` must not have been pre-trained on the table it is evaluated on:
the script refuses a base whose training lists that device. Writes
benchmarks/results/predict_arm.md and .json (with the load average beside
the run: the numbers do not depend on the machine's speed, only the time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gapp_tui.predict.adapt import DEFAULT_METHODS  # noqa: E402

JETSON = "jetson_nano_ort"
PIS = ("raspberry_pi_4_eager", "raspberry_pi_5_eager")


def _metrics(pred, y, low=None, high=None):
    import numpy as np
    from scipy.stats import spearmanr

    rel = np.abs(pred / y - 1)
    out = {"n": int(len(y)), "within10": float(100 * (rel <= 0.10).mean()), "within25": float(100 * (rel <= 0.25).mean()),
           "mape": float(100 * rel.mean()), "spearman": float(spearmanr(pred, y)[0]) if len(y) > 2 else float("nan")}
    if low is not None:
        out["coverage90"] = float(100 * ((y >= low) & (y <= high)).mean())
    return out


def _flops(ds):
    import numpy as np

    col = list(ds.graphs[0].total_columns).index("flops")
    per_graph = np.array([float(g.data.totals[0, col]) for g in ds.graphs])
    return np.array([sum(c * per_graph[g] for g, c in it) for it in ds.items])


def _check_base(pred, device: str, path: str) -> None:
    outputs = pred.training.get("outputs") or []
    if device in outputs:
        sys.exit(f"{path} was pre-trained on {device}; give a base that never saw the evaluated table")


def _adapt_predict(pred, ds, fit, test, methods, outputs, heads_cache=None, threads=1):
    """(prediction, low, high, adaptation) of items ``test`` after adapting on items ``fit``.

    ``heads_cache`` (a dict): the head's terms on every graph of ``ds`` per base output, computed once
    and reused by every run (they do not depend on the samples; only the adaptation does).
    ``threads``: the device ran PyTorch eager at this many threads (``adapt``'s ``threads``).
    """
    import numpy as np

    from gapp_tui.predict.adapt import adapt, head_data, _items_times
    from gapp_tui.predict.gnn import dispatch_threads
    from gapp_tui.predict.interval import spread

    ad = adapt(pred.model, ds.graphs, [ds.items[i] for i in fit], ds.y[fit], outputs=outputs, methods=methods,
               grain="model", threads=threads)
    if heads_cache is None:
        heads_cache = {}
    if (ad.output, ad.threads) not in heads_cache:
        with dispatch_threads(pred.model, ad.threads):
            heads_cache[(ad.output, ad.threads)] = head_data(pred.model, ds.graphs, ad.output)
    heads = heads_cache[(ad.output, ad.threads)]
    items = [ds.items[i] for i in test]
    # the log-affine correction is applied per block and fitted so that each model's sum matches (adapt.fit_item_calibration)
    lt = np.log(np.maximum(_items_times(ad.graph_times(heads), items), 1e-12))
    mu, sigma = spread(lt)
    if ad.interval is None:
        return np.exp(mu), None, None, ad
    lo, hi = ad.interval.bounds(mu, sigma)
    return np.exp(mu), lo, hi, ad


def _outputs(pred, choose: bool):
    names = pred.training.get("outputs") or [pred.device]
    return list(range(len(names))) if choose else [0], names


def run_jetson(pred, ds, shots, seeds, choose_output, log, on_run=None):
    import numpy as np

    from gapp_tui.predict.adapt import apply_calibration, fit_calibration

    flops = _flops(ds)
    n = len(ds.y)
    outputs, names = _outputs(pred, choose_output)
    res = {}
    heads: dict = {}
    for k in shots:
        for s in seeds:
            t0 = time.time()
            pick = np.random.RandomState(s).choice(n, k, replace=False)
            rest = np.setdiff1d(np.arange(n), pick)
            y = ds.y[rest]
            cal = fit_calibration(flops[pick], ds.y[pick])
            res.setdefault(str(k), {}).setdefault("FLOPs, log-affine", []).append(
                _metrics(apply_calibration(flops[rest], cal), y))
            p, lo, hi, _ = _adapt_predict(pred, ds, pick, rest, ("log-affine",), outputs[:1], heads)
            res[str(k)].setdefault("base predictor, log-affine", []).append(_metrics(p, y, lo, hi))
            p, lo, hi, ad = _adapt_predict(pred, ds, pick, rest, DEFAULT_METHODS, outputs, heads)
            m = _metrics(p, y, lo, hi)
            m.update(chosen=ad.cv.get("chosen"), output=names[ad.output])
            res[str(k)].setdefault("GAPP adaptation", []).append(m)
            log(f"jetson k={k} seed {s}: {m['within10']:.1f}% within ±10%, MAPE {m['mape']:.1f}%, "
                f"coverage {m.get('coverage90', float('nan')):.0f}% ({ad.cv.get('chosen')} on {names[ad.output]}),"
                f" {time.time() - t0:.0f} s")
            if on_run:
                on_run(res)
    return res


def run_pi(pred, ds, choose_output, log, threads=1):
    import numpy as np

    from gapp_tui.predict.adapt import apply_calibration, fit_calibration

    flops = _flops(ds)
    n = len(ds.y)
    outputs, names = _outputs(pred, choose_output)
    preds: dict[str, list] = {k: [] for k in ("FLOPs, log-affine", "base predictor, log-affine", "GAPP adaptation")}
    chosen = []
    for i in range(n):
        fit = np.setdiff1d(np.arange(n), [i])
        cal = fit_calibration(flops[fit], ds.y[fit])
        preds["FLOPs, log-affine"].append((apply_calibration(flops[[i]], cal)[0], None, None))
        p, lo, hi, _ = _adapt_predict(pred, ds, fit, [i], ("log-affine",), outputs[:1])
        preds["base predictor, log-affine"].append((p[0], lo[0] if lo is not None else None, hi[0] if hi is not None else None))
        p, lo, hi, ad = _adapt_predict(pred, ds, fit, [i], DEFAULT_METHODS, outputs, threads=threads)
        preds["GAPP adaptation"].append((p[0], lo[0] if lo is not None else None, hi[0] if hi is not None else None))
        chosen.append(f"{ad.cv.get('chosen')} on {names[ad.output]}")
        log(f"  left out {ds.model[i]}: measured {ds.y[i]:.1f} ms, predicted {p[0]:.1f} ms ({chosen[-1]})")
    out = {}
    for name, v in preds.items():
        p = np.array([a for a, _, _ in v])
        if v[0][1] is None:
            out[name] = _metrics(p, ds.y)
        else:
            out[name] = _metrics(p, ds.y, np.array([b for _, b, _ in v]), np.array([c for _, _, c in v]))
    out["GAPP adaptation"]["chosen"] = chosen
    out["per_model"] = [{"model": ds.model[i], "measured_ms": float(ds.y[i]),
                         **{name: float(v[i][0]) for name, v in preds.items()}} for i in range(n)]
    return out


def _known_left_out(path):
    """``{(model, input_shape): entry}`` from a previous run's JSON (``jetson.left_out``) or a bare list."""
    if not path:
        return {}
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"--known-left-out {path}: cannot read it ({exc}); give a predict_arm JSON or a list\n")
        sys.exit(2)
    entries = d.get("jetson", {}).get("left_out", []) if isinstance(d, dict) else d
    return {(e["model"], e["input_shape"]): e for e in entries}


def _summary(runs):
    import numpy as np

    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs]))} for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=None, help="predictor adapted to the Jetson (default: the shipped one)")
    ap.add_argument("--pi-base", default=None, help="predictor adapted to the Pis (default: --base)")
    ap.add_argument("--choose-output", action="store_true",
                    help="let cross-validation choose the base output (a pre-trained base has one per device)")
    ap.add_argument("--shots", type=int, nargs="*", default=[10, 20, 50])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--skip-pi", action="store_true")
    ap.add_argument("--skip-jetson", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pi-threads", type=int, default=4,
                    help="the threads the Pis ran PyTorch at (the table's 'default threads' on 4 cores): the"
                         " adaptation sees each convolution on the kernel PyTorch picks there; 1 = as before")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_arm"))
    ap.add_argument("--known-left-out", default=None, metavar="JSON",
                    help="a previous run's JSON (or its left_out list): those Jetson models are listed as left out"
                         " with the reason recorded there, not traced again (tracing a model that fails can take"
                         " minutes)")
    args = ap.parse_args()

    import torch

    from gapp_tui.predict.predictor import Predictor, default_predictor_path
    from gapp_tui.predict.samples import totals_dataset, totals_features_cache
    from gapp_tui.predict.tables import device_tables

    torch.set_num_threads(args.threads)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    load = {"start": os.getloadavg()}
    tables = device_tables()
    base_path = args.base or str(default_predictor_path())
    pi_path = args.pi_base or base_path
    doc = {"base": base_path, "pi_base": pi_path, "pi_threads": args.pi_threads, "shots": args.shots, "seeds": args.seeds,
           "choose_output": args.choose_output}
    if not args.skip_jetson:
        pred = Predictor.load(base_path)
        _check_base(pred, JETSON, base_path)
        rows = tables[JETSON]
        known = _known_left_out(args.known_left_out)
        keep = [r for r in rows if (r["model"], "x".join(map(str, r["input_shape"]))) not in known]
        ds = totals_dataset(keep, cache=totals_features_cache(), progress=log, item_timeout_s=300)
        ds.description["left_out"] = [lo for lo in known.values()
                                      if any(lo["model"] == r["model"] for r in rows)] + ds.description["left_out"]
        doc["known_left_out"] = args.known_left_out
        doc["jetson"] = {"rows_in_table": 719, "samples": len(rows), "captured": len(ds),
                         "left_out": ds.description["left_out"], "results": {}}

        def on_run(res):  # write what is done after every run: a long run stopped early keeps its numbers
            doc["jetson"]["results"] = res
            doc["jetson"]["summary"] = {k: {m: _summary(v) for m, v in per.items()} for k, per in res.items()}
            _write(doc, args.out, load, t0, partial=True)

        on_run(run_jetson(pred, ds, args.shots, args.seeds, args.choose_output, log, on_run))
    if not args.skip_pi:
        pred = Predictor.load(pi_path)
        doc["pi"] = {}
        for dev in PIS:
            _check_base(pred, dev, pi_path)
            ds = totals_dataset(tables[dev], cache=totals_features_cache(), progress=log)
            log(f"{dev}: {len(ds)} captured models")
            doc["pi"][dev] = {"captured": len(ds), "left_out": ds.description["left_out"],
                              "results": run_pi(pred, ds, args.choose_output, log, args.pi_threads)}
    print(_write(doc, args.out, load, t0))


def _write(doc, out, load, t0, partial=False) -> str:
    """Write ``out``.md and .json (``partial``: the runs so far, said so in both); the markdown."""
    load["end"] = os.getloadavg()
    doc["load_average"] = load
    doc["seconds"] = round(time.time() - t0, 1)
    doc["partial"] = partial
    text = render(doc)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out + ".md").write_text(text)
    Path(out + ".json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return text


def render(doc) -> str:
    lines = ["(partial: the runs done so far)", ""] if doc.get("partial") else []
    if "jetson" in doc and doc["jetson"].get("summary"):
        j = doc["jetson"]
        lines += [f"# Jetson Nano CPU (ONNX Runtime), timm models: adapt on k, predict the others",
                  "",
                  f"{j['captured']} of {j['samples']} architecture/size samples captured ({j['rows_in_table']} table rows;"
                  f" {len(j['left_out'])} left out, listed in the JSON with the reason). Mean ± std over seeds"
                  f" {', '.join(map(str, doc['seeds']))}; base: `{doc['base']}`.",
                  "",
                  "| k | method | within ±10 % | within ±25 % | MAPE % | Spearman | 90 % interval coverage |",
                  "|---|---|---|---|---|---|---|"]
        for k, per in j["summary"].items():
            for m, s in per.items():
                cov = f"{s['coverage90']['mean']:.1f} ± {s['coverage90']['std']:.1f}" if "coverage90" in s else ""
                lines.append(f"| {k} | {m} | {s['within10']['mean']:.1f} ± {s['within10']['std']:.1f} |"
                             f" {s['within25']['mean']:.1f} ± {s['within25']['std']:.1f} |"
                             f" {s['mape']['mean']:.1f} ± {s['mape']['std']:.1f} |"
                             f" {s['spearman']['mean']:.3f} | {cov} |")
        lines.append("")
    if "pi" in doc:
        lines += ["# Raspberry Pi 4 and 5 under PyTorch: leave one model out", "",
                  f"base: `{doc['pi_base']}`; the adaptation's dispatch flags for PyTorch at"
                  f" {doc.get('pi_threads', 1)} thread(s)", "",
                  "| device | models | method | within ±10 % | within ±25 % | MAPE % | Spearman | 90 % interval coverage |",
                  "|---|---|---|---|---|---|---|---|"]
        for dev, d in doc["pi"].items():
            for m, s in d["results"].items():
                if m == "per_model":
                    continue
                cov = f"{s['coverage90']:.0f}" if "coverage90" in s else ""
                lines.append(f"| {dev} | {d['captured']} | {m} | {s['within10']:.0f} | {s['within25']:.0f} |"
                             f" {s['mape']:.1f} | {s['spearman']:.3f} | {cov} |")
        lines += ["", "Left out (cannot be captured today): " + ("; ".join(
            f"{lo['model']} ({lo['reason'][:80]})" for d in doc["pi"].values() for lo in d["left_out"]) or "none")]
    la = doc["load_average"]
    lines += ["", f"Command: `.venv/bin/python benchmarks/predict_arm.py {' '.join(sys.argv[1:])}`"
              f" ({doc['seconds']:.0f} s; load average {la['start'][0]:.1f} at the start, {la['end'][0]:.1f} at the end,"
              " on a 2-core machine shared with other jobs)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
