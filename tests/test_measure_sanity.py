"""What to distrust in a measurement (measure/sanity.py) and how long one still takes (measure/eta.py).

Plain functions on plain data: the rows and progress reports below have the
fields the engine writes; their numbers are chosen to sit either side of each limit.
"""

from __future__ import annotations

import pytest

from gapp_tui.measure.eta import Eta
from gapp_tui.measure.record import Progress
from gapp_tui.measure.sanity import (
    GAP_LIMIT_PCT,
    check_gap,
    check_result,
    check_setting,
    check_spread,
    predictor_setting,
)
from gapp_tui.measure.timer import Precision


def _sums(gap: float, mode: str = "in-context") -> dict:
    full = 20.0
    return {mode: {"sum_ms": full * (1 + gap / 100), "full_ms": full, "gap_pct": gap}}


def test_a_gap_within_the_limit_passes_and_beyond_it_is_flagged_with_its_cause():
    assert check_gap(_sums(GAP_LIMIT_PCT - 0.1), threads=2) == []
    assert check_gap(_sums(-GAP_LIMIT_PCT + 0.1), threads=2) == []
    [flag] = check_gap(_sums(-66.8), threads=2, cores=2, load=5.9)
    assert flag.kind == "gap" and "-66.8%" in flag.what and "beyond ±10%" in flag.what
    assert "2 threads" in flag.cause and "load average 5.9 on 2 cores" in flag.cause
    assert flag.remedy == "re-measure with threads 1"
    [one] = check_gap(_sums(15.0), threads=1)
    assert "busy" in one.cause and "threads 1" not in one.remedy
    [alone] = check_gap(_sums(-20.0, "standalone"), threads=1)
    assert "warm caches" in alone.cause and "in-context" in alone.remedy


def test_a_gap_without_a_full_model_is_not_judged():
    assert check_gap({"in-context": {"sum_ms": 5.0, "full_ms": None, "gap_pct": None}}) == []


def _rows(iqr_share: list[float], medians: list[float] | None = None) -> list[dict]:
    medians = medians or [1.0] * len(iqr_share)
    return [{"block": i, "block_name": f"b{i}", "median_ms": m, "iqr_ms": m * q}
            for i, (m, q) in enumerate(zip(medians, iqr_share))]


def test_a_run_is_flagged_when_over_a_quarter_of_its_blocks_spread_widely():
    assert check_spread(_rows([0.05, 0.05, 0.30, 0.05])) == []  # one of four: not over a quarter
    [flag] = check_spread(_rows([0.05, 0.30, 0.30, 0.05]))
    assert flag.kind == "spread" and "2 of 4 blocks" in flag.what and "b1" in flag.what
    # a block under 1% of the sum is too short to judge by its spread
    assert check_spread(_rows([0.05, 0.9, 0.05], [10.0, 0.05, 10.0])) == []


def test_predictor_settings_are_read_from_its_training_record():
    assert predictor_setting({"threads": 2})["threads"] == 2
    shipped = {"device": "corpus-cpu-t1", "device_note": "the shipped corpus: 2-core AMD EPYC VM, 1 thread",
               "batch_sizes": [1, 2, 4]}
    assert predictor_setting(shipped) == {"threads": 1, "dtype": None, "batch_sizes": [1, 2, 4]}
    assert predictor_setting({"device": "pi4-t4"})["threads"] == 4
    assert predictor_setting({})["threads"] is None


def test_rows_of_another_setting_than_the_predictors_are_flagged():
    made = {"threads": 1, "dtype": "float32", "batch_sizes": [1, 2, 4]}
    assert check_setting({"threads": 1, "dtype": "float32", "batch_size": 2}, made) == []
    flags = check_setting({"threads": 2, "dtype": "float16", "batch_size": 8}, made, "the predictor p")
    assert [f.kind for f in flags] == ["setting"] * 3
    assert "2 threads" in flags[0].what and "1 thread" in flags[0].what and "the predictor p" in flags[0].what
    assert check_setting({"threads": 2}, None) == []


def test_check_result_reads_a_measure_result_dict():
    result = {"sums": _sums(-40.0), "setting_parts": {"threads": 2}, "device": {"cores": 2},
              "rows": {"in-context": _rows([0.5, 0.5, 0.5])}}
    kinds = [f.kind for f in check_result(result, predictor={"threads": 1})]
    assert kinds == ["gap", "spread", "setting"]


def _report(eta: Eta, t: float, *args, **kwargs) -> None:
    eta.update(Progress(*args, **kwargs), t)


def test_eta_of_standalone_blocks_counts_only_the_blocks_actually_timed():
    eta = Eta(10, ["standalone"], Precision(), full=False)
    for i in range(5):  # from the store: instant
        _report(eta, 0.0, "standalone", i + 1, 10, f"b{i}", None, 0.0, skipped=True)
    assert eta.remaining(0.0) is None  # nothing timed yet: no basis
    _report(eta, 0.0, "standalone", 5, 10, "b5", None, 0.0)
    _report(eta, 2.0, "standalone", 6, 10, "b5", 2.0, 2.0)
    left = eta.remaining(2.0)
    assert left.seconds == pytest.approx(8.0) and not left.bound  # 4 blocks at 2 s


def test_eta_of_in_context_is_the_timers_bound():
    p = Precision()  # 3 s per block at most, 200 runs
    eta = Eta(10, ["in-context"], p, full=True)
    _report(eta, 0.0, "in-context", 0, 10, "stem", None, 0.0)
    assert eta.remaining(0.0).seconds == pytest.approx(10 * p.max_time_s + p.warmup_s)
    _report(eta, 20.0, "in-context", 1, 10, "stem", 25.0, 25.0)
    left = eta.remaining(20.0)
    assert left.bound and left.seconds == pytest.approx(10.05)  # never "3:00" for 9 blocks at the first one's pace
    # at 0.05 s a run, the 200 runs end sooner than the cap
    eta = Eta(10, ["in-context"], p, full=True)
    _report(eta, 0.0, "in-context", 0, 10, "stem", None, 0.0)
    _report(eta, 2.0, "in-context", 3, 10, "stem", 25.0, 25.0, runs=40)
    assert eta.remaining(2.0).seconds == pytest.approx(200 * 0.05 + p.warmup_s - 2.0)


def test_eta_adds_the_phases_still_to_come():
    p = Precision.quick()
    eta = Eta(4, ["standalone", "in-context"], p, full=True)
    _report(eta, 0.0, "standalone", 0, 4, "b0", None, 0.0)
    _report(eta, 0.1, "standalone", 1, 4, "b0", 1.0, 1.0)
    left = eta.remaining(0.1)
    assert left.bound and left.seconds == pytest.approx(3 * 0.1 + 4 * p.max_time_s + p.warmup_s)
