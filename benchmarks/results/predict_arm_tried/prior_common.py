# Issue 20 experiments (not a benchmark of the release): what the prior_*.py scripts share -- the cached Jetson head
# data (/tmp/exp/jetson.pkl, written by prior_prep.py), a seed's draw of k models, and the out-of-fold and refitted
# log predictions of the embedding shift under one prior and one lambda (as gapp_tui.predict.adapt.adapt fits them).
import pickle
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
warnings.simplefilter('ignore')
import numpy as np  # noqa: E402
from gapp_tui.predict.adapt import _folds, _items_times, fit_shift  # noqa: E402

CACHE = '/tmp/exp/jetson.pkl'


def load():
    """``{items, y, model, heads, b16, b32[, b64], flops}`` of the 550 captured Jetson samples."""
    with open(CACHE, 'rb') as f:
        return pickle.load(f)


def draw(D, seed, k):
    """(pick, rest): ``k`` models drawn as benchmarks/predict_arm.py draws them, and every other one."""
    n = len(D['y'])
    pick = np.random.RandomState(seed).choice(n, k, replace=False)
    return pick, np.setdiff1d(np.arange(n), pick)


def _log_times(hd, z, shift, items):
    return np.log(_items_times(shift.graph_times(hd, z).numpy()[None], items)[0])


def oof_log(D, zs, priors, pick, lam, folds=None):
    """``[k]``: the members' mean out-of-fold log prediction of each picked model (default folds: adapt's)."""
    items, y, heads = D['items'], D['y'], D['heads']
    it_fit, yf, k = [items[i] for i in pick], y[pick], len(pick)
    lt = np.zeros((len(heads), k))
    for test in (_folds(k, 0) if folds is None else folds):
        fit = np.setdiff1d(np.arange(k), test)
        for m, hd in enumerate(heads):
            sh = fit_shift(hd, zs[m], [it_fit[i] for i in fit], yf[fit], lam, priors[m])
            lt[m, test] = _log_times(hd, zs[m], sh, [it_fit[i] for i in test])
    return lt.mean(0)


def cv_error(D, zs, priors, pick, lam, folds=None):
    """Mean absolute out-of-fold log error on the picked models (what adapt chooses lambda by)."""
    return np.abs(oof_log(D, zs, priors, pick, lam, folds) - np.log(D['y'][pick])).mean()


def predict_log(D, zs, priors, pick, lam, rest):
    """``[len(rest)]``: the members' mean log prediction of ``rest`` after fitting on every picked model."""
    items, y, heads = D['items'], D['y'], D['heads']
    it_fit, yf = [items[i] for i in pick], y[pick]
    return np.mean([_log_times(hd, zs[m], fit_shift(hd, zs[m], it_fit, yf, lam, priors[m]), [items[i] for i in rest])
                    for m, hd in enumerate(heads)], 0)


def score(lp, y):
    """(within +-10 %, MAPE) of log predictions ``lp`` against ``y``."""
    rel = np.abs(np.exp(lp) / y - 1)
    return 100 * (rel <= .1).mean(), 100 * rel.mean()
