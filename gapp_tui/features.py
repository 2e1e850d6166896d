"""BlockGraph: hardware-independent features of one block, as a PyG ``Data``.

One node per operation of the block (plus one per tensor entering it), with

* the op kind, one-hot over a fixed vocabulary (:data:`OP_KINDS`; anything
  else is ``other`` and reported in :attr:`BlockGraph.unknown_ops`);
* module hyperparameters: channels, kernel, stride, padding, dilation, groups,
  features, attention width and heads;
* the first input's and the output's shape (up to 4 dims, batch first);
* FLOPs (``torch.utils.flop_counter`` on meta tensors), bytes read and
  written, parameter count;

data-flow edges (producer -> consumer; ``edge_attr`` = bytes carried), and
block-level totals in ``data.totals`` (shape ``[1, T]`` so batches stack).
Values are raw (counts, bytes, FLOPs); transforming them (log1p, scaling) is
the predictor's business. Everything comes from the shape pass of
:mod:`gapp_tui.blocks`, which runs on meta tensors: no real memory, no
arithmetic, so ``vit_h_14`` costs what ``resnet18`` does.

The schema (vocabulary and column order) is versioned by
:data:`FEATURE_SCHEMA_VERSION` and saved with every feature file and every
trained predictor.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import operator
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch_geometric.data import Data

from . import aten_ops, composite
from .blocks import BlockChain, TensorInfo
from .errors import BadInput
from .zoo import ModelSpec

FEATURE_SCHEMA_VERSION = 2

OP_KINDS: tuple[str, ...] = (
    "input",
    "conv1d", "conv2d", "conv3d", "conv_transpose",
    "linear", "matmul", "attention",
    "batchnorm", "layernorm", "groupnorm", "instancenorm", "localresponsenorm",
    "relu", "relu6", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh",
    "leaky_relu", "elu", "softmax",
    "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool",
    "add", "sub", "mul", "div", "neg", "clamp", "pow",
    "cat", "stack", "chunk", "split", "getitem", "pad", "roll", "interpolate",
    "flatten", "reshape", "permute", "transpose", "contiguous", "expand",
    "mean", "sum", "max", "dropout", "stochastic_depth", "size", "getattr", "zeros", "compare",
    "other",
)
_KIND_INDEX = {k: i for i, k in enumerate(OP_KINDS)}

NUMERIC_COLUMNS: tuple[str, ...] = (
    "in_channels", "out_channels", "kernel_h", "kernel_w", "stride_h", "stride_w",
    "padding_h", "padding_w", "dilation_h", "dilation_w", "groups",
    "in_features", "out_features", "embed_dim", "num_heads",
    "in_d0", "in_d1", "in_d2", "in_d3", "in_rank",
    "out_d0", "out_d1", "out_d2", "out_d3", "out_rank",
    "n_inputs", "flops", "bytes_read", "bytes_written", "params",
)
NODE_COLUMNS: tuple[str, ...] = tuple(f"op_{k}" for k in OP_KINDS) + NUMERIC_COLUMNS
_FLOPS, _READ, _WRITTEN = (NODE_COLUMNS.index(c) for c in ("flops", "bytes_read", "bytes_written"))
#: dtypes a block's features can describe, with their element size in bytes
FEATURE_DTYPES = {"float32": 4, "int8": 1}

TOTAL_COLUMNS: tuple[str, ...] = (
    "batch", "flops", "params", "param_bytes", "bytes_read", "bytes_written",
    "in_bytes", "out_bytes", "in_tensors", "out_tensors", "ops",
    "convs", "linears", "matmuls", "norms", "activations", "elementwise", "pools", "data_movement",
)

_GROUPS = {
    "convs": {"conv1d", "conv2d", "conv3d", "conv_transpose"},
    "linears": {"linear"},
    "matmuls": {"matmul", "attention"},
    "norms": {"batchnorm", "layernorm", "groupnorm", "instancenorm", "localresponsenorm"},
    "activations": {"relu", "relu6", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh",
                    "leaky_relu", "elu", "softmax"},
    "elementwise": {"add", "sub", "mul", "div", "neg", "clamp", "pow"},
    "pools": {"maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "mean", "sum", "max"},
    "data_movement": {"cat", "stack", "chunk", "split", "pad", "roll", "interpolate", "flatten", "reshape",
                      "permute", "transpose", "contiguous", "expand"},
}

# ----------------------------------------------------------------------------- op kinds

_MODULE_KINDS: tuple[tuple[type, str], ...] = (
    (nn.Conv1d, "conv1d"), (nn.Conv2d, "conv2d"), (nn.Conv3d, "conv3d"),
    (nn.modules.conv._ConvTransposeNd, "conv_transpose"),
    (nn.Linear, "linear"), (nn.MultiheadAttention, "attention"),
    (nn.modules.batchnorm._BatchNorm, "batchnorm"), (nn.LayerNorm, "layernorm"),
    (nn.GroupNorm, "groupnorm"), (nn.modules.instancenorm._InstanceNorm, "instancenorm"),
    (nn.LocalResponseNorm, "localresponsenorm"),
    (nn.ReLU6, "relu6"), (nn.ReLU, "relu"), (nn.GELU, "gelu"), (nn.SiLU, "silu"),
    (nn.Hardswish, "hardswish"), (nn.Hardsigmoid, "hardsigmoid"), (nn.Sigmoid, "sigmoid"),
    (nn.Tanh, "tanh"), (nn.LeakyReLU, "leaky_relu"), (nn.ELU, "elu"), (nn.Softmax, "softmax"),
    (nn.modules.pooling._MaxPoolNd, "maxpool"), (nn.modules.pooling._AvgPoolNd, "avgpool"),
    (nn.modules.pooling._AdaptiveAvgPoolNd, "adaptive_avgpool"),
    (nn.modules.pooling._AdaptiveMaxPoolNd, "adaptive_maxpool"),
    (nn.modules.dropout._DropoutNd, "dropout"), (nn.Flatten, "flatten"), (nn.Identity, "contiguous"),
)

_NAME_KINDS: dict[str, str] = {
    "conv1d": "conv1d", "conv2d": "conv2d", "conv3d": "conv3d", "linear": "linear",
    "matmul": "matmul", "bmm": "matmul", "mm": "matmul", "baddbmm": "matmul", "addmm": "matmul", "einsum": "matmul",
    "scaled_dot_product_attention": "attention", "shifted_window_attention": "attention",
    "shifted_window_attention_v2": "attention", "multi_head_attention_forward": "attention",
    "batch_norm": "batchnorm", "layer_norm": "layernorm", "group_norm": "groupnorm",
    "relu": "relu", "relu_": "relu", "relu6": "relu6", "gelu": "gelu", "silu": "silu", "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid", "sigmoid": "sigmoid", "tanh": "tanh", "leaky_relu": "leaky_relu", "elu": "elu",
    "softmax": "softmax", "log_softmax": "softmax",
    "max_pool2d": "maxpool", "avg_pool2d": "avgpool", "adaptive_avg_pool2d": "adaptive_avgpool",
    "adaptive_max_pool2d": "adaptive_maxpool",
    "add": "add", "iadd": "add", "radd": "add", "sub": "sub", "isub": "sub", "rsub": "sub",
    "mul": "mul", "imul": "mul", "rmul": "mul", "truediv": "div", "div": "div", "floordiv": "div",
    "neg": "neg", "clamp": "clamp", "clip": "clamp", "pow": "pow", "sqrt": "pow", "rsqrt": "pow",
    "cat": "cat", "concat": "cat", "stack": "stack", "chunk": "chunk", "split": "split", "unbind": "split",
    "getitem": "getitem", "pad": "pad", "roll": "roll", "interpolate": "interpolate",
    "flatten": "flatten", "reshape": "reshape", "view": "reshape", "unflatten": "reshape",
    "squeeze": "reshape", "unsqueeze": "reshape", "permute": "permute", "transpose": "transpose",
    "contiguous": "contiguous", "swapaxes": "transpose", "expand": "expand", "repeat": "expand", "expand_as": "expand",
    "mean": "mean", "sum": "sum", "amax": "max", "max": "max",
    "dropout": "dropout", "stochastic_depth": "stochastic_depth",
    "size": "size", "dim": "size", "getattr": "getattr", "zeros": "zeros", "zeros_like": "zeros",
    "patch_merging_pad": "pad", "patch_merging_pad_v2": "pad", "get_relative_position_bias": "getitem",
    "assert": "size", "eq": "compare", "ne": "compare", "lt": "compare", "gt": "compare", "le": "compare",
    "ge": "compare",
    # inside composite calls (gapp_tui.composite)
    "masked_fill": "clamp", "where": "clamp", "new_zeros": "zeros", "zero": "zeros", "clone": "contiguous",
    "exp": "pow", "normalize": "layernorm",
    **aten_ops.KINDS,  # ATen names and the operations of zoo models (only new names: schema 2 is unchanged)
}


def op_kind(node: fx.Node, root: nn.Module) -> tuple[str, str]:
    """(kind in the vocabulary, the raw op name) of one graph node."""
    if node.op == "placeholder":
        return "input", "input"
    if node.op == "call_module":
        mod = root.get_submodule(str(node.target))
        for cls, kind in _MODULE_KINDS:
            if isinstance(mod, cls):
                return kind, type(mod).__name__
        name = type(mod).__name__
        return _NAME_KINDS.get(name.lower(), "other"), name
    target = node.target
    if isinstance(target, torch._ops.OpOverload):  # an ATen op of a torch.export graph: aten.relu_.default
        name = target._opname
        return _NAME_KINDS.get(name) or _NAME_KINDS.get(name.strip("_"), "other"), name
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    name = name.strip("_") if name not in ("relu_",) else name
    if target is operator.getitem:
        name = "getitem"
    return _NAME_KINDS.get(name, "other"), name


# ----------------------------------------------------------------------------- the record


@dataclasses.dataclass
class BlockGraph:
    """Features of one block of one model (one ``torch_geometric.data.Data``)."""

    data: Data
    model: str
    input_shape: tuple[int, ...]
    block_name: str
    block_index: int
    unknown_ops: tuple[str, ...] = ()
    schema_version: int = FEATURE_SCHEMA_VERSION
    node_columns: tuple[str, ...] = NODE_COLUMNS
    total_columns: tuple[str, ...] = TOTAL_COLUMNS
    #: the dtype the block computes in: ``float32``, or ``int8`` for a quantized block (see :meth:`with_dtype`)
    dtype: str = "float32"

    def with_dtype(self, dtype: str) -> BlockGraph:
        """These features for a block computing in ``dtype`` (``float32`` or ``int8``).

        An int8 block reads and writes int8 activations and weights: every
        byte count inside it (nodes' bytes read and written, edges, the
        block's parameter bytes and bytes read and written) shrinks by the
        element size, 4 to 1. ``in_bytes``/``out_bytes`` stay: a block timed
        alone takes and returns float32 (its artifact quantizes inside). The
        columns and the schema are unchanged, so a predictor trained on int8
        rows reads int8 features and a float32 one is unaffected.
        """
        if dtype not in FEATURE_DTYPES:
            raise BadInput(f"feature dtype {dtype!r} is not supported; give one of {', '.join(FEATURE_DTYPES)}")
        ratio = FEATURE_DTYPES[dtype] / FEATURE_DTYPES[self.dtype]
        if ratio == 1:
            return self
        x = self.data.x.clone()
        for c in (_READ, _WRITTEN):
            x[:, c] *= ratio
        totals = self.data.totals.clone()
        for c in ("param_bytes", "bytes_read", "bytes_written"):
            totals[0, TOTAL_COLUMNS.index(c)] *= ratio
        data = Data(x=x, edge_index=self.data.edge_index, edge_attr=self.data.edge_attr * ratio, totals=totals,
                    op_kind=self.data.op_kind)
        return dataclasses.replace(self, data=data, dtype=dtype)

    def totals_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"model": self.model, "block": self.block_name, "index": self.block_index}
        row.update({c: float(v) for c, v in zip(self.total_columns, self.data.totals[0].tolist())})
        row["nodes"] = int(self.data.num_nodes)
        row["edges"] = int(self.data.edge_index.shape[1])
        return row

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors and strings only, so ``torch.load(weights_only=True)`` reads it back."""
        return {
            "x": self.data.x, "edge_index": self.data.edge_index, "edge_attr": self.data.edge_attr,
            "totals": self.data.totals, "op_kind": self.data.op_kind,
            "model": self.model, "input_shape": list(self.input_shape), "block_name": self.block_name,
            "block_index": self.block_index, "unknown_ops": list(self.unknown_ops),
            "schema_version": self.schema_version, "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockGraph:
        if d.get("schema_version") != FEATURE_SCHEMA_VERSION:
            raise BadInput(
                f"feature schema version {d.get('schema_version')!r} is not supported; this GAPP reads version"
                f" {FEATURE_SCHEMA_VERSION} (re-extract with `gapp features`)"
            )
        data = Data(x=d["x"], edge_index=d["edge_index"], edge_attr=d["edge_attr"], totals=d["totals"],
                    op_kind=d["op_kind"])
        return cls(data, d["model"], tuple(d["input_shape"]), d["block_name"], d["block_index"],
                   tuple(d["unknown_ops"]), dtype=str(d.get("dtype", "float32")))


# ----------------------------------------------------------------------------- extraction


def _value(node: fx.Node) -> TensorInfo | None:
    return node.meta.get("gapp_value")


def _dims(info: TensorInfo | None) -> list[float]:
    shape = list(info.shape) if info is not None and info.is_tensor else []
    padded = (shape + [0, 0, 0, 0])[:4] if len(shape) <= 4 else shape[:3] + [_prod(shape[3:])]
    return [float(d) for d in padded] + [float(len(shape))]


def _prod(xs: Sequence[int]) -> int:
    p = 1
    for x in xs:
        p *= x
    return p


def _pair(v: Any) -> tuple[float, float]:
    if isinstance(v, (tuple, list)):
        v = list(v) + [v[-1]] if len(v) == 1 else v
        return float(v[0]), float(v[1])
    if isinstance(v, str):  # padding="same"
        return -1.0, -1.0
    return float(v), float(v)


def _hyper(mod: nn.Module | None) -> dict[str, float]:
    h: dict[str, float] = {}
    if mod is None:
        return h
    if isinstance(mod, nn.modules.conv._ConvNd):
        h["in_channels"], h["out_channels"], h["groups"] = mod.in_channels, mod.out_channels, mod.groups
        h["kernel_h"], h["kernel_w"] = _pair(mod.kernel_size)
        h["stride_h"], h["stride_w"] = _pair(mod.stride)
        h["padding_h"], h["padding_w"] = _pair(mod.padding)
        h["dilation_h"], h["dilation_w"] = _pair(mod.dilation)
    elif isinstance(mod, nn.Linear):
        h["in_features"], h["out_features"] = mod.in_features, mod.out_features
    elif isinstance(mod, nn.MultiheadAttention):
        h["embed_dim"], h["num_heads"] = mod.embed_dim, mod.num_heads
    elif isinstance(mod, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        h["kernel_h"], h["kernel_w"] = _pair(mod.kernel_size)
        h["stride_h"], h["stride_w"] = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
        h["padding_h"], h["padding_w"] = _pair(mod.padding)
    elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
        h["in_channels"] = h["out_channels"] = mod.num_features
    elif isinstance(mod, nn.LayerNorm):
        h["in_features"] = h["out_features"] = float(_prod(mod.normalized_shape))
    return h


def _state_bytes(mod: nn.Module) -> tuple[int, int]:
    """(parameter count, bytes of parameters and buffers) of one module."""
    n = sum(p.numel() for p in mod.parameters())
    b = sum(p.numel() * p.element_size() for p in mod.parameters())
    b += sum(t.numel() * t.element_size() for t in mod.buffers())
    return n, b


def _row(kind: str, hyper: dict[str, float], in_info: TensorInfo | None, out_info: TensorInfo | None, n_inputs: int,
         flops: float, read: float, written: float, params: float) -> list[float]:
    numeric = dict.fromkeys(NUMERIC_COLUMNS, 0.0)
    numeric.update(hyper)
    numeric.update(zip(("in_d0", "in_d1", "in_d2", "in_d3", "in_rank"), _dims(in_info)))
    numeric.update(zip(("out_d0", "out_d1", "out_d2", "out_d3", "out_rank"), _dims(out_info)))
    numeric.update(n_inputs=float(n_inputs), flops=flops, bytes_read=float(read), bytes_written=float(written), params=float(params))
    onehot = [0.0] * len(OP_KINDS)
    onehot[_KIND_INDEX[kind]] = 1.0
    return onehot + [numeric[c] for c in NUMERIC_COLUMNS]


def block_graph(chain: BlockChain, index: int) -> BlockGraph:
    """Features of block ``index`` of ``chain`` (any device; meta is cheapest).

    A composite call (:mod:`gapp_tui.composite`: ``nn.MultiheadAttention``,
    torchvision's shifted-window attention) becomes the nodes of the torch
    calls it makes instead of one node.
    """
    block = chain.blocks[index]
    gm = block.module
    nodes = [n for n in gm.graph.nodes if n.op in ("placeholder", "call_module", "call_function", "call_method")]
    pos: dict[fx.Node, int] = {}  # fx node -> the row of the tensor it returns
    rows: list[list[float]] = []
    kinds: list[int] = []
    src: list[int] = []
    dst: list[int] = []
    eattr: list[list[float]] = []
    unknown: list[str] = []
    totals = dict.fromkeys(TOTAL_COLUMNS, 0.0)

    def add(kind: str, raw: str, row: list[float], counted: bool) -> int:
        if kind == "other":
            unknown.append(raw)
        rows.append(row)
        kinds.append(_KIND_INDEX[kind])
        if counted:
            totals["ops"] += 1
            totals["flops"] += row[_FLOPS]
            totals["bytes_read"] += row[_READ]
            totals["bytes_written"] += row[_WRITTEN]
            for group, members in _GROUPS.items():
                if kind in members:
                    totals[group] += 1
        return len(rows) - 1

    def edge(a: int, b: int, nbytes: float) -> None:
        src.append(a)
        dst.append(b)
        eattr.append([float(nbytes)])

    for n in nodes:
        sub = composite.expand(n, gm)
        if sub is not None:
            ops, last = sub
            outer = n.all_input_nodes
            first_row = len(rows)
            for op in ops:
                kind = _NAME_KINDS.get(op.name.strip("_"), "other")
                read = sum(t.bytes for t in op.inputs) + sum(t.bytes for t in op.params)
                params = sum(_prod(t.shape) for t in op.params)
                r = add(kind, op.name.strip("_"), _row(kind, op.hyper, op.inputs[0] if op.inputs else None, op.out,
                                                       len(op.inputs), float(op.flops), read, op.out.bytes, params), True)
                for (where, i), info in zip(op.sources, op.inputs):
                    if where == "op":
                        edge(first_row + i, r, info.bytes)
                    elif where == "arg" and outer[i] in pos:
                        edge(pos[outer[i]], r, info.bytes)
            pos[n] = first_row + last
            continue
        kind, raw = op_kind(n, gm)
        mod = gm.get_submodule(str(n.target)) if n.op == "call_module" else None
        tensor_inputs = [a for a in n.all_input_nodes if a.op != "get_attr"]
        attrs = [a for a in n.all_input_nodes if a.op == "get_attr"]
        in_info = _value(tensor_inputs[0]) if tensor_inputs else None
        out_info = _value(n)
        params, state_bytes = _state_bytes(mod) if mod is not None else (0, 0)
        for a in attrs:
            info = _value(a)
            if info is not None and info.is_tensor:
                params += _prod(info.shape)
                state_bytes += info.bytes
        read = state_bytes + sum((_value(a).bytes if _value(a) else 0) for a in tensor_inputs)
        written = out_info.bytes if out_info is not None else 0
        flops = float(n.meta.get("flops", 0))
        if n.op == "placeholder":
            # an input node stands for a tensor an earlier block computed: it does no
            # work here (its copied meta still carries the producer's FLOPs and bytes)
            read, written, flops = 0, 0, 0.0
        hyper = _hyper(mod) if mod is not None else aten_ops.call_hyper(n, kind) if n.op == "call_function" else {}
        r = add(kind, raw, _row(kind, hyper, in_info, out_info, len(tensor_inputs), flops, read, written, params),
                n.op != "placeholder")
        for a in n.all_input_nodes:
            if a in pos:
                info = _value(a)
                edge(pos[a], r, info.bytes if info else 0)
        pos[n] = r
    param_count = sum(p.numel() for p in gm.parameters())
    totals.update(
        batch=float(chain.spec.shape[0]), params=float(param_count),
        param_bytes=float(sum(p.numel() * p.element_size() for p in gm.parameters())),
        in_bytes=float(chain.cuts[index].bytes), out_bytes=float(chain.cuts[index + 1].bytes),
        in_tensors=float(chain.cuts[index].count), out_tensors=float(chain.cuts[index + 1].count),
    )
    data = Data(
        x=torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(NODE_COLUMNS)),
        edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, len(src)),
        edge_attr=torch.tensor(eattr, dtype=torch.float32).reshape(len(eattr), 1),
        totals=torch.tensor([[totals[c] for c in TOTAL_COLUMNS]], dtype=torch.float64).float(),
        op_kind=torch.tensor(kinds, dtype=torch.long),
    )
    return BlockGraph(data, chain.spec.name, tuple(chain.spec.shape), block.name, index, tuple(sorted(set(unknown))))


def extract(chain: BlockChain, warn: bool = True, dtype: str = "float32") -> list[BlockGraph]:
    """BlockGraphs of every block, in chain order.

    Operations outside the vocabulary become ``other``; with ``warn`` a single
    warning names them. ``dtype="int8"``: the features of the blocks quantized
    (:meth:`BlockGraph.with_dtype`).
    """
    graphs = [block_graph(chain, i).with_dtype(dtype) for i in range(len(chain))]
    unknown = sorted({u for g in graphs for u in g.unknown_ops})
    if warn and unknown:
        warnings.warn(
            f"{chain.spec.name}: operations outside the feature vocabulary counted as 'other': {', '.join(unknown)}",
            stacklevel=2,
        )
    return graphs


def extract_model(name: str, granularity: str | int = "natural", **spec_kwargs: Any) -> list[BlockGraph]:
    """Trace on meta tensors and extract: ``extract_model("resnet50")``."""
    chain = BlockChain.from_spec(ModelSpec(name, **spec_kwargs), granularity, device="meta")
    return extract(chain)


# ----------------------------------------------------------------------------- files


def save_features(graphs: Sequence[BlockGraph], chain: BlockChain, output_dir: Path) -> dict[str, Path]:
    """Write ``<model>.graphs.pt`` (all BlockGraphs), ``<model>.blocks.csv`` and ``<model>.features.json``."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".gapp-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"output directory {str(output_dir)!r} is not writable ({exc.strerror}); give a writable --output-dir") from None
    stem = chain.spec.name.replace(":", "_").replace("/", "_")
    schema = {"schema_version": FEATURE_SCHEMA_VERSION, "node_columns": list(NODE_COLUMNS),
              "total_columns": list(TOTAL_COLUMNS), "op_kinds": list(OP_KINDS)}
    pt = output_dir / f"{stem}.graphs.pt"
    torch.save({"schema": schema, "graphs": [g.to_dict() for g in graphs]}, pt)
    rows = [g.totals_dict() for g in graphs]
    csv_path = output_dir / f"{stem}.blocks.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    js = output_dir / f"{stem}.features.json"
    js.write_text(json.dumps({"model": chain.spec.name, "input_shape": list(chain.spec.shape),
                              **chain.spec.inputs_doc(), "granularity": chain.granularity, "schema": schema, "blocks": rows,
                              "unknown_ops": sorted({u for g in graphs for u in g.unknown_ops})}, indent=1))
    return {"graphs": pt, "csv": csv_path, "json": js}


def load_features(path: Path) -> list[BlockGraph]:
    """Read a ``.graphs.pt`` file written by :func:`save_features` (refuses another schema version)."""
    try:
        doc = torch.load(Path(path), weights_only=True)
    except Exception as exc:
        raise BadInput(f"feature file {str(path)!r} cannot be read ({type(exc).__name__}); give a .graphs.pt from `gapp features`") from None
    version = doc.get("schema", {}).get("schema_version")
    if version != FEATURE_SCHEMA_VERSION:
        raise BadInput(f"feature file {str(path)!r} has schema version {version!r}; this GAPP reads {FEATURE_SCHEMA_VERSION}")
    return [BlockGraph.from_dict(d) for d in doc["graphs"]]
