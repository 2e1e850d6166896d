"""Few-shot adaptation to a new device from a handful of its measurements.

Two mechanisms, both fitted on k measured items (k = 10, 20, 50):

* :func:`fit_calibration` -- a log-affine correction of one predictor,
  ``log t' = a log t + b``, with ``a`` shrunk towards 1 so that 2-3 samples
  give a pure scale and 50 give a slope too. This is what ``gapp train
  --few-shot`` does for a user who measured a few blocks on a new Pi: the
  predictor trained on this machine's CPU corpus keeps its ranking of blocks,
  the correction moves it to the Pi's speed.
* :func:`adapt_predictor` -- what ``gapp train --few-shot`` does now: a
  predictor adapted to a device's samples (block rows and whole-model
  latencies alike) by :func:`gapp_tui.predict.adapt.adapt`, which moves the
  base's relative costs, not only its scale; ``method="log-affine"`` is the
  correction above.
* :func:`fit_mixture` -- with a GNN trained on several source devices at once
  (one output per device, a shared encoder), the target's time of an item is
  modelled as a non-negative mix of the source devices' predicted times,
  ``t = sum_d w_d t_d`` (fitted on relative errors with a small ridge). Since
  every source prediction is a sum over the same blocks, the mix re-weights
  the cost of each kind of block: a Pi-like device from a desktop CPU, a
  phone and a GPU.

:func:`adapt` picks between the mixture and the best single-source
calibration by leave-one-out error on the k samples themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import BadInput
from .adapt import adapt as adapt_embedding
from .adapt import adapted_member_times, apply_calibration, base_member_times, fit_calibration
from .dataset import concat
from .evaluate import metrics, summarize
from .nb201 import NB201Latency, cached_features
from .predictor import Predictor
from .train import ItemBatcher, TrainConfig, fit_gnn, item_times


def adapt_predictor(base: Any, datasets: Sequence[Any], made_for: dict[str, Any], method: str = "auto",
                    progress: Callable[[str], None] | None = None,
                    source: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """``(adapted Predictor, report)``: ``base`` adapted to the items of ``datasets`` (BlockDatasets of one device).

    ``method``: ``auto``/``embedding`` (:func:`gapp_tui.predict.adapt.adapt`'s default) or ``log-affine``.
    A base pre-trained on several devices starts from the closest one's output.
    """
    parts = [d for d in datasets if len(d)]
    left_out = [lo for d in datasets for lo in d.description.get("left_out", [])]
    if not parts:
        raise BadInput("none of the samples could be used (every model was left out); see the lines above")
    ds = parts[0] if len(parts) == 1 else concat(*parts)
    grain = "model" if all(len(it) > 1 for it in ds.items) else "block" if all(len(it) == 1 for it in ds.items) else "item"
    methods = ("log-affine",) if method == "log-affine" else ("embedding",)
    outputs = list(range(int(getattr(base.model, "n_out", 1))))
    # PyTorch eager picks some convolutions' kernel by the thread count; other runtimes keep the base's flags
    threads = int(made_for.get("threads") or 1) if made_for.get("runtime") in ("eager", "") else 1
    ad = adapt_embedding(base.model, ds.graphs, ds.items, ds.y, outputs=outputs, methods=methods, grain=grain,
                         progress=progress, threads=threads)
    adapted = Predictor(base.model, str(made_for.get("device_key", "")),
                        training={**base.training, "few_shot": {"samples": len(ds), "left_out": left_out, **(source or {})}},
                        metrics=base.metrics, node_columns=base.node_columns, total_columns=base.total_columns,
                        adaptation=ad, made_for=made_for)
    gm = lambda t: np.exp(np.log(t).mean(0))  # noqa: E731  (the ensemble's geometric mean)
    before = gm(base_member_times(base.model, ds.graphs, ds.items, ad.output))
    after = gm(adapted_member_times(base.model, ad, ds.graphs, ds.items))
    chosen = ad.cv.get("candidates", {}).get(ad.cv.get("chosen", ""), {})
    return adapted, {"method": ad.method, "lambda": ad.lam, "samples": len(ds), "left_out": left_out,
                     "made_for": made_for, "fit_before": metrics(before, ds.y), "fit_after": metrics(after, ds.y),
                     "held_out": chosen, "cv": ad.cv, "interval": ad.interval.to_dict() if ad.interval else None}


def fit_mixture(p_src: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Non-negative weights ``w`` (one per source column) with ``p_src @ w ~ y`` in relative error."""
    from scipy.optimize import nnls  # slow (scipy)

    scale = np.median(p_src, axis=0)
    scale[scale <= 0] = 1.0
    a = (p_src / scale) / y[:, None]
    a = np.vstack([a, np.sqrt(ridge) * np.eye(p_src.shape[1])])
    b = np.concatenate([np.ones(len(y)), np.zeros(p_src.shape[1])])
    w, _ = nnls(a, b, maxiter=50 * p_src.shape[1])
    return w / scale


def _loo(fit: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]], p_src: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute log error of leave-one-out predictions of ``fit`` on the samples themselves."""
    k = len(y)
    errs = []
    for i in range(k):
        f = fit(np.array([j for j in range(k) if j != i]))
        errs.append(abs(float(np.log(f(p_src[[i]])[0] / y[i]))))
    return float(np.mean(errs))


def adapt(p_src: np.ndarray, y: np.ndarray) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """Choose and fit the adaptation from k samples: returns (method name, f(p_src rows) -> ms).

    ``p_src``: ``[k, sources]`` predicted ms of the k measured items on each source device.
    """
    k, n_src = p_src.shape
    cands: dict[str, Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {}

    def mixture(rows):
        w = fit_mixture(p_src[rows], y[rows])
        return lambda p: np.maximum(p @ w, 1e-6)

    cands["mixture of source devices"] = lambda rows: mixture(rows)
    # the single source whose calibrated predictions fit best
    for d in range(n_src):
        def single(rows, d=d):
            cal = fit_calibration(p_src[rows, d], y[rows])
            return lambda p: apply_calibration(p[:, d], cal)

        cands[f"source {d} calibrated"] = single
    scores = {name: _loo(fit, p_src, y) for name, fit in cands.items()}
    best = min(scores, key=scores.get)
    f = cands[best](np.arange(k))
    return best, f


def nb201_fewshot_protocol(
    targets: Sequence[str] = ("raspi4", "gold_6226", "pixel2", "eyeriss", "fpga", "titan_rtx_256"),
    shots: Sequence[int] = (10, 20, 50),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    n_source_train: int = 2000,
    n_eval: int | None = None,
    config: Any = None,
    csv_path: str | None = None,
    cache: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one GNN on every device that is not a target (HELP's meta-training devices), adapt to each target.

    Without the dispatch flags or the cache flag (``TrainConfig.dispatch``, ``cache_mb``): HELP's devices did not
    run PyTorch's CPU kernels on this machine.
    """
    data = NB201Latency(csv_path)
    sources = [d for d in data.devices if d not in targets]
    perm = np.random.RandomState(1234).permutation(len(data))
    src_train, src_val = perm[:n_source_train], perm[n_source_train:n_source_train + 200]
    pool = perm[n_source_train + 200:] if n_eval is None else perm[n_source_train + 200:n_source_train + 200 + n_eval]
    needed = sorted(set(perm[:n_source_train + 200].tolist()) | set(pool.tolist()))
    feats = cached_features([data.archs[i] for i in needed], cache, progress=progress)
    needed_set = set(needed)
    items = [feats.blocks(a) if k in needed_set else [] for k, a in enumerate(data.archs)]
    y_src = np.stack([data.ms(d) for d in sources], axis=1)
    cfg = dataclasses.replace(config or TrainConfig(), dispatch=False, cache_mb=None)
    model, hist = fit_gnn(feats.graphs, items, y_src, src_train, src_val, cfg, progress=progress)
    p_pool = item_times(model, ItemBatcher(feats.graphs, items), pool.tolist()).double().numpy()
    results: dict[str, Any] = {}
    for t in targets:
        yt = data.ms(t)[pool]
        for k in shots:
            runs, chosen = [], []
            for s in seeds:
                pick = np.random.RandomState(s).choice(len(pool), size=k, replace=False)
                name, f = adapt(p_pool[pick], yt[pick])
                rest = np.setdiff1d(np.arange(len(pool)), pick)
                runs.append(metrics(f(p_pool[rest]), yt[rest]))
                chosen.append(name if not name.startswith("source ") else f"{sources[int(name.split()[1])]} calibrated")

            results.setdefault(t, {})[str(k)] = {"summary": summarize(runs), "runs": runs, "methods": chosen}
            if progress:
                progress(f"{t} k={k}: Spearman {np.mean([r['spearman'] for r in runs]):.3f}")
    return {"sources": sources, "targets": list(targets), "shots": list(shots), "seeds": list(seeds),
            "n_source_train": n_source_train, "n_eval": int(len(pool)), "gnn_history": {
                "best_step": hist["best_step"], "seconds": hist["seconds"]}, "results": results}
