# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
# lambda chosen by repeated cross-validation: the out-of-fold error averaged over REPEATS partitions into 5 folds
# (seeds 0..REPEATS-1; REPEATS=1 is the shipped choice), or by leave-one-out (LOO=1): less noise in the choice?
import os
import time

import numpy as np
from prior_common import draw, load, score, cv_error, predict_log
from gapp_tui.predict.adapt import LAMBDAS, _folds, prior_for

REPEATS = int(os.environ.get('REPEATS', 3))
D = load(); y, heads = D['y'], D['heads']
K = int(os.environ.get('K', 20))
basis = D['b32']
zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
priors = [b.prior(*prior_for(K)) for b in basis]
if os.environ.get('LOO'):
    partitions = [[np.array([i]) for i in range(K)]]
else:
    partitions = []
    for r in range(REPEATS):
        perm = np.random.RandomState(r).permutation(K)
        partitions.append([np.sort(perm[j::5]) for j in range(5)])
W, MP, t0 = [], [], time.time()
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick, rest = draw(D, s, K)
    errs = {lam: np.mean([cv_error(D, zs, priors, pick, lam, f) for f in partitions]) for lam in LAMBDAS}
    lam = min(LAMBDAS, key=errs.get)
    w, mp = score(predict_log(D, zs, priors, pick, lam, rest), y[rest]); W.append(w); MP.append(mp)
    print(s, lam, round(w, 1), round(mp, 1), flush=True)
tag = 'leave-one-out' if os.environ.get('LOO') else f'{REPEATS} x 5 folds'
print(f'K={K} lambda by {tag}: {np.mean(W):.1f} ± {np.std(W):.1f} MAPE {np.mean(MP):.1f} '
      f'seeds {[round(float(x), 1) for x in W]} {time.time() - t0:.0f}s', flush=True)
