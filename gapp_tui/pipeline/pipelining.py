"""A bridge to ``torch.distributed.pipelining``: a GAPP plan as a ``split_spec`` and a runnable example.

For users who already run pipelines with PyTorch's own pipelining API:
:func:`split_spec` names, for every cut of the plan, the submodule of the
original model at which ``pipeline(model, mb_args, split_spec=...)`` must
split -- ``{"layer3.0": "BEGINNING"}`` when a submodule starts exactly at the
cut, else ``{"layer2.1": "END"}`` when one ends exactly there -- from the
module path every traced operation carries. :func:`export_pipelining` writes
``split_spec.json`` and ``pipelining_example.py`` (torch and torchvision
only: ``torchrun --nproc-per-node K pipelining_example.py`` runs the plan
with a GPipe schedule over gloo), after checking the split here: PyTorch's
``pipeline`` must produce one stage per device, each holding exactly the
parameters of the plan's stage, and the pipe must reproduce the model.

A cut inside a module that is neither the start nor the end of a submodule
(possible at ``op`` granularity) cannot be named in a ``split_spec``; such a
plan, or one with an empty stage (pipelining has none), is refused with
BadInput naming the cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.distributed.pipelining import SplitPoint, pipeline

from ..blocks import _COMPUTE_OPS
from ..errors import BadInput
from .config import read_plan, spec_to_dict
from .export import build_chain

SCHEDULES = ("GPipe", "1F1B")


def _module_spans(chain: Any) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Every submodule path -> (index of its first, its last compute node); node name -> its index."""
    nodes = [n for n in chain.graph_module.graph.nodes if n.op in _COMPUTE_OPS]
    index = {n.name: i for i, n in enumerate(nodes)}
    spans: dict[str, tuple[int, int]] = {}
    for i, n in enumerate(nodes):
        paths = [v[0] for v in (n.meta.get("nn_module_stack") or {}).values()]
        if n.op == "call_module":
            paths.append(str(n.target))
        for p in paths:
            if p:
                lo, _ = spans.get(p, (i, i))
                spans[p] = (lo, i)
    return spans, index


def split_spec(chain: Any, boundaries: Sequence[int]) -> dict[str, str]:
    """``{module path: "BEGINNING" | "END"}`` splitting the model where the plan cuts it (BadInput if impossible)."""
    spans, index = _module_spans(chain)
    n = len(chain)
    spec: dict[str, str] = {}
    for s, c in enumerate(boundaries[1:-1], start=1):
        if not 0 < c < n or c == boundaries[s - 1]:
            raise BadInput(f"plan boundaries {list(boundaries)} have an empty stage; torch.distributed.pipelining"
                           " needs every stage to hold blocks")
        start = index[chain.blocks[c].nodes[0]]
        end = index[chain.blocks[c - 1].nodes[-1]]
        # the outermost submodule that starts exactly at the cut (or ends exactly before it) and stays on its side
        begins = [p for p, (lo, hi) in spans.items() if lo == start]
        ends = [p for p, (lo, hi) in spans.items() if hi == end]
        if begins:
            spec[min(begins, key=lambda p: (p.count("."), p))] = "BEGINNING"
        elif ends:
            spec[min(ends, key=lambda p: (p.count("."), p))] = "END"
        else:
            raise BadInput(
                f"cut {c} (before block {chain.blocks[c].name!r}) is not at the start or end of any submodule, so"
                " torch.distributed.pipelining cannot split there; move the cut or use --granularity natural"
            )
    return spec


def check_split(chain: Any, boundaries: Sequence[int], spec: dict[str, str], microbatch: torch.Tensor) -> dict[str, Any]:
    """Build PyTorch's pipe with ``spec`` and compare it with the plan: stages, parameters per stage, output."""
    model = chain.model
    pipe = pipeline(model, mb_args=(microbatch,), split_spec={p: getattr(SplitPoint, w) for p, w in spec.items()})
    k = len(boundaries) - 1
    want = [sum(b.params for b in chain.blocks[boundaries[s]:boundaries[s + 1]]) for s in range(k)]
    got = [sum(p.numel() for p in pipe.get_stage_module(s).parameters()) for s in range(pipe.num_stages)]
    with torch.no_grad():
        out = pipe(microbatch)
        ref = model(microbatch)
    out = out[0] if isinstance(out, (tuple, list)) else out
    diff = float((out - ref).abs().max())
    ok = pipe.num_stages == k and got == want and diff <= 1e-4
    return {"stages": pipe.num_stages, "params_per_stage": got, "plan_params_per_stage": want,
            "max_abs_diff": diff, "ok": ok}


