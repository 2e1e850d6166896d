"""Adapting a trained predictor to a new device from its samples: relative costs, not just a scale.

One concept: a base predictor's per-block times moved to one device by a fit on that device's samples.

What moves
----------
The base GNN's head (:meth:`gapp_tui.predict.gnn.BlockGNN.terms`) gives every
operation ``v`` of a block three terms -- compute ``MFLOP_v / exp(e_v)``,
memory ``MB_v / exp(m_v)``, overhead ``exp(o_v)`` -- plus a per-block term
``beta``, and the block's time is their sum. ``(e_v, m_v, o_v)`` are the last
linear layer of the head applied to the operation's hidden vector ``u_v``
(64 numbers that encode its kind, shapes and neighbourhood). A device differs
from the base machine in *how efficiently* each kind of operation runs, so
the adaptation moves that last layer::

    (e_v, m_v, o_v)'  =  (e_v, m_v, o_v) - Delta z_v,      z_v = [ P^T (u_v - mu) / s , 1 ]

    t'(block) = exp(g) * [ sum_v  sum_k  T_{k,v} exp(Delta_k . z_v)  +  beta * exp(delta) ]

``P`` holds the ``r`` principal directions (:func:`rank_for`: 16, or 32 from 20 samples on) of the hidden
vectors of the probe pool's operations (:mod:`.probes`: every kind of block,
so the directions along which operations differ most), ``mu`` and ``s``
their mean and spread; ``Delta`` is ``3 x (r + 1)``: per term, how the
efficiency moves along each direction, and an intercept. Directions rather
than all 64 hidden units or hand-made categories: measured on the Jetson Nano
table at k = 20 (5 seeds, ``benchmarks/predict_arm.py``'s protocol), hand-made
categories (dense / pointwise / depthwise / grouped convolutions, linear,
matmul, norms, activations, ... times five size bins, 52 parameters) reached
56 % of the other models within +-10 %, the embedding's 16 directions 68 %,
8 directions 61-63 %, 32 directions 66 %; the embedding already separates
what a device treats differently (a depthwise convolution on a large map, a
GEMM with few rows, a memory-bound element-wise op).

The prior and its strength
--------------------------
``g`` (a global log scale) is free; ``Delta`` and ``delta`` have a Gaussian
prior centred on 0 -- the base model's relative costs -- with precision
``lambda * w``::

    minimise  mean_i (log t'_i - log y_i)^2  +  lambda * sum_kj w_kj Delta_kj^2

``w`` (:meth:`Basis.prior`, :func:`prior_for`): from 20 samples on it falls
with the spread of the direction (``s_j^-2``: isotropic in the hidden space,
so the main directions move freely and the minor ones stay near the base) and
is nearly 0 on the intercepts (each term's own scale is free); below that,
where freer main directions overfit, 1 on every direction and 0.1 on the
intercepts. Samples of one block each (a calibration's probes), from 20 on,
are fitted with Huber's loss instead of the squared error (:data:`ROBUST_HUBER`):
a few kinds of block run on a kernel of their own on a device, and should
not pull every direction.

An item -- a measured block, or a whole model from a totals CSV -- is a list
of ``(block, count)`` and its time the sum, so block samples and whole-model
samples are fitted alike. ``lambda`` is chosen by cross-validation on the
samples themselves (leave-one-out up to 10 samples, else 5 folds) from
:data:`LAMBDAS` (the largest keeps close to "a scale only"). The old log-affine
correction (``t' = exp(b) t^a``, :mod:`.fewshot`) can be asked for
(``methods``) and is the baseline of the benchmarks, but is not a default
candidate (see :data:`DEFAULT_METHODS`). Every ensemble member is adapted with the chosen ``lambda``
(members differ in ``u_v`` and ``P``); the prediction is their geometric mean,
their spread the uncertainty, calibrated into an interval on the
cross-validation residuals (:mod:`.interval`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import probes
from .gnn import dispatch_threads
from .interval import IntervalModel, calibrate, spread
from .train import as_data

TERMS = ("flop", "byte", "overhead")
#: principal directions of the head's hidden vectors the adaptation moves along, below :data:`MANY_SAMPLES`
#: samples and from there on. More samples carry more directions: on the Jetson table (benchmarks/predict_arm.py,
#: 5 seeds) 32 directions instead of 16 put 79.8 % rather than 75.5 % of the other models within +-10 % at k = 50
#: and 63.6 % rather than 63.4 % at k = 20 (MAPE 10.7 rather than 11.4 %), but 49.9 % rather than 51.1 % at k = 10;
#: calibrating this CPU at 2 threads on 320 probes, 64.9 % rather than 48.2 % of 228 test blocks. Cross-validation on the samples does not choose the rank well (on those
#: 320 probes it preferred 64 directions, which put 40.8 % within +-10 %), so the rank follows the count.
RANK = 16
RANK_MANY = 32
MANY_SAMPLES = 20
#: how the prior's precision falls with a direction's spread, below :data:`MANY_SAMPLES` samples and from there on:
#: a direction ``j`` whose projections spread by ``s_j`` is held with weight ``(s_j / geometric mean of s)^-decay``.
#: With 2 the prior is isotropic in the hidden space rather than in the standardised directions: the directions
#: along which operations differ most move freely, the minor ones (where the hidden vectors barely differ) stay
#: near the base. On the Jetson table (benchmarks/predict_arm.py, seeds 0-9) at k = 20: 67.4 % of the other models
#: within +-10 %, MAPE 10.5 %, rather than 62.4 %, 11.0 % with every direction alike (0); at k = 50 79.1 % / 7.4 %
#: rather than 79.4 % / 7.1 %; but at k = 10 the free main directions overfit ten samples (seeds 5-9: MAPE 20.0 %
#: rather than 12.7 %, decay 1: 13.9 % over seeds 0-9), so fewer samples keep every direction alike
PRIOR_DECAY = 0.0
PRIOR_DECAY_MANY = 2.0
#: the prior's weight on the three intercepts (each term's own scale: how much faster this device computes, moves
#: bytes, dispatches an operation), relative to a direction's, below :data:`MANY_SAMPLES` samples and from there on.
#: At k = 20 on the Jetson table (decay 2, seeds 0-4): 1 -> 68.9 %, 0.1 -> 68.2 %, 0.01 -> 71.2 % (MAPE 9.6 %),
#: 0.001 -> 71.0 % (9.3 %); at k = 10 (decay 0, seeds 5-9) 0.01 -> 52.3 %, MAPE 14.2 % rather than 53.1 %, 12.7 %
INTERCEPT_PRIOR = 0.1
INTERCEPT_PRIOR_MANY = 0.01
#: the prior precisions cross-validation chooses from (on the Jetson table at k = 20, seeds 0-2, each fixed
#: value from 3e-4 to 1e-2 put 62-64 % of the other models within +-10 %, 0.03 60 %, 0.1 51 %)
LAMBDAS = (0.001, 0.003, 0.01, 0.03)
METHODS = ("log-affine", "embedding")
#: what ``adapt`` chooses from unless told: the embedding shift at every ``lambda``. The log-affine
#: correction is not a candidate by default: its slope ``a``, fitted on ten samples of similar size,
#: extrapolates to models ten times larger as ``10^a`` -- on the Jetson table (k = 10, seed 0) leave-one-out
#: preferred it and it then put 3 % of the other models within +-10 % (MAPE 56 %); the free ``g`` with a
#: strong prior is the safe form of "only a scale"
DEFAULT_METHODS = ("embedding",)
#: the loss of a fit on block samples (each sample one block, as a calibration's probes) from :data:`MANY_SAMPLES`
#: on: Huber's, quadratic within this many log units (5 %) and linear beyond (:func:`fit_shift`). A probe is one
#: block of one kind, and a few kinds run on kernels of their own on a device (on this CPU at 2 threads a
#: channels-last layernorm ran 2.7x faster than the adapted prediction, a local response norm 2.4x slower); with
#: squared errors those few pull every direction. Calibrating this CPU at 2 threads on 320 probes
#: (benchmarks/predict_calibrate.py, the stored rows of seven runs refitted both ways): 66.1 % of 228 test blocks
#: within +-10 % rather than 59.0 % on the four runs whose labels held (61.4 / 79.4 / 61.0 / 62.7 % rather than
#: 50.9 / 70.2 / 51.3 / 63.6 %), -7.0..+5.7 points on the four whose labels did not, and the probes'
#: cross-validated error fell on all seven compared; on random subsets of 10-80 of those probes it was worth -1..+4 points. Whole
#: models average their kernels: on the Jetson table it was worth -2.0 points at k = 20 (seeds 0-9) and -1.1
#: at k = 50 (seeds 0-4), so items of several blocks keep squared errors
ROBUST_HUBER = 0.05
#: cross-validation folds above 10 samples
FOLDS = 5
#: fewer samples than this: a scale only (log-affine with a = 1) and no choice
MIN_SAMPLES = 3
#: fewer held-out samples than this: no interval
MIN_SAMPLES_INTERVAL = 5
_CLAMP = 10.0



def fit_calibration(pred: np.ndarray, y: np.ndarray, shrink: float = 2.0) -> dict[str, float]:
    """``{"a", "b", "samples"}`` of ``log y ~ a log pred + b`` (a shrunk towards 1 with weight ``shrink``)."""
    lp, ly = np.log(np.asarray(pred, float)), np.log(np.asarray(y, float))
    k = len(lp)
    if k == 0:
        return {"a": 1.0, "b": 0.0, "samples": 0}
    if k < 3:
        return {"a": 1.0, "b": float(np.mean(ly - lp)), "samples": k}
    xm, ym = lp.mean(), ly.mean()
    sxx = float(((lp - xm) ** 2).sum())
    sxy = float(((lp - xm) * (ly - ym)).sum())
    a = (sxy + shrink * 1.0) / (sxx + shrink)
    return {"a": float(a), "b": float(ym - a * xm), "samples": k}


def apply_calibration(pred: np.ndarray, cal: dict[str, float]) -> np.ndarray:
    return np.exp(cal["b"]) * np.power(np.asarray(pred, float), cal["a"])


def fit_item_calibration(block_ms: np.ndarray, items: Sequence[Sequence[tuple[int, int]]], y: np.ndarray,
                         shrink: float = 2.0) -> dict[str, float]:
    """:func:`fit_calibration` for items of several blocks: ``t' = exp(b) t^a`` applied to every block, with ``a``
    and ``b`` chosen so that each item's sum of corrected blocks matches its measured ``y`` (a whole-model time).

    ``block_ms``: one member's ms of each graph the items index. Applied per block (as a predictor applies it) a
    correction fitted on the sums themselves would be wrong by ``n^(1-a)`` for a model of ``n`` equal blocks.
    With one block per item it is :func:`fit_calibration` (same ``a``, shrunk towards 1 with weight ``shrink``).
    """
    y = np.asarray(y, float)
    k = len(y)
    if k == 0:
        return {"a": 1.0, "b": 0.0, "samples": 0}
    lt = np.log(np.maximum(np.asarray(block_ms, float), 1e-300))
    ly = np.log(y)
    idx = [np.array([g for g, _ in it]) for it in items]
    lc = [np.log(np.array([c for _, c in it], float)) for it in items]

    def residual(a: float) -> np.ndarray:  # log y - log sum_g c_g t_g^a, per item
        out = np.empty(k)
        for j in range(k):
            z = a * lt[idx[j]] + lc[j]
            zmax = z.max()
            out[j] = ly[j] - (zmax + math.log(np.exp(z - zmax).sum()))
        return out

    if k < 3:
        return {"a": 1.0, "b": float(residual(1.0).mean()), "samples": k}

    def loss(a: float) -> float:
        r = residual(a)
        return float(((r - r.mean()) ** 2).sum() + shrink * (a - 1.0) ** 2)

    grid = np.linspace(-1.0, 3.0, 81)
    vals = [loss(a) for a in grid]
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    gr = (math.sqrt(5) - 1) / 2
    c, d = hi - gr * (hi - lo), lo + gr * (hi - lo)
    fc, fd = loss(c), loss(d)
    for _ in range(60):  # golden section inside the grid's best bracket
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - gr * (hi - lo)
            fc = loss(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + gr * (hi - lo)
            fd = loss(d)
    a = float((lo + hi) / 2)
    return {"a": a, "b": float(residual(a).mean()), "samples": k}


def members_of(model: Any) -> list[Any]:
    return list(model.members) if hasattr(model, "members") else [model]


# ----------------------------------------------------------------------------- what the head computes


@dataclasses.dataclass
class HeadData:
    """One member's head on a list of graphs: ``terms [nodes, 3]`` ms, ``hidden [nodes, H]``, ``graph [nodes]``,
    ``block [graphs]`` ms."""

    terms: torch.Tensor
    hidden: torch.Tensor
    graph: torch.Tensor
    block: torch.Tensor
    n_graphs: int

    def graph_times(self) -> torch.Tensor:
        return torch.zeros(self.n_graphs, dtype=torch.float64).index_add(0, self.graph, self.terms.sum(1)) + self.block


@torch.no_grad()
def head_data(model: Any, graphs: Sequence[Any], output: int = 0, chunk: int = 512) -> list[HeadData]:
    """Every member's terms and hidden vectors on ``graphs`` (output column ``output``)."""
    from torch_geometric.data import Batch  # slow (torch_geometric)

    data = [as_data(g) for g in graphs]
    out = []
    for m in members_of(model):
        m.eval()
        terms, hidden, graph, block = [], [], [], []
        for s in range(0, len(data), chunk):
            b = Batch.from_data_list(data[s: s + chunk])
            captured: dict[str, torch.Tensor] = {}
            hook = m.node_head[1].register_forward_hook(lambda mod, i, o: captured.__setitem__("u", o))
            try:
                t = m.terms(b)
            finally:
                hook.remove()
            terms.append(torch.stack([t[k][:, output] for k in TERMS], 1).double())
            hidden.append(captured["u"].double())
            graph.append(t["batch"] + s)
            block.append(t["block"][:, output].double())
        if not data:
            h = m.node_head[0].out_features
            out.append(HeadData(torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, h, dtype=torch.float64),
                                torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.float64), 0))
            continue
        out.append(HeadData(torch.cat(terms), torch.cat(hidden), torch.cat(graph), torch.cat(block), len(data)))
    return out


