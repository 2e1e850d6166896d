"""The measurement engine on real timings of a tiny model (resnet18 at 32x32, one thread, few runs)."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from gapp_tui.blocks import BlockChain
from gapp_tui.errors import BadInput
from gapp_tui.measure.engine import MeasureConfig, measure, parse_modes
from gapp_tui.measure.record import RowContext, compare, make_row
from gapp_tui.measure.timer import Precision, Stats
from gapp_tui.store import ROW_FIELDS, Store
from gapp_tui.zoo import ModelSpec

QUICK = Precision(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=6, target_ci=0.05, max_time_s=0.3)
SPEC = ModelSpec("resnet18", input_size=32, num_classes=10)


def config(**kw) -> MeasureConfig:
    return MeasureConfig(threads=1, precision=QUICK, **kw)


@pytest.fixture(scope="module")
def chain():
    return BlockChain.from_spec(SPEC)


@pytest.fixture(scope="module")
def measured(chain, tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("engine") / "m.sqlite")
    events = []
    result = measure(chain, config(adjust_for_overhead=True), store=store, progress=events.append)
    yield store, result, events
    store.close()


def test_every_block_has_a_complete_positive_row_in_both_modes(measured, chain):
    store, result, _ = measured
    n = len(chain)
    assert result.interrupted is None and result.measured == 2 * n + 1 and result.skipped == 0
    for mode in ("standalone", "in-context"):
        rows = result.rows[mode]
        assert [r["block"] for r in rows] == list(range(n))
        assert [r["block_name"] for r in rows] == chain.names
        for r in rows:
            assert set(r) == set(ROW_FIELDS)
            for k in ("median_ms", "mean_ms", "min_ms", "max_ms"):
                assert r[k] > 0, (mode, r["block_name"], k)
            assert r["std_ms"] >= 0 and r["iqr_ms"] >= 0 and QUICK.min_runs <= r["runs"] <= QUICK.max_runs
            assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
            assert r["threads"] == 1 and r["batch_size"] == 1 and r["input_shape"] == "1x3x32x32"
            assert r["setting"] == result.setting == "1x3x32x32/float32/t1/natural/c10/cpu"
            assert r["device_key"] == result.device["key"] and r["chain_sig"] == result.chain_sig
            assert "sensors" in r["extra"]
    assert result.full["mode"] == "full" and result.full["block"] == -1 and result.full["median_ms"] > 0
    assert result.full["extra"]["timed_with"] == "in-context"  # alternating with the chain's runs


def test_sums_add_up_and_gaps_follow(measured):
    _, result, _ = measured
    for mode, s in result.sums.items():
        total = sum(r["median_ms"] for r in result.rows[mode])
        assert s["sum_ms"] == pytest.approx(total) and s["blocks"] == len(result.blocks)
        assert s["full_ms"] == result.full["median_ms"]
        assert s["gap_pct"] == pytest.approx((total - s["full_ms"]) / s["full_ms"] * 100)
        oh = result.overhead[mode]["median_ms"]
        assert 0 < oh < 0.5
        assert s["adjusted_sum_ms"] == pytest.approx(total - len(result.blocks) * oh)
        means = sum(r["mean_ms"] for r in result.rows[mode])
        assert s["gap_mean_pct"] == pytest.approx((means - result.full["mean_ms"]) / result.full["mean_ms"] * 100)
    # the blocks' medians come from the same end-to-end runs as the chain's own total; on a busy machine a
    # preempted run inflates the total of that run only, so the sum of medians is at most about the total
    assert 0 < result.sums["in-context"]["sum_ms"] <= result.chain_ms["in-context"] * 1.25


def test_the_store_holds_what_the_result_reports(measured):
    store, result, _ = measured
    for mode in ("standalone", "in-context"):
        assert store.block_times("resnet18", result.device["key"], result.setting, mode) == [
            r["median_ms"] for r in result.rows[mode]
        ]
    run = store.runs()[0]
    assert run["status"] == "done" and run["summary"]["sums"]["in-context"]["blocks"] == len(result.blocks)
    assert store.devices()[0]["key"] == result.device["key"]


def test_progress_reports_every_block_in_order(measured, chain):
    _, _, events = measured
    n = len(chain)
    standalone = [e for e in events if e.phase == "standalone" and e.estimate_ms is not None]
    assert [e.index for e in standalone] == list(range(1, n + 1))
    assert [e.name for e in standalone] == chain.names and all(e.total == n for e in standalone)
    assert standalone[-1].sum_ms == pytest.approx(sum(e.estimate_ms for e in standalone))
    assert any(e.phase == "in-context" for e in events) and events[-1].phase == "done"


def test_a_second_run_takes_everything_from_the_store(measured, chain):
    store, first, _ = measured
    again = measure(chain, config(), store=store)
    assert again.measured == 0 and again.skipped == 2 * len(chain) + 1
    assert again.rows == first.rows and again.sums["standalone"]["sum_ms"] == first.sums["standalone"]["sum_ms"]


def test_cancel_keeps_finished_blocks_and_a_rerun_measures_only_the_rest(chain, tmp_path):
    store = Store(tmp_path / "c.sqlite")
    stop = threading.Event()

    def progress(p):  # the TUI's cancel button, pressed after the third block
        if p.phase == "standalone" and p.index == 3 and p.estimate_ms is not None:
            stop.set()

    first = measure(chain, config(modes=("standalone",)), store=store, progress=progress, cancel=stop)
    assert first.interrupted == "cancel" and first.measured == 3
    kept = store.rows(mode="standalone")
    assert [r["block"] for r in kept] == [0, 1, 2]
    assert store.runs()[0]["status"] == "interrupted"
    second = measure(chain, config(modes=("standalone",)), store=store)
    assert second.interrupted is None and second.skipped == 3 and second.measured == len(chain) - 3 + 1
    assert store.rows(mode="standalone")[:3] == kept  # untouched, not re-measured
    forced = measure(chain, config(modes=("standalone",), force=True, full=False), store=store)
    assert forced.measured == len(chain) and forced.skipped == 0
    store.close()


def test_without_a_store_rows_stay_in_memory(chain):
    r = measure(chain, config(modes=("in-context",), full=False))
    assert len(r.rows["in-context"]) == len(chain) and r.full is None and r.db is None
    assert r.sums["in-context"]["gap_pct"] is None and r.sums["in-context"]["sum_ms"] > 0


def test_make_row_accepts_the_dict_a_remote_agent_sends():
    ctx = RowContext("pi-cpu-1", "resnet18", "resnet18 1x3x32x32", "s", "natural", 1, "1x3x32x32", 10, "float32", 4,
                     "cpu", "sig")
    stats = Stats(2.0, 2.1, 0.1, 0.2, 1.9, 2.5, 9, 0.01)
    assert make_row(ctx, "in-context", 3, "layer2.0", stats)["median_ms"] == 2.0
    via_json = make_row(ctx.to_dict(), "in-context", 3, "layer2.0", stats.to_dict())
    direct = make_row(ctx, "in-context", 3, "layer2.0", stats)
    via_json.pop("measured_at"), direct.pop("measured_at")
    assert via_json == direct and set(direct) | {"measured_at"} == set(ROW_FIELDS)


def test_compare_arithmetic():
    rows = {"in-context": [{"median_ms": 1.0}, {"median_ms": 2.0}]}
    s = compare(rows, 4.0, {"in-context": 0.25})["in-context"]
    assert s == {"blocks": 2, "sum_ms": 3.0, "full_ms": 4.0, "gap_pct": -25.0, "overhead_ms_per_block": 0.25,
                 "adjusted_sum_ms": 2.5, "adjusted_gap_pct": -37.5}


def test_bad_settings_are_bad_input():
    with pytest.raises(BadInput, match="mode 'sideways'"):
        parse_modes("sideways")
    assert parse_modes("both") == ("standalone", "in-context")
    with pytest.raises(BadInput, match="threads 0"):
        MeasureConfig(threads=0).check()
    with pytest.raises(BadInput, match="dtype"):
        MeasureConfig(dtype="int3").check()


def test_bfloat16_setting_is_its_own_key(tmp_path):
    small = BlockChain.from_spec(ModelSpec("mobilenet_v3_small", input_size=32, num_classes=10), granularity=3)
    r = measure(small, config(modes=("standalone",), dtype="bfloat16", full=False))
    assert r.setting.split("/")[1] == "bfloat16" and all(x["median_ms"] > 0 for x in r.rows["standalone"])


class Spin(nn.Module):
    """Burns a set CPU time per call; ``alternate`` makes every other call 40x longer (never converges)."""

    def __init__(self, ms: float, alternate: bool = False) -> None:
        super().__init__()
        self.ms, self.alternate, self.calls = ms, alternate, 0

    def forward(self, x):
        self.calls += 1
        ms = self.ms * (40 if self.alternate and self.calls % 2 else 1)
        t = time.thread_time()
        while time.thread_time() - t < ms / 1e3:
            pass
        return x


def spin_net() -> nn.Module:
    return nn.Sequential(Spin(1.0), Spin(0.1, alternate=True))


def test_cancel_in_context_keeps_converged_blocks_and_the_rerun_fills_the_rest(tmp_path):
    """In context every block is timed in each end-to-end run; a block whose interval is met is kept at once."""
    chain = BlockChain.from_spec(ModelSpec("tests.test_measure_engine:spin_net", input_shape=(1, 4)), "op",
                                 leaves=("Spin",))
    assert len(chain) == 2
    store = Store(tmp_path / "ic.sqlite")
    stop = threading.Event()
    p = Precision(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=400, target_ci=0.05, max_time_s=30)

    def progress(ev):
        if ev.phase == "in-context" and ev.index >= 1:
            stop.set()  # block 0 has converged, block 1 never will

    cfg = MeasureConfig(modes=("in-context",), threads=1, precision=p, full=False, clock="cpu")
    first = measure(chain, cfg, store=store, progress=progress, cancel=stop)
    assert first.interrupted == "cancel" and first.measured == 1
    kept = store.rows(mode="in-context")
    assert [r["block"] for r in kept] == [0] and kept[0]["median_ms"] == pytest.approx(1.0, rel=0.2)
    assert kept[0]["setting"].endswith("/cputime")
    quick = MeasureConfig(modes=("in-context",), threads=1, precision=QUICK, full=False, clock="cpu")
    second = measure(chain, quick, store=store)
    assert second.interrupted is None and second.skipped == 1 and second.measured == 1
    assert store.rows(mode="in-context")[0] == kept[0]
    assert store.block_times("tests.test_measure_engine:spin_net", mode="in-context")[1] > 0
    store.close()


def test_a_chain_measured_in_bfloat16_goes_back_to_float32():
    small = BlockChain.from_spec(ModelSpec("mobilenet_v3_small", input_size=32, num_classes=10), granularity=2)
    cfg = dict(modes=("standalone",), full=False)
    measure(small, config(dtype="bfloat16", **cfg))
    assert next(small.blocks[0].module.parameters()).dtype == torch.bfloat16
    r = measure(small, config(**cfg))
    assert r.setting.split("/")[1] == "float32"
    assert next(small.blocks[0].module.parameters()).dtype == torch.float32
