"""`gapp calibrate`: probes measured within a budget (here and over SSH), the device's predictor recorded and used."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.signals import default_sigint
from gapp_tui.cli import app
from gapp_tui.errors import BadInput
from gapp_tui.predict import probes
from gapp_tui.predict.calibrate import parse_budget
from gapp_tui.predict.dataset import model_graphs
from gapp_tui.predict.predictor import Predictor
from gapp_tui.predict.train import TrainConfig, fit_gnn
from gapp_tui.store import Store
from tests.sshd import sshd  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_pool(monkeypatch, tmp_path):
    """A 24-probe pool (a prefix of the real one: a probe is its seed) with its own cache, so tests stay quick."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(probes, "POOL_SIZE", 24)
    monkeypatch.setattr(probes, "CORE_SIZE", 6)
    probes._pool_and_graphs.cache_clear()
    yield probes.pool()
    probes._pool_and_graphs.cache_clear()


@pytest.fixture(scope="module")
def base_file(tmp_path_factory):
    """A two-member predictor trained on a few blocks (the ensemble's spread drives the active rounds)."""
    graphs = []
    for name in ("squeezenet1_1", "mnasnet0_5"):
        graphs.extend(model_graphs(name, 1, 32)[0])
    cols = list(graphs[0].total_columns)
    y = np.array([0.01 + 1e-8 * float(g.data.totals[0, cols.index("flops")]) for g in graphs])
    cfg = TrainConfig(hidden=16, layers=2, steps=60, batch_items=16, eval_every=20, patience=100, lr=1e-2, members=2)
    model, _ = fit_gnn(graphs, [[(i, 1)] for i in range(len(graphs))], y, list(range(len(graphs))), None, cfg)
    return Predictor(model, "base-machine").save(tmp_path_factory.mktemp("base") / "base.pt")


def test_budgets_parse_and_bad_ones_are_refused():
    assert parse_budget("10m") == 600 and parse_budget("90s") == 90 and parse_budget("1.5m") == 90
    assert parse_budget("1h") == 3600 and parse_budget("45") == 45
    for bad in ("ten minutes", "0s", "-5m"):
        with pytest.raises(BadInput, match="budget"):
            parse_budget(bad)
    res = CliRunner().invoke(app, ["calibrate", "--budget", "soon"])
    assert res.exit_code == 2 and "soon" in res.output and len(res.output.strip().splitlines()) == 1


def test_the_pool_is_a_fixed_list_spanning_every_kind_of_block():
    pool = probes.pool()
    assert len(pool) == probes.POOL_SIZE and [p.index for p in pool] == list(range(len(pool)))
    assert {p.kind for p in pool} == set(probes.CYCLE)
    assert all(p.flops <= probes.MAX_FLOPS and p.param_bytes <= probes.MAX_PARAM_BYTES for p in pool)
    core = probes.core()
    assert len(set(core)) == probes.CORE_SIZE and {pool[i].kind for i in core} == set(probes.CYCLE)
    assert probes.graphs()[5].block_name == pool[5].name


