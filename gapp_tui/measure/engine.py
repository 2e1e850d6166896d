"""Measuring a BlockChain: per-block rows in both modes, the full model, sums versus full.

:func:`measure` is what ``gapp measure``, ``python -m gapp_tui.time_measurer``
and the TUI call. It

1. puts the chain on the device and dtype, sets the thread count, records each
   block's real inputs (one run of the chain on a reproducible random input);
   under a runtime other than eager (``config.runtime``: ``executorch``,
   ``onnxruntime``; ``config.quantize="int8"``) compiles every block and the
   unsplit model to that runtime's artifact (:mod:`gapp_tui.runtime`) and times
   those instead, exactly as the stand-alone runner runs them on a device; the
   rows' setting then ends with the runtime (``.../cpu/executorch``) and
   ``extra.runtime`` records its version and the artifacts' size;
2. for each mode asked -- ``standalone`` (each block alone on its recorded
   inputs) and ``in-context`` (each block timed inside end-to-end runs of the
   chain) -- measures every block not already in the store, writing each row to
   the store as soon as that block is done (so Ctrl-C or ``cancel`` keeps them);
3. times the unsplit model (``full``) and, with ``adjust_for_overhead``, an
   empty block timed the same way in each mode (an eager empty block, also
   under another runtime: what the clock and the call add, not the runtime's
   own per-call cost, which stays in the block times);
4. returns a :class:`MeasureResult`: the rows, and per mode the sum of block
   medians, the full model's median and the gap in percent (raw and adjusted).

Rows, sums and the result are kept by :class:`~gapp_tui.measure.record.RunRecord`,
the same bookkeeping remote measurement (:mod:`.remote_engine`) uses.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from .. import runtime as runtime_mod
from .. import stage_runner
from ..blocks import BlockChain
from ..errors import BadInput
from ..store import Store, setting_key
from . import device as device_mod
from .record import MeasureResult, Progress, RowContext, RunRecord, make_row
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
    #: what the blocks run under: eager (the chain's own modules), executorch or onnxruntime (each block
    #: compiled to that runtime's artifact and run by gapp_tui.stage_runner, as on the device)
    runtime: str = "eager"
    quantize: str | None = None  # "int8": each block (and the full model) quantized for its runtime
    calibration: int = 8  # random inputs int8 is calibrated on
    #: measure only these block indices (standalone mode only; the others are neither timed nor reported): a
    #: calibration measures the probes it chooses, round by round (gapp_tui.predict.calibrate)
    blocks: tuple[int, ...] | None = None

    def check(self) -> None:
        """BadInput on anything unusable (before any work is done)."""
        self.modes = parse_modes(self.modes)
        parse_dtype(self.dtype)
        self.runtime = runtime_mod.parse_runtime(self.runtime)
        self.quantize = runtime_mod.parse_quantize(self.quantize, self.runtime)
        if self.runtime != "eager":
            runtime_mod.require(self.runtime)
            if torch.device(self.device).type != "cpu" or self.dtype != "float32":
                raise BadInput(f"--runtime {self.runtime} runs float32 (or int8) blocks on the CPU; give --device cpu"
                               " and --dtype float32")
            if self.calibration < 1:
                raise BadInput(f"calibration inputs {self.calibration!r} must be at least 1")
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


def prepare_chain(spec: Any, granularity: str | int = "natural", device: str = "cpu", dtype: str = "float32",
                  leaves: Iterable[str] = ()) -> Any:
    """Trace ``spec`` into a BlockChain and move it to ``device`` and ``dtype``."""
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
        dtype = cfg.quantize or str(dt).replace("torch.", "")
        key = setting_key(spec.shape_text, dtype, threads, chain.granularity, spec.num_classes, dev.type, cfg.clock,
                          cfg.runtime)
        ctx = RowContext(
            device_key=desc["key"], model=spec.name, model_label=spec.label(), setting=key,
            granularity=chain.granularity, batch_size=spec.shape[0], input_shape=spec.shape_text,
            num_classes=spec.num_classes, dtype=dtype, threads=threads,
            device_type=dev.type, chain_sig=chain.signature(),
        )
        record = RunRecord(chain.names, cfg, ctx, store, desc)
        record.open(command)
        _LocalRun(chain, cfg, record, report, should_stop, threads).execute()
        return record.result()
    finally:
        torch.set_num_threads(old_threads)


def compile_chain(chain: Any, recorded: list[tuple[Any, ...]], x: Any, cfg: MeasureConfig, workdir: str | Path,
                  report: Callable[[Progress], None] | None = None, stop: Callable[[], None] | None = None,
                  ) -> tuple[list[runtime_mod.Artifact], runtime_mod.Artifact | None, dict[str, Any]]:
    """Every block (on its ``recorded`` inputs) and, with ``cfg.full``, the unsplit model (on ``x``) compiled for
    ``cfg.runtime`` into ``workdir``: (block artifacts, full-model artifact or None, what the rows record in
    ``extra.runtime``). int8 is calibrated on ``cfg.calibration`` random inputs (seeds after ``cfg.seed``).

    Local measurement loads the artifacts here; remote measurement takes them to the device, whose agent loads
    them with the same stand-alone runner.
    """
    report = report or (lambda p: None)
    calib_x = [chain.spec.example_inputs("cpu", seed=cfg.seed + 1 + j) for j in range(cfg.calibration)]
    calib = [chain.block_inputs(*c) for c in calib_x] if cfg.quantize else None
    n = len(chain.blocks)
    arts: list[runtime_mod.Artifact] = []
    for i, block in enumerate(chain.blocks):
        report(Progress("compile", i, n + 1, block.name))
        if stop is not None:
            stop()
        arts.append(runtime_mod.compile_artifact(block.module, recorded[i], cfg.runtime, Path(workdir) / f"block{i}",
                                                 cfg.quantize, [c[i] for c in calib] if calib else None))
    full = None
    info: dict[str, Any] = {}
    if cfg.full:
        report(Progress("compile", n, n + 1, "full model"))
        if stop is not None:
            stop()
        full = runtime_mod.compile_artifact(chain.model, _inputs(x), cfg.runtime, Path(workdir) / "full",
                                            cfg.quantize, calib_x if calib else None)
        info["full_artifact_bytes"] = full.bytes
    report(Progress("compile", n + 1, n + 1, ""))
    info.update(name=cfg.runtime, version=(arts or [full])[0].version if (arts or full) else None,
                quantize=cfg.quantize, artifact_bytes=sum(a.bytes for a in arts),
                compile_s=sum(a.compile_s for a in arts))
    return arts, full, info


def _inputs(x: Any) -> tuple[Any, ...]:
    """The model's inputs as a tuple: ``x`` is one tensor or a tuple of one per input."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


