"""BlockChain: a model captured as a graph (:mod:`gapp_tui.capture`) and cut into an ordered chain of blocks.

One concept: the block chain (tracing, the natural units, cuts, running the blocks).

Every block is a runnable ``torch.fx.GraphModule`` whose positional inputs are
exactly the tensors crossing the cut before it and whose outputs (always a
tuple) are exactly the tensors crossing the cut after it. A tensor that skips
over a block (a residual connection, DenseNet's concatenated features) crosses
every cut it spans and is passed through untouched, so running the blocks one
after another reproduces the model.

How operations are grouped into blocks (natural units, stages, single
operations, N balanced groups) is :mod:`gapp_tui.granularity`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree

from .capture import CaptureReport, NeedsRealValues, capture
from .errors import BadInput
from .granularity import GRANULARITIES, group_operations, parse_granularity, unit_map
from .shapes import COMPUTE_OPS as _COMPUTE_OPS
from .shapes import TensorInfo
from .zoo import ModelSpec

__all__ = ["GRANULARITIES", "Block", "BlockChain", "Cut", "TensorInfo", "parse_granularity", "trace_chain", "unit_map"]


# --------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class Cut:
    """The boundary before block ``index`` (cut 0 is the model's input, cut n its output)."""

    index: int
    tensors: tuple[TensorInfo, ...]

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tensors)

    @property
    def count(self) -> int:
        return sum(1 for t in self.tensors if t.is_tensor)


@dataclasses.dataclass
class Block:
    """One runnable piece of the chain."""

    index: int
    name: str
    module: fx.GraphModule
    nodes: tuple[str, ...]  # names of the original graph's nodes it computes
    params: int
    flops: int

    @property
    def op_count(self) -> int:
        return sum(1 for n in self.module.graph.nodes if n.op in _COMPUTE_OPS)

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        return self.module(*inputs)


# --------------------------------------------------------------------------- the chain


