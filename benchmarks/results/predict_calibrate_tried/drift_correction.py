# Issue 20 experiment (not a benchmark of the release): the labels of a calibration whose device moved, corrected to
# the speed most of its probes were measured at (gapp_tui.predict.calibrate.drift_trend on the cross-validated residuals, as
# `gapp calibrate` does when its steadiness check sees a move), replayed on the stored rows of runs of
# benchmarks/predict_calibrate.py (/tmp/gapp-pc<N>.sqlite, not kept in git) and scored on the same run's test blocks.
# Beside them, the same rows fitted with squared errors (the adaptation before the robust loss, ROBUST_HUBER = 0).
# The order of measurement is the rows' measured_at (to the second) and, within a second, the probe index (a round
# measures its probes in index order). Nothing is measured; both fits are gapp_tui.predict.adapt.adapt's.
#   RUNS=14,15,16,17,18,19,20,21 .venv/bin/python benchmarks/results/predict_calibrate_tried/drift_correction.py
import math
import os
import sqlite3
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..'))
warnings.simplefilter('ignore')
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gapp_tui.predict import probes  # noqa: E402
from gapp_tui.predict import adapt as A  # noqa: E402
from gapp_tui.predict.adapt import adapt, adapted_member_times  # noqa: E402
from gapp_tui.predict.calibrate import DRIFT_WINDOW, drift_trend  # noqa: E402
from gapp_tui.predict.predictor import Predictor, default_predictor_path  # noqa: E402
from runs_common import test_graphs  # noqa: E402

torch.set_num_threads(1)
base = Predictor.load(str(default_predictor_path()))
pg = probes.graphs()

for run in os.environ.get('RUNS', '14,15,16,17,18,19,20,21').split(','):
    with sqlite3.connect(f'/tmp/gapp-pc{run}.sqlite') as c:
        P = {int(b): (v, t) for b, v, t in c.execute(
            "select block, min_ms, measured_at from measurements where model like '%probes%' and mode='standalone'")}
        T = {(m, int(b)): v for m, b, v in c.execute(
            "select model, block, min_ms from measurements where model not like '%probes%' and mode='standalone'")}
    idx = sorted(P)
    order = sorted(idx, key=lambda i: (P[i][1], i))
    tk = sorted(T)
    y = np.array([T[k] for k in tk])
    tg = test_graphs(tk)

    def score(labels):
        ad = adapt(base.model, pg, [[(i, 1)] for i in idx], [labels[i] for i in idx], grain="block", threads=2)
        lp = np.log(np.maximum(adapted_member_times(base.model, ad, tg), 1e-12)).mean(0)
        rel = np.abs(np.exp(lp) / y - 1)
        return ad, 100 * (rel <= .1).mean(), 100 * rel.mean()

    labels = {i: P[i][0] for i in idx}
    robust, A.ROBUST_HUBER = A.ROBUST_HUBER, 0.0  # the adaptation before the robust loss: squared errors
    _, ws, ms = score(labels)
    A.ROBUST_HUBER = robust
    ad, w0, m0 = score(labels)
    held = dict(zip(idx, ad.held_out_log))
    trend = drift_trend([math.log(labels[i]) - held[i] for i in order], window=DRIFT_WINDOW)
    fixed = {i: labels[i] * math.exp(-d) for i, d in zip(order, trend)}
    _, w1, m1 = score(fixed)
    print(f"run {run}: squared errors {ws:.1f} % (MAPE {ms:.1f} %); robust loss {w0:.1f} % (MAPE {m0:.1f} %); corrected {w1:.1f} % (MAPE {m1:.1f} %);"
          f" trend at the end {math.exp(trend[-1]):.2f}x, at most {math.exp(max(trend, key=abs)):.2f}x", flush=True)
