"""The self-contained timing core and device description (timer.py, device.py)."""

from __future__ import annotations

import ast
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gapp_tui.measure import device, timer
from gapp_tui.measure.timer import Cancelled, Precision, median_ci, summarize, time_callable, time_sequence

MEASURE = Path(device.__file__).parent
FAST = Precision(warmup_runs=1, warmup_s=0.0, min_runs=5, max_runs=8, target_ci=0.05, max_time_s=1.0, min_sample_s=0.0)


def sleeper(seconds: float):
    def f(*values):
        time.sleep(seconds)
        return values

    return f


def test_summarize_matches_the_statistics_module():
    samples = [0.003, 0.001, 0.002, 0.010, 0.004, 0.002]
    s = summarize(samples)
    ms = [x * 1e3 for x in samples]
    assert s.median_ms == pytest.approx(statistics.median(ms))
    assert s.mean_ms == pytest.approx(statistics.mean(ms))
    assert s.std_ms == pytest.approx(statistics.stdev(ms))
    q = statistics.quantiles(ms, n=4, method="inclusive")
    assert s.iqr_ms == pytest.approx(q[2] - q[0])
    assert (s.min_ms, s.max_ms, s.runs) == (pytest.approx(1.0), pytest.approx(10.0), 6)
    assert json.loads(json.dumps(s.to_dict())) == s.to_dict()


def test_median_interval_contains_the_median_and_narrows_with_more_samples():
    few = sorted(float(i) for i in range(11))
    many = sorted(float(i % 11) for i in range(1101))
    lo, hi = median_ci(few)
    assert lo <= 5.0 <= hi
    lo2, hi2 = median_ci(many)
    assert lo2 <= 5.0 <= hi2 and (hi2 - lo2) < (hi - lo)


def test_precision_rejects_impossible_settings():
    with pytest.raises(ValueError):
        Precision(min_runs=0)
    with pytest.raises(ValueError):
        Precision(min_runs=10, max_runs=5)
    with pytest.raises(ValueError):
        Precision(target_ci=0)
    assert Precision.from_dict(FAST.to_dict()) == FAST


def test_time_callable_measures_a_known_duration():
    s = time_callable(sleeper(0.002), (), "cpu", FAST)
    assert 1.9 <= s.median_ms <= 10.0  # a busy machine may oversleep, never undersleep
    assert FAST.min_runs <= s.runs <= FAST.max_runs and s.min_ms <= s.median_ms <= s.max_ms
    assert s.stopped in ("ci", "max_runs", "time")


def test_time_callable_stops_at_the_time_cap():
    p = Precision(warmup_runs=0, warmup_s=0.0, min_runs=2, max_runs=1000, target_ci=1e-9, max_time_s=0.05)
    t0 = time.perf_counter()
    s = time_callable(sleeper(0.005), (), "cpu", p)
    assert s.stopped == "time" and s.runs < 1000 and time.perf_counter() - t0 < 2.0


def test_short_calls_are_grown_into_longer_samples():
    s = time_callable(lambda: None, (), "cpu", Precision(min_runs=3, max_runs=3, min_sample_s=1e-3, warmup_s=0.0))
    assert s.inner > 10 and s.median_ms < 0.1


def test_time_sequence_times_each_callable_inside_one_run():
    seen = []

    def first(x):
        time.sleep(0.001)
        return x + 1, x

    def second(a, b):  # receives the first callable's outputs, spread
        seen.append((int(a), int(b)))
        time.sleep(0.003)
        return a

    per, total, _ = time_sequence([first, second], (torch.zeros(()),), "cpu", FAST)
    assert seen and all(v == (1, 0) for v in seen)
    assert per[0].median_ms >= 0.9 and per[1].median_ms >= 2.9 and per[1].median_ms > per[0].median_ms
    assert total.median_ms == pytest.approx(per[0].median_ms + per[1].median_ms, rel=0.2)
    assert per[0].runs == per[1].runs == total.runs


