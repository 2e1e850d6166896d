# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import os
import numpy as np
from prior_common import cv_error, draw, load, predict_log, score  # first: it puts the repository on sys.path
from gapp_tui.predict.adapt import LAMBDAS
D = load()
K = int(os.environ.get('K', 10))
basis = D['b16'] if K < 20 else D['b32']
zs = [b.features(hd.hidden) for b, hd in zip(basis, D['heads'])]
PRI = {'old': [b.prior(0.0, 0.1) for b in basis], 'new': [b.prior(2.0, 0.01) for b in basis]}
res = []
for s in range(10):
    pick, rest = draw(D, s, K)
    cv = {(name, lam): cv_error(D, zs, pri, pick, lam) for name, pri in PRI.items() for lam in LAMBDAS}
    out = {}
    for choice in ('old', 'new', 'both'):
        cands = [c for c in cv if choice == 'both' or c[0] == choice]
        name, lam = min(cands, key=cv.get)
        out[choice] = (*score(predict_log(D, zs, PRI[name], pick, lam, rest), D['y'][rest]), name)
    res.append(out); print(s, out, flush=True)
for c in ('old', 'new', 'both'):
    print(c, round(np.mean([r[c][0] for r in res]), 1), 'MAPE', round(np.mean([r[c][1] for r in res]), 1))
