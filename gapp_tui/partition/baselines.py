"""Baseline plans the optimum is compared with, each evaluated by the same Estimate.

- ``balanced``: equal-time balancing that ignores communication, as
  torchgpipe's ``balance_by_time`` and DeepSpeed's pipeline partitioner do —
  the min-max split of compute alone (each stage timed on its own device),
  then estimated with the real links;
- ``neurosurgeon``: Neurosurgeon's search for two devices — try every single
  cut and keep the one of least end-to-end latency (device prefix + transfer +
  server suffix);
- ``first_only`` / ``last_only``: everything on the first device (the output
  still travels the links) or everything offloaded to the last device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .costs import CostTable
from .estimate import estimate
from .link import Link
from .plan import Plan, chain_links
from .solver import optimal_boundaries

BASELINES = ("balanced", "neurosurgeon", "first_only", "last_only")


def balanced_boundaries(table: CostTable, devices: Sequence[str], allow_empty: bool = False) -> list[int]:
    """Min-max split of compute only (communication ignored)."""
    prefixes = [table.prefix_array(d) for d in devices]
    # communication ignored, but a cut that cannot be sent at all is still not taken
    free = np.where(np.asarray(table.cuttable, dtype=bool), 0.0, np.inf)
    zeros = [free.copy() for _ in devices[:-1]]
    b, _ = optimal_boundaries(prefixes, zeros, 0.0, objective="throughput", allow_empty=allow_empty or table.n < len(devices))
    return b


def neurosurgeon_boundaries(table: CostTable, devices: Sequence[str], link: Link) -> list[int]:
    """The single cut of least latency between two devices (every cut 0..n tried)."""
    if len(devices) != 2:
        raise ValueError("Neurosurgeon's search splits between exactly two devices")
    n = table.n
    p0, p1 = table.prefix_array(devices[0]), table.prefix_array(devices[1])
    t = link.latency + np.asarray(table.bytes_sent(devices[0])) / link.bandwidth + np.asarray(table.cut_tensors) * link.per_tensor
    t = np.where(np.asarray(table.cuttable, dtype=bool), t, np.inf)
    latency = p0 + t + (p1[n] - p1)
    return [0, int(np.argmin(latency)), n]


def baselines(
    table: CostTable,
    devices: Sequence[str],
    link: Link | Sequence[Link],
    *,
    communication: str = "overlapped",
    return_output: bool = False,
    memory: Mapping[str, float] | None = None,
    items: int = 1000,
) -> dict[str, Plan]:
    """Every baseline that applies to ``devices``, as Plans with their estimates attached."""
    table.check_devices(devices)
    links = chain_links(devices, link, return_output)
    n, k = table.n, len(devices)
    cuts: dict[str, list[int]] = {}
    if k > 1:
        cuts["balanced"] = balanced_boundaries(table, devices)
    if k == 2:
        cuts["neurosurgeon"] = neurosurgeon_boundaries(table, devices, links[0])
    if k > 1:
        cuts["first_only"] = [0] + [n] * k
        cuts["last_only"] = [0] * k + [n]
    out: dict[str, Plan] = {}
    for name, b in cuts.items():
        plan = Plan(
            list(devices), b, links, model=dict(table.model), granularity=table.granularity,
            communication=communication, return_output=return_output, objective=name, blocks=list(table.blocks),
        )
        plan.estimate = estimate(table, plan, items=items, memory=memory, check=False).to_dict()
        out[name] = plan
    return out
