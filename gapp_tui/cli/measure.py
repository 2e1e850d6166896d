"""`gapp measure` (time every block and the full model) and `gapp results` (what the store holds).

``python -m gapp_tui.time_measurer`` runs the same `measure` command, so the
seed's command lines (``--output_dir``, ``--model_family``,
``--compare_sum_vs_full``, ``--adjust_for_overhead``) work as written.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import BadInput
from ..store import Store, write_csv, write_json
from . import remote as _remote
from .common import (
    err,
    handle_errors,
    out,
    print_json,
    print_table,
)
from .options import MODEL, SSH, ModelOptions, option_groups

if TYPE_CHECKING:
    from ..ssh import SSHOptions

results_app = typer.Typer(
    name="results",
    help="List, show and export the measurements in the store (SQLite; --db or $GAPP_DB to choose the file).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("measure")(measure)
    app.add_typer(results_app, name="results")


def opt_db() -> Any:
    return typer.Option(None, "--db", help="The SQLite store (default: $GAPP_DB, else the user data directory).", show_default=False)


def opt_json() -> Any:
    return typer.Option(False, "--json", help="One JSON document on stdout.")


# ----------------------------------------------------------------------------- gapp measure


@handle_errors
@option_groups
def measure(
    model: Optional[str] = typer.Argument(None, help="Registry name (see `gapp models`) or package.module:callable."),
    model_family: Optional[str] = typer.Option(
        None, "--model-family", "--model_family", "--model", "-m", help="The model (the seed's spelling; same as MODEL)."
    ),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", "--output_dir", "-o", help="Also write the rows as CSV and the whole result as JSON here."
    ),
    model_opts: ModelOptions = MODEL,
    device: str = typer.Option("cpu", "--device", "-d", help="cpu or cuda (cuda[:i])."),
    mode: str = typer.Option("both", "--mode", help="standalone (each block alone), in-context (inside end-to-end runs) or both."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="torch intra-op threads (default: all cores).", show_default=False),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16, float16 or float64."),
    clock: str = typer.Option(
        "wall", "--clock",
        help="wall (real time) or cpu (this thread's CPU time: reproducible on a shared machine; needs --threads 1).",
    ),
    runtime: str = typer.Option(
        "eager", "--runtime",
        help="What the blocks run under: eager (PyTorch), executorch (XNNPACK .pte) or onnxruntime; each block and"
        " the full model are compiled for it here and timed as the stand-alone runner runs them (with --host: on"
        " the device, which needs the runtime; `gapp remote check` lists what it has).",
    ),
    quantize: Optional[str] = typer.Option(
        None, "--quantize", help="int8: quantize every block (and the full model) for --runtime executorch or onnxruntime.",
        show_default=False,
    ),
    calibration_count: int = typer.Option(8, "--calibration-count", help="Random inputs int8 is calibrated on."),
    compare_sum_vs_full: bool = typer.Option(
        True, "--compare-sum-vs-full/--no-compare-sum-vs-full", "--compare_sum_vs_full",
        help="Time the unsplit model too and compare it with the sum of blocks, per mode.",
    ),
    adjust_for_overhead: bool = typer.Option(
        False, "--adjust-for-overhead", "--adjust_for_overhead",
        help="Time an empty block the same way and report sums with that overhead removed.",
    ),
    repeats: Optional[int] = typer.Option(None, "--repeats", "-r", help="Exactly this many timed runs per block (turns off adaptive repeats).", show_default=False),
    min_runs: int = typer.Option(10, "--min-runs", "--min_runs", help="Adaptive repeats: at least this many timed runs."),
    max_runs: int = typer.Option(200, "--max-runs", "--max_runs", help="Adaptive repeats: at most this many timed runs."),
    target_ci: float = typer.Option(0.01, "--target-ci", "--target_ci", help="Stop when the median's 95% interval is within this fraction (0.01 = ±1%)."),
    max_time: float = typer.Option(3.0, "--max-time", "--max_time", help="Seconds of timing per block at most."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs first."),
    force: bool = typer.Option(False, "--force", "-f", help="Measure again what the store already has for this setting."),
    db: Optional[Path] = opt_db(),
    device_name: Optional[str] = typer.Option(None, "--device-name", help="Name this machine in the device key instead of its hostname."),
    ssh: Optional[SSHOptions] = SSH,
    json_: bool = opt_json(),
) -> None:
    """Time every block of MODEL (standalone and in context) and the full model; store the rows.

    Rows go to the SQLite store as each block finishes: Ctrl-C keeps them and the
    same command resumes where it stopped (use --force to measure again).
    """
    from ..measure.engine import MeasureConfig, parse_modes  # slow (torch), as every measure import below
    from ..measure.engine import measure as run_measure  # slow (torch)
    from ..measure.timer import Precision  # slow (torch)

    # ---- every input is checked before anything is built, opened or written
    if model and model_family and model != model_family:
        raise BadInput(f"two models given ({model!r} and --model_family {model_family!r}); give one")
    name = model or model_family
    if not name:
        raise BadInput("no model given; name one (e.g. `gapp measure resnet18` or --model_family resnet18)")
    if threads is not None and threads < 1:
        raise BadInput(f"--threads {threads} is not valid; give a positive integer (default: all cores)")
    spec = model_opts.spec(name)
    precision = _precision(Precision, repeats, min_runs, max_runs, target_ci, max_time, warmup)
    config = MeasureConfig(
        modes=parse_modes(mode), device=device, threads=threads, dtype=dtype, precision=precision,
        full=compare_sum_vs_full, adjust_for_overhead=adjust_for_overhead, force=force, device_name=device_name,
        clock=clock, runtime=runtime, quantize=quantize, calibration=calibration_count,
    )
    config.check()
    if output_dir is not None:
        _check_output_dir(output_dir)
    store = Store(db)

    bar = _ProgressBar(spec.label())
    command = "gapp measure " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        with bar:
            if ssh is not None:  # on a device over SSH (cli/remote.py): same rows, same output
                result = _remote.measure_on_host(ssh, spec, config, store, model_opts.granularity, model_opts.leaves, bar.update, command)
            else:
                result = run_measure(spec, config, store=store, granularity=model_opts.granularity, leaves=model_opts.leaves,
                                     progress=bar.update, command=command)
    finally:
        store.close()
    doc = result.to_dict()
    if output_dir is not None:
        stem = _file_stem(result)
        doc["files"] = {
            "csv": str(write_csv(output_dir / f"{stem}.csv", result.all_rows())),
            "json": str(output_dir / f"{stem}.json"),
        }
        write_json(output_dir / f"{stem}.json", doc)
    if json_:
        print_json(doc)
    else:
        _print_result(result, doc.get("files"))
    if result.interrupted:
        err.print(
            f"[yellow]interrupted[/]: {result.measured} new row(s) kept in {result.db};"
            " run the same command again to measure the rest",
            soft_wrap=True,
        )
        raise typer.Exit(130)


def _precision(cls: Any, repeats: int | None, min_runs: int, max_runs: int, target_ci: float,
               max_time: float, warmup: int) -> Any:
    if repeats is not None:
        if repeats < 1:
            raise BadInput(f"--repeats {repeats} is not valid; give a positive integer")
        min_runs = max_runs = repeats
        target_ci = 1e-12  # never stop early
        max_time = 1e9
    checks = [
        (min_runs >= 1, f"--min-runs {min_runs} is not valid; give a positive integer"),
        (max_runs >= min_runs, f"--max-runs {max_runs} is below --min-runs {min_runs}; give at least {min_runs}"),
        (target_ci > 0, f"--target-ci {target_ci} is not valid; give a positive fraction such as 0.01"),
        (max_time > 0, f"--max-time {max_time} is not valid; give positive seconds such as 3"),
        (warmup >= 0, f"--warmup {warmup} is not valid; give 0 or more"),
    ]
    for ok, message in checks:
        if not ok:
            raise BadInput(message)
    return cls(warmup_runs=warmup, min_runs=min_runs, max_runs=max_runs, target_ci=target_ci, max_time_s=max_time)


def _check_output_dir(d: Path) -> None:
    """BadInput unless ``d`` exists (or can be created) and a file can really be written there."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".gapp-write-check-"):
            pass
    except OSError as exc:
        raise BadInput(f"output directory {str(d)!r} is not writable ({exc.strerror or exc}); give a writable --output_dir") from None


