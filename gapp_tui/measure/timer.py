"""The timing core: how long a callable, or each callable of a chain, takes.

One concept: the timing method (warm-up, adaptive sample sizes, confidence intervals, the
clocks), in one file because it travels alone to the device.

Self-contained on purpose: it imports only ``torch`` and the Python standard
library (no numpy, nothing from gapp_tui), so the SSH runner can copy this one
file to a device (a Raspberry Pi) and run it there. Every result is a plain
dataclass with ``to_dict()`` that serialises to JSON.

The method
----------
* **Warm-up**: ``warmup_runs`` calls and at least ``warmup_s`` seconds, so lazy
  initialisation, allocator growth and CPU frequency ramp-up are not timed.
* **Adaptive repeats**: then samples are taken until the 95% confidence interval
  of the *median* is narrower than ``target_ci`` (relative half-width), with at
  least ``min_runs`` and at most ``max_runs`` samples and at most ``max_time_s``
  seconds of timing. The interval is distribution-free (order statistics), so a
  few outliers from a shared machine widen it instead of biasing it.
* **Standalone** (:func:`time_callable`): one callable on fixed inputs. A very
  short call (under ``min_sample_s``) is repeated ``inner`` times inside one
  sample so the clock's own cost stays negligible (as ``torch.utils.benchmark``
  does); the reported times are per call.
* **In context** (:func:`time_sequence`): a list of callables run end to end,
  each fed the previous one's outputs; one clock reading between consecutive
  callables, so every callable is timed inside a real run of the whole chain
  (its caches and memory pressure are those of the real model). Stops when
  every callable's interval is narrow enough -- relative to its own median, or
  to the chain's mean per-callable time for callables far shorter than that.
* **Clocks**: on CPU ``time.perf_counter``. On CUDA, CUDA events recorded on the
  current stream around each callable with a single synchronisation after the
  run (standalone: after each sample), so the GPU is never stalled between
  blocks and the host's launch latency is not mistaken for GPU time.
* **CPU clock** (``clock="cpu"``, CPU with one thread only): the calling
  thread's CPU time (``time.thread_time``) instead of wall time. Time the
  thread spent descheduled does not count, so a machine shared with other work
  still gives reproducible numbers; a dedicated device should use wall time.
* **Overhead** (:func:`time_overhead`): an empty callable timed exactly the
  same way; what each timed block adds to a sum of blocks.

Why not ``torch.utils.benchmark.Timer``: it cannot time callables inside one
end-to-end run, it imports numpy (absent on many small devices), it sets the
thread count itself (``num_threads=1`` by default) and it has no per-block time
cap; its idea of growing a sample until the timer cost is negligible is kept.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import fx

TIMER_VERSION = 2
CLOCKS = ("wall", "cpu")
_Z95 = 1.959963984540054


class Cancelled(Exception):
    """Timing stopped early (``should_stop`` returned true, or Ctrl-C).

    ``partial`` holds what is already known: for :func:`time_sequence` a list
    with the :class:`Stats` of every callable that had converged (``None`` for
    the others); for :func:`time_callable` ``None``. ``keyboard`` is true when
    a KeyboardInterrupt caused it.
    """

    def __init__(self, partial: Any = None, keyboard: bool = False) -> None:
        super().__init__("timing cancelled")
        self.partial = partial
        self.keyboard = keyboard


@dataclasses.dataclass
class Precision:
    """How hard to try. Defaults suit a real measurement; tests use :meth:`quick`."""

    warmup_runs: int = 3
    warmup_s: float = 0.05
    min_runs: int = 10
    max_runs: int = 200
    target_ci: float = 0.01
    max_time_s: float = 3.0
    min_sample_s: float = 2e-4

    def __post_init__(self) -> None:
        if self.warmup_runs < 0 or self.warmup_s < 0:
            raise ValueError("warm-up runs and seconds must be >= 0")
        if self.min_runs < 1:
            raise ValueError(f"min_runs {self.min_runs} must be >= 1")
        if self.max_runs < self.min_runs:
            raise ValueError(f"max_runs {self.max_runs} must be >= min_runs {self.min_runs}")
        if not self.target_ci > 0:
            raise ValueError(f"target_ci {self.target_ci} must be > 0")
        if not self.max_time_s > 0:
            raise ValueError(f"max_time_s {self.max_time_s} must be > 0")

    @classmethod
    def quick(cls) -> Precision:
        """Few runs: for tests and smoke checks, not for numbers anyone reports."""
        return cls(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=5, target_ci=0.05, max_time_s=0.5, min_sample_s=0.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Precision:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclasses.dataclass
class Stats:
    """Statistics of one timed thing; times in milliseconds per call."""

    median_ms: float
    mean_ms: float
    std_ms: float
    iqr_ms: float
    min_ms: float
    max_ms: float
    runs: int
    ci_rel: float  # relative half-width of the median's 95% interval
    inner: int = 1  # calls per sample
    timed_s: float = 0.0  # seconds spent timing (warm-up excluded)
    stopped: str = "ci"  # ci | max_runs | time

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stats:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


# ----------------------------------------------------------------------------- statistics


def median_ci(sorted_values: Sequence[float]) -> tuple[float, float]:
    """Distribution-free 95% interval of the median from order statistics."""
    n = len(sorted_values)
    if n == 0:
        return (math.nan, math.nan)
    half = _Z95 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return sorted_values[lo], sorted_values[hi]


def summarize(samples_s: Sequence[float], inner: int = 1, timed_s: float = 0.0, stopped: str = "ci") -> Stats:
    """Stats (ms per call) from samples in seconds per call."""
    xs = sorted(float(s) * 1e3 for s in samples_s)
    n = len(xs)
    if n == 0:
        raise ValueError("no samples")
    med = statistics.median(xs)
    lo, hi = median_ci(xs)
    ci_rel = (hi - lo) / (2 * med) if med > 0 else math.inf
    # quartiles by linear interpolation between order statistics (numpy's default method)
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if n > 1 else (xs[0], xs[0], xs[0])
    return Stats(
        median_ms=med,
        mean_ms=statistics.fmean(xs),
        std_ms=statistics.stdev(xs) if n > 1 else 0.0,
        iqr_ms=q3 - q1,
        min_ms=xs[0],
        max_ms=xs[-1],
        runs=n,
        ci_rel=ci_rel if n > 1 else math.inf,
        inner=inner,
        timed_s=timed_s,
        stopped=stopped,
    )


def _ci_half_ms(samples_s: Sequence[float]) -> float:
    xs = sorted(samples_s)
    lo, hi = median_ci(xs)
    return (hi - lo) / 2 * 1e3


# ----------------------------------------------------------------------------- clocks


def synchronize(device: str | torch.device = "cpu") -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def check_device(device: str | torch.device) -> torch.device:
    """A usable torch.device, or ValueError naming what is wrong (no CUDA here...)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; give cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r} is not supported; give cpu or cuda")
    return dev