def test_calibrate_here_measures_within_the_budget_records_the_predictor_and_predict_uses_it(
        small_pool, base_file, tmp_path):
    db, out = tmp_path / "db.sqlite", tmp_path / "here.pt"
    res = CliRunner().invoke(app, ["calibrate", "--base", str(base_file), "--threads", "1", "--budget", "6s",
                                   "--db", str(db), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["probes_measured"] >= probes.CORE_SIZE and doc["predictor"] == str(out)
    assert [r["kind"] for r in doc["rounds"]][:2] == ["speed check", "core"]
    with Store(db, readonly=True) as st:
        rows = st.rows(model=probes.MODEL_NAME, device=doc["device_key"])
        rec = st.device_predictor(doc["device_key"])
    assert len(rows) == doc["probes_measured"] and all(r["mode"] == "standalone" for r in rows)
    # the steadiness check measured its reference probes again without storing them (one row per probe)
    steady = doc["steadiness"]
    assert doc["rounds"][-1]["kind"] == "steadiness check" and set(steady["probes"]) <= {r["block"] for r in rows}
    assert steady["ratio"] > 0 and len(steady["ratios"]) == len(steady["probes"]) and isinstance(steady["moved"], bool)
    assert len({r["block"] for r in rows}) == len(rows)
    assert rec["path"] == str(out.resolve()) and rec["threads"] == 1 and rec["made_for"]["label"] == doc["machine"]
    pred = Predictor.load(out)
    assert pred.adaptation is not None and pred.made_for["device_key"] == doc["device_key"]
    res = CliRunner().invoke(app, ["predict", "squeezenet1_1", "--input-size", "32", "--device", doc["device_key"],
                                   "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["made_for"] == doc["machine"]
    # a second run resumes: the stored probes are not measured again
    res = CliRunner().invoke(app, ["calibrate", "--base", str(base_file), "--threads", "1", "--budget", "1s",
                                   "--db", str(db), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert again["probes_measured"] >= doc["probes_measured"] and again["rounds"][0]["measured"] == 0
    assert again["steadiness"] is None  # it measured nothing itself: nothing to compare
    # --remeasure measures the stored probes anew, replacing their rows
    with Store(db, readonly=True) as st:
        before = {r["block"]: r["run_id"] for r in st.rows(model=probes.MODEL_NAME, device=doc["device_key"])}
    res = CliRunner().invoke(app, ["calibrate", "--base", str(base_file), "--threads", "1", "--budget", "2s",
                                   "--db", str(db), "--out", str(out), "--json", "--remeasure"])
    assert res.exit_code == 0, res.output
    fresh = json.loads(res.stdout)
    assert fresh["rounds"][0]["measured"] == 1 and fresh["steadiness"] is not None
    assert fresh["rounds"][1]["kind"] == "core" and fresh["rounds"][1]["measured"] > 0  # the stored core, measured anew
    with Store(db, readonly=True) as st:
        after = {r["block"]: r["run_id"] for r in st.rows(model=probes.MODEL_NAME, device=doc["device_key"])}
    assert len(after) == len(before) and after[fresh["steadiness"]["probes"][0]] != before[fresh["steadiness"]["probes"][0]]


def test_a_device_whose_speed_moved_during_the_calibration_is_warned_about():
    from gapp_tui.predict.calibrate import DRIFT_WARN, steadiness

    first = {3: 1.0, 7: 2.0, 9: 0.5}
    held = steadiness([3, 7, 9], first, {3: 1.01, 7: 1.98, 9: 0.51})
    assert held["probes"] == [3, 7, 9] and not held["moved"] and "warning" not in held
    assert abs(held["ratio"] - 1.0) < DRIFT_WARN
    slowed = steadiness([3, 7, 9], first, {3: 1.3, 7: 2.5, 9: 0.52})  # a Pi that throttled halfway
    assert slowed["moved"] and abs(slowed["ratio"] - 1.25) < 1e-9
    assert "1.25x" in slowed["warning"] and "25 %" in slowed["warning"] and "--remeasure" in slowed["warning"]
    assert steadiness([3], first, {}) is None and steadiness([], first, {3: 1.0}) is None


def test_the_trend_of_a_device_that_slowed_part_way_is_measured_from_the_speed_most_probes_saw():
    from gapp_tui.predict.calibrate import drift_trend

    rng = np.random.RandomState(0)
    noise = rng.normal(0, 0.05, 200)
    steady = drift_trend(list(noise), window=24)
    assert max(abs(v) for v in steady) < 0.05
    slowed = noise + np.r_[np.zeros(140), np.full(60, math.log(1.3))]  # 1.3x slower for the last 60 probes
    trend = drift_trend(list(slowed), window=24)
    assert abs(trend[10]) < 0.03 and abs(trend[100]) < 0.03 and abs(math.exp(trend[-1]) - 1.3) < 0.06
    assert drift_trend([]) == []


class _Throttling:
    """A device that runs 1.3x slower for the last third of its active round and the steadiness check: a Pi that
    throttles. This machine cannot be made to, so the runner measures with the engine (rounds, rows, progress
    are real) and gives each probe the time ``truth`` says (2 % noise)."""

    def __init__(self, runner, truth):
        self.runner, self.truth, self.calls, self.rng = runner, truth, 0, np.random.RandomState(0)
        self.precision, self.label = runner.precision, runner.label
        self.times, self.slowed = {}, set()  # what each probe's stored row says; the probes measured slowed

    def measure(self, selected, progress, cancel, command, keep=True):
        result = self.runner.measure(selected, progress, cancel, command, keep=keep)
        self.calls += 1
        order = sorted(selected)  # a round measures its probes in index order
        slow = set(order[2 * len(order) // 3:]) if self.calls > 2 else set()
        if not keep:
            slow = set(order)
        now = {i: self.truth[i] * (1.3 if i in slow else 1.0) * self.rng.lognormal(0, 0.02) for i in selected}
        if keep:
            self.times.update(now)
            self.slowed |= slow
        for r in result.rows.get("standalone", []):  # the round's rows, and the stored rows of earlier rounds
            r["min_ms"] = now.get(int(r["block"]), self.times.get(int(r["block"])))
        return result


def test_a_calibration_whose_device_slowed_part_way_corrects_its_labels_to_the_speed_most_probes_saw(
        small_pool, base_file, tmp_path, monkeypatch):
    from gapp_tui.predict import calibrate as C

    monkeypatch.setattr(C, "DRIFT_WINDOW", 4)
    base = Predictor.load(base_file)
    graphs = probes.graphs()
    truth = np.array(0.5 * base.block_times(graphs))  # this device: the base's relative costs, 2x faster

    def run(name):
        with Store(tmp_path / f"{name}.sqlite") as store:
            device = _Throttling(C.LocalRunner(store, threads=1), dict(enumerate(truth)))
            pred, report = C.calibrate(device, base, budget_s=30.0)
            stored = {r["block"]: r for r in store.rows(model=probes.MODEL_NAME)}
        slowed = sorted(device.slowed)
        assert report["probes_measured"] == len(graphs) and 2 <= len(slowed) <= len(graphs) // 3
        off = float(np.median(pred.block_times([graphs[i] for i in slowed]) / truth[slowed]))
        return report["steadiness"], off, stored

    steady, off, stored = run("corrected")
    assert steady["moved"] and abs(steady["ratio"] - 1.3) < 0.05, steady
    assert 1.2 < steady["corrected"]["end"] < 1.4 and "corrected" in steady["warning"]
    assert abs(off - 1) < 0.1, off  # the slowed probes are predicted at the device's usual speed
    assert len(stored) == len(graphs)  # the rows keep what was measured (here: what the engine measured)
    monkeypatch.setattr(C, "DRIFT_WARN", 10.0)  # the same device, the correction off: what it is for
    steady, off_uncorrected, _ = run("uncorrected")
    assert "corrected" not in steady and off_uncorrected > off + 0.1, (off, off_uncorrected)


def test_a_device_without_a_predictor_of_its_own_is_never_given_another_machines(tmp_path):
    from gapp_tui.predict.device_predictors import predictor_for

    db = tmp_path / "db.sqlite"
    with Store(db) as st:
        st.set_device_predictor("pi-1", tmp_path / "gone.pt", {"label": "a Pi"})
    assert predictor_for("pi-2", db=db) is None
    assert predictor_for("pi-1", db=db) is None  # recorded, but the file has gone
    res = CliRunner().invoke(app, ["predict", "resnet18", "--device", "pi-2", "--db", str(db)])
    assert res.exit_code == 2 and "pi-2" in res.output and "gapp calibrate" in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.ssh
def test_calibrate_over_ssh_stores_the_rows_and_writes_a_predictor_that_loads(small_pool, base_file, sshd, tmp_path):
    kh = sshd.trust(tmp_path / "known_hosts")
    db, out = tmp_path / "db.sqlite", tmp_path / "remote.pt"
    res = CliRunner().invoke(app, ["calibrate", "--base", str(base_file), "--threads", "1", "--budget", "4s",
                                   "--host", f"{sshd.target}:{sshd.port}", "--identity", str(sshd.client_key),
                                   "--known-hosts", str(kh), "--remote-python", sys.executable, "--device-name", "board",
                                   "--db", str(db), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["device_key"].startswith("board-") and str(sshd.port) in doc["machine"]
    with Store(db, readonly=True) as st:
        rows = st.rows(model=probes.MODEL_NAME, device=doc["device_key"])
        assert st.device_predictor(doc["device_key"])["path"] == str(out.resolve())
    assert len(rows) == doc["probes_measured"] > 1  # the steadiness check's second times are not stored
    assert doc["steadiness"]["ratio"] > 0 and doc["rounds"][-1]["kind"] == "steadiness check"
    assert all(r["extra"]["remote"]["host"] for r in rows)
    pred = Predictor.load(out)
    assert np.isfinite(pred.block_times(probes.graphs()[:3])).all()


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_ctrl_c_during_calibrate_keeps_every_measured_row(tmp_path):
    db = tmp_path / "db.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "gapp_tui", "calibrate", "--threads", "1", "--db", str(db),
                             "--out", str(tmp_path / "p.pt")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200"), preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 240
        while _rows(db) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "resume" in stderr
    reported = [ln for ln in stderr.splitlines() if ln.strip() and ln.split()[0].count("/") == 1
                and ln.split()[0].split("/")[0].isdigit()]
    assert _rows(db) >= len(reported) >= 4, (stderr, _rows(db))
    assert not (tmp_path / "p.pt").exists()  # no predictor from an interrupted calibration
