"""`gapp train`, `gapp predict`, `gapp evaluate`: the block-time predictor.

One concept: the predictor's commands (training, pre-training, few-shot adaptation,
prediction with intervals, evaluation), each only parsing its options and calling gapp_tui.predict.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.table import Table

from ..errors import BadInput, closest
from ..predict.device_predictors import predictor_for
from ..store import Store
from .common import (
    err,
    handle_errors,
    out,
    print_json,
    require_positive,
)
from .options import MODEL, ModelOptions, option_groups

PROTOCOLS = ("predictor", "torchvision", "nb201", "fewshot")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("evaluate")(evaluate)


def _progress(msg: str) -> None:
    err.print(f"[dim]{msg}[/]", highlight=False)


def _rows(corpus: Optional[Path], db: Optional[Path], device: Optional[str], threads: Optional[int],
          runtime: str = "eager", quantize: Optional[str] = None) -> tuple[list, dict]:
    """Measured block rows from a store (--db/--device) or the corpus file, and their description.

    Store rows are those of one runtime (and int8 or not); the description's
    ``device`` then names it (``KEY/executorch/int8``), so the predictor says
    which runtime its times are for.
    """
    from ..predict.dataset import CORPUS_PATH, load_corpus, rows_from_store  # slow (torch)
    from ..runtime import parse_quantize, parse_runtime  # slow (torch)

    runtime = parse_runtime(runtime)
    quantize = parse_quantize(quantize, runtime)
    if runtime != "eager" and db is None and device is None:
        raise BadInput(f"--runtime {runtime}: the shipped corpus was timed under eager PyTorch; train on a store"
                       f" measured with `gapp measure --runtime {runtime}` (--db/--device)")

    if db is not None or device is not None:
        if db is not None and not Path(db).is_file():
            raise BadInput(f"store {str(db)!r} not found; give an existing --db or measure into it with `gapp measure`")
        with Store(db, readonly=True) as store:
            rows = rows_from_store(store, device, threads=threads, runtime=runtime, quantize=quantize)
            dev = device or rows[0].get("device_key") or [d["key"] for d in store.devices()][0]
        if runtime != "eager":
            dev = f"{dev}/{runtime}" + (f"/{quantize}" if quantize else "")
        counts = {str(r.get("threads")) for r in rows}
        if threads is None and len(counts) == 1 and counts <= {str(n) for n in range(1, 1025)}:
            threads = int(counts.pop())  # every row at one thread count: the device's
        return rows, {"source": f"store {store.path}", "device": dev, "threads": threads, "runtime": runtime,
                      "quantize": quantize}
    path = corpus or CORPUS_PATH
    return load_corpus(path), {"source": str(path), "device": "corpus-cpu-t1", "device_note": "the shipped corpus: 2-core AMD EPYC VM, 1 thread"}


def _dataset(corpus: Optional[Path], db: Optional[Path], device: Optional[str], threads: Optional[int],
             synthetic: Optional[bool], runtime: str = "eager", quantize: Optional[str] = None) -> Any:
    """The training/evaluation dataset: store rows, or the corpus plus (by default) the synthetic blocks."""
    from ..predict.dataset import assemble, concat, synthetic_dataset  # slow (torch)

    from_store = db is not None or device is not None
    if synthetic and from_store:
        raise BadInput("--synthetic: the synthetic blocks were timed on the corpus machine, not on the store's device;"
                       " drop --synthetic or train on the corpus")
    from ..predict.dataset import corpus_features_cache  # slow (torch)

    rows, desc = _rows(corpus, db, device, threads, runtime, quantize)
    # the corpus models' features are extracted once and cached (minutes on 2 cores); a store's are not
    ds = assemble(rows, desc, progress=_progress, cache=None if from_store else corpus_features_cache())
    if synthetic is False or from_store:
        return ds
    both = concat(ds, synthetic_dataset(progress=_progress))
    both.description = {**desc, "synthetic": both.description["sources"][1]}
    return both


opt_synthetic = typer.Option(
    None, "--synthetic/--no-synthetic",
    help="Add the shipped synthetic blocks (timed on the corpus machine) to the corpus; default: on for the corpus, off for a store.")


# ----------------------------------------------------------------------------- gapp train


opt_dispatch = typer.Option(True, "--dispatch/--no-dispatch",
                            help="Tell the GNN which CPU convolution kernel PyTorch picks for each convolution (from its "
                                 "shapes), and whether its own kernel runs on a map size it is slow on. Leave on for "
                                 "times measured with PyTorch (gapp measure, here or on a Pi); "
                                 "off for another runtime. nb201/fewshot never use it.")


opt_cache_mb = typer.Option(16.0, "--cache-mb", metavar="MB",
                            help="Tell the GNN, per layer with weights, whether its block's weights exceed this many MB "
                                 "(the target's cache knee: benchmarks/weight_cache_knee.py measures it; 16 on the "
                                 "corpus machine). 0: off. nb201/fewshot never use it.")


def _check_cache_mb(cache_mb: float) -> Optional[float]:
    """The cache flag's knee for TrainConfig: None when 0 (off); a negative size is bad input."""
    if not cache_mb >= 0:
        raise BadInput(f"--cache-mb {cache_mb:g} is not valid; give a size in MB (16: the corpus machine's knee; 0: off)")
    return cache_mb or None


