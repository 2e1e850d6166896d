# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings, os
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np
from gapp_tui.predict.adapt import fit_shift, _folds, _items_times
D = pickle.load(open('/tmp/exp/jetson.pkl','rb'))
items, y, heads = D['items'], D['y'], D['heads']
n = len(y); M = len(heads); K = int(os.environ.get('K', 20))
LAMS = (0.001, 0.003, 0.01, 0.03)
def prep(b):
    return [x.features(hd.hidden) for x, hd in zip(b, heads)], [x.prior(2.0, 0.01) for x in b]
P = {16: prep(D['b16']), 32: prep(D['b32']), 64: prep(D['b64'])}
res = {}
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick = np.random.RandomState(s).choice(n, K, replace=False); rest = np.setdiff1d(np.arange(n), pick)
    it_fit = [items[i] for i in pick]; yf = y[pick]
    preds = {}; cvs = {}
    for r, (zs, pri) in P.items():
        for lam in LAMS:
            lt = np.zeros((M, K))
            for test in _folds(K, 0):
                fit = np.setdiff1d(np.arange(K), test)
                for m in range(M):
                    sh = fit_shift(heads[m], zs[m], [it_fit[i] for i in fit], yf[fit], lam, pri[m])
                    lt[m, test] = np.log(_items_times(sh.graph_times(heads[m], zs[m]).numpy()[None], [it_fit[i] for i in test])[0])
            cvs[(r, lam)] = np.abs(lt.mean(0) - np.log(yf)).mean()
            preds[(r, lam)] = np.mean([np.log(_items_times(fit_shift(heads[m], zs[m], it_fit, yf, lam, pri[m]).graph_times(heads[m], zs[m]).numpy()[None], [items[i] for i in rest])[0]) for m in range(M)], 0)
    def sc(lp):
        rel = np.abs(np.exp(lp) / y[rest] - 1); return 100 * (rel <= .1).mean(), 100 * rel.mean()
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