def test_cancel_stops_timing_and_keeps_converged_callables():
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(Cancelled) as info:
        time_callable(sleeper(0.0005), (), "cpu", FAST, should_stop=stop)
    assert not info.value.keyboard
    # a sequence whose first callable converges at once (steady CPU work), the second never (alternating)
    flip = {"n": 0}

    def spin(ms):
        t = time.thread_time()
        while time.thread_time() - t < ms / 1e3:
            pass

    def steady(*v):
        spin(1.0)
        return v

    def noisy(*v):
        flip["n"] += 1
        spin(0.1 if flip["n"] % 2 else 4.0)
        return v

    def stop_late():
        calls["n"] += 1
        return calls["n"] > 30

    p = Precision(warmup_runs=0, warmup_s=0.0, min_runs=3, max_runs=500, target_ci=0.05, max_time_s=60)
    calls["n"] = 0
    with pytest.raises(Cancelled) as info:
        time_sequence([steady, noisy], (1,), "cpu", p, should_stop=stop_late, clock="cpu")
    assert isinstance(info.value.partial[0], timer.Stats) and info.value.partial[1] is None


def test_overhead_of_an_empty_block_is_tiny_and_positive():
    for mode in ("standalone", "in-context"):
        s = timer.time_overhead("cpu", mode, FAST)
        assert 0 < s.median_ms < 0.5


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        time_callable(lambda: None, (), "cuda", FAST)


class _FakeEvent:
    """Stands in for torch.cuda.Event: no GPU exists here (the CUDA path is otherwise unreachable)."""

    log: list[str] = []

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.t = None

    def record(self) -> None:
        self.t = time.perf_counter()
        self.log.append("record")

    def synchronize(self) -> None:
        self.log.append("sync")

    def elapsed_time(self, other: _FakeEvent) -> float:
        return (other.t - self.t) * 1e3  # milliseconds, as CUDA reports


def test_cuda_path_uses_events_and_one_sync_per_run(monkeypatch):
    """Mocked CUDA (checked on CPU only): events around blocks, one synchronisation per end-to-end run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    _FakeEvent.log = []
    p = Precision(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=3, target_ci=0.5, min_sample_s=0.0)
    per, total, _ = time_sequence([sleeper(0.001), sleeper(0.002), sleeper(0.001)], (1,), "cuda", p)
    assert per[1].median_ms >= 1.9 and per[0].median_ms >= 0.9
    runs = 1 + 3
    assert _FakeEvent.log.count("sync") == runs and _FakeEvent.log.count("record") == runs * 4
    s = time_callable(sleeper(0.002), (), "cuda", p)
    assert s.median_ms >= 1.9


def test_timer_and_device_import_only_torch_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"torch", "__future__"}
    for name in ("timer.py", "device.py"):
        tree = ast.parse((MEASURE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name} has a relative import"
                mods = [node.module.split(".")[0]]
            else:
                continue
            assert set(mods) <= allowed, f"{name} imports {mods}"


def test_timer_and_device_run_alone_from_a_bare_directory(tmp_path):
    """What the SSH runner does on a Pi: the two files, nothing else of GAPP."""
    for name in ("timer.py", "device.py"):
        shutil.copy(MEASURE / name, tmp_path / name)
    code = (
        "import json, timer, device, torch\n"
        "p = timer.Precision.quick()\n"
        "lin = torch.nn.Linear(8, 8)\n"
        "s = timer.time_callable(lin, (torch.randn(2, 8),), 'cpu', p)\n"
        "per, tot, _ = timer.time_sequence([lin, torch.relu], (torch.randn(2, 8),), 'cpu', p)\n"
        "import sys; assert not any(m.startswith('gapp_tui') for m in sys.modules)\n"
        "print(json.dumps({'s': s.to_dict(), 'per': [x.to_dict() for x in per], 'dev': device.describe()}))\n"
    )
    path = [p for p in sys.path if p and not (Path(p) / "gapp_tui").exists()]
    r = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {path!r}; " + code],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    # -S plus an explicit path: the site-packages torch lives in, but gapp_tui must not be needed
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["s"]["median_ms"] > 0 and len(doc["per"]) == 2 and doc["dev"]["key"]


def test_sensors_read_from_a_mocked_sysfs(tmp_path):
    """A Pi's thermal sensor does not exist here: a fake /sys tree stands in for it."""
    z0 = tmp_path / "sys/class/thermal/thermal_zone0"
    z1 = tmp_path / "sys/class/thermal/thermal_zone1"
    for z, kind, temp in ((z0, "gpu-thermal", "61000"), (z1, "cpu-thermal", "48312")):
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(temp + "\n")
    for cpu, khz in (("cpu0", "1500000"), ("cpu1", "1800000")):
        f = tmp_path / f"sys/devices/system/cpu/{cpu}/cpufreq"
        f.mkdir(parents=True)
        (f / "scaling_cur_freq").write_text(khz)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 108.00\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    s = device.read_sensors(str(tmp_path))
    assert s == {"temperature_c": 48.3, "temperature_zone": "cpu-thermal", "frequency_mhz": 1650.0}
    assert device.cpu_model(str(tmp_path)) == "Raspberry Pi 4 Model B Rev 1.4"
    empty = device.read_sensors(str(tmp_path / "nothing"))
    assert empty["temperature_c"] is None and empty["frequency_mhz"] is None


