"""NAS-Bench-201 networks as torch modules, their BlockGraphs, and the measured latencies.

One concept: the NAS-Bench-201 benchmark (its cells, networks, data and protocol).

The data (``nb201_latency.csv``, see ``shared/data/README.md``) holds the
latency of all 15,625 NAS-Bench-201 "TinyNetwork"s (C=16, N=5, CIFAR input
1x3x32x32, 10 classes) on 27 device settings, a Raspberry Pi 4 among them.

What the deployment runtime actually ran
----------------------------------------
A cell is a DAG on nodes 0..3 (node 0 the cell input, node 3 its output);
node j is the sum of ``op~i`` applied to node i. The measured latencies tell
which computation the runtime kept (checked on the data: archs whose *kept*
graph is identical have latencies within about 5% of each other under this
rule, and 37% under plain reachability pruning):

* ``none`` edges are dropped;
* an operation is kept when its result reaches node 3 (dead-code
  elimination); an operation whose *input* is a node fed only by ``none``
  edges still runs, on zeros (``conv(0)`` is not folded);
* when node 3 itself receives only ``none`` edges the cell's output is a
  constant, so is the network's, and the runtime folded the whole network:
  these ~280 archs were measured at 0.01-2 ms. They are built as a network
  that returns zeros.

:class:`Cell` builds exactly that graph, so the feature extractor sees what
ran. Cells with the same kept graph share their features (cached by
:func:`cell_key`).

Whole network = sum of block predictions
----------------------------------------
The network is a chain of natural blocks: stem, 5 cells at 16 channels
(32x32), a reduction, 5 cells at 32 (16x16), a reduction, 5 cells at 64
(8x8), and the head. The predictor predicts each block's time and the
network's time is the sum; it is trained on the network latency (the loss is
on the log of the sum). That is the form GAPP needs anyway (per-block times
to place cuts), the 15 cells share one prediction per width, and the
additive structure matches how a CPU runtime spends time (one kernel after
another), which is why it generalises from 900 networks.
"""

from __future__ import annotations

import csv
import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import torch
from torch import nn

from ..blocks import BlockChain
from ..errors import BadInput, closest
from ..features import _GROUPS, FEATURE_SCHEMA_VERSION, OP_KINDS, BlockGraph, extract
from ..zoo import ModelSpec

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: HELP's meta-test devices (few-shot targets)
META_TEST_DEVICES = ("raspi4", "gold_6226", "pixel2", "eyeriss", "fpga", "titan_rtx_256")
DEFAULT_CSV_CANDIDATES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nb201_latency.csv",
    Path("/work/shared/data/nb201_latency.csv"),
)
C, N, NUM_CLASSES, INPUT_SHAPE = 16, 5, 10, (1, 3, 32, 32)
#: (channels, spatial size) of the three cell stages
STAGES = ((16, 32), (32, 16), (64, 8))

Edge = tuple[int, int, str]  # (from node, to node, op)


# ----------------------------------------------------------------------------- architectures


def parse_arch(arch: str) -> list[Edge]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> [(0, 1, op), (0, 2, op), (1, 2, op), ...]."""
    edges: list[Edge] = []
    groups = arch.strip().strip("|").split("|+|")
    if len(groups) != 3:
        raise BadInput(f"NAS-Bench-201 arch {arch!r} is malformed; expected 3 '+'-separated node groups")
    for j, group in enumerate(groups, start=1):
        for tok in group.strip("|").split("|"):
            op, _, src = tok.partition("~")
            if op not in OPS or not src.isdigit() or int(src) >= j:
                raise BadInput(f"NAS-Bench-201 arch {arch!r}: bad edge {tok!r} (ops: {', '.join(OPS)})")
            edges.append((int(src), j, op))
    return edges


def is_constant(edges: Sequence[Edge]) -> bool:
    """True when node 3 receives only ``none`` edges: the network's output is a constant."""
    return not any(j == 3 and op != "none" for _, j, op in edges)


def kept_edges(edges: Sequence[Edge]) -> list[Edge]:
    """The operations the runtime ran: not ``none``, and their result reaches node 3."""
    real = [e for e in edges if e[2] != "none"]
    reaches = {3}
    for node in (2, 1, 0):
        if any(i == node and j in reaches for i, j, _ in real):
            reaches.add(node)
    return sorted(e for e in real if e[1] in reaches)


