"""The estimate a run is compared with, re-made with the partition estimator.

A plan file carries its estimate but not the cost table it came from. What the
estimator needs from the table is each stage's compute time (in the plan's
estimate, or measured by the run) and the bytes and tensors crossing every
cut (from the model's real chain), so :func:`stage_estimate` rebuilds a table
of those and estimates the plan with its own links. Two uses:

* the plan's stage compute times: the estimate with the cut sizes of the
  chain the run really executes (``estimate``);
* the run's measured stage compute times: what the link and pipeline model
  predict once compute is known (``estimate_with_run_compute``) -- when the
  measured throughput matches this but not the plan's estimate, the block
  times were off, not the link model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..partition.costs import CostTable
from ..partition.estimate import estimate
from ..partition.plan import Plan
from .config import PlanView


def stage_estimate(view: PlanView, chain: Any, compute_s: Sequence[float],
                   cut_bytes: Mapping[int, float] | None = None) -> dict[str, Any]:
    """The partition estimate of ``view``'s plan with stage ``s`` computing ``compute_s[s]`` seconds.

    ``cut_bytes[c]`` replaces the bytes the chain says cross cut ``c`` (what an
    exported boundary really sends: int8 instead of float32).
    """
    plan = view.plan
    n = len(chain)
    devices = list(view.devices)
    times = {d: [0.0] * n for d in devices}
    for s, d in enumerate(devices):
        lo, hi = view.boundaries[s], view.boundaries[s + 1]
        if hi > lo:
            times[d][lo] = float(compute_s[s])  # the stage's time on its first block: only sums matter
    # an int8 device of the plan sends int8 (unless the caller gives the bytes really sent)
    table = CostTable.from_chain(chain, times, "measured", send_dtype=None if cut_bytes else plan.send_dtype())
    for c, nbytes in (cut_bytes or {}).items():
        table.cut_bytes[c] = float(nbytes)
    plan = Plan(
        list(plan.devices), list(plan.boundaries), list(plan.links), model=dict(table.model),
        granularity=table.granularity, hosts=dict(plan.hosts), communication=plan.communication,
        return_output=plan.return_output, objective=plan.objective, blocks=list(table.blocks),
        runtimes=dict(plan.runtimes),
    )
    return estimate(table, plan).to_dict()


def plan_stage_compute(est: Mapping[str, Any]) -> list[float] | None:
    """The per-stage compute times of a plan file's estimate (None when it has none)."""
    stages = est.get("stages") if est else None
    if not stages:
        return None
    try:
        values = [float(s["compute_s"]) for s in stages]
    except (KeyError, TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None
