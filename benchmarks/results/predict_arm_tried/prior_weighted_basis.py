# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
# The directions from a time-weighted PCA of the probe pool's hidden vectors: each operation weighted by its share of
# its block's base time (POWER=1; 0.5 = square root; 0 = every operation alike, the shipped basis), so the directions
# are those along which the operations that take the time differ, not the many cheap element-wise ones.
import os
import pickle
import time

import numpy as np
import torch
from prior_common import draw, load, score, cv_error, predict_log
from gapp_tui.predict import probes
from gapp_tui.predict.adapt import LAMBDAS, Basis, head_data, prior_for
from gapp_tui.predict.predictor import Predictor, default_predictor_path

POWER = float(os.environ.get('POWER', 1.0))
RANK = int(os.environ.get('RANK', 32))
CACHE_P = '/tmp/exp2/probe_heads.pkl'
if os.path.exists(CACHE_P):
    ph = pickle.load(open(CACHE_P, 'rb'))
else:
    pred = Predictor.load(str(default_predictor_path()))
    ph = head_data(pred.model, probes.graphs(), 0)
    pickle.dump(ph, open(CACHE_P, 'wb'))


def wbasis(hd, power, rank):
    u = hd.hidden
    t = hd.terms.sum(1)
    tot = torch.zeros(hd.n_graphs, dtype=torch.float64).index_add(0, hd.graph, t)
    w = (t / tot[hd.graph]) ** power
    w = w / w.sum()
    mu = (w[:, None] * u).sum(0)
    _, _, v = torch.linalg.svd(w.sqrt()[:, None] * (u - mu), full_matrices=False)
    p = v[:rank].T
    proj = (u - mu) @ p
    scale = (w[:, None] * proj ** 2).sum(0).sqrt().clamp_min(1e-6)
    return Basis(mu.tolist(), p.tolist(), scale.tolist())


D = load(); y, heads = D['y'], D['heads']
K = int(os.environ.get('K', 20))
basis = [wbasis(hd, POWER, RANK) for hd in ph]
zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
priors = [b.prior(*prior_for(K)) for b in basis]
W, MP, t0 = [], [], time.time()
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick, rest = draw(D, s, K)
    lam = min(LAMBDAS, key=lambda lam: cv_error(D, zs, priors, pick, lam))
    w, mp = score(predict_log(D, zs, priors, pick, lam, rest), y[rest]); W.append(w); MP.append(mp)
    print(s, lam, round(w, 1), round(mp, 1), flush=True)
print(f'K={K} rank {RANK} time-weighted power {POWER}: {np.mean(W):.1f} ± {np.std(W):.1f} MAPE {np.mean(MP):.1f} '
      f'seeds {[round(float(x), 1) for x in W]} {time.time() - t0:.0f}s', flush=True)
