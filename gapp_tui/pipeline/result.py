"""What a pipeline run measured, beside what its plan estimated: :class:`PipelineResult`.

The launcher (:mod:`.run`) fills it from stage 0's report: measured period,
throughput and latency, every stage's timings, the weights check (every stage
holds the weights the launcher built, or the exported artifact) and the
output check against the unsplit model -- the largest absolute difference
(within ``tolerance``), or for an export with int8 stages or cuts the least
cosine similarity (at least ``min_cosine``), as ``gapp export`` checks itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from .config import PlanView, spec_to_dict


@dataclasses.dataclass
class PipelineResult:
    """What a run measured, beside what the plan estimated."""

    plan: PlanView
    items: int
    warmup: int
    latency_items: int
    period_s: float
    throughput_per_s: float
    latency_stream_s: dict[str, float]
    latency_isolated_s: dict[str, float]
    stages: list[dict[str, Any]]
    output_max_abs_diff: float
    weights_match: bool
    estimate: dict[str, Any]
    wall_s: float
    master: str
    estimate_source: str = "none"  # given | recomputed | plan file | none
    estimate_with_run_compute: dict[str, Any] = dataclasses.field(default_factory=dict)
    tolerance: float = 1e-4
    #: an export with int8 stages or cuts is checked by the cosine of its output, as `gapp export` checked it
    min_cosine: float | None = None
    output_cosine: float | None = None
    export: str | None = None  # the export directory the stages ran (None: blocks built from the model)

    @property
    def output_ok(self) -> bool:
        if self.min_cosine is not None:
            return self.output_cosine is not None and self.output_cosine >= self.min_cosine
        return self.output_max_abs_diff <= self.tolerance

    def throughput_ratio(self) -> float | None:
        """measured / estimated throughput (None when the plan has no estimate)."""
        est = self.estimate.get("throughput_per_s")
        return self.throughput_per_s / est if est else None

    def to_dict(self) -> dict[str, Any]:
        ratio = self.throughput_ratio()
        return {
            "plan": self.plan.source,
            "model": spec_to_dict(self.plan.spec),
            "granularity": self.plan.granularity,
            "devices": list(self.plan.devices),
            "boundaries": list(self.plan.boundaries),
            "master": self.master,
            "items": self.items,
            "warmup": self.warmup,
            "latency_items": self.latency_items,
            "measured": {
                "period_s": self.period_s,
                "throughput_per_s": self.throughput_per_s,
                "latency_stream_s": self.latency_stream_s,
                "latency_isolated_s": self.latency_isolated_s,
            },
            "estimate": self.estimate,
            "estimate_source": self.estimate_source,
            "throughput_ratio": ratio,
            # the same link and pipeline model fed with the stage compute times this run measured
            "estimate_with_run_compute": self.estimate_with_run_compute,
            "throughput_ratio_run_compute": (
                self.throughput_per_s / self.estimate_with_run_compute["throughput_per_s"]
                if self.estimate_with_run_compute.get("throughput_per_s") else None
            ),
            "stages": self.stages,
            "check": {
                "output_max_abs_diff": self.output_max_abs_diff,
                "output_cosine": self.output_cosine,
                "output_ok": self.output_ok,
                "tolerance": None if self.min_cosine is not None else self.tolerance,
                "min_cosine": self.min_cosine,
                "weights_match": self.weights_match,
                "reference": "the unsplit model, eager PyTorch, float32",
            },
            "export": self.export,
            "wall_s": self.wall_s,
        }


def tensor_from(doc: Mapping[str, Any]) -> torch.Tensor:
    dtype = getattr(torch, doc["dtype"].split(".", 1)[1])
    return torch.tensor(doc["data"], dtype=dtype).reshape(doc["shape"])


def cosine(a: Any, b: Any) -> float:
    """The least cosine similarity over the output's tensors (1.0 for two zero tensors)."""
    if isinstance(a, torch.Tensor):
        x, y = a.detach().double().flatten(), b.detach().double().flatten()
        nx, ny = float(x.norm()), float(y.norm())
        if nx == 0 and ny == 0:
            return 1.0
        return float(x @ y) / (nx * ny) if nx and ny else 0.0
    if isinstance(a, (tuple, list)):
        return min((cosine(x, y) for x, y in zip(a, b)), default=1.0)
    if isinstance(a, dict):
        return min((cosine(a[key], b[key]) for key in a), default=1.0)
    return 1.0


def max_abs_diff(a: Any, b: Any) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, (tuple, list)):
        return max((max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, dict):
        return max((max_abs_diff(a[key], b[key]) for key in a), default=0.0)
    return 0.0 if a == b else math.inf


def normalise_estimate(est: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keep the estimate as given, and make sure period/throughput/latency have one spelling."""
    if not est:
        return {}
    doc = dict(est)
    period = doc.get("period_s") or doc.get("period")
    if period and "throughput_per_s" not in doc:
        doc["throughput_per_s"] = 1.0 / float(period)
    if period and "period_s" not in doc:
        doc["period_s"] = float(period)
    if "latency_s" not in doc and "latency" in doc:
        doc["latency_s"] = doc["latency"]
    return doc
