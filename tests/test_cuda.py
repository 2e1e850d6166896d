"""The CUDA path on a real GPU: events, one synchronisation per run, the overhead subtracted.

Skipped where torch sees no CUDA device (CI, the development machine); the
stand-in tests in ``test_measure_timer.py`` cover the event logic there. Run
on a GPU machine with ``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from gapp_tui.measure.engine import MeasureConfig, measure  # noqa: E402
from gapp_tui.measure.timer import Precision, time_callable, time_overhead, time_sequence  # noqa: E402
from gapp_tui.store import Store  # noqa: E402
from gapp_tui.zoo import ModelSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICK = Precision(warmup_runs=3, warmup_s=0.05, min_runs=10, max_runs=60, target_ci=0.02, max_time_s=1.0)


def _wall_ms(fn, args, n: int = 30) -> float:
    """Mean ms per call by the wall clock around n queued calls, synchronised at both ends."""
    fn(*args)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn(*args)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e3


def test_events_time_a_kernel_as_the_wall_clock_does():
    a = torch.randn(4096, 4096, device="cuda")
    s = time_callable(torch.mm, (a, a), "cuda", QUICK)
    wall = _wall_ms(torch.mm, (a, a))
    assert s.median_ms > 0 and s.runs >= QUICK.min_runs
    # a kernel of about a millisecond: launch cost is a small part, the two clocks agree
    assert 0.8 < s.median_ms / wall < 1.25, (s.median_ms, wall)


def test_in_context_times_add_up_to_the_sequence():
    a = torch.randn(2048, 2048, device="cuda")
    fns = [lambda x: x @ x, lambda x: torch.relu(x), lambda x: x @ x]
    per, total, _ = time_sequence(fns, (a,), "cuda", QUICK)
    assert len(per) == 3 and all(p.median_ms > 0 for p in per)
    assert per[1].median_ms < per[0].median_ms  # an element-wise op is cheaper than a 2048^3 matmul
    assert 0.8 < sum(p.median_ms for p in per) / total.median_ms < 1.25


@pytest.mark.parametrize("mode", ["standalone", "in-context"])
def test_overhead_of_an_empty_block_is_small_and_measured(mode):
    s = time_overhead("cuda", mode, QUICK)
    # an empty block costs the events' own recording: microseconds, not milliseconds
    assert 0.0 <= s.median_ms < 0.5, s


def test_measure_a_model_on_cuda_with_overhead_subtracted(tmp_path):
    with Store(tmp_path / "gpu.sqlite") as store:
        r = measure(ModelSpec("resnet18", batch_size=1, num_classes=10, input_size=64),
                    MeasureConfig(device="cuda", adjust_for_overhead=True, precision=QUICK), store=store)
        rows = store.rows()
    assert r.device["device_type"] == "cuda" and r.device["accelerator"]
    assert "-cuda-" in r.device["key"]
    n = len(r.blocks)
    assert {m: len(v) for m, v in r.rows.items()} == {"standalone": n, "in-context": n}
    assert sorted(row["mode"] for row in rows) == sorted(["full"] + ["standalone", "in-context"] * n)
    assert all(row["device_type"] == "cuda" for row in rows)
    for mode, s in r.sums.items():
        assert s["overhead_ms_per_block"] >= 0
        assert s["adjusted_sum_ms"] == pytest.approx(s["sum_ms"] - n * s["overhead_ms_per_block"])
        assert s["adjusted_gap_pct"] is not None
    assert r.full["median_ms"] > 0


def test_the_reference_command_runs_on_cuda(tmp_path):
    env = dict(os.environ, GAPP_DB=str(tmp_path / "g.sqlite"), COLUMNS="150")
    p = subprocess.run([sys.executable, "-m", "gapp_tui.time_measurer", "--model_family", "resnet18", "--batch_size", "1",
                        "--num_classes", "10", "--compare_sum_vs_full", "--device", "cuda", "--adjust_for_overhead",
                        "--input_size", "64", "--output_dir", str(tmp_path / "out"), "--json"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["device"]["device_type"] == "cuda"
    assert set(doc["overhead"]) == {"standalone", "in-context"}
    assert all("adjusted_gap_pct" in s for s in doc["sums"].values())