@dataclasses.dataclass
class Basis:
    """``z = [P^T (u - mu) / s, 1]``: the directions one member's adaptation moves along."""

    mean: list[float]
    directions: list[list[float]]  # [H, r]
    scale: list[float]

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        p = torch.tensor(self.directions, dtype=torch.float64)
        z = (hidden - torch.tensor(self.mean, dtype=torch.float64)) @ p / torch.tensor(self.scale, dtype=torch.float64)
        return torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], 1)

    def prior(self, decay: float, intercept: float) -> np.ndarray:
        """``[3, r + 1]``: the prior's relative precision on each entry of ``Delta``: ``(s_j / geometric mean of
        s)^-decay`` on the directions, ``intercept`` on the intercepts (:func:`prior_for`)."""
        s = np.asarray(self.scale, float)
        w = np.empty((3, len(s) + 1))
        w[:, :-1] = (s / math.exp(np.log(s).mean())) ** -decay
        w[:, -1] = intercept
        return w

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Basis:
        return cls(list(d["mean"]), [list(r) for r in d["directions"]], list(d["scale"]))


def bases(model: Any, rank: int = RANK, output: int = 0) -> list[Basis]:
    """Per member: the top ``rank`` principal directions of the head's hidden vectors on the probe pool."""
    out = []
    for hd in head_data(model, probes.graphs(), output):
        u = hd.hidden
        mu = u.mean(0)
        _, _, v = torch.linalg.svd(u - mu, full_matrices=False)
        p = v[:rank].T  # [H, r]
        scale = ((u - mu) @ p).std(0).clamp_min(1e-6)
        out.append(Basis(mu.tolist(), p.tolist(), scale.tolist()))
    return out


