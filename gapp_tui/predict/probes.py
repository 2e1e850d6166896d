"""The probe suite: the blocks ``gapp calibrate`` measures on a device to adapt a predictor to it.

What a device changes is the *relative* cost of kinds of work: depthwise
against dense convolutions, a GEMM with few rows against one with many,
attention, element-wise and memory-bound layers, small against large maps.
The pool spans that space with blocks drawn by the synthetic generator
(:mod:`gapp_tui.predict.synthetic`, every kind: convolutions dense, pointwise,
depthwise, grouped and patchifying at 1-224 px maps and 3-1024 channels;
fully connected layers as GEMV and GEMM; attention written out, fused and as
``nn.MultiheadAttention``; transformer layers; channel shuffles, channels-last
norms, concatenations, branches, SE gates, pools, norms and activations), from
seeds of their own (:data:`SEED0` onwards, disjoint from the synthetic
corpus's, so the base predictor never trained on them), kept only under a cost
bound so that one block runs in well under a second on a Pi 4-class CPU
(:data:`MAX_FLOPS`, :data:`MAX_PARAM_BYTES`, :data:`MAX_BYTES`).

* :func:`pool` -- the :data:`POOL_SIZE` probes, in a fixed order (the same on
  every machine: a probe is its seed);
* :func:`core` -- the first probes of every kind in turn (:data:`CORE_SIZE`):
  what is measured first, before the ensemble chooses;
* :class:`ProbeChain` -- the pool as something the measurement engine and the
  SSH runner measure like a model's chain, one standalone block per probe
  (rows under the model name :data:`MODEL_NAME`, block = probe index), with
  only the probes chosen for this round built and sent; the rest are
  placeholders that are never timed;
* :func:`graphs` -- every probe's BlockGraph (cached), which is how the
  dataset joins the rows with features.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import platformdirs
import torch
from torch import nn

from ..blocks import BlockChain
from ..features import FEATURE_SCHEMA_VERSION, BlockGraph, extract
from ..zoo import ModelSpec
from .synthetic import KINDS
from .synthetic import MODEL_NAME as SYN_MODEL
from .synthetic import sample

#: the model name probe rows are stored under (block = probe index)
MODEL_NAME = "gapp_tui.predict.probes:suite"
#: the first seed of the pool (the synthetic corpus uses 0-5499)
SEED0 = 1_000_000
POOL_SIZE = 320
CORE_SIZE = 40
#: cost bounds of a probe: FLOPs, weight bytes, bytes read and written (a Pi 4 runs the largest in ~0.1-0.3 s)
MAX_FLOPS = 4e8
MAX_PARAM_BYTES = 32e6
MAX_BYTES = 96e6
#: the kinds in the order a seed cycles through them (convolutions and chains of them most often)
CYCLE = ("conv", "chain", "linear", "attention", "pointwise", "conv", "transformer", "layout", "branches", "conv",
         "channels_last", "concat", "chain", "pointwise", "linear")
assert set(CYCLE) == set(KINDS)
#: the input of a probe chain's "model" (probes carry their own inputs; this only names the setting)
SUITE_SHAPE = (1,)


@dataclasses.dataclass(frozen=True)
class Probe:
    index: int
    seed: int
    kind: str
    description: str
    input_shape: tuple[int, ...]
    flops: float
    param_bytes: float
    bytes: float

    @property
    def name(self) -> str:
        return f"p{self.index} {self.description}"


def _cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("gapp")) / "probe_features.pt"


@functools.lru_cache(maxsize=1)
def _pool_and_graphs() -> tuple[tuple[Probe, ...], tuple[Any, ...]]:
    cache = _cache_path()
    key = f"{SEED0}|{POOL_SIZE}|{MAX_FLOPS}|{MAX_PARAM_BYTES}|{MAX_BYTES}|{','.join(CYCLE)}"
    try:
        doc = torch.load(cache, weights_only=True)
        if doc.get("key") == key and doc.get("schema_version") == FEATURE_SCHEMA_VERSION:
            probes = tuple(Probe(**{**p, "input_shape": tuple(p["input_shape"])}) for p in doc["probes"])
            return probes, tuple(BlockGraph.from_dict(g) for g in doc["graphs"])
    except Exception:  # noqa: BLE001  a missing, stale or broken cache is rebuilt
        pass
    probes: list[Probe] = []
    graphs: list[Any] = []
    j = 0
    while len(probes) < POOL_SIZE:
        seed = SEED0 + j
        kind = CYCLE[j % len(CYCLE)]
        j += 1
        g = _graph(seed, kind)
        t = g.totals_dict()
        moved = t["bytes_read"] + t["bytes_written"]
        if t["flops"] > MAX_FLOPS or t["param_bytes"] > MAX_PARAM_BYTES or moved > MAX_BYTES:
            continue
        sb = sample(seed, "meta", kind=kind)
        p = Probe(len(probes), seed, kind, sb.description, sb.input_shape, float(t["flops"]), float(t["param_bytes"]),
                  float(moved))
        g.block_name, g.block_index = p.name, p.index
        probes.append(p)
        graphs.append(g)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "schema_version": FEATURE_SCHEMA_VERSION,
                    "probes": [dataclasses.asdict(p) for p in probes], "graphs": [g.to_dict() for g in graphs]}, cache)
    except OSError:
        pass
    return tuple(probes), tuple(graphs)


def _graph(seed: int, kind: str) -> Any:
    sb = sample(seed, "meta", kind=kind)
    chain = BlockChain.from_spec(ModelSpec(SYN_MODEL, input_shape=sb.input_shape), 1, device="meta", model=sb.module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = extract(chain, warn=False)[0]
    g.model = MODEL_NAME
    return g


def pool() -> list[Probe]:
    """Every probe, in index order."""
    return list(_pool_and_graphs()[0])


def graphs() -> list[Any]:
    """Every probe's BlockGraph (``block_name`` = the probe's name), in index order."""
    return list(_pool_and_graphs()[1])


def core(size: int = CORE_SIZE) -> list[int]:
    """The first probes of each kind in turn (round robin over kinds in pool order): what is measured first."""
    by_kind: dict[str, list[int]] = {}
    for p in pool():
        by_kind.setdefault(p.kind, []).append(p.index)
    out: list[int] = []
    r = 0
    while len(out) < size and any(r < len(v) for v in by_kind.values()):
        for kind in KINDS:
            v = by_kind.get(kind, [])
            if r < len(v) and len(out) < size:
                out.append(v[r])
        r += 1
    return out


def signature() -> str:
    """The chain signature of the probe pool (rows of another pool never mix)."""
    doc = {"blocks": [[p.name, [f"seed{p.seed}", p.kind, list(p.input_shape)]] for p in pool()], "cuts": []}
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- measuring


@dataclasses.dataclass
class ProbeBlock:
    name: str
    module: nn.Module
    nodes: tuple[str, ...]


class ProbeChain:
    """The probe pool shaped like a BlockChain for :func:`gapp_tui.measure.engine.measure` and the SSH runner.

    Only the probes in ``selected`` are built (real weights) and given their
    input; every other block is an ``nn.Identity`` on a one-element tensor
    (so a bundle for the SSH runner carries only what this round measures).
    Measure it in ``standalone`` mode with ``MeasureConfig(blocks=selected,
    full=False)``: block ``i``'s row is probe ``i``.
    """

    granularity = "natural"
    cuts: list[Any] = []
    graph_module = None

    def __init__(self, selected: Iterable[int], device: str = "cpu") -> None:
        self.spec = ModelSpec(MODEL_NAME, input_shape=SUITE_SHAPE)
        self.selected = sorted({int(i) for i in selected})
        probes = pool()
        bad = [i for i in self.selected if not 0 <= i < len(probes)]
        if bad:
            raise ValueError(f"probe indices {bad} are outside the pool (0-{len(probes) - 1})")
        self.blocks: list[ProbeBlock] = []
        chosen = set(self.selected)
        for p in probes:
            module = sample(p.seed, device, kind=p.kind).module if p.index in chosen else nn.Identity()
            self.blocks.append(ProbeBlock(p.name, module.eval(), (f"seed{p.seed}", p.kind, list(p.input_shape))))
        self._probes = probes
        real = [b.module for b in self.blocks if not isinstance(b.module, nn.Identity)]
        self.model = nn.ModuleList(real) if real else None

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def signature(self) -> str:
        """The block partition's fingerprint, computed as a BlockChain's (names, nodes, cut shapes)."""
        return BlockChain.signature(self)  # type: ignore[arg-type]  # the same rule on the same fields

    def block_inputs(self, x: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Each selected probe's input (seeded by its seed), a one-element tensor for the others."""
        out = []
        chosen = set(self.selected)
        for p in self._probes:
            if p.index in chosen:
                gen = torch.Generator().manual_seed(p.seed)
                out.append((torch.randn(p.input_shape, generator=gen).to(device=x.device, dtype=x.dtype),))
            else:
                out.append((torch.zeros(1, device=x.device, dtype=x.dtype),))
        return out


def estimate_seconds(block_ms: Sequence[float], precision: Any, overhead_s: float = 0.03) -> list[float]:
    """Device seconds to measure blocks of these times standalone with ``precision`` (the timer's rules).

    Warm-up: ``warmup_runs`` calls and at least ``warmup_s``; then ``min_runs``
    samples of at least ``min_sample_s`` each, at most ``max_time_s`` in all
    (a stable block stops at ``min_runs``); plus a fixed cost per block.
    """
    out = []
    for t in block_ms:
        s = max(t, 0.0) / 1e3
        warm = max(precision.warmup_runs * s, precision.warmup_s)
        timed = min(precision.min_runs * max(s, precision.min_sample_s), precision.max_time_s)
        out.append(warm + timed + overhead_s)
    return out
