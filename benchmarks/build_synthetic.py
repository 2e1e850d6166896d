"""Measure the synthetic blocks (gapp_tui/predict/synthetic.py) on this CPU: the corpus's second file.

    .venv/bin/python benchmarks/build_synthetic.py [--count 3000] [--out gapp_tui/data/synthetic_times.csv.gz]
    .venv/bin/python benchmarks/build_synthetic.py --first-seed 3000 --count 1500 --kinds transformer linear chain --append

Every seed's block is built, given a random input of its shape and timed alone
(one thread, the same precision as ``build_corpus.py``) in two passes over all
seeds, so that the two times of a block are minutes apart; the label
``time_ms`` is the smaller of the two passes' minima, as in the torchvision
corpus, and the agreement of the passes goes to ``synthetic_meta.json`` with
the load averages. Only ``(seed, time)`` is stored: the features are
extracted again from the seed when training. ``--append`` adds a batch of
new seeds (``--first-seed``, kinds cycled from ``--kinds``) to the file and
records the batch in the meta file's ``batches``.
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000, help="how many seeds (first-seed .. first-seed+count-1)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--kinds", nargs="*", default=None, help="cycle through these kinds (default: the generator's cycle)")
    ap.add_argument("--append", action="store_true", help="add these seeds to the existing --out file")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "gapp_tui" / "data" / "synthetic_times.csv.gz"))
    ap.add_argument("--note", default="measured on the 2-core development machine, one thread, nothing else heavy running")
    args = ap.parse_args()

    import numpy as np
    import torch

    from gapp_tui.measure.device import describe
    from gapp_tui.measure.timer import Precision, time_callable
    from gapp_tui.predict.synthetic import sample

    torch.set_num_threads(args.threads)
    precision = Precision(warmup_runs=3, warmup_s=0.05, min_runs=10, max_runs=60, target_ci=0.02, max_time_s=0.8)
    load = {"start": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.time()
    rows: dict[int, dict] = {}
    seeds = list(range(args.first_seed, args.first_seed + args.count))
    kind_of = {s: (args.kinds[i % len(args.kinds)] if args.kinds else None) for i, s in enumerate(seeds)}
    for p in range(args.passes):
        for seed in seeds:
            sb = sample(seed, kind=kind_of[seed])
            x = torch.randn(sb.input_shape, generator=torch.Generator().manual_seed(seed))
            st = time_callable(sb.module, (x,), "cpu", precision)
            r = rows.setdefault(seed, {"seed": seed, "kind": sb.kind, "description": sb.description,
                                       "input_shape": "x".join(map(str, sb.input_shape))})
            r[f"median_ms_{p + 1}"], r[f"min_ms_{p + 1}"] = f"{st.median_ms:.6g}", f"{st.min_ms:.6g}"
            if seed % 250 == 0:
                print(f"pass {p + 1} seed {seed:5d}  {time.time() - t0:7.1f} s  load {os.getloadavg()[0]:.2f}", flush=True)
        load[f"after_pass_{p + 1}"] = [round(x, 2) for x in os.getloadavg()]
    for r in rows.values():
        r["time_ms"] = f"{min(float(r[f'min_ms_{p + 1}']) for p in range(args.passes)):.6g}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(next(iter(rows.values())).keys())
    new_rows = dict(rows)
    if args.append and out.is_file():
        with gzip.open(out, "rt", newline="") as fh:
            old = {int(r["seed"]): r for r in csv.DictReader(fh)}
        clash = sorted(set(old) & set(rows))
        if clash:
            raise SystemExit(f"--append: seeds {clash[:5]}... are already in {out}; choose --first-seed above {max(old)}")
        rows = {**old, **rows}
    with gzip.open(out, "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows[s] for s in sorted(rows))
    agree = None
    if args.passes >= 2:
        a = np.array([float(r["min_ms_1"]) for r in new_rows.values()])
        b = np.array([float(r["min_ms_2"]) for r in new_rows.values()])
        agree = round(float(100 * np.mean(np.abs(a / b - 1) <= 0.10)), 1)
    desc = describe("cpu")
    batch = {
        "seeds": [seeds[0], seeds[-1]], "kinds": args.kinds or "default cycle", "passes": args.passes,
        "passes_agree_within10_percent_min": agree, "load_average": load, "note": args.note,
        "command": "benchmarks/build_synthetic.py " + " ".join(sys.argv[1:]), "minutes": round((time.time() - t0) / 60, 1),
    }
    meta_path = out.with_name("synthetic_meta.json")
    if args.append and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        first = {k: meta.pop(k) for k in ("seeds", "passes_agree_within10_percent_min", "load_average", "note", "command", "minutes")
                 if k in meta}
        if first:
            meta["batches"] = [{"seeds": [0, first.get("seeds", 0) - 1], "kinds": "default cycle", **first}]
        meta["batches"] = meta.get("batches", []) + [batch]
        meta["rows"] = len(rows)
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{len(new_rows)} blocks added -> {out} ({len(rows)} in all); passes agree within ±10% (minima): {agree}%")
        return
    meta = {
        "what": "standalone times of seeded synthetic blocks (gapp_tui/predict/synthetic.py; random init, eval, float32) on this CPU",
        "machine": {k: desc.get(k) for k in ("cpu_model", "cores", "cpu_count", "memory_bytes", "os", "python", "torch")},
        "threads": args.threads, "precision": precision.to_dict(), "seeds": args.count, "passes": args.passes,
        "label": "time_ms = min over the passes of each pass's minimum",
        "passes_agree_within10_percent_min": agree, "load_average": load, "note": args.note,
        "command": "benchmarks/build_synthetic.py " + " ".join(sys.argv[1:]),
        "minutes": round((time.time() - t0) / 60, 1),
    }
    out.with_name("synthetic_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(rows)} blocks -> {out}; passes agree within ±10% (minima): {agree}%; {meta['minutes']} min")


if __name__ == "__main__":
    main()
