"""Training the block-time GNN: seeds fixed, log-space loss, early stopping on a validation split.

The unit of supervision is an *item*: a list of ``(graph id, count)`` whose
time is ``sum(count * time(graph))``. A measured torchvision block is an item
of one graph; a NAS-Bench-201 network is an item of its stem, cells,
reductions and head. Targets may cover several devices at once (``y`` of shape
``[items, devices]``, NaN where a device has no measurement).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from .gnn import BlockGNN, GNNEnsemble

Item = Sequence[tuple[int, int]]


@dataclasses.dataclass
class TrainConfig:
    """Hyperparameters (the defaults train in a few minutes on 2 CPU cores)."""

    hidden: int = 64
    layers: int = 3
    context: bool = False
    align: bool = False
    dispatch: bool = True  # the encoder sees which CPU convolution kernel PyTorch picks (BlockGNN(dispatch=True))
    #: with dispatch: and whether that kernel's output map is a size it runs slowly on (BlockGNN(positions=True))
    positions: bool = True
    #: the encoder sees whether a block's weights exceed this many MB (BlockGNN(cache_mb=...)): the knee
    #: benchmarks/weight_cache_knee.py measures on the corpus machine; None or 0: off
    cache_mb: float | None = 16.0
    members: int = 1  # > 1: an ensemble of this many GNNs (seeds seed, seed+1, ...), geometric mean
    lr: float = 3e-3
    weight_decay: float = 1e-5
    steps: int = 1500
    batch_items: int = 64
    eval_every: int = 25
    patience: int = 12  # evaluations without improvement before stopping
    seed: int = 0
    threads: int | None = None
    #: share of every batch drawn from measured-model items (the rest from synthetic ones); None: uniform over items
    real_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def as_data(g: Any) -> Data:
    """A BlockGraph (or a Data) reduced to the tensors the GNN reads."""
    d = g.data if hasattr(g, "data") else g
    return Data(x=d.x.float(), edge_index=d.edge_index, edge_attr=d.edge_attr.float(), totals=d.totals.float())


class ItemBatcher:
    """Collates the graphs a set of items needs, once per distinct graph."""

    def __init__(self, graphs: Sequence[Any], items: Sequence[Item]) -> None:
        self.data = [as_data(g) for g in graphs]
        self.items = [list(it) for it in items]

    def batch(self, idx: Sequence[int]) -> tuple[Batch, torch.Tensor]:
        """(graphs of these items, matrix M [len(idx), n_graphs_in_batch]) with item time = M @ graph time."""
        local: dict[int, int] = {}
        rows, cols, vals = [], [], []
        for r, i in enumerate(idx):
            for gid, count in self.items[i]:
                if gid not in local:
                    local[gid] = len(local)
                rows.append(r)
                cols.append(local[gid])
                vals.append(float(count))
        batch = Batch.from_data_list([self.data[g] for g in local])
        m = torch.zeros(len(idx), len(local))
        m.index_put_((torch.tensor(rows), torch.tensor(cols)), torch.tensor(vals), accumulate=True)
        return batch, m


def item_times(model: BlockGNN, batcher: ItemBatcher, idx: Sequence[int], chunk: int = 512) -> torch.Tensor:
    """Predicted ms of the items ``idx``, ``[len(idx), n_out]`` (no grad)."""
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(idx), chunk):
            b, m = batcher.batch(idx[s : s + chunk])
            outs.append(m @ model(b))
    return torch.cat(outs) if outs else torch.zeros(0, model.config["n_out"])


def _loss(pred: torch.Tensor, y: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    """Huber loss on log times: relative errors count alike at every scale, and the few labels
    the features cannot explain (a network folded to a constant, measured anywhere from 0.01 to
    34 ms) pull linearly instead of quadratically."""
    mask = torch.isfinite(y) & (y > 0)
    diff = torch.log(pred.clamp_min(1e-9)) - torch.log(torch.where(mask, y, torch.ones_like(y)))
    if bool(mask.all()):
        return torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), delta=delta) / delta
    # items measured on different numbers of devices (pre-training on several tables: a NAS-Bench-201 network
    # has 27 labels, a corpus block one) count once each: mean over each item's labels, then over items
    h = torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), delta=delta, reduction="none") * mask
    per_item = h.sum(1) / mask.sum(1).clamp_min(1)
    return per_item[mask.any(1)].mean() / delta


def fit_gnn(
    graphs: Sequence[Any],
    items: Sequence[Item],
    y: np.ndarray,
    train_idx: Sequence[int],
    val_idx: Sequence[int] | None = None,
    config: TrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
    synthetic: Sequence[bool] | None = None,
) -> tuple[BlockGNN, dict[str, Any]]:
    """Train a :class:`BlockGNN` so that each item's summed prediction matches its measured time.

    ``y``: ms, shape ``[len(items)]`` or ``[len(items), devices]``. ``synthetic``
    marks the synthetic items (per item) for ``config.real_share``. Returns the
    model with the weights of the best validation loss (the training loss
    when there is no validation split) and a history dict.
    """
    cfg = config or TrainConfig()
    if cfg.members > 1:
        return _fit_ensemble(graphs, items, y, train_idx, val_idx, cfg, progress, synthetic)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=torch.float32)
    if y_t.dim() == 1:
        y_t = y_t[:, None]
    train_idx = [int(i) for i in train_idx]
    val_idx = [int(i) for i in (val_idx if val_idx is not None else [])]
    if not train_idx:
        raise ValueError("no training items")
    batcher = ItemBatcher(graphs, items)
    first = batcher.data[0]
    model = BlockGNN(first.x.shape[1], first.totals.shape[1], cfg.hidden, cfg.layers, n_out=y_t.shape[1], context=cfg.context,
                     align_columns="default" if cfg.align else None, dispatch=cfg.dispatch,
                     cache_mb=cfg.cache_mb, positions=cfg.positions)
    used = sorted({g for i in train_idx for g, _ in batcher.items[i]})
    model.scaler.fit(torch.cat([model._without_input_work(batcher.data[g].x) for g in used]),
                     torch.cat([batcher.data[g].totals for g in used]))
    # start near the data: the median MFLOP/ms and MB/ms of the training items, as if each explained half
    fc, rc, wc = model.work_columns

    def work(i: int) -> tuple[float, float, float]:
        f = b = n = 0.0
        for g, c in batcher.items[i]:
            x = model._without_input_work(batcher.data[g].x)
            f += c * float(x[:, fc].sum()) / 1e6
            b += c * float((x[:, rc] + x[:, wc]).sum()) / 1e6
            n += c * x.shape[0]
        return f, b, n

    w = np.array([work(i) for i in train_idx])
    ymed = np.nanmedian(y_t[train_idx].numpy(), axis=1)
    ok = np.isfinite(ymed) & (ymed > 0)
    model.init_output_scale(float(np.median(2 * w[ok, 0] / ymed[ok]) + 1e-6), float(np.median(2 * w[ok, 1] / ymed[ok]) + 1e-6),
                            float(np.median(0.1 * ymed[ok] / np.maximum(w[ok, 2], 1))))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 10)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 2% of the peak
        if step < warm:
            return (step + 1) / warm
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = np.random.default_rng(cfg.seed)
    sample_p = None
    if cfg.real_share is not None and synthetic is not None:
        syn = np.array([bool(synthetic[i]) for i in train_idx])
        if syn.any() and (~syn).any():
            sample_p = np.where(syn, (1 - cfg.real_share) / syn.sum(), cfg.real_share / (~syn).sum())
            sample_p = sample_p / sample_p.sum()
    val_batch = batcher.batch(val_idx) if val_idx else None
    best = (math.inf, copy.deepcopy(model.state_dict()), 0)
    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "steps": 0}
    bad = 0
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        model.train()
        idx = gen.choice(train_idx, size=min(cfg.batch_items, len(train_idx)), replace=False, p=sample_p)
        b, m = batcher.batch(idx.tolist())
        loss = _loss(m @ model(b), y_t[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        history["train_loss"].append(float(loss.detach()))
        history["steps"] = step
        if step % cfg.eval_every == 0 or step == cfg.steps:
            if val_batch is not None:
                model.eval()
                with torch.no_grad():
                    vloss = float(_loss(val_batch[1] @ model(val_batch[0]), y_t[val_idx]))
            else:
                vloss = float(np.mean(history["train_loss"][-cfg.eval_every :]))
            history["val_loss"].append(vloss)
            if vloss < best[0] - 1e-5:
                best = (vloss, copy.deepcopy(model.state_dict()), step)
                bad = 0
            else:
                bad += 1
            if progress:
                progress(f"step {step}/{cfg.steps}  train {float(loss.detach()):.4f}  val {vloss:.4f}  best {best[0]:.4f}@{best[2]}")
            if bad >= cfg.patience:
                break
    model.load_state_dict(best[1])
    model.eval()
    history.update(best_val_loss=best[0], best_step=best[2], seconds=round(time.perf_counter() - t0, 2))
    return model, history


def _fit_ensemble(graphs, items, y, train_idx, val_idx, cfg: TrainConfig, progress,
                  synthetic=None) -> tuple[GNNEnsemble, dict[str, Any]]:
    """``cfg.members`` GNNs on the same split from seeds ``seed, seed+1, ...``, joined into a :class:`GNNEnsemble`."""
    fitted, histories = [], []
    for k in range(cfg.members):
        one = dataclasses.replace(cfg, members=1, seed=cfg.seed + k)
        if progress:
            progress(f"ensemble member {k + 1}/{cfg.members}")
        m, h = fit_gnn(graphs, items, y, train_idx, val_idx, one, progress, synthetic)
        fitted.append(m)
        histories.append(h)
    ens = GNNEnsemble(cfg.members, **fitted[0].config)
    for slot, m in zip(ens.members, fitted):
        slot.load_state_dict(m.state_dict())
    ens.eval()
    history = {"members": histories, "best_step": [h["best_step"] for h in histories],
               "best_val_loss": float(np.mean([h["best_val_loss"] for h in histories])),
               "seconds": round(sum(h["seconds"] for h in histories), 2), "steps": [h["steps"] for h in histories]}
    return ens, history
