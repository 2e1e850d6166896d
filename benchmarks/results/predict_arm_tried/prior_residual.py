# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, pickle, time, warnings, csv, math
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np, torch
from gapp_tui.predict.adapt import fit_shift, _folds, _items_times, LAMBDAS
D = pickle.load(open('/tmp/exp/jetson.pkl','rb'))
items, y, heads = D['items'], D['y'], D['heads']
n = len(y); M = len(heads)
fam = {}
for r in csv.DictReader(open('/work/shared/data/arm/jetson_nano_ort_timm.csv')):
    fam[r['timm_arch']] = r['timm_module']
models = D['model']
F = np.array([fam.get(m.split(':')[-1].split('.')[0], fam.get(m, '?')) for m in models])
print('unknown fam', (F=='?').sum(), models[:3])
# model embeddings: time-weighted mean hidden per item (member 0)
def model_emb(m):
    hd = heads[m]
    w = hd.terms.sum(1).numpy(); u = hd.hidden.numpy(); g = hd.graph.numpy()
    G = hd.n_graphs; H = u.shape[1]
    num = np.zeros((G, H)); den = np.zeros(G)
    np.add.at(num, g, u * w[:, None]); np.add.at(den, g, w)
    E = []
    for it in items:
        a = sum(c * num[gi] for gi, c in it); b = sum(c * den[gi] for gi, c in it)
        E.append(a / b)
    return np.array(E)
E = model_emb(0); E = (E - E.mean(0)) / (E.std(0) + 1e-9)
K = int(sys.argv[1]) if len(sys.argv) > 1 else 20
seeds = [0,1,2,3,4]
def metrics(p, yy):
    rel = np.abs(p / yy - 1); return 100 * (rel <= .1).mean(), 100 * rel.mean()
res = {}
for s in seeds:
    t0 = time.time()
    pick = np.random.RandomState(s).choice(n, K, replace=False); rest = np.setdiff1d(np.arange(n), pick)
    rank = 32 if K >= 20 else 16
    basis = D['b32'] if rank == 32 else D['b16']
    zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
    it_fit = [items[i] for i in pick]; yf = y[pick]
    folds = _folds(K, 0)
    best = None
    oof = {}
    for lam in LAMBDAS:
        lt = np.zeros((M, K))
        for test in folds:
            fit = np.setdiff1d(np.arange(K), test)
            for m in range(M):
                sh = fit_shift(heads[m], zs[m], [it_fit[i] for i in fit], yf[fit], lam, basis[m].prior(0.0, 0.1))
                gt = sh.graph_times(heads[m], zs[m]).numpy()
                lt[m, test] = np.log(_items_times(gt[None], [it_fit[i] for i in test])[0])
        err = np.abs(lt.mean(0) - np.log(yf)).mean()
        oof[lam] = np.log(yf) - lt.mean(0)
        if best is None or err < best[0]: best = (err, lam)
    lam = best[1]
    r_oof = oof[lam]
    lp = []
    for m in range(M):
        sh = fit_shift(heads[m], zs[m], it_fit, yf, lam, basis[m].prior(0.0, 0.1))
        gt = sh.graph_times(heads[m], zs[m]).numpy()
        lp.append(np.log(_items_times(gt[None], [items[i] for i in rest])[0]))
    lp = np.mean(lp, 0)
    out = {'base': metrics(np.exp(lp), y[rest])}
    # A: family random effect
    for tau in (0.5, 1, 2):
        corr = np.zeros(len(rest))
        for j, i in enumerate(rest):
            same = F[pick] == F[i]
            if same.any(): corr[j] = r_oof[same].sum() / (same.sum() + tau)
        out[f'fam tau={tau}'] = metrics(np.exp(lp + corr), y[rest])
    # B: GP on embedding, lengthscale by LOO on r_oof
    Ef, Et = E[pick], E[rest]
    d2f = ((Ef[:, None] - Ef[None]) ** 2).sum(-1); d2t = ((Et[:, None] - Ef[None]) ** 2).sum(-1)
    H = E.shape[1]
    for ls in (0.5, 1.0, 2.0):
        for noise in (0.5, 1.0):
            Kf = np.exp(-d2f / (2 * (ls**2) * H)); Kt = np.exp(-d2t / (2 * (ls**2) * H))
            a = np.linalg.solve(Kf + noise * np.eye(K), r_oof)
            out[f'gp ls={ls} nz={noise}'] = metrics(np.exp(lp + Kt @ a), y[rest])
    res[s] = out
    print(s, lam, {k: round(v[0], 1) for k, v in out.items()}, round(time.time() - t0), 's', flush=True)
keys = res[0].keys()
for k in keys:
    w = [res[s][k][0] for s in seeds]; mp = [res[s][k][1] for s in seeds]
    print(f'{k:20s} {np.mean(w):5.1f} ± {np.std(w):4.1f}  MAPE {np.mean(mp):5.1f}')
