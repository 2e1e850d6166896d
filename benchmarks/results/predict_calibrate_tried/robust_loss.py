# Issue 20 experiment (not a benchmark of the release): the adaptation on a calibration's probes fitted with squared
# errors (before) and with Huber's loss (ROBUST_HUBER, now), on the stored rows of runs of
# benchmarks/predict_calibrate.py (/tmp/gapp-pc<N>.sqlite, not kept in git), scored on the same run's test blocks.
# Nothing is measured: both fits see the same labels. The prior's strength is chosen by 5-fold cross-validation on
# the probes, as gapp_tui.predict.adapt.adapt does.
#   RUNS=14,15,16 .venv/bin/python benchmarks/results/predict_calibrate_tried/robust_loss.py
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..'))
warnings.simplefilter('ignore')
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gapp_tui.predict import probes  # noqa: E402
from gapp_tui.predict.adapt import (LAMBDAS, ROBUST_HUBER, _folds, _items_times, bases, fit_shift, head_data,  # noqa: E402
                                    prior_for, rank_for)
from gapp_tui.predict.gnn import dispatch_threads  # noqa: E402
from gapp_tui.predict.predictor import Predictor, default_predictor_path  # noqa: E402
from runs_common import rows, test_graphs  # noqa: E402

torch.set_num_threads(1)
base = Predictor.load(str(default_predictor_path()))
pg = probes.graphs()

summary = []
for run in os.environ.get('RUNS', '14,15,16').split(','):
    db = f'/tmp/gapp-pc{run}.sqlite'
    P, T = rows(db, True), rows(db, False)
    pk, tk = sorted(P), sorted(T)
    yp, y = np.array([P[k] for k in pk]), np.array([T[k] for k in tk])
    n = len(yp)
    used = sorted({k[1] for k in pk})
    loc = {g: j for j, g in enumerate(used)}
    items = [[(loc[k[1]], 1)] for k in pk]
    with dispatch_threads(base.model, 2):
        hp = head_data(base.model, [pg[i] for i in used], 0)
        ht = head_data(base.model, test_graphs(tk), 0)
    basis = bases(base.model, rank_for(n), 0)  # at 1 thread's flags (adapt computes it at the device's: the
    # numbers differ from adapt's by a few blocks; drift_correction.py goes through adapt itself)
    zp = [b.features(h.hidden) for b, h in zip(basis, hp)]
    zt = [b.features(h.hidden) for b, h in zip(basis, ht)]
    priors = [b.prior(*prior_for(n)) for b in basis]
    line = [run]
    for huber in (0.0, ROBUST_HUBER):
        cvs = []
        for lam in LAMBDAS:
            lt = np.zeros((len(hp), n))
            for test in _folds(n, 0):
                fit = np.setdiff1d(np.arange(n), test)
                for m in range(len(hp)):
                    s = fit_shift(hp[m], zp[m], [items[i] for i in fit], yp[fit], lam, priors[m], huber=huber)
                    lt[m, test] = np.log(_items_times(s.graph_times(hp[m], zp[m]).numpy()[None],
                                                      [items[i] for i in test])[0])
            cvs.append((float(np.abs(lt.mean(0) - np.log(yp)).mean()), lam))
        cv, lam = min(cvs)
        shifts = [fit_shift(hp[m], zp[m], items, yp, lam, priors[m], huber=huber) for m in range(len(hp))]
        lp = np.mean([np.log(s.graph_times(h, z).numpy()) for s, h, z in zip(shifts, ht, zt)], 0)
        rel = np.abs(np.exp(lp) / y - 1)
        line += [100 * (rel <= .1).mean(), 100 * rel.mean(), cv, lam]
    summary.append(line)
    print(f"run {run}: squared {line[1]:.1f} % (MAPE {line[2]:.1f} %, probes' cv {line[3]:.4f}, lambda {line[4]:g}); "
          f"Huber {ROBUST_HUBER:g} {line[5]:.1f} % (MAPE {line[6]:.1f} %, cv {line[7]:.4f}, lambda {line[8]:g})", flush=True)
a = np.array([s[1:] for s in summary], float)
print(f"mean over runs {','.join(s[0] for s in summary)}: squared {a[:, 0].mean():.1f} %, MAPE {a[:, 1].mean():.1f} %; "
      f"Huber {a[:, 4].mean():.1f} %, MAPE {a[:, 5].mean():.1f} %")
