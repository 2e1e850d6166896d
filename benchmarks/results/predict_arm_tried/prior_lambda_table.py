# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import os
from prior_common import cv_error, draw, load, predict_log, score
D = load()
K = int(os.environ.get('K', 20))
basis = D['b32'] if K >= 20 else D['b16']
zs = [b.features(hd.hidden) for b, hd in zip(basis, D['heads'])]
pri = [b.prior(2.0, 0.01) for b in basis]
LAMS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick, rest = draw(D, s, K)
    row = []
    for lam in LAMS:
        cv = cv_error(D, zs, pri, pick, lam)
        w, _ = score(predict_log(D, zs, pri, pick, lam, rest), D['y'][rest])
        row.append((round(cv, 4), round(w, 1)))
    print(s, ' '.join(f'{l:g}:{c}/{w}' for l, (c, w) in zip(LAMS, row)), flush=True)
