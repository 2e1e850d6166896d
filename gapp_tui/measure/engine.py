"""Measuring a BlockChain: per-block rows in both modes, the full model, sums versus full.

:func:`measure` is what ``gapp measure``, ``python -m gapp_tui.time_measurer``
and the TUI call. It

1. puts the chain on the device and dtype, sets the thread count, records each
   block's real inputs (one run of the chain on a reproducible random input);
2. for each mode asked -- ``standalone`` (each block alone on its recorded
   inputs) and ``in-context`` (each block timed inside end-to-end runs of the
   chain) -- measures every block not already in the store, writing each row to
   the store as soon as that block is done (so Ctrl-C or ``cancel`` keeps them);
3. times the unsplit model (``full``) and, with ``adjust_for_overhead``, an
   empty block timed the same way in each mode;
4. returns a :class:`MeasureResult`: the rows, and per mode the sum of block
   medians, the full model's median and the gap in percent (raw and adjusted).

A row is a plain dict with the fields of :data:`gapp_tui.store.ROW_FIELDS`;
:func:`make_row` builds one from :class:`~gapp_tui.measure.timer.Stats` (or its
dict) so the SSH device agent produces exactly the same rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ..errors import BadInput
from ..store import Store, now_iso, setting_key
from . import device as device_mod
from .timer import (
    CLOCKS,
    TIMER_VERSION,
    Cancelled,
    Precision,
    Stats,
    check_device,
    set_threads,
    time_callable,
    time_overhead,
    time_sequence,
    time_sequence_and_reference,
)

MODES = ("standalone", "in-context")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def parse_modes(mode: str | Iterable[str]) -> tuple[str, ...]:
    """``standalone``, ``in-context``, ``both`` (or a list of those) -> the modes in order."""
    items = [mode] if isinstance(mode, str) else list(mode)
    out: list[str] = []
    for m in items:
        m = m.strip().lower().replace("_", "-")
        if m == "incontext":
            m = "in-context"
        if m == "both":
            out += list(MODES)
        elif m in MODES:
            out.append(m)
        else:
            raise BadInput(f"mode {m!r} is not valid; give standalone, in-context or both")
    return tuple(dict.fromkeys(out))


def parse_dtype(name: str) -> torch.dtype:
    key = str(name).replace("torch.", "").lower()
    if key not in DTYPES:
        raise BadInput(f"dtype {name!r} is not supported; give one of {', '.join(DTYPES)}")
    return DTYPES[key]


@dataclasses.dataclass
class MeasureConfig:
    """What to measure and how (everything except the model)."""

    modes: tuple[str, ...] = MODES
    device: str = "cpu"
    threads: int | None = None  # None: every core available to the process
    dtype: str = "float32"
    precision: Precision = dataclasses.field(default_factory=Precision)
    full: bool = True  # time the unsplit model too (needed for sums versus full)
    adjust_for_overhead: bool = False
    force: bool = False  # re-measure rows already in the store
    device_name: str | None = None  # replaces the hostname in the device key
    seed: int = 0  # of the random input
    clock: str = "wall"  # or "cpu": the thread's CPU time (one thread, CPU only) for a shared machine
    #: measure only these block indices (standalone mode only; the others are neither timed nor reported): a
    #: calibration measures the probes it chooses, round by round (gapp_tui.predict.calibrate)
    blocks: tuple[int, ...] | None = None

    def check(self) -> None:
        """BadInput on anything unusable (before any work is done)."""
        self.modes = parse_modes(self.modes)
        parse_dtype(self.dtype)
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise BadInput(f"threads {self.threads!r} is not valid; give a positive integer (default: all cores)")
        try:
            check_device(self.device)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        if self.clock not in CLOCKS:
            raise BadInput(f"clock {self.clock!r} is not valid; give wall or cpu")
        if self.clock == "cpu" and (self.threads != 1 or torch.device(self.device).type != "cpu"):
            raise BadInput("--clock cpu needs --threads 1 on --device cpu (it counts the calling thread's CPU time only)")
        if self.blocks is not None:
            self.blocks = tuple(sorted({int(b) for b in self.blocks}))
            if "in-context" in self.modes:
                raise BadInput("choosing blocks needs --mode standalone (in context every block runs)")


@dataclasses.dataclass
class Progress:
    """One progress report: what the TUI's bar and the CLI's bar show.

    ``phase`` is ``prepare``, ``standalone``, ``in-context``, ``full``,
    ``overhead`` or ``done``; ``index`` blocks of ``total`` are finished in this
    phase; ``name`` is the block being measured next (or just finished);
    ``estimate_ms`` the time of the block just finished (in context: the
    current median of the whole chain); ``sum_ms`` the running sum of finished
    blocks; ``skipped`` is true for a block taken from the store.
    """

    phase: str
    index: int
    total: int
    name: str = ""
    estimate_ms: float | None = None
    sum_ms: float = 0.0
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RowContext:
    """The parts of a row that do not change from block to block."""

    device_key: str
    model: str
    model_label: str
    setting: str
    granularity: str
    batch_size: int
    input_shape: str
    num_classes: int
    dtype: str
    threads: int
    device_type: str
    chain_sig: str
    run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_row(
    ctx: RowContext | Mapping[str, Any],
    mode: str,
    block: int,
    block_name: str,
    stats: Stats | Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One measurement row (the store's format) from the context and a block's stats."""
    c = ctx.to_dict() if isinstance(ctx, RowContext) else dict(ctx)
    s = stats.to_dict() if isinstance(stats, Stats) else dict(stats)
    row = {k: c.get(k) for k in ("device_key", "model", "model_label", "setting", "granularity", "batch_size",
                                 "input_shape", "num_classes", "dtype", "threads", "device_type", "chain_sig",
                                 "run_id")}
    row.update(
        mode=mode,
        block=int(block),
        block_name=block_name,
        median_ms=s["median_ms"],
        mean_ms=s["mean_ms"],
        std_ms=s["std_ms"],
        iqr_ms=s["iqr_ms"],
        min_ms=s["min_ms"],
        max_ms=s["max_ms"],
        runs=s["runs"],
        ci_rel=s["ci_rel"] if s["ci_rel"] == s["ci_rel"] and s["ci_rel"] != float("inf") else None,
        measured_at=now_iso(),
        extra={"inner": s.get("inner", 1), "stopped": s.get("stopped"), "timed_s": s.get("timed_s"), **(extra or {})},
    )
    return row


