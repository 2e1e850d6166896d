"""Evaluation protocols: NAS-Bench-201 on real Raspberry Pi latencies, leave-one-family-out on torchvision.

Every protocol trains the GNN and every baseline on exactly the same split and
reports the same metrics (:func:`metrics`): Spearman rank correlation, MAPE
and the share of predictions within +-10% of the measurement, on all test
items and on those of at least 1 ms.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .baselines import AdditivePerOp, FlopsRegression, TreesOnTotals
from .dataset import leave_one_family_out
from .nb201 import NB201Latency, cached_features, onehot
from .train import ItemBatcher, TrainConfig, fit_gnn, item_times


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Spearman, MAPE (%), share within +-10% (%), on all items and on items >= 1 ms."""
    from scipy.stats import spearmanr  # slow (scipy)

    pred, y = np.asarray(pred, float), np.asarray(y, float)
    out: dict[str, float] = {"n": int(len(y))}
    rel = np.abs(pred / y - 1)
    out["spearman"] = float(spearmanr(pred, y)[0]) if len(y) > 2 else float("nan")
    out["mape"] = float(100 * rel.mean()) if len(y) else float("nan")
    out["within10"] = float(100 * (rel <= 0.10).mean()) if len(y) else float("nan")
    big = y >= 1.0
    out["n_ge1ms"] = int(big.sum())
    out["spearman_ge1ms"] = float(spearmanr(pred[big], y[big])[0]) if big.sum() > 2 else float("nan")
    out["mape_ge1ms"] = float(100 * rel[big].mean()) if big.any() else float("nan")
    out["within10_ge1ms"] = float(100 * (rel[big] <= 0.10).mean()) if big.any() else float("nan")
    return out


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, min and max of every metric over seeds."""
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs])),
                "min": float(np.min([r[k] for r in runs])), "max": float(np.max([r[k] for r in runs]))} for k in keys}


def run_methods(
    graphs: Sequence[Any],
    items: Sequence[Any],
    y: np.ndarray,
    train: Sequence[int],
    val: Sequence[int],
    test: Sequence[int],
    config: TrainConfig,
    extra: dict[str, Callable[[Sequence[int], Sequence[int]], np.ndarray]] | None = None,
    progress: Callable[[str], None] | None = None,
    batcher: ItemBatcher | None = None,
) -> dict[str, np.ndarray]:
    """Test predictions of the GNN and every baseline trained on ``train`` (+ ``val`` for early stopping)."""
    preds: dict[str, np.ndarray] = {}
    model, hist = fit_gnn(graphs, items, y, train, val, config, progress=progress)
    b = batcher or ItemBatcher(graphs, items)
    preds["GNN"] = item_times(model, b, list(test))[:, 0].numpy()
    fit_idx = list(train) + list(val)  # the baselines have no early stopping: they get the validation items too
    for cls in (FlopsRegression, AdditivePerOp, TreesOnTotals):
        m = cls().fit(graphs, items, y, fit_idx)
        preds[m.name] = m.predict(graphs, items, list(test))
    for name, fn in (extra or {}).items():
        preds[name] = fn(fit_idx, list(test))
    return preds


# ----------------------------------------------------------------------------- NAS-Bench-201


def nb201_protocol(
    device: str = "raspi4",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    n_train: int = 900,
    n_val: int = 100,
    n_test: int | None = None,
    config: TrainConfig | None = None,
    csv_path: str | None = None,
    cache: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Published protocol: ``n_train`` networks to train, ``n_val`` to validate, the rest to test, per seed.

    ``n_test`` limits the test networks (a random subset) to save feature
    extraction time; ``None`` tests on all the rest. The GNN never gets the
    dispatch flags here (``TrainConfig.dispatch``): they describe PyTorch's CPU
    kernels, and these latencies were measured with other runtimes.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor  # slow (scikit-learn)
    from sklearn.linear_model import LinearRegression  # slow (scikit-learn)

    data = NB201Latency(csv_path)
    y = data.ms(device)
    perms = {s: np.random.RandomState(s).permutation(len(data)) for s in seeds}
    limit = None if n_test is None else n_train + n_val + n_test
    needed = sorted({int(i) for p in perms.values() for i in p[:limit]})
    feats = cached_features([data.archs[i] for i in needed], cache, progress=progress)
    items = [feats.blocks(a) if k in set(needed) else [] for k, a in enumerate(data.archs)]
    oh = np.array([onehot(a) for a in data.archs])
    batcher = ItemBatcher(feats.graphs, items)

    def lin_onehot(fit, test):
        return LinearRegression().fit(oh[fit], y[fit]).predict(oh[test]).clip(1e-3)

    def gbt_onehot(fit, test):
        m = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.05, random_state=0)
        return np.exp(m.fit(oh[fit], np.log(y[fit])).predict(oh[test]))

    per_seed: dict[str, list[dict[str, float]]] = {}
    for s in seeds:
        p = perms[s]
        tr, va, te = p[:n_train], p[n_train:n_train + n_val], p[n_train + n_val:limit]
        cfg = TrainConfig(**{**(config or TrainConfig()).to_dict(), "seed": s, "dispatch": False, "cache_mb": None})
        preds = run_methods(feats.graphs, items, y, tr, va, te, cfg, progress=progress, batcher=batcher,
                            extra={"linear regression, one-hot edges": lin_onehot,
                                   "GBT, one-hot edges": gbt_onehot})
        for name, pr in preds.items():
            per_seed.setdefault(name, []).append(metrics(pr, y[te]))
        if progress:
            progress(f"seed {s}: " + ", ".join(f"{k} {v[-1]['spearman']:.3f}" for k, v in per_seed.items()))
    return {"device": device, "seeds": list(seeds), "n_train": n_train, "n_val": n_val,
            "n_test": int(len(perms[seeds[0]][n_train + n_val:limit])),
            "methods": {k: {"runs": v, "summary": summarize(v)} for k, v in per_seed.items()}}


def nb201_ceiling(device: str = "raspi4", n_train: int = 12000, seed: int = 0, csv_path: str | None = None) -> dict[str, Any]:
    """What the label noise allows: trees on the one-hot cell with ``n_train`` networks (test: the rest)."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # slow (scikit-learn)

    data = NB201Latency(csv_path)
    y = data.ms(device)
    oh = np.array([onehot(a) for a in data.archs])
    p = np.random.RandomState(seed).permutation(len(data))
    tr, te = p[:n_train], p[n_train:]
    m = HistGradientBoostingRegressor(max_iter=800, learning_rate=0.05, random_state=seed)
    pred = np.exp(m.fit(oh[tr], np.log(y[tr])).predict(oh[te]))
    return {"n_train": n_train, "metrics": metrics(pred, y[te])}