def _file_stem(result: Any) -> str:
    p = result.setting_parts
    raw = f"{result.model}_{p['input_shape']}_{p['dtype']}_t{p['threads']}_{p['granularity']}_{p['device_type']}"
    if p.get("clock") == "cpu":
        raw += "_cputime"
    if p.get("runtime", "eager") != "eager":
        raw += f"_{p['runtime']}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)


class _ProgressBar:
    """Rich progress on stderr (a line per block when stderr is not a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.live = err.is_terminal
        self.progress = Progress(
            TextColumn("[bold cyan]{task.fields[phase]:<10}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[name]}"),
            TextColumn("[green]{task.fields[estimate]}[/]"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not self.live,
        )
        self.tasks: dict[str, Any] = {}
        self.last_line: tuple[str, int] | None = None

    def __enter__(self) -> _ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, p: Any) -> None:
        if p.phase in ("prepare", "done"):
            if p.phase == "prepare" and not self.live:
                err.print(f"measuring {self.label}", highlight=False)
            return
        estimate = f"{p.estimate_ms:.3f} ms" if p.estimate_ms is not None else ""
        if p.phase == "in-context" and p.estimate_ms is not None:
            estimate = f"chain {p.estimate_ms:.3f} ms"
        if self.live:
            if p.phase not in self.tasks:
                self.tasks[p.phase] = self.progress.add_task("", total=p.total, phase=p.phase, name="", estimate="")
            self.progress.update(self.tasks[p.phase], completed=p.index, total=p.total, name=p.name, estimate=estimate)
            return
        # plain log: one line per finished block (in context: when the whole chain is done)
        finished = p.estimate_ms is not None or p.skipped
        if not finished or (p.phase == "in-context" and p.index < p.total):
            return
        if self.last_line == (p.phase, p.index):
            return
        self.last_line = (p.phase, p.index)
        what = "stored, skipped" if p.skipped else estimate
        err.print(f"  {p.phase} {p.index}/{p.total} {p.name} {what}", highlight=False)


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _print_result(result: Any, files: dict[str, str] | None) -> None:
    modes = list(result.rows)
    table = Table(title=f"{result.model_label}: {len(result.blocks)} blocks, {result.setting} on {result.device['key']}")
    table.add_column("#", justify="right")
    table.add_column("block")
    for m in modes:
        table.add_column(f"{m} ms", justify="right")
        table.add_column("IQR", justify="right", style="dim")
        table.add_column("runs", justify="right", style="dim")
    by_mode = {m: {r["block"]: r for r in rows} for m, rows in result.rows.items()}
    for i, name in enumerate(result.blocks):
        cells = [str(i), name]
        for m in modes:
            r = by_mode[m].get(i)
            cells += [_fmt(r["median_ms"]), _fmt(r["iqr_ms"]), str(r["runs"])] if r else ["-", "-", "-"]
        table.add_row(*cells)
    out.print(table)
    if result.sums:
        sums = Table(title="sum of blocks versus the full model")
        for col in ("mode", "sum ms", "full ms", "gap %"):
            sums.add_column(col, justify="left" if col == "mode" else "right")
        adjusted = any("adjusted_sum_ms" in s for s in result.sums.values())
        if adjusted:
            sums.add_column("overhead/block ms", justify="right")
            sums.add_column("adjusted sum ms", justify="right")
            sums.add_column("adjusted gap %", justify="right")
        for m, s in result.sums.items():
            cells = [m, _fmt(s["sum_ms"]), _fmt(s["full_ms"]), _fmt(s["gap_pct"], 1)]
            if adjusted:
                cells += [_fmt(s.get("overhead_ms_per_block"), 4), _fmt(s.get("adjusted_sum_ms")), _fmt(s.get("adjusted_gap_pct"), 1)]
            sums.add_row(*cells)
        out.print(sums)
    elif result.full:
        out.print(f"full model: {result.full['median_ms']:.3f} ms")
    temp = lambda d: (d or {}).get("sensors", {}).get("temperature_c")  # noqa: E731
    freq = lambda d: (d or {}).get("sensors", {}).get("frequency_mhz")  # noqa: E731
    err.print(
        f"{result.measured} row(s) measured, {result.skipped} taken from the store ({result.db});"
        f" threads {result.setting_parts['threads']}, CPU {result.device['cpu_model']},"
        f" temperature {_fmt(temp(result.device), 1)} -> {_fmt(temp(result.device_after), 1)} °C,"
        f" frequency {_fmt(freq(result.device), 0)} -> {_fmt(freq(result.device_after), 0)} MHz",
        highlight=False,
        soft_wrap=True,
    )
    info = next((r["extra"].get("runtime") for r in result.all_rows() if (r.get("extra") or {}).get("runtime")), None)
    if info:
        err.print(
            f"runtime {info['name']} {info.get('version') or ''}{' int8' if info.get('quantize') else ''}:"
            f" {len(result.blocks)} block artifacts ({info['artifact_bytes'] / 2**20:.1f} MiB) compiled in"
            f" {info['compile_s']:.1f} s",
            highlight=False, soft_wrap=True,
        )
    for kind, path in (files or {}).items():
        err.print(f"  {kind}: {path}", highlight=False)


# ----------------------------------------------------------------------------- gapp results


def _open(db: Path | None) -> Store:
    return Store(db, readonly=True)


@results_app.command("list")
@handle_errors
def results_list(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model."),
    device: Optional[str] = typer.Option(None, "--device", help="Only this device key."),
    db: Optional[Path] = opt_db(),
    json_: bool = opt_json(),
) -> None:
    """Every (device, model, setting) measured, with its modes and row counts."""
    with _open(db) as store:
        items = store.settings(model=model, device=device)
        path = str(store.path)
    if json_:
        print_json({"db": path, "settings": items})
        return
    def modes(it: dict[str, Any]) -> str:
        return ", ".join(f"{m} ({v['rows']}, {v['sum_ms']:.2f})" if m != "full" else f"full {v['sum_ms']:.2f}"
                         for m, v in it["modes"].items())

    print_table(f"{len(items)} measured settings in {path}",
                ("model", "device", "setting", "runtime", "modes (blocks, sum ms)", "last measured"),
                ([it["model"], it["device_key"], it["setting"],
                  it.get("runtime", "?") + (" int8" if it.get("dtype") == "int8" else ""), modes(it),
                  it["last_measured"] or ""] for it in items))


@results_app.command("show")
@handle_errors
def results_show(
    model: str = typer.Argument(..., help="The model name as measured."),
    device: Optional[str] = typer.Option(None, "--device", help="Device key (needed when several are stored)."),
    setting: Optional[str] = typer.Option(None, "--setting", help="Setting key (needed when several are stored)."),
    mode: str = typer.Option("in-context", "--mode", help="standalone or in-context."),
    db: Optional[Path] = opt_db(),
    json_: bool = opt_json(),
) -> None:
    """The per-block times of one model on one device and setting, in block order."""
    with _open(db) as store:
        rows = store.block_table(model, device, setting, mode)
        full = store.full_time(model, rows[0]["device_key"], rows[0]["setting"])
    total = sum(r["median_ms"] for r in rows)
    if json_:
        print_json({"model": model, "device_key": rows[0]["device_key"], "setting": rows[0]["setting"], "mode": mode,
                    "rows": rows, "sum_ms": total, "full_ms": full,
                    "gap_pct": (total - full) / full * 100 if full else None})
        return
    table = Table(title=f"{model} on {rows[0]['device_key']} ({rows[0]['setting']}, {mode})")
    for col, just in (("#", "right"), ("block", "left"), ("median ms", "right"), ("IQR ms", "right"),
                      ("min ms", "right"), ("runs", "right"), ("measured", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["block"]), r["block_name"], _fmt(r["median_ms"]), _fmt(r["iqr_ms"]), _fmt(r["min_ms"]),
                      str(r["runs"]), r["measured_at"])
    out.print(table)
    gap = f", gap {(total - full) / full * 100:+.1f}%" if full else ""
    out.print(f"sum {total:.3f} ms, full model {_fmt(full)} ms{gap}")


@results_app.command("devices")
@handle_errors
def results_devices(db: Optional[Path] = opt_db(), json_: bool = opt_json()) -> None:
    """Every device the store has rows from, with its description and the predictor `gapp calibrate` made for it."""
    with _open(db) as store:
        devs = store.devices()
        predictors = store.device_predictors()
    if json_:
        print_json({"devices": devs, "predictors": predictors})
        return
    own = {}
    for p in predictors:  # newest first: the one `gapp predict --device` uses
        own.setdefault(p["device_key"], p)
    table = Table(title=f"{len(devs)} devices")
    for col in ("key", "CPU", "cores", "torch", "OS", "accelerator", "rows", "last seen", "predictor"):
        table.add_column(col)
    for d in devs:
        desc = d["description"]
        pred = own.get(d["key"])
        table.add_row(d["key"], str(desc.get("cpu_model", "")), str(desc.get("cores", "")), str(desc.get("torch", "")),
                      str(desc.get("os", "")), str(desc.get("accelerator") or "-"), str(d["rows"]), str(d["last_seen"] or ""),
                      f"{pred['runtime']}, {pred['threads'] or '?'} threads" if pred else "-")
    out.print(table)


@results_app.command("runs")
@handle_errors
def results_runs(
    limit: int = typer.Option(20, "--limit", help="Newest runs first, at most this many."),
    db: Optional[Path] = opt_db(),
    json_: bool = opt_json(),
) -> None:
    """The measurement runs (newest first): status done or interrupted, and their sums."""
    with _open(db) as store:
        runs = store.runs(limit)
    if json_:
        print_json({"runs": runs})
        return
    table = Table(title=f"{len(runs)} runs")
    for col in ("id", "model", "device", "setting", "status", "started", "gaps %"):
        table.add_column(col)
    for r in runs:
        sums = r["summary"].get("sums", {})
        gaps = ", ".join(f"{m} {s['gap_pct']:+.1f}" for m, s in sums.items() if s.get("gap_pct") is not None)
        table.add_row(str(r["run_id"]), r["model"], r["device_key"], r["setting"], r["status"], r["started_at"], gaps)
    out.print(table)


@results_app.command("export")
@handle_errors
def results_export(
    path: Path = typer.Argument(..., help="Output file: .csv (one row per line) or .json (rows and devices)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model."),
    device: Optional[str] = typer.Option(None, "--device", help="Only this device key."),
    setting: Optional[str] = typer.Option(None, "--setting", help="Only this setting key."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Only standalone, in-context or full."),
    db: Optional[Path] = opt_db(),
    json_: bool = opt_json(),
) -> None:
    """Write the stored rows (all, or those matching the filters) to a CSV or JSON file."""
    if path.suffix.lower() not in (".csv", ".json"):
        raise BadInput(f"export file {str(path)!r} has suffix {path.suffix!r}; give a .csv or .json path")
    with _open(db) as store:
        n = store.count(model=model, device=device, setting=setting, mode=mode)
        written = store.export(path, model=model, device=device, setting=setting, mode=mode)
    if json_:
        print_json({"path": str(written), "rows": n})
        return
    err.print(f"{n} row(s) -> {written}", highlight=False)
