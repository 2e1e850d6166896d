"""Capture coverage: every timm and pytorchcv model through `gapp blocks` and `gapp predict`.

    .venv/bin/python benchmarks/capture_coverage.py                     # every model of both zoos (resumable)
    .venv/bin/python benchmarks/capture_coverage.py --sample 60 --seed 0 --out capture_sample
    .venv/bin/python benchmarks/capture_coverage.py --report            # tables from what is recorded
    .venv/bin/python benchmarks/capture_coverage.py --models raft_small,visemenet20 --out-dir /tmp/cov   # chosen models

For each model (random init, batch 1, at its declared input: timm's
``pretrained_cfg['input_size']``, pytorchcv's ``in_size``, 224 when it declares
none; a model whose forward takes several inputs gets the shapes in ``INPUTS``,
as a user gives them with ``--input-shape`` once per input), what `gapp blocks`
and `gapp predict` do:

1. build it on the meta device and count its parameters; a model whose
   float32 weights exceed ``--meta-gb`` is only captured and featurised on
   meta tensors (``meta_only``: composition not run), counted apart;
2. build it for real, capture it (``--capture auto``) and cut it into natural
   blocks, run the chain and the unsplit model on a real input and compare
   (max abs diff <= 1e-4);
3. predict every block's time with the shipped CPU predictor from features
   extracted on meta tensors (a second capture, as `gapp predict` does);
   every time must be finite and positive.

A model succeeds when all of that holds and its chain has at least two
blocks (a model that ends as one leaf is not a success). Failures are grouped
by reason. Each model runs in a worker process (``--workers``, one torch
thread each) that is replaced after a crash; a model whose worker passes
``--mem-gb`` of resident memory or runs over ``--timeout`` is too large to run
here and is captured on meta tensors only instead. Results are appended to
``results/<out>.jsonl`` as they come, so a second run resumes where the first
stopped. Writes ``results/<out>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "results"
ZOOS = ("timm", "pytorchcv")
#: models whose forward takes several inputs: the flags a user gives them (`--input-shape` once per input, in
#: forward's order; `--input-dtype` once for all or per input), from each model's own `_test()` in pytorchcv
INPUTS: dict[str, dict[str, list[str]]] = {
    # optical flow: two frames (RAFT asserts equal shapes; 224 is the zoo's default size, a multiple of 8)
    "raft_small": {"input_shape": ["1,3,224,224", "1,3,224,224"]},
    "raft_things": {"input_shape": ["1,3,224,224", "1,3,224,224"]},
    # speech-driven animation: audio windows (8 x 195 features) and face ids (76); its second stage slides a
    # window of 32 over the batch, so the batch must exceed 32 (its _test: 34)
    "visemenet20": {"input_shape": ["34,8,195", "34,76"]},
    # audio windows (8 x 16 x 29) and a person id among 116 (int64; GAPP draws ids from 0-99)
    "nvpattexp116bazel76": {"input_shape": ["1,8,16,29", "1"], "input_dtype": ["float32", "int64"]},
    # video inpainting: 5 frames, their masks and the 4 flows between them (the batch dimension is time)
    "propainter_ip": {"input_shape": ["5,3,240,432", "5,1,240,432", "4,4,240,432"]},
    # flow completion: masked flows (2 channels) and masks of 5 frames (its _test, batch 1)
    "propainter_rfc": {"input_shape": ["1,5,2,240,432", "1,5,1,240,432"]},
    # keypoints on a grayscale image (it asserts one channel; its _test feeds 1 x 1 x H x W)
    "superpointnet": {"input_shape": ["1,1,224,224"]},
}


# --------------------------------------------------------------------------- the list of models


def model_list(zoos: tuple[str, ...]) -> list[dict[str, str]]:
    """Every model of the zoos as {zoo, name, path} (import paths GAPP takes)."""
    out = []
    if "timm" in zoos:
        import timm

        out += [{"zoo": "timm", "name": n, "path": f"timm.models:{n}"} for n in timm.list_models()]
    if "pytorchcv" in zoos:
        from pytorchcv import model_provider

        out += [{"zoo": "pytorchcv", "name": n, "path": f"pytorchcv.model_provider:{n}"}
                for n in sorted(model_provider._models)]
    return out


# --------------------------------------------------------------------------- one model (in a worker)


def run_one(task: dict[str, Any], meta_bytes: float, predictor: Any) -> dict[str, Any]:
    """Capture, compose and predict one model; never raises."""
    import math

    import torch

    from gapp_tui.blocks import BlockChain
    from gapp_tui.zoo import ModelSpec

    row: dict[str, Any] = {**task, "status": "fail", "stage": "spec"}
    t0 = time.perf_counter()
    try:
        spec = ModelSpec(task["path"], **model_inputs(task["name"]))
        row["stage"] = "meta build"
        meta_model = spec.build("meta")
        spec = spec.resolved(meta_model)
        row["input"] = spec.shape_text
        params = sum(p.numel() for p in meta_model.parameters())
        weight_bytes = sum(p.numel() * p.element_size() for p in [*meta_model.parameters(), *meta_model.buffers()])
        row["params"] = params
        meta_only = weight_bytes > meta_bytes or bool(task.get("meta_only"))
        if meta_only:
            row["meta_reason"] = task.get("meta_only") or f"weights {weight_bytes / 2**30:.1f} GB"
            row["stage"] = "capture (meta)"
            chain = BlockChain.from_spec(spec, device="meta")
        else:
            row["stage"] = "build"
            torch.manual_seed(0)
            model = spec.build("cpu")
            row["stage"] = "capture"
            t1 = time.perf_counter()
            chain = BlockChain.from_spec(spec, device="cpu", model=model)
            row["capture_s"] = round(time.perf_counter() - t1, 2)
        row.update(blocks=len(chain), front_end=chain.capture.front_end,
                   leaves=sorted({lf.cls for lf in chain.capture.automatic_leaves}),
                   n_leaves=len(chain.capture.automatic_leaves),
                   fx_error=chain.capture.fallback)
        if not meta_only:
            row["stage"] = "composition"
            t1 = time.perf_counter()
            diff = chain.composition_error()
            row["composition_s"] = round(time.perf_counter() - t1, 2)
            row["max_abs_diff"] = diff
            del chain, model
            if not diff <= 1e-4:
                row["reason"] = f"composition mismatch (max abs diff {diff:.1e})"
                return _done(row, t0)
        else:
            del chain
        # what `gapp predict` does (Predictor.predict_model: capture on meta tensors, features, the GNN),
        # on the meta model built above instead of a second one
        row["stage"] = "predict"
        t1 = time.perf_counter()
        doc = _predict(predictor, spec, meta_model)
        del meta_model
        row["predict_s"] = round(time.perf_counter() - t1, 2)
        times = [b["predicted_ms"] for b in doc["blocks"]]
        row["predicted_ms"] = round(sum(times), 3)
        row["unknown_ops"] = doc["unknown_ops"]
        if len(times) != row["blocks"]:
            row["reason"] = f"predict gave {len(times)} blocks, blocks gave {row['blocks']}"
        elif not all(math.isfinite(t) and t > 0 for t in times):
            row["reason"] = "predicted time not finite and positive"
        elif row["blocks"] < 2:
            row["reason"] = "one block (the whole model is one leaf)"
        else:
            row["status"] = "meta_only" if meta_only else "ok"
            row.pop("stage")
    except BaseException as exc:  # noqa: BLE001 -- every failure is a row
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        row["reason"] = f"{type(exc).__name__}: {text}"[:500]
    return _done(row, t0)


def model_inputs(name: str) -> dict[str, Any]:
    """ModelSpec keywords of the model's inputs as the command line makes them from :data:`INPUTS`' flags."""
    from gapp_tui.zoo import parse_dtypes, parse_shapes

    flags = INPUTS.get(name)
    if not flags:
        return {}
    shapes = parse_shapes(flags["input_shape"])
    dtypes = parse_dtypes(flags.get("input_dtype"))
    return {"input_shape": shapes[0], "more_shapes": shapes[1:],
            "input_dtype": dtypes[0] if dtypes else None, "more_dtypes": dtypes[1:]}


def _predict(predictor: Any, spec: Any, meta_model: Any) -> dict[str, Any]:
    import warnings

    from gapp_tui.blocks import BlockChain
    from gapp_tui.capture import NeedsRealValues
    from gapp_tui.features import extract

    try:
        chain = BlockChain.from_spec(spec, device="meta", model=meta_model)
    except NeedsRealValues:  # gapp predict builds the model for real then; so does predict_model
        return predictor.predict_model(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = extract(chain, warn=False)
    times = predictor.block_times(graphs)
    return {"blocks": [{"predicted_ms": float(t)} for t in times],
            "unknown_ops": sorted({u for g in graphs for u in g.unknown_ops})}


def _done(row: dict[str, Any], t0: float) -> dict[str, Any]:
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["load"] = round(os.getloadavg()[0], 2)
    return row


def worker(meta_gb: float) -> None:
    """Read tasks (JSON lines) on stdin, write rows on the original stdout; models' prints go to stderr."""
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from gapp_tui.predict.predictor import Predictor, default_predictor_path

    predictor = Predictor.load(default_predictor_path())
    for line in sys.stdin:
        task = json.loads(line)
        print(f"--- {task['path']}", file=sys.stderr, flush=True)
        row = run_one(task, meta_gb * 2**30, predictor)
        channel.write(json.dumps(row) + "\n")


