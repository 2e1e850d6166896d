"""The block-time GNN (PyTorch Geometric).

Architecture (one graph = one BlockGraph)::

    x_v   = NodeEncoder(log-scaled, standardised node features)            (H)
    h_v   = h_v + GINE_l(h, edge_index, log bytes on the edge)   l = 1..L   (H)
    t_v   = F_v / exp(e(h_v)) + B_v / exp(m(h_v)) + exp(o(h_v))   per node (ms)
    t_blk = exp(b([mean_v h_v, max_v h_v, Enc(log totals)]))      per block (ms)
    time  = sum_v t_v + t_blk                        one output per device

``F_v`` is the node's MFLOPs and ``B_v`` the MB it reads and writes, taken
straight from the features: the network predicts how *efficiently* each
operation runs in its context (MFLOP/ms, MB/ms, a fixed overhead), not its
time. Why: a CPU runs a block one kernel after another, so its time is close
to a sum over operations (nn-Meter's insight); an operation's efficiency
varies over a narrow range while its work varies over six orders of
magnitude, so this roofline-shaped head extrapolates to blocks bigger or
smaller than any seen in training, where a regression of the time itself
explodes; message passing lets each operation's efficiency depend on its
neighbours (fusion, memory reuse), and the pooled term covers per-block
overheads. A sum of positive terms is also what makes a whole network's
prediction the sum of its blocks'.

The model predicts milliseconds for ``n_out`` devices at once (the shared
encoder of the few-shot setting); training compares ``log`` of predictions
with ``log`` of measured times, so a 0.1 ms and a 100 ms block count alike.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch_geometric.nn import GINEConv, global_add_pool, global_max_pool, global_mean_pool

from ..features import NODE_COLUMNS, TOTAL_COLUMNS

#: clamp the log outputs (around their initial values) so exp never overflows
_LOG_CLAMP = 9.0
#: standardised features are clipped: a block far outside the training data saturates instead of exploding
_Z_CLIP = 6.0


#: columns the dispatch flags are computed from (see ``BlockGNN(dispatch=...)``)
DISPATCH_COLUMNS = ("op_conv2d", "in_d0", "in_d1", "in_d2", "in_d3", "kernel_h", "kernel_w", "stride_h", "stride_w",
                    "dilation_h", "dilation_w", "groups", "in_channels")
#: flags per node: 1x1 on PyTorch's own kernel, small input on its own kernel, depthwise, grouped
N_DISPATCH_FLAGS = 4
#: the output-map columns of the positions flag (``BlockGNN(positions=True)``)
POSITION_COLUMNS = ("out_d2", "out_d3")
#: PyTorch's im2col kernel is fast when a convolution's output positions are a multiple of this
#: (``benchmarks/conv1x1_positions.py``: 2-9 and 25 positions are 3-7x slower per FLOP than 16)
POSITION_MULTIPLE = 16
#: PyTorch's CPU convolution leaves oneDNN for its own im2col kernel (``slow_conv2d``) on small inputs:
#: batch 1, one group, not both kernel sides above 3, and at most this many input elements
NATIVE_CONV_MAX_NUMEL = 20480

#: the node column (its own weights) and the block total (the block's weight bytes) of the cache flag (``BlockGNN(cache_mb=...)``)
CACHE_COLUMNS = ("params", "param_bytes")

#: widths whose alignment the encoder sees (see ``BlockGNN(align_columns=...)``)
ALIGN_COLUMNS = ("in_channels", "out_channels", "in_features", "out_features", "in_d1", "out_d1", "in_d3", "out_d3")


def signed_log1p(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


class FeatureScaler(nn.Module):
    """log1p, then standardisation with statistics of the training graphs (kept in the state dict)."""

    def __init__(self, n_node: int, n_total: int) -> None:
        super().__init__()
        self.register_buffer("node_mean", torch.zeros(n_node))
        self.register_buffer("node_std", torch.ones(n_node))
        self.register_buffer("total_mean", torch.zeros(n_total))
        self.register_buffer("total_std", torch.ones(n_total))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, totals: torch.Tensor) -> None:
        lx, lt = signed_log1p(x), signed_log1p(totals)
        self.node_mean.copy_(lx.mean(0))
        self.node_std.copy_(lx.std(0).clamp_min(1e-3))
        self.total_mean.copy_(lt.mean(0))
        self.total_std.copy_(lt.std(0).clamp_min(1e-3))

    def nodes(self, x: torch.Tensor) -> torch.Tensor:
        return ((signed_log1p(x) - self.node_mean) / self.node_std).clamp(-_Z_CLIP, _Z_CLIP)

    def totals(self, t: torch.Tensor) -> torch.Tensor:
        return ((signed_log1p(t) - self.total_mean) / self.total_std).clamp(-_Z_CLIP, _Z_CLIP)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.SiLU(), nn.Linear(h, o))


class BlockGNN(nn.Module):
    """BlockGraph -> predicted milliseconds on ``n_out`` devices.

    Args:
        n_node: node feature columns (``len(NODE_COLUMNS)``).
        n_total: block total columns (``len(TOTAL_COLUMNS)``).
        hidden: width H of every hidden layer (default 64).
        layers: message-passing layers L (default 3).
        n_out: devices predicted at once (default 1).
        work_columns: indices of the node columns ``flops``, ``bytes_read``, ``bytes_written``
            (default: looked up in :data:`gapp_tui.features.NODE_COLUMNS`).
        context: the per-node head also sees the block's encoded totals (its
            working set: parameter bytes, bytes moved, op counts), so that an
            operation's efficiency can depend on what else the block keeps in
            cache -- not only on its neighbours within ``layers`` hops.
        dispatch: the encoder also sees which CPU kernel family PyTorch picks for
            each convolution, computed from its shapes by the rule in
            ``ConvParams::use_mkldnn`` (aten/src/ATen/native/Convolution.cpp):
            a 1x1 unstrided convolution below batch 16 (its own kernel when
            single-threaded: :attr:`threads`, :func:`dispatch_threads`), a small-input convolution (its own kernel at any
            thread count, see :data:`NATIVE_CONV_MAX_NUMEL`), depthwise and
            grouped. Sharp thresholds on products and equalities of widths are
            what an MLP on log-scaled columns learns worst.
        cache_mb: when set, the encoder also sees, per node with weights,
            whether its block's weights exceed this many MB: a layer on a few
            rows reads each weight once per call, so its time is set by where
            the weights live, and the bandwidth falls by half past the cache
            (``benchmarks/weight_cache_knee.py``: somewhere between 8 and 19 MB
            on the corpus machine, by the run). A flag, not the size itself: a size on every node
            lets blocks unlike any in training (densenet's 48-input layers)
            extrapolate.
        positions: with ``dispatch``, a fifth flag: a convolution on PyTorch's
            own im2col kernel (the first two dispatch flags) whose output
            positions (height x width) are not a multiple of
            :data:`POSITION_MULTIPLE`; that kernel's GEMM runs 3-7x slower per
            FLOP on such maps (``benchmarks/conv1x1_positions.py``), which is
            most of inception's and squeezenet's misses.
    """

    def __init__(self, n_node: int, n_total: int, hidden: int = 64, layers: int = 3, n_out: int = 1,
                 work_columns: list[int] | None = None, context: bool = False,
                 align_columns: list[int] | str | None = None, dispatch: bool = False,
                 cache_mb: float | None = None, positions: bool = False) -> None:
        super().__init__()

        if work_columns is None:
            work_columns = [NODE_COLUMNS.index(c) for c in ("flops", "bytes_read", "bytes_written")]
        self.work_columns = [int(c) for c in work_columns]
        self.n_out = n_out
        self.context = bool(context)
        if align_columns == "default":
            align_columns = [NODE_COLUMNS.index(c) for c in ALIGN_COLUMNS]
        self.align_columns = [int(c) for c in (align_columns or [])]
        self.dispatch = bool(dispatch)
        self.positions = self.dispatch and bool(positions)
        if self.dispatch:
            columns = DISPATCH_COLUMNS + (POSITION_COLUMNS if self.positions else ())
            self._dcol = {c: NODE_COLUMNS.index(c) for c in columns}
        self.config = {"n_node": n_node, "n_total": n_total, "hidden": hidden, "layers": layers, "n_out": n_out,
                       "work_columns": self.work_columns, "context": self.context, "align_columns": self.align_columns}
        if self.dispatch:  # only when on, so that files written before the option load unchanged
            self.config["dispatch"] = True
        if self.positions:
            self.config["positions"] = True
        self.cache_mb = float(cache_mb) if cache_mb else None
        if self.cache_mb:
            self.config["cache_mb"] = self.cache_mb
            self._ccol = (NODE_COLUMNS.index(CACHE_COLUMNS[0]), TOTAL_COLUMNS.index(CACHE_COLUMNS[1]))
        self.scaler = FeatureScaler(n_node, n_total)
        self.encoder = _mlp(n_node + 2 * len(self.align_columns) + (N_DISPATCH_FLAGS + self.positions) * self.dispatch
                            + bool(self.cache_mb),
                            hidden, hidden)
        self.convs = nn.ModuleList(GINEConv(_mlp(hidden, hidden, hidden), edge_dim=1) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.total_encoder = _mlp(n_total, hidden, hidden)
        self.node_head = _mlp(2 * hidden if self.context else hidden, hidden, 3 * n_out)
        self.register_buffer("log_init", torch.zeros(4))  # e, m, o, b at initialisation (clamp centre)
        self.block_head = _mlp(3 * hidden, hidden, n_out)
        #: the thread count of the device predicted for (not a weight, not in the file's config): with more than one
        #: thread PyTorch runs a 1x1 convolution on oneDNN, not its own kernel (:meth:`dispatch_flags`)
        self.threads = 1

    def _without_input_work(self, x: torch.Tensor) -> torch.Tensor:
        """Zero the work columns of the nodes standing for the block's inputs (one-hot column 0, ``input``).

        An input node is a tensor computed by an earlier block; the extractor
        copies the producing op's metadata onto it (its FLOPs, the bytes it
        wrote), which is work this block does not do. Counting it made every
        block with many inputs (DenseNet's dense layers: up to 48) look
        several times more expensive than it is.
        """
        fc, rc, wc = self.work_columns
        is_input = x[:, 0] > 0.5
        if not bool(is_input.any()):
            return x
        x = x.clone()
        x[is_input.nonzero(as_tuple=True)[0][:, None], torch.tensor([fc, rc, wc], device=x.device)] = 0.0
        return x

    # what the encoder is told about each node besides its scaled features (public: tests and benchmarks read them)

    def alignment_flags(self, x: torch.Tensor) -> torch.Tensor:
        """Per node and aligned column: [width a multiple of 8 ..., width a multiple of 16 ...]."""
        w = x[:, self.align_columns].round()
        return torch.cat([(w > 0) & (torch.remainder(w, 8) == 0), (w > 0) & (torch.remainder(w, 16) == 0)], dim=1).float()

    def dispatch_flags(self, x: torch.Tensor) -> torch.Tensor:
        """Per node: [1x1 own kernel, small-input own kernel, depthwise, grouped] (all 0 for non-convolutions),
        and with ``positions``: own kernel on a number of output positions that is not a multiple of 16.

        At :attr:`threads` above 1 the first flag stays only where the input is small (the kernel is then the
        same as single-threaded, and so is what the encoder sees); a larger 1x1 convolution reads as oneDNN's.
        """
        c = {k: x[:, i].round() for k, i in self._dcol.items()}
        conv = c["op_conv2d"] > 0.5
        n, groups = c["in_d0"], c["groups"].clamp_min(1)
        pointwise = (conv & (c["kernel_h"] == 1) & (c["kernel_w"] == 1) & (c["stride_h"] <= 1) & (c["stride_w"] <= 1)
                     & (c["dilation_h"] <= 1) & (c["dilation_w"] <= 1) & (n < 16))
        numel = n * c["in_d1"] * c["in_d2"] * c["in_d3"]
        small = (conv & (groups == 1) & ~((c["kernel_h"] > 3) & (c["kernel_w"] > 3)) & (n <= 1)
                 & (numel <= NATIVE_CONV_MAX_NUMEL))
        if self.threads > 1:  # multi-threaded, a 1x1 convolution leaves PyTorch's own kernel unless its input is small
            pointwise = pointwise & small
        depthwise = conv & (groups > 1) & (groups == c["in_channels"])
        grouped = conv & (groups > 1) & ~depthwise
        flags = [pointwise, small, depthwise, grouped]
        if self.positions:
            positions = c["out_d2"] * c["out_d3"]
            flags.append((pointwise | small) & (torch.remainder(positions, POSITION_MULTIPLE) != 0))
        return torch.stack(flags, dim=1).float()

    def cache_flags(self, x: torch.Tensor, totals: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Per node: 1 where the node has weights and its block's weights exceed ``cache_mb``."""
        pcol, tcol = self._ccol
        return ((x[:, pcol] > 0) & (totals[batch, tcol] > self.cache_mb * 1e6)).float()[:, None]

    def embed(self, x, edge_index, edge_attr, batch, totals=None):
        """Node embeddings after message passing (``totals``: the blocks' raw totals, needed with ``cache_mb``)."""
        z = self.scaler.nodes(x)
        if self.align_columns:
            z = torch.cat([z, self.alignment_flags(x)], dim=1)
        if self.dispatch:
            z = torch.cat([z, self.dispatch_flags(x)], dim=1)
        if self.cache_mb:
            z = torch.cat([z, self.cache_flags(x, totals, batch)], dim=1)
        h = self.encoder(z)
        e = torch.log1p(edge_attr.clamp_min(0)) / 10.0
        for conv, norm in zip(self.convs, self.norms):
            h = h + conv(norm(h), edge_index, e)
        return h

    def forward(self, data) -> torch.Tensor:
        """Milliseconds, shape ``[num_graphs, n_out]``."""
        terms = self.terms(data)
        t_node = terms["flop"] + terms["byte"] + terms["overhead"]
        return global_add_pool(t_node, terms["batch"]) + terms["block"]

    def terms(self, data) -> dict[str, torch.Tensor]:
        """The head's terms: per node ``flop`` = MFLOP/exp(e), ``byte`` = MB/exp(m), ``overhead`` = exp(o)
        (each ``[nodes, n_out]``, ms), per graph ``block`` = exp(b) (``[graphs, n_out]``), and ``batch``
        (node -> graph). ``forward`` is their sum; device adaptation (:mod:`gapp_tui.predict.adapt`)
        rescales them one by one."""
        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros(
            data.x.shape[0], dtype=torch.long, device=data.x.device)
        x = self._without_input_work(data.x)
        h = self.embed(x, data.edge_index, data.edge_attr, batch, data.totals)
        fc, rc, wc = self.work_columns
        mflop = (x[:, fc] / 1e6).clamp_min(0)[:, None]
        mbyte = ((x[:, rc] + x[:, wc]) / 1e6).clamp_min(0)[:, None]
        tot = self.total_encoder(self.scaler.totals(data.totals))
        out = self.node_head(torch.cat([h, tot[batch]], dim=1) if self.context else h).view(-1, 3, self.n_out)
        c = self.log_init
        e = (out[:, 0] + c[0]).clamp(c[0] - _LOG_CLAMP, c[0] + _LOG_CLAMP)
        m = (out[:, 1] + c[1]).clamp(c[1] - _LOG_CLAMP, c[1] + _LOG_CLAMP)
        o = (out[:, 2] + c[2]).clamp(c[2] - _LOG_CLAMP, c[2] + _LOG_CLAMP)
        pooled = torch.cat([global_mean_pool(h, batch), global_max_pool(h, batch), tot], dim=1)
        b = (self.block_head(pooled) + c[3]).clamp(c[3] - _LOG_CLAMP, c[3] + _LOG_CLAMP)
        return {"flop": mflop * torch.exp(-e), "byte": mbyte * torch.exp(-m), "overhead": torch.exp(o),
                "block": torch.exp(b), "batch": batch}

    @torch.no_grad()
    def init_output_scale(self, mflop_per_ms: float, mbyte_per_ms: float, ms_per_node: float) -> None:
        """Start near the data: an efficiency, a bandwidth and a per-node overhead (medians of the training items)."""
        self.log_init.copy_(torch.tensor([math.log(max(mflop_per_ms, 1e-6)), math.log(max(mbyte_per_ms, 1e-6)),
                                          math.log(max(ms_per_node, 1e-7)), math.log(max(ms_per_node, 1e-7))]))
        for head in (self.node_head, self.block_head):
            head[-1].bias.zero_()
            head[-1].weight.mul_(0.1)


class GNNEnsemble(nn.Module):
    """Several BlockGNNs trained from different seeds; the prediction is their geometric mean.

    Members disagree most where a block lies outside the training data (a new
    family), and averaging in log space cancels part of each member's own
    extrapolation error without biasing relative errors.
    """

    def __init__(self, members: int = 3, **config) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least one member, not {members}")
        self.members = nn.ModuleList(BlockGNN(**config) for _ in range(members))
        self.n_out = self.members[0].n_out
        self.config = {**self.members[0].config, "members": members}

    def forward(self, data) -> torch.Tensor:
        return torch.exp(torch.stack([torch.log(m(data)) for m in self.members]).mean(0))


@contextlib.contextmanager
def dispatch_threads(model: nn.Module, threads: int | None) -> Iterator[nn.Module]:
    """Within the block, ``model``'s dispatch flags are those of a device at ``threads`` threads (restored after).

    PyTorch runs a 1x1 unstrided convolution at batch 1 on its own kernel only single-threaded; with more threads
    it goes to oneDNN unless its input is small (``ConvParams::use_mkldnn``). A predictor trained at one thread
    and adapted to a device at two sees those convolutions as what the device runs.
    """
    nets = [m for m in model.modules() if isinstance(m, BlockGNN)]
    before = [m.threads for m in nets]
    for m in nets:
        m.threads = max(1, int(threads or 1))
    try:
        yield model
    finally:
        for m, t in zip(nets, before):
            m.threads = t


def build_model(config: dict) -> BlockGNN | GNNEnsemble:
    """The module a predictor file's ``config`` describes (an ensemble when it names ``members``)."""
    config = dict(config)
    members = config.pop("members", None)
    return GNNEnsemble(members, **config) if members else BlockGNN(**config)
