# Issue 20 experiment (not a benchmark of the release): which probes to measure after the core round, replayed on the
# stored probes of runs of benchmarks/predict_calibrate.py (every probe's label is known), scored on the run's test
# blocks, at equal *estimated device time* (what --budget limits): the shipped rule (the members' disagreement per
# estimated second), the disagreement alone, and random draws. Reads /tmp/gapp-pc<N>.sqlite (not kept in git).
#   RUNS=7,8,11,12 .venv/bin/python benchmarks/results/predict_calibrate_tried/active_rules.py
import os
import sqlite3
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gapp_tui.predict import probes  # noqa: E402
from gapp_tui.predict.adapt import LAMBDAS, adapt, adapted_member_times  # noqa: E402
from gapp_tui.predict.calibrate import CALIBRATION_PRECISION  # noqa: E402
from runs_common import test_graphs  # noqa: E402
from gapp_tui.predict.interval import spread  # noqa: E402
from gapp_tui.predict.predictor import Predictor, default_predictor_path  # noqa: E402

torch.set_num_threads(1)
base = Predictor.load(str(default_predictor_path()))
pg = probes.graphs()
core = probes.core()


def load(p, pr):
    c = sqlite3.connect(p)
    q = "like" if pr else "not like"
    return {(m, int(b)): t for m, b, t in c.execute(
        f"select model, block, min_ms from measurements where model {q} '%probes%' and mode='standalone'")}


def fit(idx, lab, lam=None):
    kw = dict(lambdas=(lam,), cross_validate=False) if lam else {}
    return adapt(base.model, pg, [[(i, 1)] for i in idx], [lab[i] for i in idx], grain='block', threads=2, **kw)


def within(ad, G, y):
    p = np.exp(np.log(adapted_member_times(base.model, ad, G)).mean(0))
    return 100 * float((np.abs(p / y - 1) <= 0.1).mean())


res = {}
for run in os.environ.get('RUNS', '7,8,11,12').split(','):
    P = {k[1]: v for k, v in load(f'/tmp/gapp-pc{run}.sqlite', True).items()}
    T = load(f'/tmp/gapp-pc{run}.sqlite', False)
    tk = sorted(T)
    G = test_graphs(tk)
    y = np.array([T[k] for k in tk])
    secs = np.array(probes.estimate_seconds([P[i] for i in range(len(pg))], CALIBRATION_PRECISION))
    c0 = [i for i in core if i in P]
    first = fit(c0, P)
    mu, sig = spread(np.log(adapted_member_times(base.model, first, pg)))
    rest = [i for i in range(len(pg)) if i not in c0]
    for share in (0.1, 0.25, 0.5):  # of the rest's device time
        budget = share * secs[rest].sum()

        def take(order):
            out, t = [], 0.0
            for i in order:
                if t + secs[i] <= budget:
                    out.append(i)
                    t += secs[i]
            return out

        rules = {'per second (shipped)': take(sorted(rest, key=lambda i: -sig[i] ** 2 / secs[i])),
                 'disagreement alone': take(sorted(rest, key=lambda i: -sig[i] ** 2))}
        for s in range(3):
            rules[f'random {s}'] = take(list(np.random.RandomState(s).permutation(rest)))
        for name, chosen in rules.items():
            res.setdefault((share, name.split(' ')[0] if name.startswith('random') else name), []).append(
                (within(fit(c0 + chosen, P), G, y), len(chosen)))
    print('run', run, 'done', flush=True)
print('| share of the rest\'s device time | rule | probes added (mean) | test blocks within ±10 % (mean over runs) |')
print('|---|---|---|---|')
for (share, name), v in sorted(res.items()):
    print(f"| {share:.2f} | {name} | {np.mean([n for _, n in v]):.0f} | {np.mean([w for w, _ in v]):.1f} |")
