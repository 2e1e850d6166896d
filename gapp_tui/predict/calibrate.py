"""``gapp calibrate``: measure the probe suite on a device, adapt the base predictor to it, record the result.

The steps, each bounded by the device-time budget (default 10 minutes):

1. **Speed check.** One probe is measured: the ratio of its time to the base
   predictor's gives this device's speed, so every later estimate is in this
   device's seconds. The round's wall time less its block time is the fixed
   cost of a round (an SSH round starts an agent and uploads a bundle).
2. **Estimate.** The device time of the core probes (:func:`probes.core`: the
   first probes of every kind in turn) is estimated from the base predictor's
   times, that speed and the timer's rules (:func:`probes.estimate_seconds`)
   and reported *before* they are measured; the core is cut to half the budget
   when it would not fit.
3. **Core round**, then the adaptation (:func:`gapp_tui.predict.adapt.adapt`).
4. **Active rounds** while budget is left: with an ensemble, every unmeasured
   probe is scored by how much the adapted members disagree on it
   (``sigma^2``, the variance of their log predictions) per estimated second
   of measuring it, and the best are measured next -- about half the remaining
   budget per round, so the later rounds choose with what the earlier ones
   taught. A single GNN (no spread) takes the probes in pool order.
5. **Steadiness check.** The reference probes (the speed check's probe and
   the core probes nearest 1 ms) are measured once more, not stored, and
   compared with their first time this run: a device that sped up or slowed
   down during the calibration (a busy machine, a throttling Pi) makes every
   label, and so every prediction, off by as much. A move of more than
   :data:`DRIFT_WARN` is a warning in the report, the CLI and the TUI. Its
   device time is set aside from the budget before the active rounds.
6. **Final adaptation** on every probe row of this device and setting in the
   store (a second run resumes: stored probes are not measured again, unless
   ``remeasure`` -- ``gapp calibrate --remeasure`` -- asks for every probe anew), its
   cross-validated accuracy on the held-out probe blocks, the interval, the
   predictor file, and the store's record of it as this device's predictor.

Measurement goes through the existing runners -- :func:`gapp_tui.measure.engine.measure`
locally, :func:`gapp_tui.measure.remote_engine.measure_remote` over SSH -- on a
:class:`~gapp_tui.predict.probes.ProbeChain` in standalone mode: progress per
block, rows stored as they arrive, Ctrl-C keeps them (the calibration then
stops without writing a predictor and says how to resume).
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from ..errors import BadInput
from ..measure.engine import MeasureConfig, measure
from ..measure.remote_engine import measure_remote
from ..measure.timer import Precision
from ..store import parse_setting
from . import probes
from .adapt import LAMBDAS, adapt, adapted_member_times
from .interval import spread
from .predictor import Predictor

#: timing rules for probes: fewer runs than a model measurement (a probe is one sample of many)
CALIBRATION_PRECISION = Precision(warmup_runs=2, warmup_s=0.02, min_runs=5, max_runs=30, target_ci=0.03,
                                  max_time_s=0.5, min_sample_s=2e-4)
DEFAULT_BUDGET_S = 600.0
MAX_ACTIVE_ROUNDS = 4
#: probes measured again at the end to see whether the device's speed held (:func:`steadiness`)
REFERENCE_PROBES = 3
#: a move of the reference probes' median time by more than this is a warning, and the labels are corrected
DRIFT_WARN = 0.05
#: the probes (in the order they were measured) over which the trend of a moved device's speed is a running
#: median of the adaptation's log residuals (:func:`drift_trend`), and the fewest probes of this run to correct
DRIFT_WINDOW = 48
RUNTIME = "eager"


class Interrupted(Exception):
    """Ctrl-C or a cancel during a round: the rows measured so far are in the store."""

    def __init__(self, message: str, measured: int) -> None:
        super().__init__(message)
        self.measured = measured


def parse_budget(text: str | float) -> float:
    """``10m``, ``90s``, ``1h``, ``1.5m`` or plain seconds -> seconds; BadInput otherwise."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", str(text))
        if not m:
            raise BadInput(f"budget {text!r} does not parse; give a duration such as 10m, 90s or 1h")
        value = float(m.group(1)) * {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    if not value > 0:
        raise BadInput(f"budget {text!r} is not positive; give a duration such as 10m")
    return value


# ----------------------------------------------------------------------------- runners


class LocalRunner:
    """Probes measured on this machine with the measurement engine."""

    def __init__(self, store: Any, threads: int | None = None, device: str = "cpu", dtype: str = "float32",
                 precision: Precision = CALIBRATION_PRECISION, device_name: str | None = None,
                 remeasure: bool = False) -> None:
        self.store, self.threads, self.device, self.dtype = store, threads, device, dtype
        self.precision, self.device_name = precision, device_name
        self.remeasure = remeasure  # measure probes the store already holds again (and replace their rows)
        self.label = "this machine"

    def config(self, selected: Sequence[int]) -> Any:
        return MeasureConfig(modes=("standalone",), device=self.device, threads=self.threads, dtype=self.dtype,
                             precision=self.precision, full=False, device_name=self.device_name,
                             blocks=tuple(selected), force=self.remeasure)

    def measure(self, selected: Sequence[int], progress: Callable[[Any], None], cancel: threading.Event | None,
                command: str, keep: bool = True) -> Any:
        """Measure probes ``selected``; ``keep=False``: measured again and not stored (the steadiness check)."""
        return measure(probes.ProbeChain(selected), self.config(selected), store=self.store if keep else None,
                       progress=progress, cancel=cancel, command=command)


class RemoteRunner(LocalRunner):
    """Probes measured on a device over SSH (the bundle carries only the probes of the round)."""

    def __init__(self, session: Any, store: Any, threads: int | None = None, remote_python: str = "python3",
                 remote_tmp: str | None = None, precision: Precision = CALIBRATION_PRECISION,
                 device_name: str | None = None, log: Callable[[str], None] | None = None,
                 remeasure: bool = False) -> None:
        super().__init__(store, threads, "cpu", "float32", precision, device_name, remeasure)
        self.session, self.remote_python, self.remote_tmp, self.log = session, remote_python, remote_tmp, log
        self.label = session.target.label

    def measure(self, selected: Sequence[int], progress: Callable[[Any], None], cancel: threading.Event | None,
                command: str, keep: bool = True) -> Any:
        return measure_remote(self.session, probes.ProbeChain(selected), self.config(selected),
                              store=self.store if keep else None,
                              remote_python=self.remote_python, remote_tmp=self.remote_tmp, progress=progress,
                              cancel=cancel, command=command, log=self.log)


# ----------------------------------------------------------------------------- the calibration


@dataclasses.dataclass
class State:
    """What the calibration knows so far."""

    device_key: str = ""
    setting: str = ""
    description: dict[str, Any] = dataclasses.field(default_factory=dict)
    spent_s: float = 0.0
    rounds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    measured: dict[int, float] = dataclasses.field(default_factory=dict)  # probe -> ms (all stored rows)
    fresh: dict[int, float] = dataclasses.field(default_factory=dict)  # probe -> ms, measured by this run, in order
    drift: dict[int, float] = dataclasses.field(default_factory=dict)  # probe -> log speed change the fit removes
    new_rows: int = 0


def calibrate(runner: Any, base: Any, budget_s: float = DEFAULT_BUDGET_S, *, level: float = 0.9,
              on_event: Callable[[dict[str, Any]], None] | None = None, cancel: threading.Event | None = None,
              command: str = "gapp calibrate", core_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Measure probes within ``budget_s`` of device time and adapt ``base`` (a Predictor); (predictor, report).

    ``on_event`` receives dicts with ``event`` = ``estimate``, ``round``,
    ``block``, ``adapted``, ``done`` (see the module docstring for the steps).
    Raises :class:`Interrupted` when a round is interrupted (its rows are stored).
    """
    emit = on_event or (lambda e: None)
    graphs = probes.graphs()
    pool = probes.pool()
    base_ms = base.member_times(graphs)  # [members, probes] on the base machine
    base_mid = np.exp(np.log(base_ms).mean(0))
    st = State()
    precision = runner.precision

    est: dict[int, float] = {}  # the estimate each probe was measured under (to learn the pace)

    def run_round(kind: str, selected: list[int], keep: bool = True) -> dict[int, float]:
        """Measure ``selected`` (``keep``: the unmeasured ones, stored; else all of them again, not stored)."""
        if keep:
            selected = [i for i in selected if i not in st.measured]
        if not selected:
            return {}
        emit({"event": "round", "phase": "start", "kind": kind, "probes": len(selected)})
        t0 = time.perf_counter()
        done_blocks = [0]
        timed: set[str] = set()

        def progress(p: Any) -> None:
            if p.phase == "standalone" and p.estimate_ms is not None and not p.skipped:
                done_blocks[0] += 1
                timed.add(p.name)
                emit({"event": "block", "kind": kind, "index": done_blocks[0], "total": len(selected), "name": p.name,
                      "ms": p.estimate_ms, "spent_s": st.spent_s + time.perf_counter() - t0, "budget_s": budget_s})

        result = runner.measure(selected, progress, cancel, command, keep=keep)
        wall = time.perf_counter() - t0
        st.spent_s += wall
        st.device_key, st.setting = result.device["key"], result.setting
        st.description = result.device
        rows = result.rows.get("standalone", [])
        if getattr(runner, "remeasure", False):  # the other stored rows are what --remeasure measures anew
            wanted = set(selected)
            rows = [r for r in rows if int(r["block"]) in wanted]
        # the label is the fastest sample, as in the corpus: robust to a busy machine
        got = {int(r["block"]): float(r.get("min_ms") or r["median_ms"]) for r in rows}
        if keep:
            st.new_rows += result.measured
            st.measured.update(got)
            now = [int(r["block"]) for r in rows if r.get("block_name") in timed]
            st.fresh.update({i: got[i] for i in now})
        st.rounds.append({"kind": kind, "probes": len(selected), "measured": result.measured, "seconds": round(wall, 2),
                          "estimated_s": round(float(sum(est.get(i, 0.0) for i in selected)), 2)})
        emit({"event": "round", "phase": "end", "kind": kind, "probes": len(selected), "seconds": wall,
              "spent_s": st.spent_s, "budget_s": budget_s})
        if result.interrupted:
            raise Interrupted(f"interrupted during the {kind} round; {st.new_rows} probe row(s) are stored -"
                              " run the same command again to resume", st.new_rows)
        return got

    # 1. speed check: the core probe whose base time is closest to 1 ms
    core = probes.core(core_size or probes.CORE_SIZE)
    first = min(core, key=lambda i: abs(math.log(max(base_mid[i], 1e-6))))
    run_round("speed check", [first])
    speed = float(np.median([st.measured[i] / base_mid[i] for i in st.measured]))
    est_block = [float(e) for e in probes.estimate_seconds(base_mid[[first]] * speed, precision)]
    # what a round costs beyond its blocks (an SSH round starts an agent and uploads a bundle)
    round_cost = max(0.0, st.rounds[-1]["seconds"] - est_block[0]) if st.rounds else 0.0

    pace = [1.0]  # measured seconds per estimated second of the rounds so far (noise, overheads, a busy machine)

    def est_seconds(idx: Sequence[int], ms: np.ndarray) -> np.ndarray:
        secs = pace[0] * np.array(probes.estimate_seconds([float(ms[i]) for i in idx], precision))
        est.update({int(i): float(s) for i, s in zip(idx, secs)})
        return secs

    def learn_pace() -> None:
        r = st.rounds[-1]
        if r["measured"] and r["estimated_s"] > 0:
            pace[0] *= max(r["seconds"] - round_cost, 0.1 * r["estimated_s"]) / r["estimated_s"]

    # 2. estimate of the core round; cut to half the budget if needed
    device_ms = base_mid * speed
    todo = [i for i in core if i not in st.measured]
    secs = est_seconds(todo, device_ms)
    keep = list(np.cumsum(secs) + round_cost <= max(0.5 * (budget_s - st.spent_s), 0.0))
    todo_core = [i for i, k in zip(todo, keep) if k] or todo[:1]
    emit({"event": "estimate", "speed_vs_base": speed, "round_cost_s": round_cost,
          "core_probes": len(todo_core), "core_s": float(secs[: len(todo_core)].sum() + round_cost),
          "pool_probes": len(pool), "pool_s": float(np.array(probes.estimate_seconds(device_ms, precision)).sum()),
          "budget_s": budget_s, "spent_s": st.spent_s})
    # the reference probes of the steadiness check (step 5): the speed check's and the core's nearest 1 ms
    refs = [first] + sorted((i for i in todo_core if i != first),
                            key=lambda i: abs(math.log(max(base_mid[i], 1e-6))))[:REFERENCE_PROBES - 1]
    run_round("core", todo_core)
    if st.rounds and st.rounds[-1]["kind"] == "core":
        learn_pace()
    refs = [i for i in refs if i in st.fresh]  # a resumed run compares only what it measured itself
    reserve = float(est_seconds(refs, base_mid * speed).sum()) + round_cost if refs else 0.0

    def fit(lam: float | None = None) -> Any:
        """The adaptation to every probe measured so far: ``lam`` given, a quick refit (to rank the next probes)."""
        idx = sorted(st.measured)
        items = [[(i, 1)] for i in idx]
        y = [st.measured[i] * math.exp(-st.drift.get(i, 0.0)) for i in idx]  # at the speed most probes saw
        outputs = list(range(int(getattr(base.model, "n_out", 1))))  # a pre-trained base: the closest device
        threads = _threads(st.setting) or 1  # PyTorch picks some convolutions' kernel by the thread count
        if lam is not None:
            return adapt(base.model, graphs, items, y, outputs=[first_fit.output], lambdas=(lam,), grain="block",
                         cross_validate=False, threads=threads), idx
        return adapt(base.model, graphs, items, y, outputs=outputs, level=level, grain="block", threads=threads), idx

    # 3-4. adapt (choosing lambda), then active rounds ranked by quick refits at that lambda
    adaptation, _ = fit()
    first_fit = adaptation
    emit({"event": "adapted", "probes": len(st.measured), "cv": adaptation.cv.get("candidates", {}).get(
        adaptation.cv.get("chosen", ""), {}), "method": adaptation.method})
    members = base_ms.shape[0]
    for _ in range(MAX_ACTIVE_ROUNDS):
        left = budget_s - st.spent_s - round_cost - reserve
        rest = [i for i in range(len(pool)) if i not in st.measured]
        if left <= 0 or not rest:
            break
        mt = adapted_member_times(base.model, adaptation, graphs)
        mu, sigma = spread(np.log(np.maximum(mt, 1e-12)))
        device_ms = np.exp(mu)
        secs = est_seconds(rest, device_ms)
        if members > 1:
            score = sigma[rest] ** 2 / secs
            order = [rest[j] for j in np.argsort(-score)]
        else:
            order = rest
        sec_of = dict(zip(rest, secs))
        target = left if left < 4 * round_cost + 5 else 0.5 * left
        chosen, total = [], 0.0
        for i in order:
            if total + sec_of[i] <= target:
                chosen.append(i)
                total += sec_of[i]
        if not chosen:
            break
        run_round("active" if members > 1 else "more", chosen)
        learn_pace()
        adaptation, _ = fit(first_fit.lam if first_fit.lam is not None else LAMBDAS[0])
        emit({"event": "adapted", "probes": len(st.measured), "cv": {}, "method": adaptation.method})
    steady = steadiness(refs, st.fresh, run_round("steadiness check", refs, keep=False)) if refs else None
    if steady is not None and steady["moved"] and len(st.fresh) >= 2 * DRIFT_WINDOW:
        # the labels, at the speed most probes saw: the trend over the order of measurement of the residuals of
        # the cross-validated predictions (a prediction that saw its own label could take a step in for a kind)
        adaptation, idx = fit()
        held = dict(zip(idx, adaptation.held_out_log or []))
        order = [i for i in st.fresh if i in held]  # in the order measured
        trend = drift_trend([math.log(st.measured[i]) - held[i] for i in order], window=DRIFT_WINDOW)
        st.drift = dict(zip(order, trend))
        steady = {**steady, "corrected": {"probes": len(order), "end": round(math.exp(trend[-1]), 4),
                                          "largest": round(math.exp(max(trend, key=abs)), 4)}}
        steady["warning"] = _drift_warning(steady)
    if steady is not None:
        emit({"event": "steadiness", **steady})
    if adaptation is not first_fit or st.drift:  # the final choice of lambda and the interval, on every probe
        adaptation, _ = fit()
        emit({"event": "adapted", "probes": len(st.measured), "cv": adaptation.cv.get("candidates", {}).get(
            adaptation.cv.get("chosen", ""), {}), "method": adaptation.method})

    # 5. the final adaptation is the last fit (it used every stored probe row)

    chosen = adaptation.cv.get("candidates", {}).get(adaptation.cv.get("chosen", ""), {})
    made_for = {"device_key": st.device_key, "label": _label(runner, st), "runtime": RUNTIME,
                "threads": _threads(st.setting), "setting": st.setting, "description": st.description}
    pred = Predictor(base.model, st.device_key,
                     training={**base.training, "calibration": {"probes": len(st.measured), "rounds": st.rounds,
                                                                "device_seconds": round(st.spent_s, 1),
                                                                "budget_s": budget_s, "steadiness": steady}},
                     metrics={**base.metrics, "held_out_probes": chosen}, calibration=None,
                     node_columns=base.node_columns, total_columns=base.total_columns, adaptation=adaptation,
                     made_for=made_for)
    report = {"device_key": st.device_key, "machine": made_for["label"], "setting": st.setting,
              "probes_measured": len(st.measured), "new_rows": st.new_rows, "rounds": st.rounds,
              "device_seconds": round(st.spent_s, 1), "budget_s": budget_s, "speed_vs_base": speed,
              "method": adaptation.method, "lambda": adaptation.lam,
              "held_out": {k: chosen.get(k) for k in ("within10", "mape")} | {"folds": adaptation.cv.get("folds")},
              "interval": adaptation.interval.to_dict() if adaptation.interval is not None else None,
              "log_affine_held_out": _best_log_affine(adaptation), "steadiness": steady}
    emit({"event": "done", **report})
    return pred, report


def steadiness(refs: Sequence[int], first: dict[int, float], again: dict[int, float]) -> dict[str, Any] | None:
    """Did the device keep its speed? ``ratio``: the median of the reference probes' second time over their first.

    ``moved`` when it is off 1 by more than :data:`DRIFT_WARN`; ``warning`` then says what it means for the
    predictor. None when no reference probe was measured twice.
    """
    pairs = [(i, again[i] / first[i]) for i in refs if i in again and i in first and first[i] > 0]
    if not pairs:
        return None
    ratio = float(np.median([r for _, r in pairs]))
    out: dict[str, Any] = {"probes": [i for i, _ in pairs], "ratios": [round(r, 4) for _, r in pairs],
                           "ratio": ratio, "moved": bool(abs(math.log(ratio)) > math.log1p(DRIFT_WARN))}
    if out["moved"]:
        out["warning"] = _drift_warning(out)
    return out


def _drift_warning(steady: dict[str, Any]) -> str:
    ratio, fixed = steady["ratio"], steady.get("corrected")
    text = f"the device's speed moved during the calibration: its reference probes ran {ratio:.2f}x their first time"
    if fixed:
        return (text + f"; the labels were corrected to the speed most probes were measured at (the trend of"
                f" {fixed['probes']} probes: {fixed['end']:.2f}x at the end, {fixed['largest']:.2f}x at most), which a"
                " busy or throttling device makes approximate; when it is quiet, calibrate again with --remeasure"
                " (the stored probes are measured anew)")
    return (text + f", so its labels, and the predictor's times, can be off by about {100 * abs(ratio - 1):.0f} %"
            " (a busy or throttling device); when it is quiet, calibrate again with --remeasure (the stored probes"
            " are measured anew)")


def drift_trend(residuals: Sequence[float], window: int = DRIFT_WINDOW) -> list[float]:
    """How far the device's speed was from its usual when each probe was measured (log units, in the order measured).

    ``residuals``: log(measured / adapted prediction) of the probes in the order they were measured. A device
    that slows down part-way through leaves a step in them, which no direction of the adaptation explains (the
    probes of a round cycle through every kind); their running median over ``window`` probes is that trend,
    measured from its median over the run (the speed most probes were measured at: which end of a move is the
    device's own speed, the calibration cannot know -- in two runs here the device stayed slow for the test
    blocks, in three it came back). Dividing the labels by ``exp(trend)`` puts them all at that speed.

    On this CPU at 2 threads, in the five calibrations whose reference probes moved 1.26-1.36x
    (benchmarks/predict_calibrate.py, runs 16-19 and 21), the correction put 66.7 / 17.1 / 39.5 / 69.7 / 50.4 %
    of the test blocks within +-10 % rather than 61.0 / 18.4 / 36.4 / 62.7 / 50.0 %
    (benchmarks/results/predict_calibrate_tried/drift_correction.py; run 17's test blocks were labelled at
    another speed); measured from the speed the run started at instead, run 21 (whose device stayed slow for
    the test blocks) fell to 39.5 %. On the three steady runs it would have been worth +1.3, -1.3 and +0.5
    points, so it is made only when the steadiness check sees a move.
    """
    r = np.asarray(residuals, float)
    n = len(r)
    if n == 0:
        return []
    half = window // 2
    run = np.array([np.median(r[max(0, i - half): i + half + 1]) for i in range(n)])
    return [float(v) for v in run - np.median(run)]


def _threads(setting: str) -> int | None:
    try:
        return int(parse_setting(setting)["threads"])
    except (BadInput, KeyError):
        return None


def _label(runner: Any, st: State) -> str:
    d = st.description
    where = getattr(runner, "label", "") or d.get("hostname", "")
    threads = _threads(st.setting)
    return f"{where} ({d.get('cpu_model', 'unknown CPU')}, {threads} thread{'s' if threads != 1 else ''}, {RUNTIME})"


def _best_log_affine(adaptation: Any) -> dict[str, Any] | None:
    cands = [v for v in adaptation.cv.get("candidates", {}).values() if v.get("method") == "log-affine"]
    if not cands:
        return None
    best = min(cands, key=lambda v: v["mean_abs_log_error"])
    return {"within10": best["within10"], "mape": best["mape"]}


def record(pred: Any, report: dict[str, Any], store: Any, path: str | Path | None = None,
           base_path: str | Path | None = None) -> Path:
    """Write the calibrated predictor (``path``, default :func:`default_output_path`) and record it in ``store`` as
    the device's own for its runtime and threads; ``report`` gains ``predictor``, ``db`` and ``base``. The path."""
    out = Path(path) if path is not None else default_output_path(report["device_key"])
    if base_path is not None:
        pred.training["base"] = str(base_path)
    pred.save(out)
    store.set_device_predictor(report["device_key"], out, pred.made_for, runtime=pred.made_for.get("runtime", RUNTIME),
                               threads=pred.made_for.get("threads"))
    report.update(predictor=str(out), db=str(store.path), base=str(base_path) if base_path is not None else None)
    return out


def default_output_path(device_key: str) -> Path:
    """``<user data dir>/gapp/predictors/<device key>.pt``."""
    return Path(platformdirs.user_data_dir("gapp", appauthor=False)) / "predictors" / f"{device_key}.pt"