class _LocalRun:
    """The timing steps of one local :func:`measure` call (each can be interrupted), kept in a RunRecord."""

    def __init__(self, chain: Any, cfg: MeasureConfig, record: RunRecord,
                 report: Callable[[Progress], None], should_stop: Callable[[], bool] | None, threads: int) -> None:
        self.chain, self.cfg, self.record = chain, cfg, record
        self.report, self.should_stop = report, should_stop
        self.threads = threads
        self.names = [b.name for b in chain.blocks]
        # what each block and the unsplit model run as (the chain's own modules under eager: see _compile)
        self.fns: list[Callable[..., Any]] = [b.module for b in chain.blocks]
        self.reference: Callable[..., Any] = chain.model
        self.runtime_info: dict[str, Any] = {}

    def _extra(self) -> dict[str, Any]:
        extra = {"sensors": device_mod.read_sensors(), "timer_version": TIMER_VERSION, "clock": self.cfg.clock}
        if self.cfg.runtime != "eager":
            extra["runtime"] = dict(self.runtime_info)
        return extra

    def _compile(self, workdir: str) -> None:
        """Under a runtime: every block (and the full model) compiled to its artifact in ``workdir`` and loaded."""
        cfg = self.cfg
        arts, full, self.runtime_info = compile_chain(self.chain, self.recorded, self.x, cfg, workdir, self.report,
                                                      self._stop)
        hint = runtime_mod.install_hint(cfg.runtime)
        self.fns = [stage_runner.load_artifact(a.path, a.runtime, self.threads, hint) for a in arts]
        if full is not None:
            self.reference = stage_runner.load_artifact(full.path, full.runtime, self.threads, hint)

    def _stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(None)

    def _row(self, mode: str, block: int, stats: Stats, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        name = "(full model)" if block < 0 else self.names[block]
        return make_row(self.record.ctx, mode, block, name, stats, extra if extra is not None else self._extra())

    # ---------------------------------------------------------------- steps

    def execute(self) -> None:
        rec = self.record
        workdir = tempfile.TemporaryDirectory(prefix="gapp-measure-")  # artifacts, under a runtime
        try:
            # token ids stay integers; only a floating input takes the measured dtype
            xs = self.chain.spec.example_inputs(self.cfg.device, seed=self.cfg.seed,
                                                float_dtype=parse_dtype(self.cfg.dtype))
            with torch.inference_mode():
                self.recorded = self.chain.block_inputs(*xs)
            self.x = xs  # one tensor per input
            if self.cfg.runtime != "eager":
                self._compile(workdir.name)
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
            rec.interrupted = "keyboard" if exc.keyboard else "cancel"
        except KeyboardInterrupt:
            rec.interrupted = "keyboard"
        finally:
            workdir.cleanup()
            rec.desc_after = device_mod.describe(self.cfg.device, self.cfg.device_name)
            rec.close("interrupted" if rec.interrupted else "done")

    def _standalone(self) -> None:
        done = self.record.done("standalone")
        excluded = self.record.excluded()
        n = len(self.names)
        running = 0.0
        for i, block in enumerate(self.chain.blocks):
            if i in excluded:
                continue
            if i in done:
                self.record.skipped += 1
                self.report(Progress("standalone", i + 1, n, block.name, None, running, skipped=True))
                continue
            self.report(Progress("standalone", i, n, block.name, None, running))
            stats = time_callable(self.fns[i], self.recorded[i], self.cfg.device, self.cfg.precision, self.should_stop,
                                  clock=self.cfg.clock)
            self.record.keep(self._row("standalone", i, stats))
            running += stats.median_ms
            self.report(Progress("standalone", i + 1, n, block.name, stats.median_ms, running))

    def _in_context(self) -> None:
        rec = self.record
        done = rec.done("in-context")
        n = len(self.names)
        if len(done & set(range(n))) == n:
            rec.skipped += n
            self.report(Progress("in-context", n, n, "", None, 0.0, skipped=True))
            return
        stored: set[int] = set()

        def converged(i: int, stats: Stats) -> None:
            # a block whose interval is narrow enough is kept now: Ctrl-C later loses nothing of it;
            # it is counted once, when its final row is written
            if i not in done and i not in stored:
                rec.keep(self._row("in-context", i, stats), counted=False)
                stored.add(i)

        def iteration(k: int, conv: list[Stats | None], medians: list[float]) -> None:
            finished = sum(1 for c in conv if c is not None)
            nxt = next((self.names[i] for i, c in enumerate(conv) if c is None), "")
            self.report(Progress("in-context", finished, n, nxt, sum(medians), sum(medians), runs=k))

        self.report(Progress("in-context", 0, n, self.names[0], None, 0.0))
        fns = self.fns
        # the full model is timed in the same loop as the chain (alternating), so that the sum-versus-full
        # comparison is made under the same machine conditions; unless it is already stored
        with_full = self.cfg.full and -1 not in rec.done("full")
        try:
            per, total, ref = time_sequence(fns, self.x, self.cfg.device, self.cfg.precision, self.should_stop,
                                            on_iteration=iteration, on_converged=converged, clock=self.cfg.clock,
                                            reference=self.reference if with_full else None)
        except Cancelled:
            rec.measured += len(stored)
            raise
        rec.chain_ms["in-context"] = total.median_ms
        extra = self._extra()
        rec.keep_many([self._row("in-context", i, s, extra) for i, s in enumerate(per) if i not in done])
        rec.skipped += len(done & set(range(n)))
        if with_full:
            rec.keep(self._row("full", -1, ref, {**extra, "timed_with": "in-context"}))
        self.report(Progress("in-context", n, n, self.names[-1], total.median_ms, sum(s.median_ms for s in per)))

    def _full(self) -> None:
        rec = self.record
        if rec.full is not None:
            return  # timed together with the in-context runs
        if -1 in rec.done("full"):
            rec.skipped += 1
            return
        self.report(Progress("full", 0, 1, "full model"))
        stats = time_callable(self.reference, self.x, self.cfg.device, self.cfg.precision, self.should_stop,
                              clock=self.cfg.clock)
        rec.keep(self._row("full", -1, stats))
        self.report(Progress("full", 1, 1, "full model", stats.median_ms, stats.median_ms))

    def _overhead(self) -> None:
        for j, mode in enumerate(self.cfg.modes):
            self.report(Progress("overhead", j, len(self.cfg.modes), f"empty block ({mode})"))
            stats = time_overhead(self.cfg.device, mode, self.cfg.precision, self.x, clock=self.cfg.clock)
            self.record.overhead[mode] = stats.to_dict()
