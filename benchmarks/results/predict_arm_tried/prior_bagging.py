# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import os
import numpy as np
from prior_common import cv_error, draw, load, predict_log, score
D = load()
y = D['y']; K = int(os.environ.get('K', 20))
LAMS = (0.001, 0.003, 0.01, 0.03)
def prep(b):
    return [x.features(hd.hidden) for x, hd in zip(b, D['heads'])], [x.prior(2.0, 0.01) for x in b]
P = {16: prep(D['b16']), 32: prep(D['b32']), 64: prep(D['b64'])}
res = {}
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick, rest = draw(D, s, K)
    preds = {}; cvs = {}
    for r, (zs, pri) in P.items():
        for lam in LAMS:
            cvs[(r, lam)] = cv_error(D, zs, pri, pick, lam)
            preds[(r, lam)] = predict_log(D, zs, pri, pick, lam, rest)
    def sc(lp):
        return score(lp, y[rest])
    out = {}
    for r in P:
        best = min(LAMS, key=lambda l: cvs[(r, l)])
        out[f'r{r} cv'] = sc(preds[(r, best)])
        out[f'r{r} bag-lam'] = sc(np.mean([preds[(r, l)] for l in LAMS], 0))
    b = {r: min(LAMS, key=lambda l: cvs[(r, l)]) for r in P}
    out['r16+32 cv'] = sc((preds[(16, b[16])] + preds[(32, b[32])]) / 2)
    out['r16+32+64 cv'] = sc((preds[(16, b[16])] + preds[(32, b[32])] + preds[(64, b[64])]) / 3)
    out['all bag'] = sc(np.mean(list(preds.values()), 0))
    bb = min(cvs, key=cvs.get); out['cv over rank,lam'] = sc(preds[bb])
    res[s] = out
    print(s, {k: round(v[0], 1) for k, v in out.items()}, flush=True)
for k in res[next(iter(res))]:
    w = [res[s][k][0] for s in res]; mp = [res[s][k][1] for s in res]
    print(f'{k:18s} {np.mean(w):5.1f} ± {np.std(w):4.1f}  MAPE {np.mean(mp):5.1f}   first5 {np.mean(w[:5]):5.1f}')
