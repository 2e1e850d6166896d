# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings, os
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np
from gapp_tui.predict.adapt import fit_shift, _folds, _items_times, LAMBDAS
D = pickle.load(open('/tmp/exp/jetson.pkl','rb'))
items, y, heads = D['items'], D['y'], D['heads']
n = len(y); M = len(heads); K = int(os.environ.get('K', 10))
basis = D['b16'] if K < 20 else D['b32']
zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
PRI = {'old': [b.prior(0.0, 0.1) for b in basis], 'new': [b.prior(2.0, 0.01) for b in basis]}
res = []
for s in range(10):
    pick = np.random.RandomState(s).choice(n, K, replace=False); rest = np.setdiff1d(np.arange(n), pick)
    it_fit = [items[i] for i in pick]; yf = y[pick]
    cv = {}
    for name, pri in PRI.items():
        for lam in LAMBDAS:
            lt = np.zeros((M, K))
            for test in _folds(K, 0):
                fit = np.setdiff1d(np.arange(K), test)
                for m in range(M):
                    sh = fit_shift(heads[m], zs[m], [it_fit[i] for i in fit], yf[fit], lam, pri[m])
                    lt[m, test] = np.log(_items_times(sh.graph_times(heads[m], zs[m]).numpy()[None], [it_fit[i] for i in test])[0])
            cv[(name, lam)] = np.abs(lt.mean(0) - np.log(yf)).mean()
    out = {}
    for choice in ('old', 'new', 'both'):
        cands = [c for c in cv if choice == 'both' or c[0] == choice]
        name, lam = min(cands, key=cv.get)
        lp = np.mean([np.log(_items_times(fit_shift(heads[m], zs[m], it_fit, yf, lam, PRI[name][m]).graph_times(heads[m], zs[m]).numpy()[None], [items[i] for i in rest])[0]) for m in range(M)], 0)
        rel = np.abs(np.exp(lp) / y[rest] - 1)
        out[choice] = (100 * (rel <= .1).mean(), 100 * rel.mean(), name)
    res.append(out); print(s, out, flush=True)
for c in ('old', 'new', 'both'):
    print(c, round(np.mean([r[c][0] for r in res]), 1), 'MAPE', round(np.mean([r[c][1] for r in res]), 1))
