"""The range of a plan's estimate when block times are intervals (predicted times carry one).

A predictor gives every block a time and a calibrated interval ``[low, high]``
(:mod:`gapp_tui.predict.interval`). A plan's period is the largest of its
stages' busy times and links' transfer times, and every one of those grows
with its blocks' times, so the period is monotone in every block time: the
plan's estimate with *every* block at its low end bounds the period from
below, every block at its high end from above (and the throughput, its
inverse, the other way round). Taking all blocks at one end at once assumes
their errors move together -- what they mostly do when they come from one
predictor for one device (a slow device is slow on all its blocks) -- so the
range is the conservative one; independent errors would partly cancel.
Links and measured columns (no interval) keep their times.

Plain Python on a CostTable and a Plan (no torch), like the rest of this package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import BadInput
from .costs import CostTable
from .estimate import Estimate, estimate
from .plan import Plan


def _with(table: CostTable, columns: Mapping[str, Sequence[float]]) -> CostTable:
    out = table
    for device, times in columns.items():
        out = out.with_times(device, [float(t) for t in times], table.sources[device])
    return out


def plan_range(table: CostTable, plan: Plan, low: Mapping[str, Sequence[float]],
               high: Mapping[str, Sequence[float]], *, items: int = 1000,
               memory: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The plan's estimate at the table's times and with every interval at its low and its high end.

    ``low[device]`` / ``high[device]``: per-block seconds (the table's unit) for the devices whose times
    are predicted with an interval; other devices keep their column. Returns
    ``{"estimate": Estimate, "best": Estimate, "worst": Estimate, "period_s": [best, mid, worst],
    "throughput_per_s": [worst, mid, best], "samples_per_s": [...], "latency_s": [best, mid, worst]}``.
    """
    for device, col in [*low.items(), *high.items()]:
        if device not in table.times:
            raise BadInput(f"interval for device {device!r}, which the cost table does not have"
                           f" (devices: {', '.join(table.devices)})")
        if len(col) != table.n:
            raise BadInput(f"interval for device {device!r} has {len(col)} block times; the table has {table.n} blocks")
    mid = estimate(table, plan, items=items, memory=memory)
    best = estimate(_with(table, low), plan, items=items, memory=memory)
    worst = estimate(_with(table, high), plan, items=items, memory=memory)
    return {"estimate": mid, "best": best, "worst": worst,
            "period_s": [best.period_s, mid.period_s, worst.period_s],
            "throughput_per_s": [worst.throughput, mid.throughput, best.throughput],
            "samples_per_s": [worst.samples_per_s, mid.samples_per_s, best.samples_per_s],
            "latency_s": [best.latency_s, mid.latency_s, worst.latency_s]}


def range_dict(r: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON part of :func:`plan_range`'s result (what ``gapp partition --json`` adds under ``range``)."""
    return {k: [float(v) for v in r[k]] for k in ("period_s", "throughput_per_s", "samples_per_s", "latency_s")} | {
        "bottleneck_best": r["best"].bottleneck, "bottleneck_worst": r["worst"].bottleneck,
        "assumes": "every predicted block at its interval's low (best) or high (worst) end at once"} | (
        {"level": float(r["level"]), "devices": list(r["devices"])} if "level" in r else {})


__all__ = ["Estimate", "plan_range", "range_dict"]
