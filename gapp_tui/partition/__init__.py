"""Partitioning a block chain across devices: cost table, links, plans, estimates, the solver.

Plain data and numpy only (no torch), so the TUI can re-estimate a plan on
every keystroke::

    from gapp_tui.partition import CostTable, Link, Plan, estimate, solve

    table = CostTable.from_chain(chain, {"pi": pi_times, "server": server_times})
    plan = solve(table, ["pi", "server"], Link.parse("100Mbit/s", "2ms"))
    est = estimate(table, plan.with_boundaries([0, 5, table.n]))
    print(est.period_s, est.bottleneck["name"])
"""

from .baselines import BASELINES, baselines
from .costs import SOURCES, CostTable
from .estimate import Estimate, StageEstimate, TransferEstimate, estimate
from .link import Link
from .plan import PLAN_VERSION, Plan, chain_links
from .solver import OBJECTIVES, optimal_boundaries, solve
from .times import cost_table

__all__ = [
    "BASELINES",
    "OBJECTIVES",
    "PLAN_VERSION",
    "SOURCES",
    "CostTable",
    "Estimate",
    "Link",
    "Plan",
    "StageEstimate",
    "TransferEstimate",
    "baselines",
    "chain_links",
    "cost_table",
    "estimate",
    "optimal_boundaries",
    "solve",
]
