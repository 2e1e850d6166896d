# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
# A robust fit: Huber loss on the log residuals (IRLS weights inside the Gauss-Newton), so one sample the features cannot
# explain does not pull the directions; HUBER=c (in log units), 0 = the shipped squared loss.
import math
import os
import time

import numpy as np
from prior_common import draw, load, score
import prior_common as PC
from gapp_tui.predict import adapt as A
from gapp_tui.predict.adapt import LAMBDAS, _CLAMP, Shift, _fit_operands, prior_for

C = float(os.environ.get('HUBER', 0.05))


def fit_robust(hd, z, items, y, lam, prior, max_iter=30):
    terms, zz, block, counts, node_items = _fit_operands(hd, z, items)
    ly = np.log(np.asarray(y, float)); n, p = len(ly), zz.shape[1]
    wvec = np.concatenate([np.asarray(prior, float).ravel(), [1.0], [0.0]])  # ..., delta, g (free)
    theta = np.zeros(3 * p + 2)

    def rho(r):
        a = np.abs(r)
        return np.where(a <= C, 0.5 * r ** 2, C * a - 0.5 * C ** 2) if C > 0 else 0.5 * r ** 2

    def evaluate(th):
        w = th[:3 * p].reshape(3, p)
        e = terms * np.exp(np.clip(zz @ w.T, -_CLAMP, _CLAMP))
        b = block * math.exp(th[3 * p])
        t = node_items @ e.sum(1) + counts @ b
        r = ly - np.log(np.maximum(t, 1e-300)) - th[-1]
        loss = float(2 * rho(r).mean() + lam * (wvec * th ** 2).sum())
        jac = np.concatenate([np.asarray(node_items @ (e[:, k:k + 1] * zz)) for k in range(3)] + [(counts @ b)[:, None]], 1)
        jac = np.concatenate([jac / np.maximum(t, 1e-300)[:, None], np.ones((n, 1))], 1)
        return loss, r, jac

    # start g at the median log residual
    theta[-1] = float(np.median(ly - np.log(np.maximum(node_items @ terms.sum(1) + counts @ block, 1e-300))))
    loss, r, jac = evaluate(theta); damping = 1e-3
    for _ in range(max_iter):
        wt = np.ones(n) if C <= 0 else np.minimum(1.0, C / np.maximum(np.abs(r), 1e-12))
        h = (jac * wt[:, None]).T @ jac / n + np.diag(lam * wvec)
        grad = (jac * wt[:, None]).T @ r / n - lam * wvec * theta
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
    return Shift(theta[:3 * p].reshape(3, p).tolist(), float(theta[3 * p]), float(theta[-1]))


if C > 0:
    PC.fit_shift = fit_robust
D = load(); y, heads = D['y'], D['heads']
K = int(os.environ.get('K', 20))
rank = A.rank_for(K)
basis = D[f'b{rank}']
zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
priors = [b.prior(*prior_for(K)) for b in basis]
W, MP, t0 = [], [], time.time()
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick, rest = draw(D, s, K)
    lam = min(LAMBDAS, key=lambda lam: PC.cv_error(D, zs, priors, pick, lam))
    w, mp = score(PC.predict_log(D, zs, priors, pick, lam, rest), y[rest]); W.append(w); MP.append(mp)
    print(s, lam, round(w, 1), round(mp, 1), flush=True)
print(f'K={K} huber {C}: {np.mean(W):.1f} ± {np.std(W):.1f} MAPE {np.mean(MP):.1f} seeds {[round(x, 1) for x in W]} {time.time() - t0:.0f}s', flush=True)
