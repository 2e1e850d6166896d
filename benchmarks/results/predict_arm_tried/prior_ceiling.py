# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np
from gapp_tui.predict.adapt import fit_shift, _items_times
D = pickle.load(open('/tmp/exp/jetson.pkl','rb'))
items, y, heads = D['items'], D['y'], D['heads']
n = len(y)
def metrics(p, yy):
    rel = np.abs(p / yy - 1); return round(100 * (rel <= .1).mean(),1), round(100 * rel.mean(),1)
for name in ('b16','b32'):
    basis = D[name]
    zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
    for lam in (0.0003, 0.003):
        t=time.time()
        # 5-fold CV over all
        perm = np.random.RandomState(0).permutation(n); lp = np.zeros(n)
        for f in range(5):
            te = np.sort(perm[f::5]); tr = np.setdiff1d(np.arange(n), te)
            l = []
            for m in range(len(heads)):
                sh = fit_shift(heads[m], zs[m], [items[i] for i in tr], y[tr], lam, basis[m].prior(0.0, 0.1), max_iter=40)
                gt = sh.graph_times(heads[m], zs[m]).numpy()
                l.append(np.log(_items_times(gt[None], [items[i] for i in te])[0]))
            lp[te] = np.mean(l, 0)
        print(name, lam, 'cv on 440 -> 110', metrics(np.exp(lp), y), round(time.time()-t), 's', flush=True)