@dataclasses.dataclass
class BlockChain:
    """A model as an ordered chain of blocks, with the tensors crossing every cut."""

    spec: ModelSpec
    granularity: str
    graph_module: fx.GraphModule
    blocks: list[Block]
    cuts: list[Cut]  # len(blocks) + 1
    trace_seconds: float = 0.0
    model: nn.Module | None = None  # the unsplit model, for the composition check
    capture: CaptureReport | None = None  # which front end made the graph, and its leaves
    _output_args: Any = None

    # -------------------------------------------------------------- construction

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        granularity: str | int = "natural",
        device: str = "cpu",
        leaves: Iterable[str] = (),
        model: nn.Module | None = None,
    ) -> BlockChain:
        """Build the model (``device="meta"``: no memory), capture it and cut it into blocks.

        The front end is ``spec.capture`` (``auto``: torch.fx with automatic
        leaves, torch.export when fx cannot trace the model); ``leaves`` are
        module class names or paths torch.fx must not trace into. The chain's
        ``spec`` is ``spec`` with its input made explicit (:meth:`ModelSpec.resolved`)
        and its ``capture`` says how the graph was made.
        """
        gran = parse_granularity(granularity)
        t0 = time.perf_counter()
        built = model is None
        if model is None:
            model = spec.build(device)
        spec = spec.resolved(model)
        try:
            gm, report = capture(model, spec.shapes, spec.dtypes, spec.capture, leaves, label=spec.name)
        except NeedsRealValues:
            if not built:
                raise
            # code that reads values (a leaf with an `if` on a tensor) cannot run on meta tensors:
            # build the model for real, which the shape pass then runs once
            model = spec.build("cpu")
            gm, report = capture(model, spec.shapes, spec.dtypes, spec.capture, leaves, label=spec.name)
        chain = cls._split(spec, gran, gm, model)
        chain.trace_seconds = time.perf_counter() - t0
        chain.model = model
        chain.capture = report
        return chain

    @classmethod
    def _split(cls, spec: ModelSpec, gran: str | int, gm: fx.GraphModule, model: nn.Module) -> BlockChain:
        nodes = list(gm.graph.nodes)
        compute = [n for n in nodes if n.op in _COMPUTE_OPS]
        if not compute:
            raise BadInput(f"model {spec.name!r} has no operations to cut into blocks")
        groups = group_operations(model, compute, gran)
        return cls._assemble(spec, str(gran), gm, compute, groups)

    @classmethod
    def _assemble(
        cls,
        spec: ModelSpec,
        gran: str,
        gm: fx.GraphModule,
        compute: list[fx.Node],
        groups: list[tuple[str, int, int]],
    ) -> BlockChain:
        nodes = list(gm.graph.nodes)
        group_of: dict[fx.Node, int] = {}
        for g, (_, lo, hi) in enumerate(groups):
            for n in compute[lo:hi]:
                group_of[n] = g
        n_groups = len(groups)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        output_node = next(n for n in nodes if n.op == "output")
        # liveness: value v crosses cut k when it is defined before block k and used at or after it
        values = placeholders + compute
        order = {n: i for i, n in enumerate(values)}
        live: list[list[fx.Node]] = [[] for _ in range(n_groups + 1)]
        for v in values:
            d = group_of.get(v, -1)
            last = d if d >= 0 else 0  # every input enters the first block (one it does not use passes through)
            for u in v.users:
                if u.op == "output":
                    last = n_groups
                elif u in group_of:
                    last = max(last, group_of[u])
            for k in range(d + 1, last + 1):
                live[k].append(v)
        for k in range(n_groups + 1):
            live[k].sort(key=order.__getitem__)
        # cut n carries exactly the output's values, in the output's order
        out_vals: list[fx.Node] = []
        fx.node.map_arg(output_node.args[0], lambda a: out_vals.append(a) or a)
        live[n_groups] = list(dict.fromkeys(out_vals))

        blocks: list[Block] = []
        for g, (name, lo, hi) in enumerate(groups):
            sub = fx.Graph()
            env: dict[fx.Node, fx.Node] = {}
            for v in live[g]:
                env[v] = sub.placeholder(v.name)
                env[v].meta = dict(v.meta)
            for n in compute[lo:hi]:
                for a in n.all_input_nodes:
                    if a.op == "get_attr" and a not in env:
                        env[a] = sub.node_copy(a, env.__getitem__)
                env[n] = sub.node_copy(n, env.__getitem__)
            sub.output(tuple(env[v] for v in live[g + 1]))
            module = fx.GraphModule(gm, sub, f"Block{g}")
            params = sum(p.numel() for p in module.parameters())
            flops = sum(n.meta.get("flops", 0) for n in compute[lo:hi])
            blocks.append(Block(g, name, module, tuple(n.name for n in compute[lo:hi]), params, flops))
        cuts = [
            Cut(k, tuple(v.meta.get("gapp_value", TensorInfo(v.name, (), "?", 0)) for v in live[k]))
            for k in range(n_groups + 1)
        ]
        chain = cls(spec, gran, gm, blocks, cuts)
        # a torch.export graph returns its outputs flat; _out_spec rebuilds the model's structure
        chain._output_args = (output_node.args[0], live[n_groups], getattr(gm, "_out_spec", None))
        return chain

    # -------------------------------------------------------------- running

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def signature(self) -> str:
        """A short hash of the block partition (names, nodes, cut shapes): rows of another cutting never mix."""
        doc = {
            "blocks": [[b.name, list(b.nodes)] for b in self.blocks],
            "cuts": [[list(t.shape) for t in c.tensors] for c in self.cuts],
        }
        return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]

    def run(self, *inputs: Any, record: bool = False) -> Any:
        """Run the blocks in order; with ``record=True`` also return each block's inputs."""
        values: tuple[Any, ...] = tuple(inputs)
        recorded: list[tuple[Any, ...]] = []
        with torch.no_grad():
            for b in self.blocks:
                if record:
                    recorded.append(values)
                values = b.module(*values)
        out = self.rebuild_output(values)
        return (out, recorded) if record else out

    def rebuild_output(self, values: Sequence[Any]) -> Any:
        """The model's output structure from the tuple the last block returns."""
        structure, out_nodes, out_spec = self._output_args
        lookup = dict(zip(out_nodes, values))
        if out_spec is not None:
            flat = fx.node.map_arg(structure, lambda a: lookup[a])
            return pytree.tree_unflatten(list(flat), out_spec)
        return fx.node.map_arg(structure, lambda a: lookup[a]) if isinstance(structure, (tuple, list, dict)) else lookup[structure]

    def composition_error(self, x: torch.Tensor | Sequence[torch.Tensor] | None = None,
                          model: nn.Module | None = None) -> float:
        """Largest absolute difference between the chain's and the unsplit model's output.

        ``x``: the input, or a tuple of one tensor per input (default: the spec's example inputs).
        """
        if x is None:
            xs = self.spec.example_inputs(self._device(), float_dtype=self._float_dtype())
        else:
            xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        reference = model or self.model or self.graph_module
        with torch.no_grad():
            want = reference(*xs)
            got = self.run(*xs)
        return _max_abs_diff(want, got)

    def block_inputs(self, *xs: torch.Tensor) -> list[tuple[Any, ...]]:
        """The exact inputs each block receives when the chain runs on ``xs`` (one tensor per input)."""
        return self.run(*xs, record=True)[1]

    def _float_dtype(self) -> torch.dtype | None:
        return next((p.dtype for p in self.graph_module.parameters() if p.is_floating_point()), None)

    def _device(self) -> torch.device:
        for p in self.graph_module.parameters():
            return p.device
        for b in self.graph_module.buffers():
            return b.device
        return torch.device("cpu")

    # -------------------------------------------------------------- reporting

    def summary(self) -> list[dict[str, Any]]:
        """One dict per block: what ``gapp blocks --json`` prints."""
        rows = []
        for b in self.blocks:
            cut = self.cuts[b.index + 1]
            rows.append(
                {
                    "index": b.index,
                    "name": b.name,
                    "ops": b.op_count,
                    "params": b.params,
                    "flops": b.flops,
                    "in_bytes": self.cuts[b.index].bytes,
                    "out_bytes": cut.bytes,
                    "out_tensors": cut.count,
                    "out_shapes": [list(t.shape) for t in cut.tensors],
                }
            )
        return rows


def _max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference; a value that is NaN or infinite in both (a 1,000-layer random-init
    network overflows) counts as equal: the chain computed what the model computed."""
    if isinstance(a, torch.Tensor):
        if not a.numel():
            return 0.0
        a, b = a.float(), b.float()
        same = (a == b) | (a.isnan() & b.isnan())
        return float(torch.where(same, 0.0, (a - b).abs()).max())
    if isinstance(a, (tuple, list)):
        return max((_max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, dict):
        return max((_max_abs_diff(a[k], b[k]) for k in a), default=0.0)
    return 0.0 if a == b else math.inf


def trace_chain(
    name_or_spec: str | ModelSpec, granularity: str | int = "natural", device: str = "cpu", **spec_kwargs: Any
) -> BlockChain:
    """Convenience: ``trace_chain("resnet18")``."""
    spec = name_or_spec if isinstance(name_or_spec, ModelSpec) else ModelSpec(name_or_spec, **spec_kwargs)
    return BlockChain.from_spec(spec, granularity, device)

