# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings, os
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np
from gapp_tui.predict.adapt import fit_shift, _folds, _items_times
D = pickle.load(open('/tmp/exp/jetson.pkl','rb'))
items, y, heads = D['items'], D['y'], D['heads']
n = len(y); M = len(heads); K = int(os.environ.get('K', 20))
basis = D['b32'] if K >= 20 else D['b16']
zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
pri = [b.prior(2.0, 0.01) for b in basis]
LAMS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4,5,6,7,8,9').split(',')]:
    pick = np.random.RandomState(s).choice(n, K, replace=False); rest = np.setdiff1d(np.arange(n), pick)
    it_fit = [items[i] for i in pick]; yf = y[pick]
    row = []
    for lam in LAMS:
        lt = np.zeros((M, K))
        for test in _folds(K, 0):
            fit = np.setdiff1d(np.arange(K), test)
            for m in range(M):
                sh = fit_shift(heads[m], zs[m], [it_fit[i] for i in fit], yf[fit], lam, pri[m])
                lt[m, test] = np.log(_items_times(sh.graph_times(heads[m], zs[m]).numpy()[None], [it_fit[i] for i in test])[0])
        cv = np.abs(lt.mean(0) - np.log(yf)).mean()
        lp = np.mean([np.log(_items_times(fit_shift(heads[m], zs[m], it_fit, yf, lam, pri[m]).graph_times(heads[m], zs[m]).numpy()[None], [items[i] for i in rest])[0]) for m in range(M)], 0)
        rel = np.abs(np.exp(lp) / y[rest] - 1)
        row.append((round(cv, 4), round(100 * (rel <= .1).mean(), 1)))
    print(s, ' '.join(f'{l:g}:{c}/{w}' for l, (c, w) in zip(LAMS, row)), flush=True)