# --------------------------------------------------------------------------- the pool


class Worker:
    def __init__(self, args: argparse.Namespace, log: Any) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--meta-gb", str(args.meta_gb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=str(ROOT),
            # at --nice, not --nice more than this process (started with `nice` itself, it would compound)
            preexec_fn=lambda: os.nice(max(0, args.nice - os.nice(0))),
        )
        self.task: dict[str, Any] | None = None
        self.started = 0.0
        self.done = 0
        self.peak_rss = 0

    def send(self, task: dict[str, Any]) -> None:
        self.task, self.started = task, time.time()
        self.peak_rss = 0
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(task) + "\n")
        self.proc.stdin.flush()

    def rss(self) -> int:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        m = re.search(r"VmRSS:\s+(\d+) kB", text)
        return int(m.group(1)) * 1024 if m else 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_pool(tasks: list[dict[str, Any]], args: argparse.Namespace, results: Path) -> None:
    log = open(results.with_suffix(".log"), "a")
    pending = collections.deque(tasks)
    workers: list[Worker] = []
    n_done, t0 = 0, time.time()
    with results.open("a") as sink:
        def record(row: dict[str, Any]) -> None:
            nonlocal n_done
            n_done += 1
            row["session_started"], row["finished"] = round(t0), round(time.time())
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            rate = (time.time() - t0) / n_done
            print(f"[{n_done}/{len(tasks)}] {row['status']:9s} {row['path']} {row.get('seconds', '')} s"
                  f" {row.get('reason', '')[:120]}  (eta {rate * (len(tasks) - n_done) / 60:.0f} min)", flush=True)

        while pending or any(w.task for w in workers):
            while len(workers) < args.workers and pending:
                workers.append(Worker(args, log))
            for w in workers:
                if w.task is None and pending:
                    w.send(pending.popleft())
            busy = {w.proc.stdout: w for w in workers if w.task is not None}
            ready, _, _ = select.select(list(busy), [], [], 1.0)
            for stream in ready:
                w = busy[stream]
                line = stream.readline()
                if line:
                    row = json.loads(line)
                    row["peak_rss_mb"] = round(w.peak_rss / 2**20)
                    row["wall_s"] = round(time.time() - w.started, 1)
                    record(row)
                    w.task, w.done = None, w.done + 1
                    if w.done >= args.recycle or w.rss() > args.mem_gb * 2**30 / 2:
                        w.kill()
                        workers.remove(w)
                else:  # the worker died mid-model
                    code = w.proc.wait()
                    record({**w.task, "status": "fail", "reason": f"worker died (exit code {code})",
                            "stage": "crash", "wall_s": round(time.time() - w.started, 1)})
                    workers.remove(w)
            for w in list(workers):
                if w.task is None:
                    continue
                rss = w.rss()
                w.peak_rss = max(w.peak_rss, rss)
                over_time = time.time() - w.started > args.timeout
                if over_time or rss > args.mem_gb * 2**30:
                    w.kill()
                    why = (f"ran over {args.timeout:.0f} s" if over_time
                           else f"over {args.mem_gb} GB resident")
                    workers.remove(w)
                    if w.task.get("meta_only"):  # even on meta tensors
                        record({**w.task, "status": "fail", "reason": why, "stage": "limit",
                                "wall_s": round(time.time() - w.started, 1)})
                    else:  # too large to run here: captured and featurised on meta tensors only
                        print(f"  {w.task['path']}: {why}; again on meta tensors only", flush=True)
                        pending.appendleft({**w.task, "meta_only": why})
    for w in workers:
        assert w.proc.stdin is not None
        w.proc.stdin.close()
        w.proc.wait()


