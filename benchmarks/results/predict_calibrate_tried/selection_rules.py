# Issue 20 experiment (not a benchmark of the release): rules for choosing the adaptation's prior strength (and rank) on
# the probes of a calibration, scored on the same run's test blocks, over the stores of runs of
# benchmarks/predict_calibrate.py whose labels held (/tmp/gapp-pc<N>.sqlite, not kept in git). Nothing is measured.
#   RUNS=7,8,11,12 .venv/bin/python benchmarks/results/predict_calibrate_tried/selection_rules.py
import sys, os, sqlite3, json
sys.path.insert(0, '/work/main')
import warnings; warnings.simplefilter('ignore')
import numpy as np, torch
torch.set_num_threads(1)
from gapp_tui.predict.adapt import head_data, bases, fit_shift, prior_for, _folds, _items_times
from gapp_tui.predict.gnn import dispatch_threads
from gapp_tui.predict import probes
from gapp_tui.predict.predictor import Predictor, default_predictor_path
base = Predictor.load(str(default_predictor_path()))
pg = probes.graphs()
GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
def load(p, pr):
    c = sqlite3.connect(p); q = "like" if pr else "not like"
    return {(m, int(bl)): (mn, bn) for m, bl, mn, bn in c.execute(f"select model, block, min_ms, block_name from measurements where model {q} '%probes%' and mode='standalone'")}
from runs_common import test_graphs
results = {}
for run in os.environ.get('RUNS', '7,8,11,12').split(','):
    P = load(f'/tmp/gapp-pc{run}.sqlite', True); T = load(f'/tmp/gapp-pc{run}.sqlite', False)
    pk = sorted(P); yp = np.array([P[k][0] for k in pk]); n = len(yp)
    tk = sorted(T); y = np.array([T[k][0] for k in tk]); G = test_graphs(tk)
    used = sorted({k[1] for k in pk}); loc = {g: j for j, g in enumerate(used)}
    items = [[(loc[k[1]], 1)] for k in pk]
    E, PRED = {}, {}
    for R in (32, 64):
        with dispatch_threads(base.model, 2):
            hp = head_data(base.model, [pg[i] for i in used], 0); ht = head_data(base.model, G, 0); B = bases(base.model, R, 0)
        zp = [b.features(h.hidden) for b, h in zip(B, hp)]; zt = [b.features(h.hidden) for b, h in zip(B, ht)]
        Pr = [b.prior(*prior_for(n)) for b in B]
        for lam in GRID:
            for fs in (0, 1, 2):
                lt = np.zeros((len(hp), n))
                for test in _folds(n, fs):
                    fit = np.setdiff1d(np.arange(n), test)
                    for m in range(len(hp)):
                        s = fit_shift(hp[m], zp[m], [items[i] for i in fit], yp[fit], lam, Pr[m])
                        lt[m, test] = np.log(_items_times(s.graph_times(hp[m], zp[m]).numpy()[None], [items[i] for i in test])[0])
                E[(R, lam, fs)] = np.abs(lt.mean(0) - np.log(yp))
            shifts = [fit_shift(hp[m], zp[m], items, yp, lam, Pr[m]) for m in range(len(hp))]
            PRED[(R, lam)] = np.mean([np.log(s.graph_times(h, z).numpy()) for s, h, z in zip(shifts, ht, zt)], 0)
    w = lambda lp: 100 * (np.abs(np.exp(lp) / y - 1) <= .1).mean()
    mape = lambda lp: 100 * np.abs(np.exp(lp) / y - 1).mean()
    cv = lambda R, lam, seeds=(0,): np.mean([E[(R, lam, s)].mean() for s in seeds])
    rules = {}
    small = GRID[:4]
    rules['shipped (r32, grid .001-.03, 5-fold)'] = (32, min(small, key=lambda l: cv(32, l)))
    rules['r32 wide grid'] = (32, min(GRID, key=lambda l: cv(32, l)))
    rules['r32 repeated CV x3'] = (32, min(small, key=lambda l: cv(32, l, (0, 1, 2))))
    rules['r32 wide, repeated x3'] = (32, min(GRID, key=lambda l: cv(32, l, (0, 1, 2))))
    rules['r64 CV'] = (64, min(small, key=lambda l: cv(64, l)))
    rules['rank+lam CV'] = min(((R, l) for R in (32, 64) for l in small), key=lambda c: cv(*c))
    rules['rank+lam wide, repeated x3'] = min(((R, l) for R in (32, 64) for l in GRID), key=lambda c: cv(c[0], c[1], (0, 1, 2)))
    out = {k: (w(PRED[v]), mape(PRED[v]), v) for k, v in rules.items()}
    out['r32 lam-avg (grid small)'] = (w(np.mean([PRED[(32, l)] for l in small], 0)), mape(np.mean([PRED[(32, l)] for l in small], 0)), None)
    out['r32 lam-avg (wide)'] = (w(np.mean([PRED[(32, l)] for l in GRID], 0)), mape(np.mean([PRED[(32, l)] for l in GRID], 0)), None)
    out['r32+64 lam-avg (wide)'] = (w(np.mean([PRED[(R, l)] for R in (32, 64) for l in GRID], 0)), mape(np.mean([PRED[(R, l)] for R in (32, 64) for l in GRID], 0)), None)
    out['oracle r32'] = (max(w(PRED[(32, l)]) for l in GRID), 0, None)
    results[run] = out
    print(run, {k: (round(v[0], 1), v[2]) for k, v in out.items()}, flush=True)
print()
for k in next(iter(results.values())):
    vals = [results[r][k][0] for r in results]; mp = [results[r][k][1] for r in results]
    print(f"{k:40s} {np.mean(vals):5.1f}  MAPE {np.mean(mp):4.1f}  runs {[round(v, 1) for v in vals]}")
