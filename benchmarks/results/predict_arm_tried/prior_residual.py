# Issue 20 experiment (not a benchmark of the release): run from the repository root with .venv/bin/python; reads /tmp/exp/jetson.pkl (prior_prep.py)
import sys, time, csv
import numpy as np
from prior_common import draw, load, oof_log, predict_log
from gapp_tui.predict.adapt import LAMBDAS
D = load()
items, y, heads = D['items'], D['y'], D['heads']
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
    pick, rest = draw(D, s, K)
    basis = D['b32'] if K >= 20 else D['b16']
    zs = [b.features(hd.hidden) for b, hd in zip(basis, heads)]
    pri = [b.prior(0.0, 0.1) for b in basis]
    ly = np.log(y[pick])
    oof = {lam: oof_log(D, zs, pri, pick, lam) for lam in LAMBDAS}
    lam = min(LAMBDAS, key=lambda lam: np.abs(oof[lam] - ly).mean())
    r_oof = ly - oof[lam]
    lp = predict_log(D, zs, pri, pick, lam, rest)
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
