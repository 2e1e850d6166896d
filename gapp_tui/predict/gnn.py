"""The block-time GNN (PyTorch Geometric).

Architecture (one graph = one BlockGraph)::

    x_v   = NodeEncoder(log-scaled, standardised node features)            (H)
    h_v   = h_v + GINE_l(h, edge_index, log bytes on the edge)   l = 1..L   (H)
    t_op  = sum_v exp(a(h_v))                     per-node time, summed (ms)
    t_blk = exp(b([mean_v h_v, max_v h_v, Enc(log totals)]))  block overhead (ms)
    time  = t_op + t_blk                          one output per device

Why this form: a CPU runs a block one kernel after another, so its time is
close to a sum over operations (nn-Meter's insight); message passing lets
each operation's cost depend on its neighbours (fusion, memory reuse) and
the pooled term covers per-block overheads. A sum of positive terms is also
what makes the whole-network prediction a sum of block predictions, and it
extrapolates to a block bigger than any it was trained on far better than a
regression on a pooled vector.

The model predicts milliseconds for ``n_out`` devices at once (the shared
encoder of the few-shot setting); training compares ``log`` of predictions
with ``log`` of measured times, so a 0.1 ms and a 100 ms block count alike.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GINEConv, global_add_pool, global_max_pool, global_mean_pool

#: clamp the log-time outputs so exp never overflows early in training
_LOG_CLAMP = 12.0


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
        return (signed_log1p(x) - self.node_mean) / self.node_std

    def totals(self, t: torch.Tensor) -> torch.Tensor:
        return (signed_log1p(t) - self.total_mean) / self.total_std


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
    """

    def __init__(self, n_node: int, n_total: int, hidden: int = 64, layers: int = 3, n_out: int = 1) -> None:
        super().__init__()
        self.config = {"n_node": n_node, "n_total": n_total, "hidden": hidden, "layers": layers, "n_out": n_out}
        self.scaler = FeatureScaler(n_node, n_total)
        self.encoder = _mlp(n_node, hidden, hidden)
        self.convs = nn.ModuleList(GINEConv(_mlp(hidden, hidden, hidden), edge_dim=1) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.total_encoder = _mlp(n_total, hidden, hidden)
        self.node_head = _mlp(hidden, hidden, n_out)
        self.block_head = _mlp(3 * hidden, hidden, n_out)

    def embed(self, x, edge_index, edge_attr, batch):
        """Node embeddings after message passing."""
        h = self.encoder(self.scaler.nodes(x))
        e = torch.log1p(edge_attr.clamp_min(0)) / 10.0
        for conv, norm in zip(self.convs, self.norms):
            h = h + conv(norm(h), edge_index, e)
        return h

    def forward(self, data) -> torch.Tensor:
        """Milliseconds, shape ``[num_graphs, n_out]``."""
        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros(
            data.x.shape[0], dtype=torch.long, device=data.x.device)
        h = self.embed(data.x, data.edge_index, data.edge_attr, batch)
        node_log = self.node_head(h).clamp(-_LOG_CLAMP, _LOG_CLAMP)
        t_op = global_add_pool(torch.exp(node_log), batch)
        pooled = torch.cat([global_mean_pool(h, batch), global_max_pool(h, batch),
                            self.total_encoder(self.scaler.totals(data.totals))], dim=1)
        t_blk = torch.exp(self.block_head(pooled).clamp(-_LOG_CLAMP, _LOG_CLAMP))
        return t_op + t_blk

    @torch.no_grad()
    def init_output_scale(self, ms_per_node: float) -> None:
        """Start near a plausible time: every node ``ms_per_node``, the block term small."""
        import math

        self.node_head[-1].bias.fill_(math.log(max(ms_per_node, 1e-6)))
        self.node_head[-1].weight.mul_(0.1)
        self.block_head[-1].bias.fill_(math.log(max(ms_per_node, 1e-6)))
        self.block_head[-1].weight.mul_(0.1)