def cell_key(arch: str) -> str:
    """Canonical text of the kept graph (``const`` for a constant network); equal keys, equal features."""
    edges = parse_arch(arch)
    if is_constant(edges):
        return "const"
    return "|".join(f"{i}-{j}:{op}" for i, j, op in kept_edges(edges))


# ----------------------------------------------------------------------------- modules


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def _op(name: str, c: int) -> nn.Module:
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity()
    raise ValueError(name)


class Cell(nn.Module):
    """One NAS-Bench-201 cell holding only the operations the runtime kept (see the module doc)."""

    def __init__(self, arch: str, c: int) -> None:
        super().__init__()
        edges = parse_arch(arch)
        self.edges = [] if is_constant(edges) else kept_edges(edges)
        self.ops = nn.ModuleDict({f"e{i}{j}": _op(op, c) for i, j, op in self.edges})
        self.constant = is_constant(edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.constant:
            return torch.zeros_like(x)
        nodes: dict[int, torch.Tensor] = {0: x}
        for j in (1, 2, 3):
            terms = []
            for i, jj, _ in self.edges:
                if jj == j:
                    src = nodes.get(i)
                    if src is None:  # a node fed only by `none` edges: zeros, and its ops still run
                        src = nodes[i] = torch.zeros_like(x)
                    terms.append(self.ops[f"e{i}{j}"](src))
            if terms:
                total = terms[0]
                for t in terms[1:]:
                    total = total + t
                nodes[j] = total
        return nodes[3]


class ResidualReduction(nn.Module):
    """The reduction block between stages: ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN, plus AvgPool+Conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class Head(nn.Module):
    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.lastact(x)), 1))


class ConstantNetwork(nn.Module):
    """A network whose output does not depend on its input: the runtime folded it to a constant."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class TinyNetwork(nn.Module):
    """NAS-Bench-201's TinyNetwork (C=16, N=5) for one cell architecture, as deployed."""

    def __init__(self, arch: str, c: int = C, n: int = N, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        cells: list[nn.Module] = []
        widths = (c, 2 * c, 4 * c)
        for s, w in enumerate(widths):
            if s > 0:
                cells.append(ResidualReduction(widths[s - 1], w))
            cells.extend(Cell(arch, w) for _ in range(n))
        self.cells = nn.ModuleList(cells)
        self.head = Head(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)


def build_network(arch: str, num_classes: int = NUM_CLASSES) -> nn.Module:
    """The deployed network of ``arch``: :class:`TinyNetwork`, or :class:`ConstantNetwork` when folded."""
    if is_constant(parse_arch(arch)):
        return ConstantNetwork(num_classes).eval()
    return TinyNetwork(arch, num_classes=num_classes).eval()


class _Wrap(nn.Module):
    """One module as a whole model, so that it traces to a one-block chain."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


# ----------------------------------------------------------------------------- features


def _graph_of(module: nn.Module, shape: tuple[int, ...], label: str):
    """The BlockGraph of ``module`` on input ``shape``, as one block."""
    spec = ModelSpec(f"gapp_tui.predict.nb201:{label}", input_shape=shape)
    chain = BlockChain.from_spec(spec, 1, device="meta", model=_Wrap(module).eval())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = extract(chain, warn=False)
    g = graphs[0]
    g.block_name = label
    return g


@functools.lru_cache(maxsize=1)
def fixed_blocks() -> dict[str, Any]:
    """BlockGraphs of the blocks every network shares: stem, the two reductions, the head."""
    with torch.device("meta"):
        stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        red1, red2 = ResidualReduction(C, 2 * C), ResidualReduction(2 * C, 4 * C)
        head = Head(4 * C, NUM_CLASSES)
    return {
        "stem": _graph_of(stem, INPUT_SHAPE, "stem"),
        "reduction1": _graph_of(red1, (1, C, 32, 32), "reduction1"),
        "reduction2": _graph_of(red2, (1, 2 * C, 16, 16), "reduction2"),
        "head": _graph_of(head, (1, 4 * C, 8, 8), "head"),
        "const": _graph_of(ConstantNetwork(), INPUT_SHAPE, "constant"),
    }


def extract_cell_graph(arch: str, stage: int):
    """The BlockGraph of ``arch``'s cell at ``stage``, traced and extracted (about 0.1 s)."""
    c, hw = STAGES[stage]
    with torch.device("meta"):
        cell = Cell(arch, c)
    return _graph_of(cell, (1, c, hw, hw), f"cell{stage}")


#: a cell using every kind of node a cell can have: zeros (node 1 gets only `none`), both convs
#: (one of them on the zeros), the pool, the identity and two sums
_REFERENCE_ARCH = "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"


@functools.lru_cache(maxsize=3)
def _templates(stage: int) -> dict[str, Any]:
    """Feature rows of every node kind of a cell at ``stage``, taken from the extractor's own output."""
    g = extract_cell_graph(_REFERENCE_ARCH, stage)
    x = g.data.x
    cols = list(g.node_columns)
    kinds = [OP_KINDS[int(k)] for k in g.data.op_kind]
    kh = cols.index("kernel_h")
    rows: dict[str, torch.Tensor] = {}
    for r, kind in zip(x, kinds):
        if kind == "conv2d":
            kind = f"conv{int(r[kh])}"
        rows.setdefault(kind, r.clone())
    e = g.data.edge_attr[0].clone()
    return {"rows": rows, "edge": e, "totals": g.data.totals.clone(), "kinds": {k: OP_KINDS.index(k) for k in OP_KINDS},
            "cols": cols, "total_cols": list(g.total_columns), "model": g.model, "shape": g.input_shape}


def compose_cell_graph(arch: str, stage: int):
    """The BlockGraph :func:`extract_cell_graph` would return, assembled from per-kind rows (about 1 ms).

    Every node of a cell at one stage has the same shapes whatever the cell,
    so its feature row depends only on its kind; the rows come from one real
    extraction (:func:`_templates`) and the graph is wired as :class:`Cell`
    builds it. ``tests/test_predict_nb201.py`` checks the result against the
    extractor on random architectures.
    """
    from torch_geometric.data import Data  # slow (torch_geometric)

    t = _templates(stage)
    rows, kinds = t["rows"], t["kinds"]
    xs: list[torch.Tensor] = []
    ks: list[int] = []
    src: list[int] = []
    dst: list[int] = []

    def node(kind: str, inputs: Sequence[int]) -> int:
        xs.append(rows[kind])
        ks.append(kinds["conv2d" if kind.startswith("conv") else kind])
        for i in inputs:
            src.append(i)
            dst.append(len(xs) - 1)
        return len(xs) - 1

    edges = kept_edges(parse_arch(arch))
    nodes: dict[int, int] = {0: node("input", [])}
    for j in (1, 2, 3):
        terms = []
        for i, jj, op in edges:
            if jj != j:
                continue
            if i not in nodes:
                nodes[i] = node("zeros", [nodes[0]])
            s = nodes[i]
            if op.startswith("nor_conv"):
                s = node("relu", [s])
                s = node("conv3" if op.endswith("3x3") else "conv1", [s])
                s = node("batchnorm", [s])
            elif op == "avg_pool_3x3":
                s = node("avgpool", [s])
            else:
                s = node("contiguous", [s])
            terms.append(s)
        if terms:
            total = terms[0]
            for other in terms[1:]:
                total = node("add", [total, other])
            nodes[j] = total
    x = torch.stack(xs)
    cols, tcols = t["cols"], t["total_cols"]
    totals = dict.fromkeys(tcols, 0.0)
    ref = dict(zip(tcols, t["totals"][0].tolist()))

    names = [OP_KINDS[k] for k in ks]
    for r, kind in zip(x[1:], names[1:]):
        totals["ops"] += 1
        totals["flops"] += float(r[cols.index("flops")])
        totals["bytes_read"] += float(r[cols.index("bytes_read")])
        totals["bytes_written"] += float(r[cols.index("bytes_written")])
        totals["params"] += float(r[cols.index("params")]) if kind in ("conv2d", "batchnorm") else 0.0
        for group, members in _GROUPS.items():
            if kind in members:
                totals[group] += 1
    totals["param_bytes"] = 4.0 * totals["params"]
    for k in ("batch", "in_bytes", "out_bytes", "in_tensors", "out_tensors"):
        totals[k] = ref[k]
    n_edges = len(src)
    data = Data(
        x=x, edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, n_edges),
        edge_attr=t["edge"].reshape(1, -1).repeat(n_edges, 1),
        totals=torch.tensor([[totals[c] for c in tcols]], dtype=torch.float32),
        op_kind=torch.tensor(ks, dtype=torch.long),
    )
    return BlockGraph(data, t["model"], t["shape"], f"cell{stage}", 0)


class NB201Features:
    """BlockGraphs of NAS-Bench-201 networks, each distinct kept cell extracted once per width.

    ``blocks(arch)`` returns ``[(graph_id, count), ...]``: the network's time is
    ``sum(count * time(graph[graph_id]))``. ``graphs`` is the list of distinct
    BlockGraphs the ids index.
    """

    def __init__(self, fast: bool = True) -> None:
        self.fast = fast
        self.graphs: list[Any] = []
        self._ids: dict[str, int] = {}
        for name, g in fixed_blocks().items():
            self._ids[name] = len(self.graphs)
            self.graphs.append(g)

    def _cell_id(self, key: str, arch: str, stage: int) -> int:
        name = f"{key}@{stage}"
        if name not in self._ids:
            g = compose_cell_graph(arch, stage) if self.fast else extract_cell_graph(arch, stage)
            self._ids[name] = len(self.graphs)
            self.graphs.append(g)
        return self._ids[name]

    def blocks(self, arch: str) -> list[tuple[int, int]]:
        key = cell_key(arch)
        if key == "const":
            return [(self._ids["const"], 1)]
        ids = self._ids
        out = [(ids["stem"], 1)]
        for s in range(3):
            if s > 0:
                out.append((ids[f"reduction{s}"], 1))
            out.append((self._cell_id(key, arch, s), N))
        out.append((ids["head"], 1))
        return out


# ----------------------------------------------------------------------------- the data


def find_csv(path: str | Path | None = None) -> Path:
    """The latency CSV: ``path``, ``$GAPP_NB201_CSV``, or ``../shared/data/nb201_latency.csv``."""
    cands = [Path(path)] if path else []
    if not path and os.environ.get("GAPP_NB201_CSV"):
        cands.append(Path(os.environ["GAPP_NB201_CSV"]))
    if not path:
        cands.extend(DEFAULT_CSV_CANDIDATES)
    for c in cands:
        if c.is_file():
            return c
    raise BadInput(
        f"NAS-Bench-201 latency file not found (tried {', '.join(map(str, cands))});"
        " give --nb201-csv PATH or set GAPP_NB201_CSV"
    )


class NB201Latency:
    """The latency table: ``archs`` (15,625 strings) and ``ms(device)`` (numpy array)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = find_csv(path)
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = reader.fieldnames or []
        self.archs = [r["arch_str"] for r in rows]
        self.devices = [f[:-3] for f in fields if f.endswith("_ms")]
        self._cols = {d: np.array([float(r[f"{d}_ms"]) for r in rows]) for d in self.devices}

    def ms(self, device: str) -> np.ndarray:
        if device not in self._cols:
            raise BadInput(
                f"unknown NAS-Bench-201 device {device!r}{closest(device, self.devices)}"
                f" (devices: {', '.join(self.devices)})"
            )
        return self._cols[device]

    def __len__(self) -> int:
        return len(self.archs)


def onehot(arch: str) -> list[float]:
    """The six edges one-hot over the five ops (30 columns): the encoding of the simple baselines."""
    return [float(op == o) for _, _, op in parse_arch(arch) for o in OPS]


def cached_features(archs: Sequence[str], cache: str | Path | None = None, progress=None) -> NB201Features:
    """NB201Features covering ``archs``, read from / written to ``cache`` (keyed by the feature schema).

    With the fast cell assembly all 15,625 networks take about 20 s of CPU,
    less than reading a 250 MB cache, so the protocols pass no cache.
    """
    feats = NB201Features()
    path = Path(cache) if cache else None
    if path is not None and path.is_file():
        doc = torch.load(path, weights_only=True)
        if doc.get("schema_version") == FEATURE_SCHEMA_VERSION:
            feats.graphs = [BlockGraph.from_dict(d) for d in doc["graphs"]]
            feats._ids = dict(zip(doc["names"], doc["ids"]))
    before = len(feats.graphs)
    for k, a in enumerate(archs):
        feats.blocks(a)
        if progress and k % 1000 == 0:
            progress(f"features: {k}/{len(archs)} networks, {len(feats.graphs)} distinct blocks")
    if path is not None and len(feats.graphs) > before:
        path.parent.mkdir(parents=True, exist_ok=True)
        names = list(feats._ids)
        torch.save({"schema_version": FEATURE_SCHEMA_VERSION, "names": names, "ids": [feats._ids[n] for n in names],
                    "graphs": [g.to_dict() for g in feats.graphs]}, path)
    return feats


def default_cache() -> Path:
    return Path(platformdirs.user_cache_dir("gapp")) / "nb201_features.pt"
