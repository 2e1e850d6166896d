# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
# A prior learned from other devices: the Jetson's Delta is pulled towards the mean of the Deltas fitted on the
# Raspberry Pi 4 and 5 under ONNX Runtime (13 models each, the same 32 directions and prior shape, lambda by
# leave-one-out), scaled by SHRINK (0 = centred on the base, as shipped), instead of towards the base.
import math
import os
import pickle
import time

import numpy as np
import prior_common as PC
from prior_common import draw, load, score
from gapp_tui.predict.adapt import LAMBDAS, _CLAMP, Shift, _fit_operands, head_data, prior_for
from gapp_tui.predict.predictor import Predictor, default_predictor_path
from gapp_tui.predict.samples import totals_dataset, totals_features_cache
from gapp_tui.predict.tables import device_tables

SOURCES = os.environ.get('SOURCES', 'raspberry_pi_4_ort,raspberry_pi_5_ort').split(',')
SHRINK = float(os.environ.get('SHRINK', 1.0))


def fit_centred(hd, z, items, y, lam, prior, centre=None, max_iter=20):
    """adapt.fit_shift with the prior centred on ``centre`` ([3 * p + 1]: Delta then delta) instead of 0."""
    terms, zz, block, counts, node_items = _fit_operands(hd, z, items)
    ly = np.log(np.asarray(y, float)); n, p = len(ly), zz.shape[1]
    wvec = np.concatenate([np.asarray(prior, float).ravel(), [1.0]])
    c = np.zeros(3 * p + 1) if centre is None else np.asarray(centre, float)
    theta = c.copy()

    def evaluate(th):
        w = th[:-1].reshape(3, p)
        e = terms * np.exp(np.clip(zz @ w.T, -_CLAMP, _CLAMP)); b = block * math.exp(th[-1])
        t = node_items @ e.sum(1) + counts @ b
        r = ly - np.log(np.maximum(t, 1e-300)); r = r - r.mean()
        loss = float((r ** 2).mean() + lam * (wvec * (th - c) ** 2).sum())
        jac = np.concatenate([np.asarray(node_items @ (e[:, k:k + 1] * zz)) for k in range(3)] + [(counts @ b)[:, None]], 1)
        return loss, r, jac / np.maximum(t, 1e-300)[:, None]

    if n > 1:
        loss, r, jac = evaluate(theta); damping = 1e-3
        for _ in range(max_iter):
            jc = jac - jac.mean(0)
            h = jc.T @ jc / n + np.diag(lam * wvec); grad = jc.T @ r / n - lam * wvec * (theta - c)
            improved = False
            for _ in range(8):
                cand = theta + np.linalg.solve(h + damping * np.eye(len(theta)), grad)
                c_loss, c_r, c_jac = evaluate(cand)
                if c_loss < loss:
                    improved = True; conv = loss - c_loss < 1e-10 * max(loss, 1e-12)
                    theta, r, jac, loss = cand, c_r, c_jac, c_loss; damping = max(damping / 3, 1e-9); break
                damping *= 10
            if not improved or conv:
                break
    w = theta[:-1].reshape(3, p)
    e = terms * np.exp(np.clip(zz @ w.T, -_CLAMP, _CLAMP))
    t = node_items @ e.sum(1) + counts @ (block * math.exp(theta[-1]))
    return Shift(w.tolist(), float(theta[-1]), float((ly - np.log(np.maximum(t, 1e-300))).mean()))


D = load(); y, heads = D['y'], D['heads']
K = int(os.environ.get('K', 20))
basis = D['b32']
zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
priors = [b.prior(*prior_for(20)) for b in basis]
CP = '/tmp/exp2/source_deltas.pkl'
src = pickle.load(open(CP, 'rb')) if os.path.exists(CP) else {}
pred = None
for dev in SOURCES:
    if dev in src:
        continue
    pred = pred or Predictor.load(str(default_predictor_path()))
    ds = totals_dataset(device_tables()[dev], cache=totals_features_cache(), item_timeout_s=300)
    sh = head_data(pred.model, ds.graphs, 0)
    szs = [b.features(hd.hidden) for b, hd in zip(basis, sh)]
    Sd = dict(items=ds.items, y=ds.y, heads=sh)
    n = len(ds.y)
    loo = [np.array([i]) for i in range(n)]
    lam = min(LAMBDAS, key=lambda lam: PC.cv_error(Sd, szs, priors, np.arange(n), lam, loo))
    src[dev] = [np.concatenate([np.ravel(s.delta_head), [s.delta_block]]) for s in
                (PC.fit_shift(sh[m], szs[m], ds.items, ds.y, lam, priors[m]) for m in range(len(sh)))]
    print(dev, n, 'models, lambda', lam, flush=True)
    pickle.dump(src, open(CP, 'wb'))
centres = [SHRINK * np.mean([src[d][m] for d in SOURCES], 0) for m in range(len(heads))]
PC.fit_shift = lambda hd, z, items, y, lam, prior: fit_centred(hd, z, items, y, lam, prior,
                                                               centres[[id(h) for h in heads].index(id(hd))])
W, MP, t0 = [], [], time.time()
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick, rest = draw(D, s, K)
    lam = min(LAMBDAS, key=lambda lam: PC.cv_error(D, zs, priors, pick, lam))
    w, mp = score(PC.predict_log(D, zs, priors, pick, lam, rest), y[rest]); W.append(w); MP.append(mp)
    print(s, lam, round(w, 1), round(mp, 1), flush=True)
print(f'K={K} prior centred on {SHRINK} x mean of {SOURCES}: {np.mean(W):.1f} ± {np.std(W):.1f} MAPE {np.mean(MP):.1f} '
      f'seeds {[round(float(x), 1) for x in W]} {time.time() - t0:.0f}s', flush=True)
