"""What a pipeline run is told: the plan it executes and what each stage process receives.

:class:`PlanView` is the part of a partition Plan a run needs (model, granularity,
devices, hosts, boundaries, links, estimate), read through the partition area's
:class:`~gapp_tui.partition.plan.Plan` (its validation applies to files, dicts
and objects alike) and checked further for what a run needs.

:class:`StageConfig` (:mod:`.stage_loop`, re-exported here) is the whole of
what one stage process is told (it travels as one JSON argument, locally or
over SSH).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..partition.plan import Plan
from ..zoo import ModelSpec
from .stage_loop import StageConfig

__all__ = ["PlanView", "StageConfig", "plan_dict", "read_plan", "spec_from_dict", "spec_to_dict"]

_SPEC_FIELDS = ("name", "batch_size", "num_classes", "input_size", "input_shape", "input_dtype", "hf_config", "capture",
                "more_shapes", "more_dtypes")


@dataclasses.dataclass(frozen=True)
class PlanView:
    """The parts of a Plan that a pipeline run uses.

    Stage ``s`` runs blocks ``[boundaries[s], boundaries[s + 1])`` on
    ``devices[s]``; ``hosts[device]`` is ``"user@host:port"`` for a remote
    device or ``None`` for this machine.
    """

    spec: ModelSpec
    granularity: str
    devices: tuple[str, ...]
    hosts: Mapping[str, str | None]
    boundaries: tuple[int, ...]
    links: tuple[Any, ...] = ()
    estimate: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    plan: Plan | None = None
    source: str = ""

    @property
    def stages(self) -> int:
        return len(self.devices)

    def stage_blocks(self, s: int) -> tuple[int, int]:
        return self.boundaries[s], self.boundaries[s + 1]

    def host_of(self, s: int) -> str | None:
        return self.hosts.get(self.devices[s])


def spec_from_dict(doc: Mapping[str, Any]) -> ModelSpec:
    """A ModelSpec from the plan's ``model`` object (unknown keys are ignored)."""
    if not isinstance(doc, Mapping) or "name" not in doc:
        raise BadInput(f"plan model {doc!r} is not valid; give an object with name, batch_size, num_classes, input_size, input_shape")
    kwargs = {k: doc[k] for k in _SPEC_FIELDS if k in doc and doc[k] is not None}
    if "input_shape" in kwargs:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    if "more_shapes" in kwargs:
        kwargs["more_shapes"] = tuple(tuple(x) for x in kwargs["more_shapes"])
    if "more_dtypes" in kwargs:
        kwargs["more_dtypes"] = tuple(kwargs["more_dtypes"])
    return ModelSpec(**kwargs)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    return spec.to_dict()


def read_plan(source: str | Path | Mapping[str, Any] | Plan) -> PlanView:
    """A PlanView from a plan file, a plan dict or a partition :class:`Plan` (BadInput, one line, when unusable)."""
    if isinstance(source, (str, Path)):
        label = str(source)
        if not Path(source).is_file():
            raise BadInput(f"plan file {label!r} does not exist; give a file written by `gapp partition`")
        plan = Plan.load(source)
    else:
        label = "<plan>"
        plan = source if isinstance(source, Plan) else Plan.from_dict(dict(source))
    return dataclasses.replace(_from_dict(plan.to_dict(), label), plan=plan)


def _from_dict(doc: Mapping[str, Any], label: str) -> PlanView:
    if not isinstance(doc, Mapping):
        raise BadInput(f"plan {label} is not a JSON object; give a file written by `gapp partition`")
    missing = [k for k in ("model", "devices", "boundaries") if k not in doc]
    if missing:
        raise BadInput(f"plan {label} lacks {', '.join(missing)}; give a file written by `gapp partition`")
    spec = spec_from_dict(doc["model"])
    spec.require_one_input(f"running or exporting the plan {label}")  # stages are fed one input tensor
    devices = tuple(str(d) for d in doc["devices"])
    boundaries = tuple(doc["boundaries"])
    if not devices:
        raise BadInput(f"plan {label} has no devices; give at least one")
    if len(set(devices)) != len(devices):
        raise BadInput(f"plan {label} names a device twice ({', '.join(devices)}); give each device once")
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in boundaries):
        raise BadInput(f"plan boundaries {list(boundaries)} are not all integers; give 0 = b0 <= b1 <= ... <= bk = n")
    if len(boundaries) != len(devices) + 1:
        raise BadInput(
            f"plan boundaries {list(boundaries)} do not fit {len(devices)} devices; give {len(devices) + 1} cut points"
        )
    if boundaries[0] != 0 or any(a > b for a, b in zip(boundaries, boundaries[1:])):
        raise BadInput(f"plan boundaries {list(boundaries)} are out of order; give 0 = b0 <= b1 <= ... <= bk = n")
    hosts = {str(k): (str(v) if v else None) for k, v in (doc.get("hosts") or {}).items()}
    return PlanView(
        spec=spec,
        granularity=str(doc.get("granularity", "natural")),
        devices=devices,
        hosts={d: hosts.get(d) for d in devices},
        boundaries=boundaries,
        links=tuple(doc.get("links") or ()),
        estimate=dict(doc.get("estimate") or {}),
        plan=doc,
        source=label,
    )


def plan_dict(
    spec: ModelSpec,
    devices: Sequence[str],
    boundaries: Sequence[int],
    granularity: str = "natural",
    hosts: Mapping[str, str | None] | None = None,
    bandwidth_Bps: float = 125e6,
) -> dict[str, Any]:
    """A minimal plan document (links of ``bandwidth_Bps``, no estimate): for tests and hand-made plans."""
    links = [
        {"src": a, "dst": b, "bandwidth_Bps": bandwidth_Bps, "latency_s": 0.0, "per_tensor_s": 0.0}
        for a, b in zip(devices, devices[1:])
    ]
    return {
        "version": 1,
        "model": spec_to_dict(spec),
        "granularity": str(granularity),
        "devices": list(devices),
        "hosts": {d: (hosts or {}).get(d) for d in devices},
        "boundaries": list(boundaries),
        "links": links,
        "estimate": {},
    }