@handle_errors
def train(
    out_path: Path = typer.Option(Path("predictor.pt"), "--out", "-o", help="Where to write the trained predictor."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus file (gzip CSV of block times); default: the one shipped."),
    db: Optional[Path] = typer.Option(None, "--db", help="Train on a measurement store instead of the corpus."),
    device: Optional[str] = typer.Option(None, "--device", help="The store's device key to train on (see `gapp results`)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Only store rows measured with this many threads"
                                          " (with --totals: the threads the device ran PyTorch at)."),
    runtime: str = typer.Option("eager", "--runtime", help="Only store rows timed under this runtime (eager, executorch,"
                                " onnxruntime): a predictor is for one runtime."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: only the int8 rows of --runtime.",
                                           show_default=False),
    few_shot: bool = typer.Option(False, "--few-shot", help="Adapt --base to a device's samples (store rows with "
                                  "--db/--device, whole-model latencies with --totals) instead of training from scratch."),
    base: Optional[Path] = typer.Option(None, "--base", help="The predictor to adapt with --few-shot (default: the shipped one)."),
    totals: Optional[Path] = typer.Option(None, "--totals", help="--few-shot: a CSV of whole-model latencies on the device "
                                          "(columns model,input_shape,latency_ms; model = registry name or "
                                          "package.module:callable).", show_default=False),
    method: str = typer.Option("auto", "--method", help="--few-shot: auto or embedding (the head's efficiencies moved "
                               "along its embedding's main directions, the prior's strength chosen by cross-validation "
                               "on the samples), or log-affine (t' = exp(b) t^a only: the old correction, a baseline)."),
    machine: Optional[str] = typer.Option(None, "--machine", help="--few-shot: how to name the device the samples come "
                                          "from, wherever its predictions are shown (default: its store key or the "
                                          "totals file).", show_default=False),
    pretrain: bool = typer.Option(False, "--pretrain", help="Train one GNN on every device table there is (the corpus, "
                                  "NAS-Bench-201's 27 devices, the public ARM tables): one output per device, the corpus "
                                  "machine first; a base for --few-shot and gapp calibrate."),
    hold_out: Optional[list[str]] = typer.Option(None, "--hold-out", help="--pretrain: leave this device's table out "
                                                 "(repeatable), e.g. jetson_nano_ort or nb201:raspi4.", show_default=False),
    nb201_networks: int = typer.Option(2000, "--nb201-networks", help="--pretrain: NAS-Bench-201 networks to train on (0: none)."),
    steps: int = typer.Option(2500, "--steps", help="Training steps (early stopping may end sooner)."),
    members: int = typer.Option(1, "--members", help="Train an ensemble of this many GNNs (seeds seed, seed+1, ...);"
                                " predictions are their geometric mean. The shipped predictor uses 3."),
    hidden: int = typer.Option(64, "--hidden", help="Hidden width of the GNN."),
    layers: int = typer.Option(3, "--layers", help="Message-passing layers."),
    val: float = typer.Option(0.15, "--val", help="Share of blocks held out for early stopping and the reported metrics."),
    seed: int = typer.Option(0, "--seed", help="Random seed (splits, initialisation, batches)."),
    synthetic: Optional[bool] = opt_synthetic,
    dispatch: bool = opt_dispatch,
    cache_mb: float = opt_cache_mb,
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Train the GNN on measured block times (or adapt a trained one to a new device from a few blocks)."""
    from ..predict.dataset import random_split  # slow (torch)
    from ..predict.evaluate import metrics  # slow (torch)
    from ..predict.predictor import Predictor, default_predictor_path  # slow (torch)
    from ..predict.train import ItemBatcher, TrainConfig, fit_gnn, item_times  # slow (torch)

    if not 0 <= val < 0.9:
        raise BadInput(f"--val {val} is not valid; give a share between 0 and 0.9")
    require_positive("--steps", steps)
    require_positive("--members", members, "1: a single GNN")
    cache_mb_or_off = _check_cache_mb(cache_mb)
    if method not in ("auto", "embedding", "log-affine"):
        raise BadInput(f"--method {method!r} is not valid; give auto, embedding or log-affine")
    if totals is not None and not few_shot:
        raise BadInput("--totals adapts a trained predictor; add --few-shot (and --base, default: the shipped one)")
    t0 = time.perf_counter()
    if pretrain:
        if few_shot:
            raise BadInput("--pretrain trains a base from the device tables; --few-shot adapts one: give one of them")
        doc = _pretrain(hold_out or [], nb201_networks, steps, members, hidden, layers, seed, dispatch, cache_mb_or_off,
                        out_path, t0)
        if json_:
            print_json(doc)
            return
        out.print(f"pre-trained on {len(doc['devices'])} devices ({doc['items']} items); predictor written to {out_path}")
        return
    if few_shot and (totals is not None or method != "log-affine"):
        doc = _few_shot(base, db, device, threads, totals, method, machine, out_path, t0, runtime, quantize)
        if json_:
            print_json(doc)
            return
        _print_few_shot(doc)
        return
    ds = _dataset(corpus, db, device, threads, False if few_shot else synthetic, runtime, quantize)
    desc = ds.description
    if few_shot:
        from ..predict.adapt import apply_calibration, fit_calibration  # slow (torch)

        base_path = base or default_predictor_path()
        pred = Predictor.load(base_path)
        raw = pred.raw_times(ds.graphs)
        before = metrics(raw, ds.y)
        cal = fit_calibration(raw, ds.y)
        after = metrics(apply_calibration(raw, cal), ds.y)
        pred.calibration = cal
        pred.device = str(desc.get("device", ""))
        pred.made_for = _few_shot_made_for(desc, device, desc.get("threads", threads), machine)
        pred.training = {**pred.training, "few_shot": {**ds.describe(), "base": str(base_path)}}
        pred.metrics = {**pred.metrics, "few_shot_fit": {"before": before, "after": after}}
        pred.save(out_path)
        log_err = lambda p: float(np.sqrt(np.mean(np.log(p / ds.y) ** 2)))  # noqa: E731  what the fit minimises
        doc = {"predictor": str(out_path), "mode": "few-shot", "samples": len(ds), "calibration": cal,
               "fit_before": {**before, "rms_log_error": log_err(raw)},
               "fit_after": {**after, "rms_log_error": log_err(apply_calibration(raw, cal))},
               "seconds": round(time.perf_counter() - t0, 2)}
        if json_:
            print_json(doc)
            return
        err.print(f"adapted {base_path} to {len(ds)} measured blocks: t' = {np.exp(cal['b']):.3g} * t^{cal['a']:.3f}")
        err.print(f"on those blocks: MAPE {before['mape']:.1f}% -> {after['mape']:.1f}%, "
                  f"within ±10% {before['within10']:.0f}% -> {after['within10']:.0f}%")
        out.print(f"predictor written to {out_path}")
        return
    tr, va, _ = random_split(len(ds), val=val, test=0.0, seed=seed)
    if len(tr) < 2:
        raise BadInput(f"only {len(ds)} measured block(s); train needs at least 3 (or use --few-shot with --base)")
    cfg = TrainConfig(steps=steps, hidden=hidden, layers=layers, seed=seed, members=members, dispatch=dispatch,
                      cache_mb=cache_mb_or_off)
    model, hist = fit_gnn(ds.graphs, ds.items, ds.y, tr, va or None, cfg, progress=_progress)
    b = ItemBatcher(ds.graphs, ds.items)
    m_train = metrics(item_times(model, b, tr)[:, 0].numpy(), ds.y[tr])
    p_val = item_times(model, b, va)[:, 0].numpy() if va else None
    m_val = metrics(p_val, ds.y[va]) if va else None
    scores = {"train": m_train, "validation": m_val}
    from ..predict.synthetic import FAMILY  # slow (torch)

    if va and FAMILY in ds.family and len(set(ds.family)) > 1:  # the corpus's blocks and the synthetic ones apart
        syn = np.array([ds.family[i] == FAMILY for i in va])
        if syn.any() and (~syn).any():
            scores["validation (measured models)"] = metrics(p_val[~syn], ds.y[va][~syn])
            scores["validation (synthetic)"] = metrics(p_val[syn], ds.y[va][syn])
    pred = Predictor(model, str(desc.get("device", "")), training={**ds.describe(), "config": cfg.to_dict(),
                     "history": {"best_step": hist["best_step"], "seconds": hist["seconds"]}},
                     metrics=scores)
    pred.save(out_path)
    doc = {"predictor": str(out_path), "mode": "train", "blocks": len(ds), "train_blocks": len(tr),
           "validation_blocks": len(va), "metrics": pred.metrics, "best_step": hist["best_step"],
           "seconds": round(time.perf_counter() - t0, 2)}
    if json_:
        print_json(doc)
        return
    steps_txt = (f"{hist['best_step']} steps" if isinstance(hist["best_step"], int)
                 else f"{len(hist['best_step'])} members, {'/'.join(map(str, hist['best_step']))} steps")
    table = Table(title=f"trained on {len(tr)} blocks of {len(set(ds.model))} models ({steps_txt})")
    for c in ("split", "blocks", "Spearman", "MAPE %", "within ±10 %"):
        table.add_column(c, justify="right" if c != "split" else "left")
    for name, m in scores.items():
        if m:
            table.add_row(name, str(m["n"]), f"{m['spearman']:.3f}", f"{m['mape']:.1f}", f"{m['within10']:.1f}")
    out.print(table)
    out.print(f"predictor written to {out_path}")


def _few_shot_made_for(desc: dict, device: Optional[str], threads: Optional[int], machine: Optional[str]) -> dict:
    """What a few-shot predictor adapted to store rows was made for: the device and the runtime of its rows
    (``eager``, ``executorch``, ``onnxruntime-int8``: the runtime words :func:`gapp_tui.partition.times.row_runtime`
    gives a row)."""
    runtime = str(desc.get("runtime") or "eager") + ("-int8" if desc.get("quantize") == "int8" else "")
    key = device or str(desc["device"]).split("/")[0]
    label = machine or key
    if runtime != "eager" and not machine:
        label = f"{key} under {runtime}"
    return {"device_key": key, "label": label, "runtime": runtime, "threads": threads}


def _few_shot(base: Optional[Path], db: Optional[Path], device: Optional[str], threads: Optional[int],
              totals: Optional[Path], method: str, machine: Optional[str], out_path: Path, t0: float,
              runtime: str = "eager", quantize: Optional[str] = None) -> dict:
    """Adapt --base to store rows and/or a totals CSV (:func:`gapp_tui.predict.fewshot.adapt_predictor`).

    Store rows are those of ``runtime`` (and int8 or not) only, as everywhere else: another runtime's rows
    never stand in, and the predictor records the runtime it was made for."""
    from ..predict.dataset import assemble  # slow (torch)
    from ..predict.fewshot import adapt_predictor  # slow (torch)
    from ..predict.predictor import Predictor, default_predictor_path  # slow (torch)
    from ..predict.samples import read_totals, totals_dataset, totals_features_cache  # slow (torch)

    if totals is None and db is None and device is None:
        raise BadInput("--few-shot needs samples of the device: --db/--device (measured blocks) or --totals FILE.csv")
    rows_totals = read_totals(totals) if totals is not None else None  # checked before anything is traced
    base_path = base or default_predictor_path()
    pred = Predictor.load(base_path)
    parts, made_for = [], {}
    if db is not None or device is not None:
        rows, desc = _rows(None, db, device, threads, runtime, quantize)
        parts.append(assemble(rows, desc, progress=_progress))
        made_for = _few_shot_made_for(desc, device, desc.get("threads", threads), machine)
    if rows_totals is not None:
        tds = totals_dataset(rows_totals, cache=totals_features_cache(), progress=_progress,
                             description={"source": str(totals)})
        for lo in tds.description["left_out"]:
            err.print(f"[yellow]left out[/] {lo['model']} {lo['input_shape']}: {lo['reason']}", highlight=False)
        parts.append(tds)
        made_for = made_for or {"device_key": machine or Path(totals).stem, "label": machine or f"the device of {totals}",
                                "runtime": "", "threads": threads}
    adapted, doc = adapt_predictor(pred, parts, made_for, method, progress=_progress,
                                   source={"base": str(base_path), "totals": str(totals) if totals else None})
    adapted.save(out_path)
    return {"predictor": str(out_path), "mode": "few-shot", **doc, "seconds": round(time.perf_counter() - t0, 2)}


def _pretrain(hold_out: list, nb201_networks: int, steps: int, members: int, hidden: int, layers: int, seed: int,
              dispatch: bool, cache_mb: Optional[float], out_path: Path, t0: float) -> dict:
    """`gapp train --pretrain`: :func:`gapp_tui.predict.pretrain.pretrain` on every table less --hold-out."""
    from ..predict.pretrain import check_hold_out, device_tables, pretrain  # slow (torch)
    from ..predict.samples import totals_features_cache  # slow (torch)
    from ..predict.train import TrainConfig  # slow (torch)

    check_hold_out(hold_out, nb201_networks)
    tables = device_tables(hold_out, nb201_networks, arm_cache=totals_features_cache(), progress=_progress)
    cfg = TrainConfig(steps=steps, hidden=hidden, layers=layers, seed=seed, members=members, dispatch=dispatch,
                      cache_mb=cache_mb)
    pred = pretrain(tables, cfg, seed=seed, progress=_progress)
    pred.save(out_path)
    return {"predictor": str(out_path), "mode": "pretrain", "devices": tables.devices, "hold_out": hold_out,
            "items": len(tables.items), "validation": pred.metrics.get("validation"),
            "left_out": tables.left_out, "seconds": round(time.perf_counter() - t0, 2)}


def _print_few_shot(doc: dict) -> None:
    held = doc.get("held_out") or {}
    err.print(f"adapted to {doc['samples']} samples of {doc['made_for'].get('label')}: {doc['method']}"
              + (f" (lambda {doc['lambda']:g})" if doc.get("lambda") else ""), highlight=False)
    if held:
        err.print(f"on held-out samples (cross-validation): within ±10% {held['within10']:.0f}%, MAPE {held['mape']:.1f}%",
                  highlight=False)
    err.print(f"on the samples themselves: MAPE {doc['fit_before']['mape']:.1f}% -> {doc['fit_after']['mape']:.1f}%",
              highlight=False)
    out.print(f"predictor written to {doc['predictor']}")


# ----------------------------------------------------------------------------- gapp predict


@handle_errors
@option_groups
def predict(
    model: str = typer.Argument(..., help="Registry name (see `gapp models`) or package.module:callable."),
    predictor: Optional[Path] = typer.Option(None, "--predictor", "-p", help="Predictor file (default: the device's "
                                             "own with --device, else the shipped one).", show_default=False),
    device: Optional[str] = typer.Option(None, "--device", help="Use the predictor `gapp calibrate` recorded for this "
                                         "device key (see `gapp results devices`).", show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help="The store --device is looked up in (default: $GAPP_DB, else "
                                      "the user data directory).", show_default=False),
    model_opts: ModelOptions = MODEL,
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Predict each block's time of MODEL from its features alone (nothing is run or measured).

    The table and the JSON name the machine the predictor was made for; with a calibrated predictor
    (or the shipped one) every time has a 90 % interval.
    """
    from ..predict.predictor import Predictor, default_predictor_path  # slow (torch)

    spec = model_opts.spec(model)
    if predictor is not None and device is not None:
        raise BadInput("give --predictor or --device, not both")
    if device is not None:
        rec = predictor_for(device, db=db)
        if rec is None:
            raise BadInput(f"device {device!r} has no predictor of its own in the store; make one with"
                           f" `gapp calibrate` (on it, or --host) or give --predictor FILE")
        path = Path(rec["path"])
    else:
        path = predictor or default_predictor_path()
    pred = Predictor.load(path)
    with err.status(f"predicting {spec.label()}"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = pred.predict_model(spec, model_opts.granularity, model_opts.leaves)
    doc["predictor"] = str(path)
    for w in doc["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if json_:
        print_json(doc)
        return
    iv = doc.get("interval")
    table = Table(title=f"{spec.label()}: predicted for {doc['made_for']}")
    cols = [("#", "right"), ("block", "left"), ("predicted ms", "right")]
    if iv:
        cols.append((f"{100 * iv['level']:.0f} % interval ms", "right"))
    cols.append(("share", "right"))
    for c, j in cols:
        table.add_column(c, justify=j)  # type: ignore[arg-type]
    for b in doc["blocks"]:
        share = 100 * b["predicted_ms"] / doc["sum_ms"] if doc["sum_ms"] else 0.0
        cells = [str(b["index"]), b["name"], f"{b['predicted_ms']:.3f}"]
        if iv:
            cells.append(f"{b['low_ms']:.3f}-{b['high_ms']:.3f}")
        table.add_row(*cells, f"{share:.1f}%")
    total = ["", "[bold]sum[/]", f"[bold]{doc['sum_ms']:.3f}[/]"]
    if iv:
        total.append(f"[bold]{doc['sum_low_ms']:.3f}-{doc['sum_high_ms']:.3f}[/]")
    table.add_row(*total, "")
    out.print(table)
    if not iv:
        err.print("no interval: this predictor has no calibrated uncertainty (adapt it with `gapp calibrate` or"
                  " `gapp train --few-shot`)", highlight=False)


# ----------------------------------------------------------------------------- gapp evaluate


@handle_errors
def evaluate(
    protocol: str = typer.Argument("predictor", help=f"What to evaluate: {', '.join(PROTOCOLS)}."),
    predictor: Optional[Path] = typer.Option(None, "--predictor", "-p", help="protocol=predictor: the file (default: shipped)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Block times to evaluate on (default: the shipped corpus)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Evaluate on a measurement store's rows instead."),
    device: Optional[str] = typer.Option(None, "--device", help="Store device key; for nb201: the NAS-Bench-201 device (default raspi4)."),
    family: Optional[list[str]] = typer.Option(None, "--family", help="torchvision: only hold out these families (repeatable)."),
    seeds: int = typer.Option(5, "--seeds", help="nb201/fewshot: number of seeds."),
    n_test: Optional[int] = typer.Option(None, "--n-test", help="nb201: test on this many networks (default: all the rest)."),
    steps: int = typer.Option(1500, "--steps", help="GNN training steps for the protocols that train."),
    members: int = typer.Option(1, "--members", help="torchvision: GNN ensemble size (the README's table: 3, with --steps 2500)."),
    synthetic: Optional[bool] = opt_synthetic,
    dispatch: bool = opt_dispatch,
    cache_mb: float = opt_cache_mb,
    jobs: int = typer.Option(1, "--jobs", "-j", help="torchvision: hold out this many families at once, one process each "
                             "(same numbers; use up to your core count)."),
    seed: int = typer.Option(0, "--seed", help="torchvision: seed of the first GNN (ensemble members use seed, seed+1, ...) "
                             "and of the validation split; how much the tables move with it is their noise."),
    nb201_csv: Optional[Path] = typer.Option(None, "--nb201-csv", help="The NAS-Bench-201 latency CSV (default: ../shared/data)."),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Accuracy tables: a predictor on measured blocks, leave-one-family-out, NAS-Bench-201 on the Pi, few-shot."""
    from ..predict.train import TrainConfig  # slow (torch)

    if protocol not in PROTOCOLS:
        raise BadInput(f"unknown protocol {protocol!r}{closest(protocol, PROTOCOLS)} (protocols: {', '.join(PROTOCOLS)})")
    require_positive("--seeds", seeds)
    require_positive("--members", members, "1: a single GNN")
    require_positive("--jobs", jobs, "1: one family at a time")
    if seed < 0:
        raise BadInput(f"--seed {seed} is not valid; give a seed of 0 or more")
    cache_mb_or_off = _check_cache_mb(cache_mb)
    cfg = TrainConfig(steps=steps, members=members, dispatch=dispatch, seed=seed, cache_mb=cache_mb_or_off)
    doc: dict[str, Any]
    if protocol == "predictor":
        doc = _evaluate_predictor(predictor, corpus, db, device)
    elif protocol == "torchvision":
        from ..predict.evaluate import lofo_protocol  # slow (torch)

        ds = _dataset(corpus, db, device, None, synthetic)
        doc = {"protocol": "leave-one-family-out", **lofo_protocol(ds, cfg, family, progress=_progress, jobs=jobs)}
    elif protocol == "nb201":
        from ..predict.evaluate import nb201_protocol  # slow (torch)

        doc = {"protocol": "nb201", **nb201_protocol(device or "raspi4", list(range(seeds)), n_test=n_test, config=cfg,
                                                       csv_path=nb201_csv, progress=_progress)}
    else:
        from ..predict.fewshot import nb201_fewshot_protocol  # slow (torch)

        doc = {"protocol": "fewshot", **nb201_fewshot_protocol(seeds=list(range(seeds)), config=cfg, csv_path=nb201_csv,
                                                               progress=_progress)}
    if json_:
        print_json(doc)
        return
    _print_eval(doc)


def _evaluate_predictor(predictor: Optional[Path], corpus: Optional[Path], db: Optional[Path], device: Optional[str]) -> dict:
    from ..predict.dataset import assemble  # slow (torch)
    from ..predict.evaluate import metrics  # slow (torch)
    from ..predict.predictor import Predictor, default_predictor_path  # slow (torch)

    path = predictor or default_predictor_path()
    pred = Predictor.load(path)
    rows, desc = _rows(corpus, db, device, None)
    ds = assemble(rows, desc, progress=_progress)

    times = pred.block_times(ds.graphs)
    fams = {}
    for f in ds.families():
        idx = [i for i, x in enumerate(ds.family) if x == f]
        fams[f] = {"GNN": metrics(times[idx], ds.y[idx])}
    return {"protocol": "predictor", "predictor": str(path), "data": ds.describe(),
            "families": fams, "overall": {"GNN": metrics(times, ds.y)},
            "note": "blocks the predictor may have been trained on are included; use the torchvision protocol for unseen families"
            if np.isfinite(times).all() else "non-finite predictions"}


def _print_eval(doc: dict) -> None:
    if doc["protocol"] in ("predictor", "leave-one-family-out"):
        methods = list(doc["overall"])
        what = "per held-out family" if doc["protocol"] != "predictor" else "per family (training blocks included)"
        table = Table(title=f"{doc['protocol']}: share within ±10 % / MAPE % {what}")
        table.add_column("family")
        table.add_column("blocks", justify="right")
        for m in methods:
            table.add_column(m, justify="right")
        for fam, per in doc["families"].items():
            n = next(iter(per.values()))["n"]
            table.add_row(fam, str(n), *[f"{per[m]['within10']:.0f} / {per[m]['mape']:.1f}" for m in methods])
        n = next(iter(doc["overall"].values()))["n"]
        table.add_row("[bold]all[/]", str(n), *[f"[bold]{doc['overall'][m]['within10']:.0f} / {doc['overall'][m]['mape']:.1f}[/]"
                                              for m in methods])
        out.print(table)
    elif doc["protocol"] == "nb201":
        table = Table(title=f"NAS-Bench-201 on {doc['device']}: {doc['n_train']} train, {doc['n_test']} test, {len(doc['seeds'])} seeds")
        for c in ("method", "Spearman", "MAPE % ≥1ms", "within ±10 % ≥1ms"):
            table.add_column(c, justify="left" if c == "method" else "right")
        for name, m in doc["methods"].items():
            s = m["summary"]
            table.add_row(name, f"{s['spearman']['mean']:.3f} ± {s['spearman']['std']:.3f}",
                          f"{s['mape_ge1ms']['mean']:.1f}", f"{s['within10_ge1ms']['mean']:.1f}")
        out.print(table)
    else:
        table = Table(title="few-shot adaptation: Spearman (mean over seeds)")
        table.add_column("target")
        for k in doc["shots"]:
            table.add_column(f"k={k}", justify="right")
        for t, per in doc["results"].items():
            table.add_row(t, *[f"{per[str(k)]['summary']['spearman']['mean']:.3f}" for k in doc["shots"]])
        out.print(table)
