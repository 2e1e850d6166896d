"""Prediction intervals: the ensemble's spread, calibrated on held-out samples (split conformal).

An ensemble of ``M`` GNNs gives, per item, ``M`` log-time predictions; their
mean ``mu`` is the prediction (the geometric mean of the times) and their
standard deviation ``sigma`` says how much the members disagree -- most where
an item lies outside what they were trained on. The spread alone is not an
interval: members trained on the same data share their errors. So it is
*calibrated*: on samples of the device that the prediction did not see (the
cross-validation folds of the adaptation), the normalised score

    s_i = |log y_i - mu_i| / (sigma_i + tau)

is computed, and the interval at level ``1 - alpha`` is

    [exp(mu - q (sigma + tau)),  exp(mu + q (sigma + tau))]

with ``q`` the ``1 - alpha`` quantile of the ``n`` scores (split conformal
prediction; its conservative rank ``ceil((n + 1)(1 - alpha))`` is an option
of :func:`conformal_quantile`, see there why it is not the default). ``tau`` (the median spread of the
samples, at least :data:`MIN_TAU`) keeps an item on which the members happen
to agree from getting an interval of width zero; with one member (no
spread) the interval is ``mu`` times and divided by the ``q``-quantile of the
absolute log error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: the smallest spread added to every item's (log units; 1 %)
MIN_TAU = 0.01
DEFAULT_LEVEL = 0.9


def conformal_quantile(scores: Sequence[float], level: float = DEFAULT_LEVEL, conservative: bool = False) -> float:
    """The ``level`` quantile of ``scores`` (linear interpolation).

    ``conservative=True``: split conformal's rank ``ceil((n + 1) level)`` of
    ``n`` (coverage at least ``level`` for exchangeable scores, up to
    ``level + 1/(n + 1)``). Not the default: the scores here are
    cross-validation residuals of fits on fewer samples than the final one,
    already a little pessimistic, and with 10 samples that rank is the largest
    score -- on the Jetson table at k = 10 the intervals then covered 96-100 %
    of the other models instead of about 90 %.
    """
    s = np.sort(np.asarray(scores, float))
    n = len(s)
    if n == 0:
        return math.inf
    if conservative:
        return float(s[min(math.ceil((n + 1) * level), n) - 1])
    return float(np.quantile(s, level))


@dataclasses.dataclass
class IntervalModel:
    """``q`` and ``tau`` of the calibrated interval (see the module docstring), and what they came from."""

    level: float
    q: float
    tau: float
    samples: int
    grain: str = "item"  # what the calibration samples were: "block" or "model" (a whole network)
    #: False: calibrated without the members' spread (one relative width for every item), so it is applied without it
    spread: bool = True

    def bounds(self, mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) ms for log-time predictions ``mu`` with member spread ``sigma``."""
        mu, sigma = np.asarray(mu, float), np.asarray(sigma, float)
        half = self.q * ((sigma if self.spread else 0.0 * sigma) + self.tau)
        return np.exp(mu - half), np.exp(mu + half)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntervalModel:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def calibrate(residuals: Sequence[float], sigmas: Sequence[float] | None, level: float = DEFAULT_LEVEL,
              grain: str = "item") -> IntervalModel:
    """Fit ``q`` and ``tau`` on held-out log residuals (``log y - mu``) and their members' spreads.

    ``sigmas=None``: no spreads (a single model, or residuals from other models): one relative width.
    """
    r = np.abs(np.asarray(residuals, float))
    if sigmas is None:
        return IntervalModel(level, conformal_quantile(r / MIN_TAU, level), MIN_TAU, int(len(r)), grain, spread=False)
    s = np.asarray(sigmas, float)
    tau = max(float(np.median(s)) if len(s) else 0.0, MIN_TAU)
    return IntervalModel(level, conformal_quantile(r / (s + tau), level), tau, int(len(r)), grain)


def spread(log_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` over the members axis (0) of ``[members, items]`` log times (sigma 0 for one member)."""
    lt = np.asarray(log_times, float)
    if lt.ndim == 1:
        lt = lt[None]
    return lt.mean(0), (lt.std(0, ddof=1) if lt.shape[0] > 1 else np.zeros(lt.shape[1]))


def coverage(y: Sequence[float], low: Sequence[float], high: Sequence[float]) -> float:
    """Share (percent) of ``y`` inside ``[low, high]``."""
    y, lo, hi = (np.asarray(v, float) for v in (y, low, high))
    return float(100 * ((y >= lo) & (y <= hi)).mean()) if len(y) else float("nan")