def check_clock(clock: str, device: str | torch.device = "cpu") -> str:
    """``wall`` anywhere; ``cpu`` (thread CPU time) on CPU with one torch thread. ValueError otherwise."""
    if clock not in CLOCKS:
        raise ValueError(f"clock {clock!r} is not valid; give wall or cpu")
    if clock == "cpu" and torch.device(device).type != "cpu":
        raise ValueError("the cpu clock measures CPU time of the calling thread; it cannot time a GPU (use wall)")
    if clock == "cpu" and torch.get_num_threads() != 1:
        raise ValueError(
            f"the cpu clock needs one torch thread (now {torch.get_num_threads()}): other threads' work would not count;"
            " use --threads 1 or the wall clock"
        )
    return clock


class _Clock:
    """Timestamps: perf_counter (or thread CPU time) on CPU, CUDA events on CUDA (elapsed read after one sync)."""

    def __init__(self, device: torch.device, clock: str = "wall") -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.now = time.thread_time if check_clock(clock, device) == "cpu" else time.perf_counter

    def marks(self, n: int) -> list[Any]:
        if self.cuda:
            return [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        return [0.0] * n

    def mark(self, marks: list[Any], i: int) -> None:
        if self.cuda:
            marks[i].record()
        else:
            marks[i] = self.now()

    def seconds(self, marks: list[Any]) -> list[float]:
        """Seconds between consecutive marks (syncs the device first on CUDA)."""
        if self.cuda:
            marks[-1].synchronize()
            return [marks[i].elapsed_time(marks[i + 1]) / 1e3 for i in range(len(marks) - 1)]
        return [marks[i + 1] - marks[i] for i in range(len(marks) - 1)]


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


# ----------------------------------------------------------------------------- standalone


def time_callable(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    device: str | torch.device = "cpu",
    precision: Precision | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    clock: str = "wall",
) -> Stats:
    """Time ``fn(*args)`` alone: warm-up, then adaptive repeats (see the module docstring)."""
    p = precision or Precision()
    dev = check_device(device)
    timer_clock = _Clock(dev, clock)
    args = tuple(args)
    try:
        with torch.inference_mode():
            # warm-up, which also gives the first estimate of one call
            t_start = time.perf_counter()
            one = math.inf
            k = 0
            while k < max(1, p.warmup_runs) or time.perf_counter() - t_start < p.warmup_s:
                _stop_check(should_stop)
                m = timer_clock.marks(2)
                timer_clock.mark(m, 0)
                fn(*args)
                timer_clock.mark(m, 1)
                one = min(one, timer_clock.seconds(m)[0])
                k += 1
            inner = 1
            if p.min_sample_s > 0 and one < p.min_sample_s:
                inner = min(10_000, max(1, math.ceil(p.min_sample_s / max(one, 1e-9))))
            samples: list[float] = []
            t0 = time.perf_counter()
            stopped = "max_runs"
            while len(samples) < p.max_runs:
                _stop_check(should_stop)
                m = timer_clock.marks(2)
                timer_clock.mark(m, 0)
                for _ in range(inner):
                    fn(*args)
                timer_clock.mark(m, 1)
                samples.append(timer_clock.seconds(m)[0] / inner)
                if len(samples) >= p.min_runs:
                    if _converged_rel(samples, p.target_ci):
                        stopped = "ci"
                        break
                    if time.perf_counter() - t0 >= p.max_time_s:
                        stopped = "time"
                        break
            return summarize(samples, inner, time.perf_counter() - t0, stopped)
    except KeyboardInterrupt:
        raise Cancelled(None, keyboard=True) from None


def _stop_check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled(None)


def _converged_rel(samples: Sequence[float], target: float) -> bool:
    if len(samples) < 2:
        return False
    xs = sorted(samples)
    med = statistics.median(xs)
    lo, hi = median_ci(xs)
    return med > 0 and (hi - lo) / (2 * med) <= target


# ----------------------------------------------------------------------------- in context


def time_sequence(
    fns: Sequence[Callable[..., Any]],
    inputs: Sequence[Any],
    device: str | torch.device = "cpu",
    precision: Precision | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_iteration: Callable[[int, list[Stats | None], list[float]], None] | None = None,
    on_converged: Callable[[int, Stats], None] | None = None,
    *,
    clock: str = "wall",
    reference: Callable[..., Any] | None = None,
) -> tuple[list[Stats], Stats, Stats | None]:
    """Time every callable inside end-to-end runs of the whole sequence.

    ``fns[0](*inputs)`` starts the run and each ``fns[i]`` receives the previous
    one's outputs (a tuple is spread into positional arguments). Gives the
    :class:`Stats` of every callable and of the whole run (first to last mark).
    The time cap is ``max_time_s`` per callable (so ``len(fns) * max_time_s`` in all).

    ``on_iteration(k, converged, medians_ms)`` is called after each run with the
    stats of converged callables (``None`` for the others) and every callable's
    current median; ``on_converged(i,
    stats)`` once per callable when its interval first meets the target. On
    ``should_stop()`` or Ctrl-C, :class:`Cancelled` carries the converged stats.

    With ``reference`` (the unsplit model), ``reference(*inputs)`` is timed in
    the same loop: each iteration runs the sequence and the reference once, in
    alternating order, so both see the same machine (a load that changes during
    the measurement moves both, and the sum of the callables is compared with
    the reference under equal conditions); timing also waits for the
    reference's interval to meet the target. Returns (per callable, whole run,
    reference or None).
    """
    p = precision or Precision()
    dev = check_device(device)
    timer_clock = _Clock(dev, clock)
    n = len(fns)
    if n == 0:
        raise ValueError("no callables to time")
    inputs = tuple(inputs)
    samples: list[list[float]] = [[] for _ in range(n)]
    totals: list[float] = []
    converged: list[Stats | None] = [None] * n

    def one_run() -> list[float]:
        m = timer_clock.marks(n + 1)
        values = inputs
        timer_clock.mark(m, 0)
        for i, f in enumerate(fns):
            values = _as_tuple(f(*values))
            timer_clock.mark(m, i + 1)
        return timer_clock.seconds(m)

    ref_samples: list[float] = []

    def ref_run() -> float:
        m = timer_clock.marks(2)
        timer_clock.mark(m, 0)
        reference(*inputs)  # type: ignore[misc]
        timer_clock.mark(m, 1)
        return timer_clock.seconds(m)[0]

    try:
        with torch.inference_mode():
            t_start = time.perf_counter()
            k = 0
            while k < max(1, p.warmup_runs) or time.perf_counter() - t_start < p.warmup_s:
                _stop_check(should_stop)
                one_run()
                if reference is not None:
                    ref_run()
                k += 1
            t0 = time.perf_counter()
            cap = p.max_time_s * n
            stopped = "max_runs"
            for it in range(p.max_runs):
                _stop_check(should_stop)
                if reference is not None and it % 2:
                    ref_samples.append(ref_run())
                secs = one_run()
                if reference is not None and not it % 2:
                    ref_samples.append(ref_run())
                for i, s in enumerate(secs):
                    samples[i].append(s)
                totals.append(sum(secs))
                if it + 1 >= p.min_runs:
                    floor_ms = sum(statistics.median(s) for s in samples) * 1e3 / n
                    all_ok = True
                    for i in range(n):
                        med = statistics.median(samples[i]) * 1e3
                        ok = _ci_half_ms(samples[i]) <= p.target_ci * max(med, floor_ms)
                        if ok and converged[i] is None:
                            converged[i] = summarize(samples[i], 1, time.perf_counter() - t0, "ci")
                            if on_converged is not None:
                                on_converged(i, converged[i])
                        all_ok = all_ok and ok
                    if reference is not None:
                        all_ok = all_ok and _converged_rel(ref_samples, p.target_ci)
                    if all_ok:
                        stopped = "ci"
                        break
                    if time.perf_counter() - t0 >= cap:
                        stopped = "time"
                        break
                if on_iteration is not None:
                    on_iteration(it + 1, list(converged), [statistics.median(s) * 1e3 for s in samples])
            timed = time.perf_counter() - t0
    except KeyboardInterrupt:
        raise Cancelled(list(converged), keyboard=True) from None
    except Cancelled:
        raise Cancelled(list(converged)) from None
    per = [summarize(s, 1, timed, stopped if converged[i] is None else "ci") for i, s in enumerate(samples)]
    ref = summarize(ref_samples, 1, timed, stopped) if reference is not None else None
    return per, summarize(totals, 1, timed, stopped), ref


# ----------------------------------------------------------------------------- overhead


def _empty(*values: Any) -> tuple[Any, ...]:
    return values


class _Identity(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        return x


def _empty_block(n_inputs: int) -> Callable[..., Any]:
    """An empty block called the way real blocks are: a ``torch.fx.GraphModule`` (one input), else a function.

    A block of a chain is a GraphModule, and calling one costs the module
    machinery and its generated ``forward`` -- microseconds of CPU that a plain
    function does not pay. On a GPU at small batch sizes the device waits for
    those launches, so that cost shows up in every block's time (measured on an
    H100: resnet18's in-context sum was 13% over the full model; see
    ``docs/measure.md``).
    """
    if n_inputs == 1:
        return fx.symbolic_trace(_Identity())
    return _empty


def time_overhead(
    device: str | torch.device = "cpu",
    mode: str = "standalone",
    precision: Precision | None = None,
    inputs: Sequence[Any] | None = None,
    blocks: int = 8,
    *,
    clock: str = "wall",
) -> Stats:
    """Time an empty block the same way real blocks are timed in ``mode``.

    ``standalone``: :func:`time_callable` of an empty callable (without the
    inner loop, so each sample has the same clock-and-sync cost as one block).
    ``in-context``: ``blocks`` empty callables in one :func:`time_sequence`;
    the median over those callables. This is what timing adds per block.
    """
    p = precision or Precision()
    p = dataclasses.replace(p, min_sample_s=0.0, target_ci=max(p.target_ci, 0.05))
    dev = check_device(device)
    args = tuple(inputs) if inputs is not None else (torch.zeros(1, device=dev),)
    empty = _empty_block(len(args))
    if mode == "standalone":
        return time_callable(empty, args, dev, p, clock=clock)
    if mode == "in-context":
        per, _, _ = time_sequence([empty] * blocks, args, dev, p, clock=clock)
        best = sorted(per, key=lambda s: s.median_ms)[len(per) // 2]
        return best
    raise ValueError(f"mode {mode!r} is not standalone or in-context")


# ----------------------------------------------------------------------------- threads


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None``: all available cores); returns the count in force."""
    n = available_cores() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads {threads!r} must be >= 1")
    torch.set_num_threads(n)
    return torch.get_num_threads()