# ----------------------------------------------------------------------------- torchvision


def lofo_protocol(
    dataset: Any,
    config: TrainConfig | None = None,
    families: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
    keep_blocks: bool = False,
) -> dict[str, Any]:
    """Leave one family out: for each family, train on the others (10% of them for early stopping), test on it.

    ``jobs`` > 1 runs the families in that many worker processes, each with
    the caller's torch thread count; every fold is seeded, so the numbers are
    the same as with ``jobs=1``. ``keep_blocks`` adds every held-out block's
    measured and predicted times (``blocks``).
    """
    cfg = config or TrainConfig()
    folds = list(leave_one_family_out(dataset, families, seed=cfg.seed))
    per_fold: dict[str, dict[str, np.ndarray]] = {}
    if jobs > 1 and len(folds) > 1:
        import torch  # slow (torch)

        ctx = mp.get_context("spawn")  # fork is unsafe once torch's thread pools exist
        # plain pickle bytes: multiprocessing's own pickler would share every tensor through its own file descriptor
        state = pickle.dumps((dataset, cfg), protocol=pickle.HIGHEST_PROTOCOL)
        with ctx.Pool(min(jobs, len(folds)), initializer=_lofo_worker_init,
                      initargs=(state, torch.get_num_threads())) as pool:
            for k, (fam, preds) in enumerate(pool.imap_unordered(_lofo_fold, folds), 1):
                per_fold[fam] = preds
                if progress:
                    progress(f"held out {fam}: done ({k}/{len(folds)} families, {jobs} jobs)")
    else:
        batcher = ItemBatcher(dataset.graphs, dataset.items)
        for fam, (tr, va, te) in folds:
            if progress:
                progress(f"held out {fam}: {len(te)} blocks, training on {len(tr)} (+{len(va)} validation)")
            per_fold[fam] = run_methods(dataset.graphs, dataset.items, dataset.y, tr, va, te, cfg, batcher=batcher)
    pooled: dict[str, tuple[list[float], list[float]]] = {}
    per_family: dict[str, dict[str, dict[str, float]]] = {}
    blocks: list[dict[str, Any]] = []
    for fam, (_tr, _va, te) in folds:  # in the folds' order, whatever order the workers finished in
        preds = per_fold[fam]
        yt = dataset.y[te]
        if keep_blocks:
            blocks += [{"family": fam, "model": dataset.model[i], "batch_size": dataset.batch_size[i],
                        "input_size": dataset.input_size[i], "block": dataset.block_name[i], "measured_ms": float(yt[j]),
                        **{k: float(v[j]) for k, v in preds.items()}} for j, i in enumerate(te)]
        per_family[fam] = {k: metrics(v, yt) for k, v in preds.items()}
        for k, v in preds.items():
            a, b = pooled.setdefault(k, ([], []))
            a.extend(v.tolist())
            b.extend(yt.tolist())
    overall = {k: metrics(np.array(a), np.array(b)) for k, (a, b) in pooled.items()}
    out = {"families": per_family, "overall": overall, "config": cfg.to_dict()}
    return {**out, "blocks": blocks} if keep_blocks else out


_LOFO: dict[str, Any] = {}


def _lofo_worker_init(state: bytes, threads: int) -> None:
    import torch  # slow (torch)

    torch.set_num_threads(threads)
    dataset, config = pickle.loads(state)
    _LOFO.update(dataset=dataset, config=config, batcher=ItemBatcher(dataset.graphs, dataset.items))


def _lofo_fold(fold: tuple[str, tuple[list[int], list[int], list[int]]]) -> tuple[str, dict[str, np.ndarray]]:
    fam, (tr, va, te) = fold
    ds = _LOFO["dataset"]
    return fam, run_methods(ds.graphs, ds.items, ds.y, tr, va, te, _LOFO["config"], batcher=_LOFO["batcher"])