# --------------------------------------------------------------------------- report


def reason_class(row: dict[str, Any]) -> str:
    """A failure's reason with the model-specific parts (names, numbers, shapes) taken out."""
    text = row.get("reason", "").replace(row["path"], "the model")
    if "torch.export cannot capture" in text:  # both front ends failed: export's reason is the one that counts
        text = "torch.fx and torch.export cannot capture it; export: " + text.split(" either: ", 1)[-1]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\(max abs diff [^)]*\)", "", text)
    text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", "(…)", text)
    return f"{row.get('stage', '?')}: {text[:140]}"


def missing_package(row: dict[str, Any]) -> str | None:
    """The package a failed model's own code imports and this machine lacks (pytorchcv's audio models import
    ``librosa``): not GAPP's failure, counted apart."""
    m = re.match(r"ModuleNotFoundError: No module named '([^']+)'", row.get("reason", ""))
    if row["status"] == "fail" and m and row.get("stage") in ("meta build", "build"):
        return m.group(1).split(".")[0]
    return None


def report(rows: list[dict[str, Any]], args: argparse.Namespace, out: str,
           totals: dict[str, int] | None = None) -> str:
    by_zoo: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        by_zoo[r["zoo"]].append(r)
    totals = totals or {}
    wall = sum(r.get("wall_s", r.get("seconds", 0)) for r in rows)
    loads = [r["load"] for r in rows if "load" in r]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs),"
        f" python {platform.python_version()}; {args.workers} workers, one torch thread each.",
        f"Models run: {len(rows)}; summed time per model {wall / 3600:.1f} h (wall clock about half of it with"
        f" 2 workers); 1-minute load average while they ran: median"
        f" {sorted(loads)[len(loads) // 2] if loads else 0:.1f}, max {max(loads, default=0):.1f}.",
        "",
        "| zoo | models run (of all) | composes and predicts | share | meta only | needs a package | failed"
        " | share of runnable with >= 3 blocks | torch.fx | + automatic leaves | torch.export |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for zoo, rs in sorted(by_zoo.items()):
        ok = [r for r in rs if r["status"] == "ok"]
        meta = [r for r in rs if r["status"] == "meta_only"]
        needs = [r for r in rs if missing_package(r)]
        failed = [r for r in rs if r["status"] == "fail" and not missing_package(r)]
        runnable = len(rs) - len(meta) - len(needs)
        # models with at least 3 blocks: every failure counts (its block count is unknown or too small),
        # only the successes with fewer than 3 blocks (small networks) are left out
        big_ok = [r for r in ok if r.get("blocks", 0) >= 3]
        big = big_ok + failed
        fx = [r for r in ok + meta if r.get("front_end") == "fx"]
        leafy = [r for r in fx if r.get("leaves")]
        ex = [r for r in ok + meta if r.get("front_end") == "export"]
        lines.append(
            f"| {zoo} | {len(rs)} ({totals.get(zoo, '?')}) | {len(ok)} | {100 * len(ok) / max(1, runnable):.1f}%"
            f" | {len(meta)} | {len(needs)} | {len(failed)} | {100 * len(big_ok) / max(1, len(big)):.1f}% ({len(big_ok)} / {len(big)}) |"
            f" {len(fx) - len(leafy)} | {len(leafy)} | {len(ex)} |"
        )
    lines += ["", "Share: of the models not too large to run here (meta only counted apart) whose own code"
              " imports nothing this machine lacks (needs a package: counted apart, listed below). Models with >= 3"
              " blocks: the successes with at least 3 blocks against them plus every failure.",
              "", "### Failures by reason", "", "| zoo | reason | models | examples |", "|---|---|---:|---|"]
    for zoo, rs in sorted(by_zoo.items()):
        groups: dict[str, list[str]] = collections.defaultdict(list)
        for r in rs:
            if r["status"] == "fail" and not missing_package(r):
                groups[reason_class(r)].append(r["name"])
        for reason, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            reason_md = reason.replace("|", "\\|")
            lines.append(f"| {zoo} | {reason_md} | {len(names)} | {', '.join(names[:4])}{' …' if len(names) > 4 else ''} |")
    leaf_counts = collections.Counter(c for r in rows for c in set(r.get("leaves") or []))
    lines += ["", "### Modules that became leaves most often", "",
              ", ".join(f"{c} ({k})" for c, k in leaf_counts.most_common(25)) or "none"]
    needs_by: dict[str, list[str]] = collections.defaultdict(list)
    for r in rows:
        if missing_package(r):
            needs_by[missing_package(r)].append(r["name"])
    if needs_by:
        lines += ["", "### Not run: the model's own code needs a package this machine lacks", "",
                  "; ".join(f"{pkg}: {', '.join(names)}" for pkg, names in sorted(needs_by.items()))]
    meta = [r for r in rows if r["status"] == "meta_only"]
    if meta:
        lines += ["", f"### Captured on meta tensors only (weights over {args.meta_gb} GB, or too large to run here)", "",
                  ", ".join(f"{r['name']} ({r.get('params', 0) / 1e9:.2f} B params; {r.get('meta_reason', '')})"
                            for r in meta)]
    slow = sorted(rows, key=lambda r: -r.get("wall_s", 0))[:5]
    lines += ["", "Slowest: " + ", ".join(f"{r['name']} {r.get('wall_s', 0):.0f} s" for r in slow)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", default="timm,pytorchcv", help="comma-separated: timm, pytorchcv")
    ap.add_argument("--models", default=None, help="comma-separated import paths or names (instead of the zoos)")
    ap.add_argument("--sample", type=int, default=0, help="a random sample of N models per zoo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds per model; a model that runs over is captured on meta tensors only")
    ap.add_argument("--mem-gb", type=float, default=6.0,
                    help="resident memory per worker; a model that needs more is captured on meta tensors only")
    ap.add_argument("--meta-gb", type=float, default=2.0, help="weights above this are captured on meta only")
    ap.add_argument("--recycle", type=int, default=20, help="models per worker process before a fresh one")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", default="capture_coverage")
    ap.add_argument("--out-dir", default=str(OUT), help="directory of the results (default: benchmarks/results)")
    ap.add_argument("--retry", action="store_true", help="run failed models again (resume skips them otherwise)")
    ap.add_argument("--again", action="store_true",
                    help="with --models: run those models again, whatever is recorded (after a fix that concerns them)")
    ap.add_argument("--rerun-before", type=float, default=None, metavar="EPOCH",
                    help="also run again the models with automatic leaves recorded by a session started before"
                         " EPOCH (after a change to how leaves are chosen)")
    ap.add_argument("--report", action="store_true", help="only write the tables from recorded rows")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.meta_gb)
        return
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / f"{args.out}.jsonl"
    zoos = tuple(z for z in args.zoo.split(",") if z)
    everything = zoo_models = model_list(zoos)
    if args.models:
        wanted = set(args.models.split(","))
        everything = [m for m in everything if m["name"] in wanted or m["path"] in wanted]
    if args.sample:
        rng = random.Random(args.seed)
        picked = []
        for zoo in zoos:
            members = [m for m in everything if m["zoo"] == zoo]
            picked += rng.sample(members, min(args.sample, len(members)))
        everything = picked
    done: dict[str, dict[str, Any]] = {}
    if results.exists():
        for line in results.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["path"]] = row
    def again(row: dict[str, Any]) -> bool:
        if args.retry and row["status"] == "fail":
            return True
        if args.again and args.models:
            return True
        return (args.rerun_before is not None and bool(row.get("leaves"))
                and row.get("session_started", 0) < args.rerun_before)

    todo = [m for m in everything if m["path"] not in done or again(done[m["path"]])]
    random.Random(args.seed).shuffle(todo)  # both zoos and all sizes from the start: partial results are a sample
    if not args.report and todo:
        print(f"{len(todo)} models to run ({len(everything) - len(todo)} already recorded)", flush=True)
        t0 = time.time()
        run_pool(todo, args, results)
        print(f"wall clock of this session: {(time.time() - t0) / 60:.1f} min", flush=True)
    latest: dict[str, dict[str, Any]] = {}
    for line in results.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["path"]] = row
    # the report covers every recorded model of the zoos, not just the ones this session ran (--models, --sample)
    wanted_paths = {m["path"] for m in zoo_models}
    rows = [r for p, r in latest.items() if p in wanted_paths]
    totals = collections.Counter(m["zoo"] for m in zoo_models)
    text = report(rows, args, args.out, totals)
    # wall clock: every session from its start to its last row (a session stopped by hand wrote no summary)
    spans: dict[int, int] = {}
    for r in latest.values():
        if "session_started" in r:
            spans[r["session_started"]] = max(spans.get(r["session_started"], 0), r["finished"] - r["session_started"])
    sessions = out_dir / f"{args.out}.sessions.jsonl"
    if sessions.exists():  # sessions before rows carried their times
        for line in sessions.read_text().splitlines():
            doc = json.loads(line) if line.strip() else {}
            if doc.get("note"):
                spans[-len(spans) - 1] = doc["wall_s"]
    text += f"\nWall clock: {sum(spans.values()) / 3600:.1f} h over {len(spans)} session(s).\n"
    print(text)
    (out_dir / f"{args.out}.md").write_text(text)
    (out_dir / f"{args.out}.json").write_text(json.dumps({"rows": rows}, indent=0))


if __name__ == "__main__":
    main()