def test_device_key_changes_with_what_changes_timings():
    d = device.describe("cpu")
    assert d["key"].startswith(d["hostname"].replace(" ", "_")) and d["cores"] >= 1 and d["torch"] == torch.__version__
    assert device.describe("cpu")["key"] == d["key"]
    other = dict(d, torch="0.0.1")
    assert device.device_key(other) != d["key"]
    assert device.device_key(d, name="pi4 lab").startswith("pi4_lab-cpu-")
    assert json.loads(json.dumps(d)) == d
    assert not math.isnan(d["cores"])


def test_cpu_clock_counts_work_not_waiting():
    """The cpu clock (for a shared machine) ignores time the thread is not running; wall time does not."""
    def busy_then_sleep():
        t = time.thread_time()
        while time.thread_time() - t < 0.001:
            pass
        time.sleep(0.003)

    p = Precision(warmup_runs=1, warmup_s=0.0, min_runs=3, max_runs=3, target_ci=0.5, min_sample_s=0.0)
    cpu = time_callable(busy_then_sleep, (), "cpu", p, clock="cpu")
    wall = time_callable(busy_then_sleep, (), "cpu", p, clock="wall")
    assert 0.9 <= cpu.median_ms < 2.5 and wall.median_ms >= 3.9


def test_cpu_clock_is_refused_where_it_would_miss_work(monkeypatch):
    with pytest.raises(ValueError, match="wall or cpu"):
        timer.check_clock("sundial")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    with pytest.raises(ValueError, match="one torch thread"):
        timer.check_clock("cpu", "cpu")


def test_reference_is_timed_in_the_same_loop_as_the_sequence():
    order = []

    def a(x):
        order.append("a")
        time.sleep(0.001)
        return x

    def full(x):
        order.append("full")
        time.sleep(0.002)
        return x

    p = Precision(warmup_runs=0, warmup_s=0.0, min_runs=4, max_runs=4, target_ci=0.5, min_sample_s=0.0)
    per, total, ref = timer.time_sequence([a], (1,), "cpu", p, reference=full)
    assert ref.runs == per[0].runs == 4 and ref.median_ms >= 1.9 and per[0].median_ms >= 0.9
    # warm-up aside (one pair), the two alternate so neither always runs first
    assert order[2:] == ["a", "full", "full", "a", "a", "full", "full", "a"]
