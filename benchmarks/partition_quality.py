"""Plan quality: is a plan chosen from predicted times as good as one chosen from measured times?

Two ways to give the measured times:

    # a device pair measured into a store (gapp measure / gapp measure --host)
    .venv/bin/python benchmarks/partition_quality.py --db PATH \\
        --device pi=PI_KEY --device server=SERVER_KEY --predict pi \\
        --models resnet18,mobilenet_v2,googlenet,efficientnet_b0,squeezenet1_1 --input-size 224 \\
        --candidate predicted --predictor pi.pt

    # identical devices (a chain of Pis) timed by the measured corpus CSV
    .venv/bin/python benchmarks/partition_quality.py --corpus gapp_tui/data/corpus_times.csv.gz \\
        --devices pi1,pi2 --batch-size 1 --input-size 64 --models all \\
        --candidate predicted --predictor cpu.pt

    # the same, with a GNN trained here on the corpus without the held-out families
    # (the predictor area's dataset and training code); only those families are evaluated
    .venv/bin/python benchmarks/partition_quality.py --corpus gapp_tui/data/corpus_times.csv.gz \\
        --devices pi1,pi2 --batch-size 1 --input-size 64 --models all \\
        --candidate predicted --holdout mobilenet,efficientnet,googlenet,squeezenet,shufflenet,mnasnet

For every model and link rate:

1. the *reference* cost table: measured block times of every device;
2. the *candidate* cost table: the same, except that the devices named by
   ``--predict`` (default: all) use the candidate source — ``predicted`` (a
   predictor file run on the chain's BlockGraphs), ``predicted-csv`` (per-block
   predictions written by the predictor's evaluation, e.g. leave-one-family-out:
   columns model, block, predicted_ms), or ``flops`` (FLOPs at a rate calibrated
   on ``--calibrate MODEL``: the baseline a predictor must beat);
3. the optimal plan of each table (exact solver, throughput objective), both
   **evaluated on the measured table**: quality = measured-optimal period /
   period of the candidate's plan on measured times (1.0 = as good; target >= 0.97).

Prints a markdown table and writes benchmarks/results/<--name>.md (+ .json).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gapp_tui.errors import BadInput  # noqa: E402
from gapp_tui.partition import CostTable, Link, estimate, solve  # noqa: E402
from gapp_tui.partition.costs import flops_times  # noqa: E402
from gapp_tui.units import parse_flops_rate  # noqa: E402
from gapp_tui.partition.devices import DeviceSpec  # noqa: E402
from gapp_tui.partition.times import measured_times  # noqa: E402
from gapp_tui.features import extract  # noqa: E402
from gapp_tui.predict.registry import predict_chain  # noqa: E402


def parse_assignments(values: list[str] | None, option: str) -> dict[str, str]:
    """``["pi=KEY", ...]`` (or comma-joined) -> a dict; BadInput on an item without ``=``."""
    out: dict[str, str] = {}
    for part in [p.strip() for v in values or [] for p in v.split(",") if p.strip()]:
        dev, sep, val = part.partition("=")
        if not sep:
            raise BadInput(f"{option} {part!r} is not DEVICE=VALUE")
        out[dev.strip()] = val.strip()
    return out

OUT = Path(__file__).resolve().parent / "results"
TARGET = 0.97


def read_csv(path: str) -> list[dict[str, str]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def corpus_column(rows: list[dict[str, str]], chain, batch_size: int, input_size: int) -> list[float]:
    """Seconds per block of ``chain`` from the corpus rows (BadInput when they are not this chain's)."""
    name = chain.spec.name
    mine = sorted(
        (r for r in rows if r["model"] == name and int(r["batch_size"]) == batch_size and int(r["input_size"]) == input_size),
        key=lambda r: int(r["block"]),
    )
    if not mine:
        raise BadInput(f"{name} at batch {batch_size}, input {input_size} is not in the corpus")
    if [r["block_name"] for r in mine] != list(chain.names):
        raise BadInput(f"{name}: corpus blocks ({len(mine)}) are not this chain's ({len(chain)})")
    return [float(r["median_ms"]) / 1e3 for r in mine]


def csv_column(rows: list[dict[str, str]], chain, column: str = "predicted_ms") -> list[float]:
    """Seconds per block from a CSV of per-block predictions (model, block, predicted_ms)."""
    mine = sorted((r for r in rows if r["model"] == chain.spec.name), key=lambda r: int(r["block"]))
    if len(mine) != len(chain):
        raise BadInput(f"{chain.spec.name}: {len(mine)} predicted blocks in the CSV, the chain has {len(chain)}")
    return [float(r[column]) / 1e3 for r in mine]


def train_without(corpus: str, held: set[str], steps: int, seed: int = 0, synthetic: bool = True):
    """A Predictor trained on the corpus rows of every family but ``held`` (10% of them for early stopping),
    plus the synthetic blocks unless ``synthetic`` is False (they belong to no family, as in leave-one-family-out)."""
    import numpy as np

    from gapp_tui.predict.dataset import concat, corpus_dataset, synthetic_dataset
    from gapp_tui.predict.predictor import Predictor
    from gapp_tui.predict.train import TrainConfig, fit_gnn

    ds = corpus_dataset(corpus, progress=lambda s: print(s, file=sys.stderr))
    if synthetic:
        ds = concat(ds, synthetic_dataset(progress=lambda s: print(s, file=sys.stderr)))
    unknown = held - set(ds.family)
    if unknown:
        raise SystemExit(f"--holdout: no corpus family {sorted(unknown)} (families: {', '.join(ds.families())})")
    rest = np.array([i for i, f in enumerate(ds.family) if f not in held])
    perm = np.random.RandomState(0).permutation(len(rest))
    n_va = max(1, round(0.1 * len(rest)))
    train, val = sorted(rest[perm[n_va:]].tolist()), sorted(rest[perm[:n_va]].tolist())
    cfg = TrainConfig(steps=steps, seed=seed)
    model, history = fit_gnn(ds.graphs, ds.items, ds.y, train, val, cfg,
                             progress=lambda s: print(s, file=sys.stderr))
    families = sorted({ds.family[i] for i in train})
    info = {"held_out": sorted(held), "families": families, "train_blocks": len(train), "val_blocks": len(val),
            "synthetic": synthetic, "dispatch": cfg.dispatch, "positions": cfg.dispatch and cfg.positions,
            "cache_mb": cfg.cache_mb,
            "seed": seed, "steps": history.get("steps"), "best_val_loss": history.get("best_val_loss"),
            "seconds": history.get("seconds")}
    return Predictor(model, device="corpus-cpu", training=info), info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("measured times")
    src.add_argument("--db", help="the measurement store (with --device)")
    src.add_argument("--device", action="append", default=[], help="NAME=STORED_KEY[/SETTING], in pipeline order")
    src.add_argument("--corpus", help="a corpus CSV (benchmarks/build_corpus.py): every device gets its times")
    src.add_argument("--devices", default="pi1,pi2", help="with --corpus: device names in pipeline order")
    src.add_argument("--mode", default="in-context", choices=("in-context", "standalone"))
    ap.add_argument("--models", required=True, help="comma-separated model names, or 'all' (every corpus model)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--granularity", default="natural")
    ap.add_argument("--bandwidth", default="50Mbit/s,100Mbit/s,1Gbps", help="link rates, comma-separated")
    ap.add_argument("--latency", default="1ms")
    ap.add_argument("--candidate", default="predicted", choices=("predicted", "predicted-csv", "flops"))
    ap.add_argument("--predict", default=None, help="devices that use the candidate source (default: all)")
    ap.add_argument("--predictor", default=None, help="predictor file for --candidate predicted")
    ap.add_argument("--holdout", default=None,
                    help="with --corpus and --candidate predicted: train a GNN on the corpus without these families "
                         "(comma-separated) and evaluate only their models")
    ap.add_argument("--steps", type=int, default=1500, help="training steps for --holdout")
    ap.add_argument("--seed", type=int, default=0, help="training seed for --holdout (initialisation, batches)")
    ap.add_argument("--no-synthetic", action="store_true",
                    help="--holdout: train on the corpus alone, without the synthetic blocks")
    ap.add_argument("--predicted-csv", default=None, help="per-block predictions for --candidate predicted-csv")
    ap.add_argument("--rate", action="append", default=[], help="NAME=RATE for --candidate flops")
    ap.add_argument("--calibrate", default=None,
                    help="for --candidate flops: each device's rate = this model's FLOPs / its measured time "
                         "(the model is then not evaluated)")
    ap.add_argument("--name", default="partition_quality", help="results file name")
    args = ap.parse_args()

    from gapp_tui.blocks import BlockChain
    from gapp_tui.zoo import ModelSpec

    store = None
    if args.corpus:
        corpus = read_csv(args.corpus)
        devices = [d.strip() for d in args.devices.split(",") if d.strip()]
        keys: dict[str, str] = {}
        if args.input_size is None:
            ap.error("--corpus needs --input-size (the corpus setting)")
    else:
        if not args.db or not args.device:
            ap.error("give --db and --device NAME=KEY (or --corpus)")
        from gapp_tui.store import Store

        store = Store(args.db, readonly=True)
        keys = parse_assignments(args.device, "--device")
        devices = list(keys)
    predicted = [d.strip() for d in args.predict.split(",")] if args.predict else devices
    rates = {d: parse_flops_rate(v) for d, v in parse_assignments(args.rate, "--rate").items()}
    links = [Link.parse(bw, args.latency) for bw in args.bandwidth.split(",") if bw.strip()]
    pred_rows = read_csv(args.predicted_csv) if args.candidate == "predicted-csv" else []
    predictor = None
    held: set[str] = set()
    training: dict = {}
    if args.candidate == "predicted" and args.holdout:
        if not args.corpus:
            ap.error("--holdout needs --corpus")
        held = {f.strip() for f in args.holdout.split(",") if f.strip()}
        predictor, training = train_without(args.corpus, held, args.steps, args.seed, synthetic=not args.no_synthetic)
    elif args.candidate == "predicted":
        from gapp_tui.predict.predictor import default_predictor_path

        predictor = args.predictor or default_predictor_path()

    def chain_of(name: str):
        spec = ModelSpec(name, batch_size=args.batch_size, input_size=args.input_size)
        return BlockChain.from_spec(spec, args.granularity, device="meta")

    def measured(chain) -> dict[str, list[float]]:
        if args.corpus:
            col = corpus_column(corpus, chain, args.batch_size, args.input_size)
            return {d: col for d in devices}
        return {d: measured_times(chain, DeviceSpec(d, "measured", keys[d]), store, args.mode).times for d in devices}

    if args.calibrate and args.candidate == "flops":
        chain = chain_of(args.calibrate)
        ref = measured(chain)
        flops = sum(b.flops for b in chain.blocks)
        rates = {d: flops / sum(ref[d]) for d in devices}
        print("calibrated rates (GFLOP/s): " + ", ".join(f"{d} {r / 1e9:.2f}" for d, r in rates.items()), file=sys.stderr)

    names = sorted({r["model"] for r in corpus}) if args.corpus and args.models == "all" else \
        [m.strip() for m in args.models.split(",") if m.strip()]
    if held:
        from gapp_tui.zoo import family_of

        names = [m for m in names if family_of(m) in held]
    rows, problems = [], []
    for name in names:
        if name == args.calibrate and args.candidate == "flops":
            continue
        try:
            chain = chain_of(name)
            ref = measured(chain)
            cand = dict(ref)
            for d in predicted:
                if args.candidate == "flops":
                    cand[d] = flops_times([b.flops for b in chain.blocks], rates[d])
                elif args.candidate == "predicted-csv":
                    cand[d] = csv_column(pred_rows, chain)
                else:
                    cand[d] = predict_chain(chain, predictor) if isinstance(predictor, (str, Path)) else \
                        [t / 1e3 for t in predictor.block_times(extract(chain, warn=False))]
        except (BadInput, KeyError) as exc:
            problems.append(f"{name}: {exc}")
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        srcs = {d: (args.candidate.split("-")[0] if d in predicted else "measured") for d in devices}
        m_table = CostTable.from_chain(chain, ref, "measured")
        c_table = CostTable.from_chain(chain, cand, srcs)
        for link in links:
            best = solve(m_table, devices, link)
            chosen = solve(c_table, devices, link)
            on_measured = estimate(m_table, best.with_boundaries(chosen.boundaries))  # candidate's cuts, real times
            quality = best.estimate["period_s"] / on_measured.period_s
            rows.append({
                "model": name, "blocks": m_table.n, "link": link.describe(),
                "measured_plan": best.boundaries, "candidate_plan": chosen.boundaries,
                "measured_period_ms": best.estimate["period_s"] * 1e3,
                "candidate_period_on_measured_ms": on_measured.period_s * 1e3,
                "candidate_period_as_estimated_ms": chosen.estimate["period_s"] * 1e3,
                "quality": quality, "ok": quality >= TARGET,
            })
    where = f"corpus {args.corpus} (batch {args.batch_size}, input {args.input_size})" if args.corpus else \
        f"store {args.db} ({keys})"
    md = [f"Plans from **{args.candidate}** times (devices {', '.join(predicted)} of {', '.join(devices)}) evaluated "
          f"on measured times from {where}; quality = measured-optimal period / candidate plan's measured period "
          f"(target >= {TARGET}).", "",
          "| model | blocks | link | measured plan | candidate plan | measured-optimal period ms | "
          "candidate on measured ms | quality | ok |",
          "|---|---:|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['blocks']} | {r['link']} | {r['measured_plan']} | {r['candidate_plan']} | "
                  f"{r['measured_period_ms']:.2f} | {r['candidate_period_on_measured_ms']:.2f} | "
                  f"{r['quality']:.3f} | {'yes' if r['ok'] else '**no**'} |")
    evaluated = sorted({r["model"] for r in rows})
    models_ok = sorted(set(evaluated) - {r["model"] for r in rows if not r["ok"]})
    mean_q = sum(r["quality"] for r in rows) / len(rows) if rows else float("nan")
    md += ["", f"{len(models_ok)} of {len(evaluated)} models within {100 * (1 - TARGET):.0f}% at every link rate: "
           f"{', '.join(models_ok) or 'none'}. Mean quality {mean_q:.3f} over {len(rows)} cases."]
    if args.candidate == "flops" and args.calibrate:
        md += ["", f"FLOP rates calibrated on {args.calibrate}: "
               + ", ".join(f"{d} {r / 1e9:.2f} GFLOP/s" for d, r in rates.items()) + "."]
    if held:
        md += ["", f"Predictor: a BlockGNN trained here on the corpus without the families {', '.join(sorted(held))} "
               f"({training.get('train_blocks')} training blocks from {', '.join(training.get('families', []))}; "
               f"{'with' if training.get('synthetic') else 'without'} the synthetic blocks; "
               f"dispatch flags {'on' if training.get('dispatch') else 'off'}"
               f"{' with the positions flag' if training.get('positions') else ''}; "
               f"cache flag {'at %g MB' % training['cache_mb'] if training.get('cache_mb') else 'off'}; "
               f"seed {training.get('seed')}, {training.get('steps')} steps, best validation loss {training.get('best_val_loss'):.4f}, "
               f"{training.get('seconds')} s): every evaluated model is unseen by it."]
    if problems:
        md += ["", "Skipped: " + "; ".join(problems)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    md += ["", f"Load average at the end: {load} (2 shared cores)."]
    text = "\n".join(md)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.md").write_text(text + "\n")
    (OUT / f"{args.name}.json").write_text(
        json.dumps({"args": vars(args), "rows": rows, "skipped": problems, "training": training}, indent=2) + "\n")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