def chain_signature(chain: Any) -> str:
    """A short hash of the block partition (names, nodes, cut shapes): rows of another cutting never mix."""
    doc = {
        "blocks": [[b.name, list(b.nodes)] for b in chain.blocks],
        "cuts": [[list(t.shape) for t in c.tensors] for c in chain.cuts],
    }
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def compare(
    block_rows: Mapping[str, list[Mapping[str, Any]]],
    full_ms: float | None,
    overhead_ms: Mapping[str, float] | None = None,
    full_mean_ms: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Per mode: block count, sum of medians, full model, gap in percent; adjusted when overhead is known.

    With ``full_mean_ms`` also the same on means (``sum_mean_ms``, ``full_mean_ms``,
    ``gap_mean_pct``): means add up exactly within a run, medians do not when a
    few runs are disturbed (a preempted long run is a typical full-model run but
    an atypical short-block run).
    """
    out: dict[str, dict[str, Any]] = {}
    for mode, rows in block_rows.items():
        total = sum(float(r["median_ms"]) for r in rows)
        entry: dict[str, Any] = {"blocks": len(rows), "sum_ms": total, "full_ms": full_ms, "gap_pct": None}
        if full_ms:
            entry["gap_pct"] = (total - full_ms) / full_ms * 100
        if full_mean_ms and all(r.get("mean_ms") is not None for r in rows):
            mean_total = sum(float(r["mean_ms"]) for r in rows)
            entry.update(sum_mean_ms=mean_total, full_mean_ms=full_mean_ms,
                         gap_mean_pct=(mean_total - full_mean_ms) / full_mean_ms * 100)
        if overhead_ms and mode in overhead_ms:
            adj = total - len(rows) * overhead_ms[mode]
            entry["overhead_ms_per_block"] = overhead_ms[mode]
            entry["adjusted_sum_ms"] = adj
            entry["adjusted_gap_pct"] = (adj - full_ms) / full_ms * 100 if full_ms else None
        out[mode] = entry
    return out


@dataclasses.dataclass
class MeasureResult:
    """What one :func:`measure` call produced (``to_dict()`` is the ``--json`` document)."""

    model: str
    model_label: str
    setting: str
    setting_parts: dict[str, Any]
    device: dict[str, Any]
    device_after: dict[str, Any] | None
    chain_sig: str
    blocks: list[str]
    rows: dict[str, list[dict[str, Any]]]
    full: dict[str, Any] | None
    overhead: dict[str, dict[str, Any]]
    sums: dict[str, dict[str, Any]]
    chain_ms: dict[str, float]
    precision: dict[str, Any]
    measured: int = 0
    skipped: int = 0
    interrupted: str | None = None  # None, "keyboard" or "cancel"
    run_id: int | None = None
    db: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def all_rows(self) -> list[dict[str, Any]]:
        rows = [r for m in self.rows.values() for r in m]
        return rows + ([self.full] if self.full else [])


def prepare_chain(spec: Any, granularity: str | int = "natural", device: str = "cpu", dtype: str = "float32",
                  leaves: Iterable[str] = ()) -> Any:
    """Trace ``spec`` into a BlockChain and move it to ``device`` and ``dtype``."""
    from ..blocks import BlockChain

    chain = BlockChain.from_spec(spec, granularity, device="cpu", leaves=tuple(leaves))
    _move_chain(chain, torch.device(device), parse_dtype(dtype))
    return chain


def _move_chain(chain: Any, dev: torch.device, dt: torch.dtype) -> None:
    """Put every module of the chain on ``dev`` in ``dt`` (a no-op when already there)."""
    first = next((t for m in [chain.model, chain.graph_module] if m is not None
                  for t in [*m.parameters(), *m.buffers()] if t.is_floating_point()), None)
    if first is None or (first.device.type == dev.type and first.dtype == dt and dev.type == "cpu"):
        return
    for m in [chain.model, chain.graph_module, *[b.module for b in chain.blocks]]:
        if m is not None:
            m.to(device=dev, dtype=dt)


def measure(
    target: Any,
    config: MeasureConfig | None = None,
    *,
    store: Store | None = None,
    granularity: str | int = "natural",
    leaves: Iterable[str] = (),
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    command: str | None = None,
) -> MeasureResult:
    """Measure a BlockChain (or a ModelSpec, traced here) -- see the module docstring.

    ``store``: where rows go as each block finishes and what is skipped when
    already there (unless ``config.force``); ``None`` keeps rows in memory only.
    ``progress`` is called from the measuring thread; ``cancel.set()`` from any
    thread stops at the next sample, keeping every finished block. Never raises
    on Ctrl-C: the result has ``interrupted="keyboard"``.
    """
    cfg = config or MeasureConfig()
    cfg.check()
    report = progress or (lambda p: None)
    should_stop = cancel.is_set if cancel is not None else None
    dev = torch.device(cfg.device)
    dt = parse_dtype(cfg.dtype)

    report(Progress("prepare", 0, 1, "tracing"))
    if hasattr(target, "blocks") and hasattr(target, "cuts"):
        chain = target
        _move_chain(chain, dev, dt)
    else:
        chain = prepare_chain(target, granularity, cfg.device, cfg.dtype, leaves)
    spec = chain.spec

    old_threads = torch.get_num_threads()
    threads = set_threads(cfg.threads)
    try:
        desc = device_mod.describe(cfg.device, cfg.device_name)
        key = setting_key(spec.shape, cfg.dtype, threads, chain.granularity, spec.num_classes, dev.type, cfg.clock)
        sig = chain_signature(chain)
        ctx = RowContext(
            device_key=desc["key"], model=spec.name, model_label=spec.label(), setting=key,
            granularity=chain.granularity, batch_size=spec.shape[0], input_shape="x".join(map(str, spec.shape)),
            num_classes=spec.num_classes, dtype=str(dt).replace("torch.", ""), threads=threads,
            device_type=dev.type, chain_sig=sig,
        )
        run = _Run(chain, cfg, ctx, store, report, should_stop, desc)
        if store is not None:
            store.add_device(desc)
            ctx.run_id = store.start_run(desc["key"], spec.name, key, list(cfg.modes) + (["full"] if cfg.full else []), command)
        run.execute()
        return run.result()
    finally:
        torch.set_num_threads(old_threads)


class _Run:
    """The state of one measure() call (split out so that every step can be interrupted)."""

    def __init__(self, chain: Any, cfg: MeasureConfig, ctx: RowContext, store: Store | None,
                 report: Callable[[Progress], None], should_stop: Callable[[], bool] | None,
                 desc: dict[str, Any]) -> None:
        self.chain, self.cfg, self.ctx, self.store = chain, cfg, ctx, store
        self.report, self.should_stop, self.desc = report, should_stop, desc
        self.rows: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in cfg.modes}
        self.full: dict[str, Any] | None = None
        self.overhead: dict[str, dict[str, Any]] = {}
        self.chain_ms: dict[str, float] = {}
        self.measured = 0
        self.skipped = 0
        self.interrupted: str | None = None
        self.desc_after: dict[str, Any] | None = None
        self.names = [b.name for b in chain.blocks]

    # ---------------------------------------------------------------- bookkeeping

    def _done(self, mode: str) -> set[int]:
        if self.store is None or self.cfg.force:
            return set()
        c = self.ctx
        return self.store.measured_blocks(c.device_key, c.model, c.setting, mode, c.chain_sig)

    def _excluded(self) -> set[int]:
        """Blocks this run leaves alone (``MeasureConfig.blocks``): neither timed nor reported."""
        if self.cfg.blocks is None:
            return set()
        return set(range(len(self.names))) - set(self.cfg.blocks)

    def _keep(self, row: dict[str, Any]) -> None:
        if self.store is not None:
            self.store.add_row(row, self.ctx.run_id)
        if row["mode"] == "full":
            self.full = row
        else:
            self.rows[row["mode"]][row["block"]] = row
        self.measured += 1

    def _extra(self) -> dict[str, Any]:
        return {"sensors": device_mod.read_sensors(), "timer_version": TIMER_VERSION, "clock": self.cfg.clock}

    # ---------------------------------------------------------------- steps

    def execute(self) -> None:
        try:
            x = self.chain.spec.example_input(self.cfg.device, seed=self.cfg.seed).to(parse_dtype(self.cfg.dtype))
            with torch.inference_mode():
                self.recorded = self.chain.block_inputs(x)
            self.x = x
            for mode in self.cfg.modes:
                if mode == "standalone":
                    self._standalone()
                else:
                    self._in_context()
            if self.cfg.full:
                self._full()
            if self.cfg.adjust_for_overhead:
                self._overhead()
            self.report(Progress("done", len(self.names), len(self.names), "", None, 0.0))
        except Cancelled as exc:
            self.interrupted = "keyboard" if exc.keyboard else "cancel"
        except KeyboardInterrupt:
            self.interrupted = "keyboard"
        finally:
            self.desc_after = device_mod.describe(self.cfg.device, self.cfg.device_name)
            if self.store is not None and self.ctx.run_id is not None:
                status = "interrupted" if self.interrupted else "done"
                self.store.finish_run(self.ctx.run_id, status, self._summary())

    def _standalone(self) -> None:
        done = self._done("standalone")
        excluded = self._excluded()
        n = len(self.names)
        running = 0.0
        for i, block in enumerate(self.chain.blocks):
            if i in excluded:
                continue
            if i in done:
                self.skipped += 1
                self.report(Progress("standalone", i + 1, n, block.name, None, running, skipped=True))
                continue
            self.report(Progress("standalone", i, n, block.name, None, running))
            stats = time_callable(block.module, self.recorded[i], self.cfg.device, self.cfg.precision, self.should_stop,
                                  clock=self.cfg.clock)
            self._keep(make_row(self.ctx, "standalone", i, block.name, stats, self._extra()))
            running += stats.median_ms
            self.report(Progress("standalone", i + 1, n, block.name, stats.median_ms, running))

    def _in_context(self) -> None:
        done = self._done("in-context")
        n = len(self.names)
        if len(done & set(range(n))) == n:
            self.skipped += n
            self.report(Progress("in-context", n, n, "", None, 0.0, skipped=True))
            return
        stored: set[int] = set()

        def converged(i: int, stats: Stats) -> None:
            # a block whose interval is narrow enough is kept now: Ctrl-C later loses nothing of it
            if i not in done and i not in stored:
                self._keep(make_row(self.ctx, "in-context", i, self.names[i], stats, self._extra()))
                self.measured -= 1  # counted once, when the final row is written
                stored.add(i)

        def iteration(k: int, conv: list[Stats | None], medians: list[float]) -> None:
            finished = sum(1 for c in conv if c is not None)
            nxt = next((self.names[i] for i, c in enumerate(conv) if c is None), "")
            self.report(Progress("in-context", finished, n, nxt, sum(medians), sum(medians)))

        self.report(Progress("in-context", 0, n, self.names[0], None, 0.0))
        fns = [b.module for b in self.chain.blocks]
        # the full model is timed in the same loop as the chain (alternating), so that the sum-versus-full
        # comparison is made under the same machine conditions; unless it is already stored
        with_full = self.cfg.full and -1 not in self._done("full")
        try:
            if with_full:
                per, total, ref = time_sequence_and_reference(
                    fns, (self.x,), self.chain.model, self.cfg.device, self.cfg.precision, self.should_stop,
                    on_iteration=iteration, on_converged=converged, clock=self.cfg.clock)
            else:
                per, total = time_sequence(fns, (self.x,), self.cfg.device, self.cfg.precision, self.should_stop,
                                           on_iteration=iteration, on_converged=converged, clock=self.cfg.clock)
        except Cancelled:
            self.measured += len(stored)
            raise
        self.chain_ms["in-context"] = total.median_ms
        extra = self._extra()
        rows = [make_row(self.ctx, "in-context", i, self.names[i], s, extra) for i, s in enumerate(per) if i not in done]
        if self.store is not None:
            self.store.add_rows(rows, self.ctx.run_id)
        for r in rows:
            self.rows["in-context"][r["block"]] = r
        self.measured += len(rows)
        self.skipped += len(done & set(range(n)))
        if with_full:
            self._keep(make_row(self.ctx, "full", -1, "(full model)", ref, {**extra, "timed_with": "in-context"}))
        self.report(Progress("in-context", n, n, self.names[-1], total.median_ms, sum(s.median_ms for s in per)))

    def _full(self) -> None:
        if self.full is not None:
            return  # timed together with the in-context runs
        if -1 in self._done("full"):
            self.skipped += 1
            return
        self.report(Progress("full", 0, 1, "full model"))
        stats = time_callable(self.chain.model, (self.x,), self.cfg.device, self.cfg.precision, self.should_stop,
                              clock=self.cfg.clock)
        self._keep(make_row(self.ctx, "full", -1, "(full model)", stats, self._extra()))
        self.report(Progress("full", 1, 1, "full model", stats.median_ms, stats.median_ms))

    def _overhead(self) -> None:
        for j, mode in enumerate(self.cfg.modes):
            self.report(Progress("overhead", j, len(self.cfg.modes), f"empty block ({mode})"))
            stats = time_overhead(self.cfg.device, mode, self.cfg.precision, (self.x,), clock=self.cfg.clock)
            self.overhead[mode] = stats.to_dict()

    # ---------------------------------------------------------------- result

    def _block_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every block row of this key: from the store when there is one (skipped rows included)."""
        out: dict[str, list[dict[str, Any]]] = {}
        c = self.ctx
        for mode in self.cfg.modes:
            if self.store is not None:
                rows = [r for r in self.store.rows(model=c.model, device=c.device_key, setting=c.setting, mode=mode)
                        if r["chain_sig"] in (None, c.chain_sig) and r["block"] >= 0]
            else:
                rows = [self.rows[mode][i] for i in sorted(self.rows[mode])]
            out[mode] = rows
        return out

    def _full_row(self) -> dict[str, Any] | None:
        if self.full is not None or self.store is None:
            return self.full
        c = self.ctx
        rows = self.store.rows(model=c.model, device=c.device_key, setting=c.setting, mode="full")
        return rows[0] if rows else None

    def _summary(self) -> dict[str, Any]:
        rows = self._block_rows()
        full = self._full_row()
        complete = {m: r for m, r in rows.items() if len(r) == len(self.names)}
        return {
            "sums": compare(complete, full["median_ms"] if full else None,
                            {m: o["median_ms"] for m, o in self.overhead.items()},
                            full.get("mean_ms") if full else None),
            "chain_ms": self.chain_ms,
            "overhead": self.overhead,
            "measured": self.measured,
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "device_after": self.desc_after,
            "precision": self.cfg.precision.to_dict(),
        }

    def result(self) -> MeasureResult:
        rows = self._block_rows()
        summary = self._summary()
        c = self.ctx
        return MeasureResult(
            model=c.model, model_label=c.model_label, setting=c.setting,
            setting_parts={**{k: getattr(c, k) for k in ("batch_size", "input_shape", "dtype", "threads", "granularity",
                                                         "num_classes", "device_type")}, "clock": self.cfg.clock},
            device=self.desc, device_after=self.desc_after, chain_sig=c.chain_sig, blocks=self.names, rows=rows,
            full=self._full_row(), overhead=self.overhead, sums=summary["sums"], chain_ms=self.chain_ms,
            precision=self.cfg.precision.to_dict(), measured=self.measured, skipped=self.skipped,
            interrupted=self.interrupted, run_id=c.run_id, db=str(self.store.path) if self.store is not None else None,
        )
