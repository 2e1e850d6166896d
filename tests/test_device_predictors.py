"""Recording a device's predictor in the store, finding it without torch, and a plan's range from intervals."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from gapp_tui.errors import BadInput
from gapp_tui.measure.engine import MeasureConfig, measure
from gapp_tui.measure.timer import Precision
from gapp_tui.partition import CostTable, Link, Plan, estimate
from gapp_tui.partition.ranges import plan_range, range_dict
from gapp_tui.store import Store
from gapp_tui.zoo import ModelSpec


def test_the_newest_predictor_of_a_device_and_runtime_is_found_and_others_are_kept_apart(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"x")
    with Store(tmp_path / "db.sqlite") as st:
        st.set_device_predictor("pi4-cpu-1", tmp_path / "a.pt", {"label": "Pi 4, 4 threads"}, threads=4)
        st.set_device_predictor("pi4-cpu-1", tmp_path / "b.pt", {"label": "Pi 4, 1 thread"}, threads=1)
        st.set_device_predictor("pi4-cpu-1", tmp_path / "c.pt", {"label": "Pi 4 ExecuTorch"}, runtime="executorch")
        assert st.device_predictor("pi4-cpu-1")["made_for"]["label"] == "Pi 4, 1 thread"  # newest eager
        assert st.device_predictor("pi4-cpu-1", threads=4)["path"] == str((tmp_path / "a.pt").resolve())
        assert st.device_predictor("pi4-cpu-1", "executorch")["made_for"]["label"] == "Pi 4 ExecuTorch"
        assert st.device_predictor("pi5-cpu-2") is None
        assert len(st.device_predictors()) == 3
        st.set_device_predictor("pi4-cpu-1", tmp_path / "d.pt", {"label": "again"}, threads=4)  # replaces
        assert len(st.device_predictors("pi4-cpu-1", "eager")) == 2


def test_a_store_written_before_the_table_reads_as_empty_and_gets_it_when_opened_for_writing(tmp_path):
    db = tmp_path / "old.sqlite"
    with Store(db):
        pass
    with sqlite3.connect(db) as c:  # what a GAPP from before the table left behind
        c.execute("DROP TABLE device_predictors")
    with Store(db, readonly=True) as st:
        assert st.device_predictors() == [] and st.device_predictor("x") is None
    with Store(db) as st:
        st.set_device_predictor("x", tmp_path / "x.pt", {})
        assert st.device_predictor("x")["device_key"] == "x"


def test_finding_a_device_predictor_does_not_import_torch(tmp_path):
    db = tmp_path / "db.sqlite"
    (tmp_path / "p.pt").write_bytes(b"x")
    with Store(db) as st:
        st.set_device_predictor("pi-1", tmp_path / "p.pt", {"label": "a Pi"})
    code = ("import sys; from gapp_tui.predict.device_predictors import predictor_for, shipped; "
            f"r = predictor_for('pi-1', db={str(db)!r}); "
            "print(r['made_for']['label'], shipped()['made_for']['device_key'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["a", "Pi", "corpus-cpu-t1", "False"]


def test_measuring_only_chosen_blocks_times_those_and_reports_nothing_else(tmp_path):
    events = []
    cfg = MeasureConfig(modes=("standalone",), threads=1, full=False, blocks=(1, 3),
                        precision=Precision.quick())
    with Store(tmp_path / "db.sqlite") as st:
        res = measure(ModelSpec("resnet18", input_size=32), cfg, store=st, progress=events.append)
        assert sorted(r["block"] for r in st.rows(mode="standalone")) == [1, 3]
    assert res.measured == 2 and res.skipped == 0
    assert {e.name for e in events if e.phase == "standalone"} == {res.blocks[1], res.blocks[3]}
    with pytest.raises(BadInput, match="standalone"):
        MeasureConfig(modes=("in-context",), blocks=(1,)).check()


def test_a_plans_range_brackets_its_estimate_and_follows_the_slow_device():
    table = CostTable(["a", "b", "c", "d"], {"pi": [0.01, 0.02, 0.03, 0.04], "server": [0.001] * 4},
                      [1000, 4000, 2000, 500, 40], sources={"pi": "predicted", "server": "measured"})
    plan = Plan.build(table, ["pi", "server"], [0, 2, 4], Link.parse("100Mbit/s"))
    low = {"pi": [t * 0.8 for t in table.times["pi"]]}
    high = {"pi": [t * 1.3 for t in table.times["pi"]]}
    r = plan_range(table, plan, low, high)
    mid = estimate(table, plan)
    assert r["period_s"][1] == pytest.approx(mid.period_s)
    assert r["period_s"][0] < r["period_s"][1] < r["period_s"][2]
    assert r["throughput_per_s"][0] < r["throughput_per_s"][1] < r["throughput_per_s"][2]
    assert r["period_s"][2] == pytest.approx(1.3 * 0.03)  # the pi stage (0.01 + 0.02) bounds the period
    doc = range_dict(r)
    assert doc["period_s"] == r["period_s"] and "low" in doc["assumes"]
    with pytest.raises(BadInput, match="3 block times"):
        plan_range(table, plan, {"pi": [0.1] * 3}, high)
