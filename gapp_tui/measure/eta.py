"""How long a measurement still takes, from the blocks already timed and the timer's own limits.

Plain Python (no torch, no UI): fed the engine's :class:`~gapp_tui.measure.record.Progress`
reports and a clock, :class:`Eta` answers "how much longer" for a progress bar.

The phases run in the engine's order (the modes asked for, then the full model
unless it was timed with the in-context runs). Each has its own rule, because
they spend time differently (``gapp_tui.measure.timer``):

``standalone``
    Blocks are timed one after the other: the mean time of the blocks timed so
    far (blocks taken from the store cost nothing and do not count) times the
    blocks left, each at most the timer's cap (``max_time_s`` plus warm-up).
``in-context``
    Every run times the whole chain; the phase ends when every block's
    interval is narrow enough, or at the latest after ``max_time_s`` per block
    or ``max_runs`` runs. How many blocks have settled says little about when
    the last will, so the estimate is that bound (an upper bound: ``bound``),
    the runs left at the pace of the runs so far (``Progress.runs``) when
    that is sooner than the time cap.
``full``
    The unsplit model alone, at most one cap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass
class Remaining:
    """Seconds left; ``bound`` when it is an upper bound (the run may well end sooner)."""

    seconds: float
    bound: bool = False


class Eta:
    """Remaining time of one measurement; call :meth:`update` with each progress report.

    ``precision`` is the run's :class:`~gapp_tui.measure.timer.Precision` (or its dict); ``full``
    whether the unsplit model is timed too.
    """

    def __init__(self, blocks: int, modes: Sequence[str], precision: Any, full: bool = True) -> None:
        p = precision.to_dict() if hasattr(precision, "to_dict") else dict(precision)
        self.blocks = max(1, int(blocks))
        self.modes = list(modes)
        self.full = full
        self.cap_s = float(p.get("max_time_s", 3.0))
        self.warmup_s = float(p.get("warmup_s", 0.05))
        self.max_runs = int(p.get("max_runs", 200))
        self.phase: str | None = None
        self.done_phases: list[str] = []
        self.phase_start = 0.0
        self.index = 0  # blocks finished in this phase
        self.block_start: float | None = None  # when the block now being timed started (standalone)
        self.timed: list[float] = []  # seconds of each standalone block actually timed
        self.runs = 0  # in-context runs timed so far
        self.run_s: float | None = None  # wall seconds per in-context run so far (warm-up and the full model included)

    def update(self, p: Any, now: float) -> None:
        """Take one progress report (``phase``, ``index``, ``total``, ``estimate_ms``, ``skipped``)."""
        if p.phase in ("prepare", "done", "overhead"):
            return
        if p.phase != self.phase:
            if self.phase is not None:
                self.done_phases.append(self.phase)
            self.phase, self.phase_start, self.index, self.block_start = p.phase, now, 0, None
        if p.phase == "standalone":
            if p.skipped:
                self.block_start = None
            elif p.estimate_ms is None:
                self.block_start = now  # a block starts
            elif self.block_start is not None:
                self.timed.append(now - self.block_start)
                self.block_start = None
        elif p.phase == "in-context":
            runs = getattr(p, "runs", 0) or 0
            if runs > 0:
                self.runs, self.run_s = runs, (now - self.phase_start) / runs
        self.index = p.index

    # ------------------------------------------------------------------ the estimate

    def _per_block(self) -> float:
        cap = self.cap_s + self.warmup_s
        return min(cap, sum(self.timed) / len(self.timed)) if self.timed else cap

    def _in_context_s(self) -> float:
        """The in-context phase's limit from its start: ``max_time_s`` per block, or ``max_runs`` runs at the pace
        of the runs so far (before any: the time cap alone)."""
        limit = self.cap_s * self.blocks
        if self.run_s:
            limit = min(limit, self.max_runs * self.run_s)
        return limit + self.warmup_s

    def remaining(self, now: float) -> Remaining | None:
        """Seconds left (None before anything is known)."""
        if self.phase is None:
            return None
        left, bound = 0.0, False
        if self.phase == "standalone":
            if not self.timed and self.index < self.blocks:
                return None  # nothing timed yet: no basis
            left += max(0, self.blocks - self.index) * self._per_block()
            if self.block_start is not None:
                left -= min(now - self.block_start, self._per_block())
        elif self.phase == "in-context":
            left += max(0.0, self._in_context_s() - (now - self.phase_start))
            bound = True
        elif self.phase == "full":
            left += max(0.0, self.cap_s + self.warmup_s - (now - self.phase_start))
            bound = True
        order = [m for m in self.modes]
        later = order[order.index(self.phase) + 1:] if self.phase in order else []
        for mode in later:
            if mode == "standalone":
                left += self.blocks * self._per_block()
            else:
                left += self._in_context_s()
                bound = True
        if self.full and "in-context" not in self.modes and self.phase != "full":
            left += self.cap_s + self.warmup_s
            bound = True
        return Remaining(max(0.0, left), bound)
