"""The record of one measurement run: its rows, what was skipped, the sums against the full model.

Local measurement (:mod:`.engine`) and remote measurement (:mod:`.remote_engine`)
time blocks in different places but keep their results the same way, through
one :class:`RunRecord`:

* every row is a plain dict with the fields of :data:`gapp_tui.store.ROW_FIELDS`,
  built by :func:`make_row` from :class:`~gapp_tui.measure.timer.Stats` (or its
  dict), and written to the store the moment it exists (Ctrl-C keeps it);
* :meth:`RunRecord.done` says which blocks the store already holds for this
  device, model, setting and block partition (they are skipped unless forced);
* the store's run record is opened and closed with a summary (sums of block
  medians, the full model, the gap in percent: :func:`compare`);
* :meth:`RunRecord.result` is the :class:`MeasureResult` both return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..store import Store, now_iso
from .timer import Stats


@dataclasses.dataclass
class Progress:
    """One progress report: what the TUI's bar and the CLI's bar show.

    ``phase`` is ``prepare``, ``compile`` (under a runtime other than eager:
    block ``index`` of ``total`` is being compiled to its artifact),
    ``standalone``, ``in-context``, ``full``, ``overhead`` or ``done``; ``index`` blocks of ``total`` are finished in this
    phase; ``name`` is the block being measured next (or just finished);
    ``estimate_ms`` the time of the block just finished (in context: the
    current median of the whole chain); ``sum_ms`` the running sum of finished
    blocks; ``skipped`` is true for a block taken from the store; ``runs`` (in
    context) the end-to-end runs timed so far, for an estimate of the time left.
    """

    phase: str
    index: int
    total: int
    name: str = ""
    estimate_ms: float | None = None
    sum_ms: float = 0.0
    skipped: bool = False
    runs: int = 0

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


class RunRecord:
    """The bookkeeping of one run (see the module docstring); ``desc`` is the device's description."""

    def __init__(self, names: Sequence[str], cfg: Any, ctx: RowContext, store: Store | None,
                 desc: dict[str, Any] | None = None) -> None:
        self.names = list(names)
        self.cfg, self.ctx, self.store = cfg, ctx, store
        self.desc: dict[str, Any] = dict(desc or {})
        self.rows: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in cfg.modes}
        self.full: dict[str, Any] | None = None
        self.overhead: dict[str, dict[str, Any]] = {}
        self.chain_ms: dict[str, float] = {}
        self.measured = 0
        self.skipped = 0
        self.interrupted: str | None = None
        self.desc_after: dict[str, Any] | None = None

    @property
    def all_modes(self) -> list[str]:
        """The block modes asked for, and ``full`` when the unsplit model is timed too."""
        return list(self.cfg.modes) + (["full"] if self.cfg.full else [])

    def open(self, command: str | None) -> None:
        """Record the device and open the store's run record (no-op without a store)."""
        if self.store is not None:
            self.store.add_device(self.desc)
            c = self.ctx
            c.run_id = self.store.start_run(c.device_key, c.model, c.setting, self.all_modes, command)

    def close(self, status: str) -> None:
        """Close the store's run record (``done``, ``interrupted``, ``failed``) with the summary."""
        if self.store is not None and self.ctx.run_id is not None:
            self.store.finish_run(self.ctx.run_id, status, self.summary())

    def done(self, mode: str) -> set[int]:
        """Blocks (``-1``: the full model) the store already holds for this key; empty when forced."""
        if self.store is None or self.cfg.force:
            return set()
        c = self.ctx
        return self.store.measured_blocks(c.device_key, c.model, c.setting, mode, c.chain_sig)

    def excluded(self) -> set[int]:
        """Blocks this run leaves alone (``MeasureConfig.blocks``): neither timed nor reported."""
        chosen = getattr(self.cfg, "blocks", None)
        return set() if chosen is None else set(range(len(self.names))) - set(chosen)

    def keep(self, row: dict[str, Any], counted: bool = True) -> None:
        """Store a row now and keep it; ``counted=False`` for a row that replaces one already counted."""
        if self.store is not None:
            self.store.add_row(row, self.ctx.run_id)
        if row["mode"] == "full":
            self.full = row
        else:
            self.rows[row["mode"]][row["block"]] = row
        if counted:
            self.measured += 1

    def keep_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store several rows in one transaction and count them."""
        if self.store is not None:
            self.store.add_rows(rows, self.ctx.run_id)
        for r in rows:
            self.rows[r["mode"]][r["block"]] = r
        self.measured += len(rows)

    # ---------------------------------------------------------------- result

    def block_rows(self) -> dict[str, list[dict[str, Any]]]:
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

    def full_row(self) -> dict[str, Any] | None:
        if self.full is not None or self.store is None:
            return self.full
        c = self.ctx
        rows = self.store.rows(model=c.model, device=c.device_key, setting=c.setting, mode="full")
        return rows[0] if rows else None

    def summary(self) -> dict[str, Any]:
        rows = self.block_rows()
        full = self.full_row()
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
        rows = self.block_rows()
        summary = self.summary()
        c = self.ctx
        return MeasureResult(
            model=c.model, model_label=c.model_label, setting=c.setting,
            setting_parts={**{k: getattr(c, k) for k in ("batch_size", "input_shape", "dtype", "threads", "granularity",
                                                         "num_classes", "device_type")}, "clock": self.cfg.clock,
                           "runtime": self.cfg.runtime, "quantize": self.cfg.quantize},
            device=self.desc, device_after=self.desc_after, chain_sig=c.chain_sig, blocks=self.names, rows=rows,
            full=self.full_row(), overhead=self.overhead, sums=summary["sums"], chain_ms=self.chain_ms,
            precision=self.cfg.precision.to_dict(), measured=self.measured, skipped=self.skipped,
            interrupted=self.interrupted, run_id=c.run_id, db=str(self.store.path) if self.store is not None else None,
        )