def export_pipelining(plan: Any, directory: str | Path, *, seed: int = 0, microbatches: int = 4,
                      schedule: str = "GPipe", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write ``split_spec.json`` and ``pipelining_example.py`` for ``plan`` into ``directory``; returns the document."""
    say = progress or (lambda s: None)
    if schedule not in SCHEDULES:
        raise BadInput(f"schedule {schedule!r} is not offered; give one of {', '.join(SCHEDULES)}")
    if microbatches < 1:
        raise BadInput(f"microbatches {microbatches} must be at least 1")
    view = read_plan(plan)
    if len(view.devices) < 2:
        raise BadInput("a plan with one device has no split; torch.distributed.pipelining needs two or more stages")
    say("building the model")
    chain = build_chain(view, seed)
    spec = split_spec(chain, view.boundaries)
    say("checking the split with torch.distributed.pipelining.pipeline")
    check = check_split(chain, view.boundaries, spec, view.spec.example_input("cpu", seed=seed))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "model": spec_to_dict(view.spec),
        "granularity": view.granularity,
        "seed": seed,
        "devices": list(view.devices),
        "boundaries": list(view.boundaries),
        "split_spec": spec,
        "schedule": schedule,
        "microbatches": microbatches,
        "microbatch_shape": list(view.spec.shape),
        "check": check,
    }
    (out / "split_spec.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "pipelining_example.py").write_text(EXAMPLE)
    doc["files"] = [str(out / "split_spec.json"), str(out / "pipelining_example.py")]
    return doc


EXAMPLE = '''"""Run a GAPP plan with torch.distributed.pipelining (written by `gapp export --format pipelining`).

    torchrun --nproc-per-node K pipelining_example.py      # K = the number of stages in split_spec.json

Each rank builds the model with the plan's seed (random weights, identical on
every rank; load your own weights in build_model), lets pipeline() split it
at the points GAPP chose, and runs its stage under the schedule; the last
rank compares the pipeline's output with the unsplit model. Needs torch (and
torchvision for a torchvision model); not GAPP.
"""

import importlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe, SplitPoint, pipeline  # noqa: F401

PLAN = json.loads((Path(__file__).resolve().parent / "split_spec.json").read_text())


def build_model() -> torch.nn.Module:
    m = PLAN["model"]
    if ":" in m["name"]:  # package.module:callable
        module, _, attr = m["name"].partition(":")
        return getattr(importlib.import_module(module), attr)().eval()
    import torchvision

    kwargs = {"weights": None, "num_classes": m["num_classes"]}
    if m["name"] in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=False, init_weights=True)
    if m["name"].startswith("vit") and m.get("input_size"):
        kwargs["image_size"] = m["input_size"]
    return torchvision.models.get_model(m["name"], **kwargs).eval()


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(PLAN["seed"])
    model = build_model()
    shape = PLAN["microbatch_shape"]
    k = PLAN["microbatches"]
    mb = torch.randn(shape)
    split = {path: getattr(SplitPoint, where) for path, where in PLAN["split_spec"].items()}
    pipe = pipeline(model, mb_args=(mb,), split_spec=split)
    assert pipe.num_stages == world, f"split_spec.json has {pipe.num_stages} stages; run with --nproc-per-node {pipe.num_stages}"
    stage = pipe.build_stage(rank, torch.device("cpu"))
    schedule = {"GPipe": ScheduleGPipe, "1F1B": Schedule1F1B}[PLAN["schedule"]](stage, n_microbatches=k)
    x = torch.randn([shape[0] * k, *shape[1:]], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        if rank == 0:
            schedule.step(x)
        else:
            out = schedule.step()
        if rank == world - 1:
            out = out[0] if isinstance(out, (tuple, list)) else out
            diff = float((out - model(x)).abs().max())
            print(f"rank {rank}: output {tuple(out.shape)}, max |pipeline - model| = {diff:.2e}", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''
