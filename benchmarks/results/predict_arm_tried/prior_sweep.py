# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings, os
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np
from gapp_tui.predict.adapt import fit_shift, _folds, _items_times, LAMBDAS, bases
D = pickle.load(open('/tmp/exp/jetson.pkl','rb'))
items, y, heads = D['items'], D['y'], D['heads']
n = len(y); M = len(heads)
K = int(os.environ.get('K', 20))
def metrics(p, yy):
    rel = np.abs(p / yy - 1); return 100 * (rel <= .1).mean(), 100 * rel.mean()
if 'b64' not in D:
    from gapp_tui.predict.predictor import Predictor, default_predictor_path
    pred = Predictor.load(str(default_predictor_path()))
    D['b64'] = bases(pred.model, 64, 0); pickle.dump(D, open('/tmp/exp/jetson.pkl','wb'))
configs = [c.split(':') for c in sys.argv[1:]]  # rank:alpha:termw(f,b,o)
lams = tuple(float(x) for x in os.environ.get('LAMS', ','.join(map(str, LAMBDAS))).split(','))
for rank, alpha, tw in configs:
    rank, alpha = int(rank), float(alpha); tw = [float(x) for x in tw.split(',')] if tw else [1,1,1]
    basis = D[f'b{rank}'] if rank in (16, 32, 64) else None
    zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
    priors = []
    for b in basis:
        sc = np.array(b.scale); w = (sc / np.exp(np.log(sc).mean())) ** (-alpha)
        pr = np.ones((3, rank + 1)) * float(os.environ.get('IW', 0.1)); pr[:, :rank] = w[None]; pr *= np.array(tw)[:, None]
        priors.append(pr)
    W, MP = [], []
    t0 = time.time()
    for s in [int(x) for x in os.environ.get('SEEDS', '0,1,2,3,4').split(',')]:
        pick = np.random.RandomState(s).choice(n, K, replace=False); rest = np.setdiff1d(np.arange(n), pick)
        it_fit = [items[i] for i in pick]; yf = y[pick]
        best = None
        for lam in lams:
            lt = np.zeros((M, K))
            for test in (_folds(K, 0) if not os.environ.get('LOO') else [np.array([i]) for i in range(K)]):
                fit = np.setdiff1d(np.arange(K), test)
                for m in range(M):
                    sh = fit_shift(heads[m], zs[m], [it_fit[i] for i in fit], yf[fit], lam, prior=priors[m])
                    gt = sh.graph_times(heads[m], zs[m]).numpy()
                    lt[m, test] = np.log(_items_times(gt[None], [it_fit[i] for i in test])[0])
            err = np.abs(lt.mean(0) - np.log(yf)).mean()
            if best is None or err < best[0]: best = (err, lam)
        lam = best[1]; lp = []
        for m in range(M):
            sh = fit_shift(heads[m], zs[m], it_fit, yf, lam, prior=priors[m])
            gt = sh.graph_times(heads[m], zs[m]).numpy()
            lp.append(np.log(_items_times(gt[None], [items[i] for i in rest])[0]))
        w, mp = metrics(np.exp(np.mean(lp, 0)), y[rest]); W.append(w); MP.append(mp)
    print(f'K={K} rank {rank} alpha {alpha} tw {tw}: {np.mean(W):.1f} ± {np.std(W):.1f} MAPE {np.mean(MP):.1f}  seeds {[round(x,1) for x in W]} {round(time.time()-t0)}s', flush=True)
