# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, os
import numpy as np
from prior_common import CACHE, cv_error, draw, load, predict_log, score
from gapp_tui.predict.adapt import LAMBDAS, bases
D = load()
y, heads = D['y'], D['heads']
K = int(os.environ.get('K', 20))
if 'b64' not in D:
    from gapp_tui.predict.predictor import Predictor, default_predictor_path
    pred = Predictor.load(str(default_predictor_path()))
    D['b64'] = bases(pred.model, 64, 0); pickle.dump(D, open(CACHE, 'wb'))
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
        pick, rest = draw(D, s, K)
        folds = [np.array([i]) for i in range(K)] if os.environ.get('LOO') else None
        lam = min(lams, key=lambda lam: cv_error(D, zs, priors, pick, lam, folds))  # the first of equals, as before
        w, mp = score(predict_log(D, zs, priors, pick, lam, rest), y[rest]); W.append(w); MP.append(mp)
    print(f'K={K} rank {rank} alpha {alpha} tw {tw}: {np.mean(W):.1f} ± {np.std(W):.1f} MAPE {np.mean(MP):.1f}  seeds {[round(x,1) for x in W]} {round(time.time()-t0)}s', flush=True)
