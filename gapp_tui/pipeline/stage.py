"""One stage of a pipeline run built from the model: the blocks ``[lo, hi)`` of the chain, in eager PyTorch.

Run as ``python -m gapp_tui.pipeline.stage CONFIG_JSON`` (the launcher does
this, locally, inside a network namespace or over SSH). The process seeds
torch with ``seed`` and builds the model from the ModelSpec, so every stage
(and the launcher's reference model) gets identical random weights, keeps
only its own blocks, and runs the loop every stage runs
(:mod:`.stage_loop`: pinning, the gloo group, streaming, timings, events).
An exported stage (``gapp pipeline run --from-export``) runs the same loop
on its artifact instead (:func:`gapp_tui.pipeline.stage_loop.main`).

torch (and the chain, which needs it) is imported only after the stage has
pinned itself to its CPUs: the OpenMP runtime reads the affinity when it loads.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from typing import Any

from .config import spec_from_dict
from .stage_loop import StageConfig, Work, die, run_stage, set_priority

__all__ = ["build_stage_blocks", "chain_work", "die", "main", "set_priority", "weights_digest"]


def weights_digest(modules: Sequence[Any]) -> str:
    """SHA-1 of every parameter and buffer of ``modules``, in state-dict order."""
    h = hashlib.sha1()
    for m in modules:
        for name, t in m.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def build_stage_blocks(model: dict[str, Any], granularity: str, lo: int, hi: int, seed: int):
    """Seed, build the chain and return (spec, chain, blocks[lo:hi]); identical in every process."""
    import torch  # after pinning (see the module docstring)

    from ..blocks import BlockChain  # torch, after pinning

    spec = spec_from_dict(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        chain = BlockChain.from_spec(spec, granularity, device="cpu")
    return spec, chain, [b.module for b in chain.blocks[lo:hi]]


def _dtype(torch: Any, name: str) -> Any:
    return getattr(torch, str(name).split(".", 1)[-1])


def chain_work(cfg: StageConfig) -> Work:
    """The blocks of stage ``cfg.rank`` built from the model with the run's seed, as the loop's Work."""
    import torch  # after pinning

    lo, hi = cfg.boundaries[cfg.rank], cfg.boundaries[cfg.rank + 1]
    spec, chain, modules = build_stage_blocks(cfg.model, cfg.granularity, lo, hi, cfg.seed)
    n = len(chain)
    in_infos, out_infos, final = chain.cuts[lo].tensors, chain.cuts[hi].tensors, chain.cuts[n].tensors

    def compute(*values: Any) -> tuple[Any, ...]:
        for m in modules:
            values = m(*values)
        return tuple(values)

    inputs = None
    if cfg.rank == 0:
        inputs = [(spec.example_input("cpu", seed=cfg.input_seed + j),) for j in range(cfg.distinct_inputs)]
    return Work(
        compute=compute,
        receive=[(tuple(t.shape), _dtype(torch, t.dtype)) for t in in_infos],
        returned=[(tuple(t.shape), _dtype(torch, t.dtype)) for t in final],
        digest=weights_digest(modules),
        in_bytes=sum(t.bytes for t in in_infos),
        out_bytes=sum(t.bytes for t in out_infos),
        in_tensors=len(in_infos),
        out_tensors=len(out_infos),
        inputs=inputs,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m gapp_tui.pipeline.stage CONFIG_JSON\n")
        raise SystemExit(2)
    run_stage(StageConfig.from_json(args[0]), chain_work)


if __name__ == "__main__":
    main()