# ----------------------------------------------------------------------------- one member's fit


@dataclasses.dataclass
class Shift:
    """One member's fitted adaptation: ``Delta`` (3 x (r + 1)), ``delta`` (block term) and ``g`` (log scale)."""

    delta_head: list[list[float]]
    delta_block: float
    g: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shift:
        return cls([list(r) for r in d["delta_head"]], float(d["delta_block"]), float(d["g"]))

    def graph_times(self, hd: HeadData, z: torch.Tensor) -> torch.Tensor:
        w = torch.tensor(self.delta_head, dtype=torch.float64)
        per_node = (hd.terms * torch.exp((z @ w.T).clamp(-_CLAMP, _CLAMP))).sum(1)
        t = torch.zeros(hd.n_graphs, dtype=torch.float64).index_add(0, hd.graph, per_node)
        return math.exp(self.g) * (t + hd.block * math.exp(self.delta_block))


def _count_matrix(items: Sequence[Sequence[tuple[int, int]]], graphs: Sequence[int]) -> torch.Tensor:
    col = {g: j for j, g in enumerate(graphs)}
    m = np.zeros((len(items), len(graphs)))
    for r, it in enumerate(items):
        for g, c in it:
            m[r, col[g]] += c
    return torch.from_numpy(m)


def _fit_operands(hd: HeadData, z: torch.Tensor, items: Sequence[Sequence[tuple[int, int]]]) -> tuple[Any, ...]:
    """What a fit of ``items`` reads, on the operations of the graphs they use only: ``(terms [N, 3], z [N, p],
    block term [G], counts [k, G], items x nodes [k, N] sparse)``."""
    used = sorted({g for it in items for g, _ in it})
    remap = np.full(hd.n_graphs, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    node_graph_all = hd.graph.numpy()
    mask = remap[node_graph_all] >= 0
    graph = remap[node_graph_all[mask]]
    from scipy.sparse import csr_matrix  # slow (scipy)

    counts = _count_matrix(items, used).numpy()
    # items x nodes, sparse: how often each item runs each node (a whole model runs each of its blocks once)
    node_items = csr_matrix(counts) @ csr_matrix((np.ones(len(graph)), (graph, np.arange(len(graph)))),
                                                 shape=(len(used), len(graph)))
    return hd.terms.numpy()[mask], z.numpy()[mask], hd.block.numpy()[used], counts, node_items


def fit_shift(hd: HeadData, z: torch.Tensor, items: Sequence[Sequence[tuple[int, int]]], y: Sequence[float],
              lam: float, prior: np.ndarray, max_iter: int = 20, huber: float = 0.0) -> Shift:
    """Minimise ``mean(rho(r_i)) + lam (sum prior * Delta^2 + delta^2)`` over ``Delta``, ``delta`` and ``g``.

    ``prior`` ``[3, r + 1]``: the relative precision of each entry of ``Delta`` (:meth:`Basis.prior`).
    ``r_i = log y_i - log t'_i``. ``huber = 0``: ``rho(r) = r^2``, and for given
    ``Delta`` the best ``g`` is the mean log residual, so it is profiled out: the
    loss is the residuals' variance plus the prior. ``huber = c > 0``:
    ``rho`` is Huber's (quadratic within ``c`` log units, linear beyond), so a
    sample the directions cannot explain -- a kernel of its own on this device
    -- pulls them no more than ``c`` does; ``g`` is then a parameter of its own,
    started at the median log residual, and every step reweights the samples
    (``min(1, c / |r_i|)``, iteratively reweighted least squares).

    Damped Gauss-Newton on the operations of the graphs the items use:
    ``log t'_i`` has the Jacobian ``J_i = sum_v sum_k T_kv e^(Delta_k z_v) z_v / t_i``
    (per term ``k``), so a step solves ``(J^T C J / n + lam W + mu I) s = J^T C r / n - lam W theta``
    (``C`` centres over items, or weights them); a step that does not lower the loss is retried
    with more damping. A few milliseconds for 20 whole models (a first version
    with torch's L-BFGS took 0.1-0.5 s a fit, and cross-validation makes ~100 fits).
    """
    terms, zz, block, counts, node_items = _fit_operands(hd, z, items)
    ly = np.log(np.asarray(y, float))
    n, p = len(ly), zz.shape[1]
    weight = np.asarray(prior, float).reshape(3, p)
    robust = huber > 0
    # theta = [Delta (3 p), delta, g if robust]; g is free (no prior)
    wvec = np.concatenate([weight.ravel(), [1.0], [0.0] if robust else []])
    theta = np.zeros(len(wvec))

    def times(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = terms * np.exp(np.clip(zz @ th[:3 * p].reshape(3, p).T, -_CLAMP, _CLAMP))  # [N, 3]
        b = block * math.exp(th[3 * p])
        return node_items @ e.sum(1) + counts @ b, (e, b)

    def evaluate(th: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        t, (e, b) = times(th)
        r = ly - np.log(np.maximum(t, 1e-300))
        if robust:
            r = r - th[-1]
            a = np.abs(r)
            fit = float(np.where(a <= huber, r ** 2, 2 * huber * a - huber ** 2).mean())
        else:
            r = r - r.mean()
            fit = float((r ** 2).mean())
        loss = fit + lam * float((wvec * th ** 2).sum())
        # d log t_i / d theta: per term k, sum_v items_iv e_vk z_v / t_i; the block term: sum_g counts_ig b_g / t_i
        jac = np.concatenate([np.asarray(node_items @ (e[:, k:k + 1] * zz)) for k in range(3)] + [(counts @ b)[:, None]], 1)
        jac = jac / np.maximum(t, 1e-300)[:, None]
        if robust:
            jac = np.concatenate([jac, np.ones((n, 1))], 1)
        return loss, r, jac

    if robust:
        theta[-1] = float(np.median(ly - np.log(np.maximum(times(theta)[0], 1e-300))))
    if n > 1:
        loss, r, jac = evaluate(theta)
        damping = 1e-3
        for _ in range(max_iter):
            if robust:
                sw = np.sqrt(np.minimum(1.0, huber / np.maximum(np.abs(r), 1e-12)))[:, None]
                jc, rc = jac * sw, r * sw[:, 0]
            else:
                jc, rc = jac - jac.mean(0), r
            h = jc.T @ jc / n + np.diag(lam * wvec)
            grad = jc.T @ rc / n - lam * wvec * theta
            improved = False
            for _ in range(8):
                step = np.linalg.solve(h + damping * np.eye(len(theta)), grad)
                cand = theta + step
                c_loss, c_r, c_jac = evaluate(cand)
                if c_loss < loss:
                    improved = True
                    theta, r, jac = cand, c_r, c_jac
                    converged = loss - c_loss < 1e-10 * max(loss, 1e-12)
                    loss = c_loss
                    damping = max(damping / 3, 1e-9)
                    break
                damping *= 10
            if not improved or converged:
                break
    w = theta[:3 * p].reshape(3, p)
    if robust:
        g = float(theta[-1])
    else:
        g = float((ly - np.log(np.maximum(times(theta)[0], 1e-300))).mean())
    return Shift(w.tolist(), float(theta[3 * p]), g)


# ----------------------------------------------------------------------------- the adaptation


@dataclasses.dataclass
class Adaptation:
    """A fitted adaptation: how a base predictor's members become a device's predictions.

    ``method`` is ``embedding`` (a :class:`Shift` and a :class:`Basis` per member,
    on base output ``output``) or ``log-affine`` (``t' = exp(b) t^a`` per member,
    the old ``--few-shot``); ``cv`` holds every candidate's cross-validated error,
    ``interval`` the conformal interval calibrated on the same held-out
    predictions (None below :data:`MIN_SAMPLES_INTERVAL` samples); ``threads`` the device's thread count the
    base's dispatch flags are computed for (:func:`gapp_tui.predict.gnn.dispatch_threads`; 1 but for PyTorch
    eager at more threads).
    """

    method: str
    output: int
    lam: float | None
    shifts: list[Shift]
    bases: list[Basis]
    log_affine: list[dict[str, float]]
    interval: Any
    cv: dict[str, Any]
    samples: dict[str, Any]
    threads: int = 1
    #: the chosen candidate's cross-validated log prediction of each sample (the members' mean), in the order of
    #: the samples; not saved (what the calibration reads its device's drift from, :func:`..calibrate.drift_trend`)
    held_out_log: list[float] | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "output": self.output, "lam": self.lam, "threads": self.threads,
                "shifts": [s.to_dict() for s in self.shifts], "bases": [b.to_dict() for b in self.bases],
                "log_affine": self.log_affine,
                "interval": self.interval.to_dict() if self.interval is not None else None, "cv": self.cv,
                "samples": self.samples}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Adaptation:
        iv = d.get("interval")
        return cls(d["method"], int(d.get("output", 0)), d.get("lam"),
                   [Shift.from_dict(s) for s in d.get("shifts") or []], [Basis.from_dict(b) for b in d.get("bases") or []],
                   list(d.get("log_affine") or []), IntervalModel.from_dict(iv) if iv else None,
                   dict(d.get("cv") or {}), dict(d.get("samples") or {}), int(d.get("threads") or 1))

    def graph_times(self, heads: list[HeadData]) -> np.ndarray:
        """``[members, graphs]`` adapted ms."""
        if self.method == "embedding":
            return np.stack([s.graph_times(hd, b.features(hd.hidden)).numpy()
                             for s, b, hd in zip(self.shifts, self.bases, heads)])

        return np.stack([apply_calibration(hd.graph_times().numpy(), cal) for cal, hd in zip(self.log_affine, heads)])


def rank_for(samples: int) -> int:
    """How many directions ``samples`` samples adapt along (:data:`RANK`, or :data:`RANK_MANY` from :data:`MANY_SAMPLES`)."""
    return RANK_MANY if samples >= MANY_SAMPLES else RANK


def prior_for(samples: int) -> tuple[float, float]:
    """``(decay, intercept)`` of the prior for ``samples`` samples (:data:`PRIOR_DECAY`, :data:`INTERCEPT_PRIOR`, or
    their ``_MANY`` values from :data:`MANY_SAMPLES`)."""
    if samples >= MANY_SAMPLES:
        return PRIOR_DECAY_MANY, INTERCEPT_PRIOR_MANY
    return PRIOR_DECAY, INTERCEPT_PRIOR


def huber_for(samples: int, grain: str) -> float:
    """The Huber threshold of the fit (0: squared errors): :data:`ROBUST_HUBER` for :data:`MANY_SAMPLES` or more
    samples of one block each (``grain == "block"``), else 0."""
    return ROBUST_HUBER if grain == "block" and samples >= MANY_SAMPLES else 0.0


def _folds(n: int, seed: int) -> list[np.ndarray]:
    """Leave-one-out up to 10 samples, else :data:`FOLDS` seeded folds (held-out index arrays)."""
    if n <= 10:
        return [np.array([i]) for i in range(n)]
    perm = np.random.RandomState(seed).permutation(n)
    return [np.sort(perm[j::FOLDS]) for j in range(FOLDS)]


def _items_times(gt: np.ndarray, items: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
    """``[members, items]`` from ``[members, graphs]``."""
    return np.stack([[sum(c * row[g] for g, c in it) for it in items] for row in gt])


def adapt(model: Any, graphs: Sequence[Any], items: Sequence[Sequence[tuple[int, int]]], y: Sequence[float],
          outputs: Sequence[int] = (0,), lambdas: Sequence[float] = LAMBDAS, level: float = 0.9, seed: int = 0,
          grain: str = "item", methods: Sequence[str] = DEFAULT_METHODS, rank: int | None = None,
          progress: Callable[[str], None] | None = None, cross_validate: bool = True,
          threads: int = 1) -> Adaptation:
    """Choose (by cross-validation on the samples) and fit the adaptation of ``model`` to ``items`` / ``y``.

    ``items`` index ``graphs``; only the graphs they use are evaluated.
    ``outputs``: the base outputs to start from (a pre-trained GNN has one per
    known device, :mod:`.pretrain`); the one whose log-affine correction
    predicts held-out samples best is kept (a cheap first pass), then the
    candidate with the smallest cross-validated mean absolute log error on it
    is refitted on every sample, and its held-out residuals calibrate the interval.
    ``rank``: the number of directions (default :func:`rank_for` the number of samples).
    ``cross_validate=False`` fits ``lambdas[0]`` alone (no choice, no interval:
    what a calibration's intermediate rounds need to rank the next probes).
    ``threads``: the device runs PyTorch eager at this many threads, so the base sees each convolution on the
    kernel PyTorch picks there (:func:`gapp_tui.predict.gnn.dispatch_threads`); the adaptation keeps it.
    """
    with dispatch_threads(model, threads):
        ad = _adapt(model, graphs, items, y, outputs, lambdas, level, seed, grain, methods, rank, progress,
                    cross_validate)
    ad.threads = max(1, int(threads or 1))
    return ad


def _adapt(model: Any, graphs: Sequence[Any], items: Sequence[Sequence[tuple[int, int]]], y: Sequence[float],
           outputs: Sequence[int], lambdas: Sequence[float], level: float, seed: int, grain: str,
           methods: Sequence[str], rank: int | None, progress: Callable[[str], None] | None,
           cross_validate: bool) -> Adaptation:
    bad = set(methods) - set(METHODS)
    if bad or not methods:
        raise ValueError(f"unknown adaptation methods {sorted(bad)} (methods: {', '.join(METHODS)})")
    y = np.asarray(y, float)
    k = len(y)
    if k == 0:
        raise ValueError("no samples to adapt to")
    used = sorted({g for it in items for g, _ in it})
    local = {g: j for j, g in enumerate(used)}
    items = [[(local[g], c) for g, c in it] for it in items]
    sub = [graphs[g] for g in used]
    folds = _folds(k, seed) if k >= MIN_SAMPLES else []
    output_scores: dict[str, float] = {}
    if len(outputs) > 1 and folds:
        for o in outputs:
            raw_o = _items_times(np.stack([hd.graph_times().numpy() for hd in head_data(model, sub, o)]), items)
            lt = np.zeros_like(raw_o)
            for test in folds:
                fit = np.setdiff1d(np.arange(k), test)
                for m in range(len(raw_o)):
                    cal = fit_calibration(raw_o[m, fit], y[fit])
                    lt[m, test] = np.log(np.maximum(apply_calibration(raw_o[m, test], cal), 1e-12))
            output_scores[str(o)] = float(np.abs(lt.mean(0) - np.log(y)).mean())
        output = int(min(output_scores, key=output_scores.get))
    else:
        output = int(outputs[0])
    heads = head_data(model, sub, output)
    members = len(heads)
    gts = np.stack([hd.graph_times().numpy() for hd in heads])  # [members, graphs used]
    samples = {"items": k, "blocks": int(sum(c for it in items for _, c in it)), "grain": grain}
    if k < MIN_SAMPLES:
        cals = [fit_item_calibration(gts[m], items, y) for m in range(members)]  # below 3 samples: a scale only
        return Adaptation("log-affine", output, None, [], [], cals, None,
                          {"folds": 0, "note": "too few samples to choose"}, samples)
    basis = bases(model, rank or rank_for(k), output) if "embedding" in methods else []
    zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
    priors = [b.prior(*prior_for(k)) for b in basis]
    huber = huber_for(k, grain)
    if not cross_validate and "embedding" in methods:  # one lambda, no choice and no interval (a quick refit)
        lam = float(lambdas[0])
        shifts = [fit_shift(heads[m], zs[m], items, y, lam, priors[m], huber=huber) for m in range(members)]
        return Adaptation("embedding", output, lam, shifts, basis, [], None, {"folds": 0, "chosen": _name("embedding", lam)},
                          samples)
    cands: list[tuple[str, float | None]] = ([("log-affine", None)] if "log-affine" in methods else []) + (
        [("embedding", lam) for lam in lambdas] if "embedding" in methods else [])
    held: dict[tuple[str, float | None], np.ndarray] = {}
    scores: dict[str, dict[str, Any]] = {}
    for j, (method, lam) in enumerate(cands):
        lt = np.zeros((members, k))
        for test in folds:
            fit = np.setdiff1d(np.arange(k), test)
            for m in range(members):
                if method == "log-affine":  # applied per block, so fitted per block: each item's sum matches
                    cal = fit_item_calibration(gts[m], [items[i] for i in fit], y[fit])
                    gt = apply_calibration(gts[m], cal)
                    lt[m, test] = np.log(np.maximum(_items_times(gt[None], [items[i] for i in test])[0], 1e-12))
                else:
                    s = fit_shift(heads[m], zs[m], [items[i] for i in fit], y[fit], float(lam), priors[m], huber=huber)
                    gt = s.graph_times(heads[m], zs[m]).numpy()
                    lt[m, test] = np.log(np.maximum(_items_times(gt[None], [items[i] for i in test])[0], 1e-12))
        held[(method, lam)] = lt
        mu = lt.mean(0)
        rel = np.abs(np.exp(mu) / y - 1)
        scores[_name(method, lam)] = {"method": method, "lam": lam,
                                      "mean_abs_log_error": float(np.abs(mu - np.log(y)).mean()),
                                      "mape": float(100 * rel.mean()), "within10": float(100 * (rel <= 0.1).mean())}
        if progress:
            progress(f"cross-validation {j + 1}/{len(cands)}: {_name(method, lam)}"
                     f" {scores[_name(method, lam)]['within10']:.0f}% within ±10%")
    best = min(cands, key=lambda c: scores[_name(*c)]["mean_abs_log_error"])
    method, lam = best
    mu, sigma = spread(held[best])
    interval = calibrate(np.log(y) - mu, sigma, level, grain) if k >= MIN_SAMPLES_INTERVAL else None
    if method == "embedding":
        shifts = [fit_shift(heads[m], zs[m], items, y, float(lam), priors[m], huber=huber) for m in range(members)]
        cals: list[dict[str, float]] = []
    else:
        shifts, basis, cals = [], [], [fit_item_calibration(gts[m], items, y) for m in range(members)]
    cv = {"folds": len(folds), "chosen": _name(*best), "candidates": scores, "output": output,
          "outputs": output_scores, "huber": huber if method == "embedding" else 0.0}
    return Adaptation(method, output, lam, shifts, basis, cals, interval, cv, samples, held_out_log=mu.tolist())


def _name(method: str, lam: float | None) -> str:
    return method + (f" lambda={lam:g}" if lam is not None else "")


def adapted_member_times(model: Any, adaptation: Adaptation, graphs: Sequence[Any],
                         items: Sequence[Sequence[tuple[int, int]]] | None = None) -> np.ndarray:
    """``[members, n]`` adapted ms of ``items`` (default: every graph alone)."""
    with dispatch_threads(model, adaptation.threads):
        gt = adaptation.graph_times(head_data(model, graphs, adaptation.output))
    return gt if items is None else _items_times(gt, items)


def base_member_times(model: Any, graphs: Sequence[Any], items: Sequence[Sequence[tuple[int, int]]] | None = None,
                      output: int = 0) -> np.ndarray:
    """``[members, n]`` unadapted ms of ``items`` (default: every graph alone) on base output ``output``."""
    gt = np.stack([hd.graph_times().numpy() for hd in head_data(model, graphs, output)])
    return gt if items is None else _items_times(gt, items)
