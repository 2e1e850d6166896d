"""The terminal app driven by Pilot with real objects: a real model, real timings, a real store.

resnet18 at 32x32 cut into two blocks, measured with few runs on one thread, keeps
the whole flow to a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from pathlib import Path

import pytest
from textual import events
from textual.binding import Binding
from textual.notifications import Notify
from textual.widgets import DataTable, Input, Select

from gapp_tui.tui.app import GappApp
from gapp_tui.tui.keys import TYPING_BURST_S
from gapp_tui.tui.messages import MeasureDone, MeasureProgress
from gapp_tui.tui.sections.help import HelpScreen
from gapp_tui.tui.state import UiState
from gapp_tui.tui.widgets.partition.strip import CutStrip
from gapp_tui.tui.widgets.partition.where import RunWhereScreen
from gapp_tui.tui.widgets.results.plots import Bars
from tests.sshd import sshd  # noqa: F401  (a real OpenSSH server on 127.0.0.1)


@pytest.fixture
def tui_env(tmp_path, monkeypatch):
    """Private store, state file, plan and export folders for one test."""
    monkeypatch.setenv("GAPP_DB", str(tmp_path / "gapp.sqlite"))
    monkeypatch.setenv("GAPP_TUI_STATE", str(tmp_path / "tui.json"))
    monkeypatch.setenv("GAPP_PLANS", str(tmp_path / "plans"))
    monkeypatch.setenv("GAPP_EXPORT_DIR", str(tmp_path / "export"))
    return tmp_path


#: devices whose times need nothing measured (the tests that measure first use the default, server=measured)
FLOPS_DEVICES = "pi=2GFLOP/s, server=20GFLOP/s"


def small_app(**state) -> GappApp:
    fields = {"model": "resnet18", "input_size": "32", "granularity": "2", **state}
    return GappApp(state=UiState(**fields), remember=False)


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        await pilot.pause(0.05)


async def trace(app: GappApp, pilot) -> None:
    await pilot.pause()
    app.screen.query_one("#model-name", Input).focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.workspace.ready)
    await pilot.pause()


async def measure_quick(app: GappApp, pilot, target: str = "cpu") -> None:
    await pilot.press("2")
    await pilot.pause()
    screen = app.screen
    screen.query_one("#precision", Select).value = "quick"
    screen.query_one("#threads", Input).value = "1"
    screen.query_one("#start").focus()
    await pilot.pause()
    await pilot.press("m")


async def open_partition(app: GappApp, pilot) -> None:
    """Press 4 and wait until the devices' block times (a worker of the section) are in."""
    await pilot.press("4")
    await wait_for(pilot, lambda: getattr(app.screen, "plan", None) is not None, 30)
    await pilot.pause()


async def wait_for_run(pilot, section, timeout: float = 180) -> None:
    """Wait until the Partition section's pipeline run has ended (its run line says so)."""
    await wait_for(pilot, lambda: "pipeline run" in section.pipeline_text and "running" not in section.pipeline_text,
                   timeout)


def sync(fn):
    """Run an async Pilot test with asyncio (no async pytest plugin needed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


#: every message each app of a test processed (Textual's message hook), for what it told the user
_SEEN: dict[GappApp, list[object]] = {}


@contextlib.asynccontextmanager
async def run(app: GappApp, size: tuple[int, int], hook=None):
    """``app.run_test(size=...)`` keeping the app's messages for :func:`notifications`.

    Each ``pilot.press(...)`` call is a person pressing keys on purpose: it starts at least the typing
    guard's window after the previous call's last key (:data:`gapp_tui.tui.keys.TYPING_BURST_S`), so a
    command key that a fast machine would send right after the one before is not taken for typing that
    missed a field. The keys of one call keep their own pace (a burst stays a burst).
    """
    seen = _SEEN.setdefault(app, [])

    def keep(message: object) -> None:
        seen.append(message)
        if hook is not None:
            hook(message)

    async with app.run_test(size=size, message_hook=keep) as pilot:
        press, last = pilot.press, [-1.0]

        async def paced(*keys: str) -> None:
            wait = last[0] + TYPING_BURST_S + 0.02 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await press(*keys)
            finally:
                last[0] = time.monotonic()

        pilot.press = paced
        yield pilot


def notifications(app: GappApp) -> list[str]:
    """The notifications the app showed (its Notify messages), oldest first."""
    return [m.notification.message for m in _SEEN.get(app, []) if isinstance(m, Notify)]


@sync
async def test_pick_trace_measure_results_partition_optimal(tui_env):
    """The issue's main flow, end to end, with the numbers checked against the plain modules."""
    from gapp_tui.partition.costs import CostTable
    from gapp_tui.partition.estimate import estimate
    from gapp_tui.partition.link import Link
    from gapp_tui.partition.plan import Plan
    from gapp_tui.partition.solver import solve
    from gapp_tui.store import Store

    seen: list[object] = []
    app = small_app()
    async with run(app, (100, 30), seen.append) as pilot:
        await trace(app, pilot)
        chain = app.workspace.chain
        assert chain.spec.name == "resnet18" and len(chain) == 2
        assert app.screen.query_one("#blocks", DataTable).row_count == 2

        await measure_quick(app, pilot)
        await wait_for(pilot, lambda: app.workspace.measurement is not None)
        assert any(isinstance(m, MeasureProgress) for m in seen)
        done = [m for m in seen if isinstance(m, MeasureDone)]
        assert done and not done[0].cancelled

        # Results: one row per block, the store's medians, in the table and the bar plot
        await pilot.press("3")
        await pilot.pause(0.2)
        with Store() as store:
            rows = [r for r in store.rows(model="resnet18", mode="in-context") if r["block"] >= 0]
        assert [r["chain_sig"] for r in rows] == [chain.signature()] * 2
        table = app.screen.query_one("#results-table", DataTable)
        assert table.row_count == 2
        assert [table.get_row_at(i)[2] for i in range(2)] == [round(r["median_ms"], 4) for r in rows]
        bars = app.screen.query_one(Bars)
        assert [m for _, m, _ in bars.rows] == [r["median_ms"] for r in rows]
        assert "sum of 2/2 blocks" in str(app.screen.query_one("#sum-vs-full").render())
        await pilot.press("e")  # export what the table shows
        await pilot.pause()
        exported = sorted((tui_env / "export").iterdir())
        assert [p.suffix for p in exported] == [".csv", ".json"]
        assert len(exported[0].read_text().strip().splitlines()) == 3  # header + 2 blocks

        # Partition: move the cut, the throughput is exactly the estimator's
        await open_partition(app, pilot)
        section = app.screen
        strip = section.query_one(CutStrip)
        assert strip.has_focus
        medians = [r["median_ms"] / 1e3 for r in rows]
        table_ = CostTable.from_chain(chain, {"pi": [b.flops / 2e9 for b in chain.blocks], "server": medians},
                                      sources={"pi": "flops", "server": "measured"})
        link = Link.parse("100Mbit/s", "2ms")
        assert section.plan.boundaries == [0, 1, 2]
        await pilot.press("right")
        await pilot.pause()
        want = estimate(table_, Plan.build(table_, ["pi", "server"], [0, 2, 2], link))
        assert section.plan.boundaries == [0, 2, 2]
        assert section.estimate.throughput == want.throughput
        assert f"{want.throughput:.3g}" in str(section.query_one("#summary").render())
        await pilot.press("left", "left")
        await pilot.pause()
        want = estimate(table_, Plan.build(table_, ["pi", "server"], [0, 0, 2], link))
        assert section.plan.boundaries == [0, 0, 2]
        assert section.estimate.throughput == want.throughput

        await pilot.press("o")
        await pilot.pause()
        best = solve(table_, ["pi", "server"], link)
        assert section.plan.boundaries == best.boundaries
        assert section.estimate.throughput == estimate(table_, best).throughput
        assert "this plan reaches 100%" in str(section.query_one("#summary").render())

        await pilot.press("s")
        await pilot.pause()
        saved = Plan.load(app.last_plan_path)
        assert saved.boundaries == best.boundaries and saved.devices == ["pi", "server"]


@sync
async def test_bad_model_is_a_message_not_a_crash(tui_env):
    app = small_app(model="resnet1800")
    async with run(app, (80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert any("unknown model 'resnet1800'" in m and "resnet18" in m for m in notifications(app))
        assert app.is_running and not app.workspace.ready


@sync
async def test_untraceable_import_path_fails_in_the_worker_and_is_shown(tui_env):
    app = small_app(model="collections:OrderedDict")
    async with run(app, (80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("not a torch.nn.Module" in m for m in notifications(app)), 20)
        assert app.is_running
        assert "tracing failed" in str(app.screen.query_one("#model-status").render())


class ProbedApp(GappApp):
    """The app plus an invisible key whose action records when it ran (how long keys wait)."""

    BINDINGS = GappApp.BINDINGS + [Binding("z", "probe", "probe", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.handled: list[float] = []

    def action_probe(self) -> None:
        self.handled.append(time.perf_counter())


async def key_latencies(app: ProbedApp, probes: int, still) -> list[float]:
    """Seconds from posting a key to its action running, for keys posted while ``still()``."""
    waits = []
    for _ in range(probes):
        if not still():
            break
        n = len(app.handled)
        t0 = time.perf_counter()
        app.post_message(events.Key("z", "z"))
        while len(app.handled) == n:
            await asyncio.sleep(0.001)
        waits.append(app.handled[-1] - t0)
        await asyncio.sleep(0.05)
    return waits


@sync
async def test_keys_answer_while_measuring_and_cancel_keeps_finished_blocks(tui_env):
    from gapp_tui.store import Store

    app = ProbedApp(state=UiState(model="resnet18", input_size="224", granularity="natural"), remember=False)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        app.screen.query_one("#threads", Input).value = "1"  # normal precision, both modes: long enough to cancel
        app.screen.query_one("#mode", Select).value = "both"
        app.screen.query_one("#start").focus()
        await pilot.press("m")
        await wait_for(pilot, lambda: app.screen.running and "block" in str(app.screen.query_one("#measure-status").render()))
        measuring = app.screen
        waits = await key_latencies(app, 10, lambda: measuring.running)
        assert len(waits) >= 3 and measuring.running  # the keys were answered during the measurement
        assert max(waits) < 0.5, waits  # no freeze (benchmarks/tui_responsiveness.py measures the latency)
        await pilot.pause(0.1)  # the probes came 50 ms apart: a key right after them would be typing (issue 22)
        await pilot.press("question_mark")  # the help screen opens while the worker measures
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 10)
        assert measuring.running
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("c")
        await wait_for(pilot, lambda: app.workspace.measurement is not None, 30)
        result = app.workspace.measurement
        assert result.interrupted == "cancel"
        with Store() as store:
            stored = store.rows(model="resnet18")
        assert len(stored) == result.measured  # every finished block kept, nothing else


@sync
async def test_help_lists_every_sections_keys(tui_env):
    app = small_app()
    async with run(app, (80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one("#blocks").focus()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        from gapp_tui.tui.app import SECTION_CLASSES
        from gapp_tui.tui.sections.help import key_rows

        text = "\n".join(" ".join(row) for row in key_rows(app, SECTION_CLASSES))
        for what in ("Trace the model", "Jump to the solver's optimal plan", "Stop now", "Sort the table",
                     "Models", "Partition"):
            assert what in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_command_palette_switches_section_and_picks_models(tui_env):
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        app.screen.query_one("#blocks").focus()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Section: Partition")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "partition", 5)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Model: mobilenet_v3_small")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.workspace.ready, 30)
        assert app.current_mode == "models" and app.workspace.spec.name == "mobilenet_v3_small"


@sync
async def test_state_is_remembered_between_runs(tui_env):
    app = GappApp(state=UiState(model="resnet18", input_size="32", granularity="2", devices=FLOPS_DEVICES),
                  remember=True)
    async with run(app, (80, 24)) as pilot:
        await trace(app, pilot)
        await pilot.press("4")
        await pilot.pause()
        bw = app.screen.query_one("#bandwidth", Input)
        bw.value = "50Mbit/s"
        bw.focus()
        await pilot.press("enter")
        await pilot.pause()
        app.screen.query_one(CutStrip).focus()
        await pilot.press("q")
        await pilot.pause()
    again = UiState.load()
    assert (again.model, again.input_size, again.granularity, again.bandwidth) == ("resnet18", "32", "2", "50Mbit/s")


@sync
async def test_partition_edits_devices_and_link_and_refuses_bad_units(tui_env):
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        before = section.estimate.throughput
        bw = section.query_one("#bandwidth", Input)
        bw.value = "fast"
        bw.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert any("bandwidth 'fast' does not parse" in m for m in notifications(app))
        assert section.estimate.throughput == before  # the last good plan stays
        strip = section.query_one(CutStrip)
        strip.focus()
        # a click moves the nearest cut to the clicked block boundary (2 blocks: boundary 2 is the right end)
        await pilot.click(CutStrip, offset=(strip.size.width - 1, 1))
        await pilot.pause()
        assert section.plan.boundaries == [0, 2, 2]
        await pilot.click(CutStrip, offset=(0, 1))
        await pilot.pause()
        assert section.plan.boundaries == [0, 0, 2]
        await pilot.press("a")  # a third stage on a copy of the selected stage's device
        await wait_for(pilot, lambda: section.plan.devices == ["pi", "server", "server2"], 30)
        await pilot.press("d")
        await wait_for(pilot, lambda: len(section.plan.devices) == 2, 30)


@pytest.mark.ssh
@sync
async def test_measure_over_ssh_asks_about_the_host_key_then_measures(tui_env, sshd):
    from gapp_tui.store import Store

    known_hosts = tui_env / "known_hosts"
    known_hosts.touch()
    app = small_app(host=f"{sshd.target}:{sshd.port}", identity=str(sshd.client_key), known_hosts=str(known_hosts))
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#target", Select).value == "ssh"
        screen.query_one("#remote-python", Input).value = sys.executable  # the "device" is this machine
        screen.query_one("#precision", Select).value = "quick"
        screen.query_one("#threads", Input).value = "1"
        screen.query_one("#start").focus()
        await pilot.press("m")
        from gapp_tui.tui.widgets.measure.hostkey import HostKeyScreen

        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen), 30)
        assert app.screen.fingerprint.startswith("SHA256:")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.workspace.measurement is not None, 120)
        assert sshd.known_hosts_line.split()[2] in known_hosts.read_text()
        with Store() as store:
            rows = [r for r in store.rows(model="resnet18", mode="in-context") if r["block"] >= 0]
        assert len(rows) == 2
        await pilot.press("3")
        await pilot.pause(0.2)
        assert app.screen.query_one("#results-table", DataTable).row_count == 2


def _tiny_predictor(path, interval: bool = False):
    """An untrained (random) GNN saved as a predictor file: enough to check the wiring, not accuracy.

    ``interval``: with a calibrated 90 % interval of ±(e^0.2 - 1) = 22 % on every block (one width, no spread).
    """
    import torch

    from gapp_tui.features import NODE_COLUMNS, TOTAL_COLUMNS
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.interval import IntervalModel
    from gapp_tui.predict.predictor import Predictor

    torch.manual_seed(0)
    iv = IntervalModel(0.9, q=20.0, tau=0.01, samples=50, grain="block", spread=False) if interval else None
    Predictor(BlockGNN(len(NODE_COLUMNS), len(TOTAL_COLUMNS), hidden=8, layers=1), device="test",
              interval=iv).save(path)
    return Predictor.load(path)


@sync
async def test_choosing_a_predictor_fills_predicted_and_error_columns_and_the_scatter(tui_env, monkeypatch):
    from gapp_tui.features import extract
    from gapp_tui.tui.widgets.results.plots import Scatter

    folder = tui_env / "predictors"
    predictor = _tiny_predictor(folder / "tiny.pt", interval=True)
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await measure_quick(app, pilot)
        await wait_for(pilot, lambda: app.workspace.measurement is not None)
        await pilot.press("3")
        await pilot.pause(0.2)
        section = app.screen
        assert section.query_one("#predictor", Select).value == ""
        app.choose_predictor(str(folder / "tiny.pt"))
        await wait_for(pilot, lambda: section.predicted is not None, 30)
        want = [ms / 1e3 for ms in predictor.block_times(extract(app.workspace.chain))]
        assert section.predicted == pytest.approx(want)
        table = section.query_one("#results-table", DataTable)
        row = table.get_row_at(0)
        assert row[5] == round(want[0] * 1e3, 4)
        median = section.rows[0]["median_ms"]
        assert row[6] == round((want[0] * 1e3 - median) / median * 100, 1)
        # every prediction carries its interval: the table's column, the scatter's whiskers, the bars' spans
        iv = predictor.block_intervals(extract(app.workspace.chain))
        assert row[7] == f"{iv['low'][0]:.4g}-{iv['high'][0]:.4g}"
        points = section.query_one(Scatter).points
        assert len(points) == 2 and all(p.low_ms < p.predicted_ms < p.high_ms for p in points)
        assert section.query_one(Bars).spans[0] == pytest.approx((iv["low"][0], iv["high"][0]))
        assert "90% interval holds" in str(section.query_one("#accuracy").render())
        assert section.query_one("#predictor", Select).value == str(folder / "tiny.pt")
        # Partition can use the predictor's times for a device (named as in `gapp partition --devices`)
        await open_partition(app, pilot)
        devices = app.screen.query_one("#devices", Input)
        devices.value = "pi=predicted:tiny, server=measured"
        devices.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "pi" in app.screen.table.sources and
                       app.screen.table.sources["pi"] == ["predicted", "predicted"], 30)
        assert app.screen.table.times["pi"] == pytest.approx(want)
        assert app.screen.table.sources["pi"] == ["predicted", "predicted"]


@pytest.mark.slow
@sync
async def test_run_pipeline_from_partition_shows_measured_against_estimated(tui_env):
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("r")
        await wait_for_run(pilot, section)
        assert "measured" in section.pipeline_text and "output [green]matches" in section.pipeline_text


def _python_here(folder) -> str:
    """A "remote python" that runs this checkout's GAPP (the test sshd's sessions start with a bare environment)."""
    root = Path(__file__).resolve().parents[1]
    wrapper = folder / "python-gapp"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={root} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.ssh
@pytest.mark.slow
@sync
async def test_run_key_offers_the_measure_host_and_runs_the_stage_there(tui_env, sshd):
    """Issue 23: `r` offers the plan's SSH host (the Measure host); choosing it runs pi's stage over SSH."""
    host = f"{sshd.target}:{sshd.port}"
    known = sshd.trust(tui_env / "known_hosts")
    app = small_app(devices=FLOPS_DEVICES, host=host, identity=str(sshd.client_key), known_hosts=str(known),
                    remote_python=_python_here(tui_env))
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunWhereScreen), 10)
        shown = str(app.screen.query_one("#run-where-text").render())
        assert "every stage on this machine" in shown and f"pi on {host}, server here" in shown, shown
        sessions = len(sshd.session_pids())
        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen is section)
        await wait_for(pilot, lambda: len(sshd.session_pids()) > sessions or "running" not in section.pipeline_text,
                       60)
        assert len(sshd.session_pids()) > sessions  # pi's stage was started over SSH
        await wait_for_run(pilot, section)
        assert f"pi on {host}, server here" in section.pipeline_text, section.pipeline_text
        assert "output [green]matches" in section.pipeline_text
        assert "loopback" not in section.pipeline_text  # no longer "every stage on this machine"
        saved = json.loads(app.last_plan_path.read_text())
        assert saved["hosts"] == {"pi": host, "server": None}  # the plan file says where it ran


@pytest.mark.ssh
@sync
async def test_an_unreachable_plan_host_is_one_error_line_and_the_run_line_names_it(tui_env, sshd):
    dead = f"{sshd.user}@127.0.0.1:{_closed_port()}"  # nothing listens there
    app = small_app(devices=FLOPS_DEVICES, host=dead, identity=str(sshd.client_key),
                    remote_python=_python_here(tui_env))
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunWhereScreen), 10)
        await pilot.press("o")
        await wait_for(pilot, lambda: "running" not in section.pipeline_text, 60)
        assert "pipeline run error" in section.pipeline_text and dead in section.pipeline_text
        errors = [n for n in notifications(app) if dead.split("@")[1] in n or "connect" in n.lower()]
        assert errors and "\n" not in errors[-1].split("\n(traceback")[0], notifications(app)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@sync
async def test_with_no_host_known_the_run_key_asks_nothing(tui_env):
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("r")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, RunWhereScreen)
        assert "every stage as a process on this machine" in section.pipeline_text
        await wait_for_run(pilot, section)
        assert "every stage ran on this machine" in section.pipeline_text


def test_gapp_serve_serves_the_app_page(tmp_path):
    """`gapp serve` answers a browser with the app's page (each session then starts `python -m gapp_tui.tui`)."""
    import socket
    import subprocess
    import urllib.request

    pytest.importorskip("textual_serve")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gapp_tui", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read().decode()[-500:]) from None
                time.sleep(0.3)
        assert "GAPP" in page and f"ws://127.0.0.1:{port}/ws" in page  # the page's terminal connects back
    finally:
        proc.terminate()
        proc.wait(10)


@sync
async def test_link_comes_from_the_newest_stored_probe(tui_env):
    from gapp_tui import link_probe
    from gapp_tui.store import Store

    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        await pilot.press("l")  # nothing stored yet: a warning, the link stays
        await pilot.pause()
        assert any("No stored link probe" in m for m in notifications(app))
        assert app.screen.link.bandwidth == 100e6 / 8
        # the numbers a probe of a 20 Mbit/s, 3 ms link stores (the probe itself is tested in test_remote.py)
        with Store() as store:
            link_probe.save(store, link_probe.ProbeResult(
                host="pi@10.0.0.2", local="here", latency_s=0.003, rtt_s=[0.006],
                bandwidth_Bps={"from_device": 2.5e6, "to_device": 2.4e6},
                intercept_s={"from_device": 0.0, "to_device": 0.0},
                transfers=[], measured_at="2026-01-01T00:00:00+00:00"))
        await pilot.press("l")
        await pilot.pause()
        assert app.screen.link.bandwidth == pytest.approx(2.5e6) and app.screen.link.latency == pytest.approx(0.003)


@sync
async def test_the_partition_section_and_gapp_partition_give_the_same_times_and_estimate(tui_env, monkeypatch):
    """One store, model and device list: the app's per-block times and optimal estimate are the CLI's."""
    import json as _json

    from typer.testing import CliRunner

    from gapp_tui.cli import app as cli
    from gapp_tui.store import Store
    from tests.tui_snapshot_app import DEVICE, fixed_rows

    folder = tui_env / "predictors"
    _tiny_predictor(folder / "tiny.pt", interval=True)
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    devices = "edge=predicted:tiny, pi=2GFLOP/s, server=measured"
    app = small_app(granularity="natural", devices=devices, bandwidth="50Mbit/s", latency="3ms")
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        with Store() as store:  # rows of this very chain, as `gapp measure` stores them
            store.add_device({"key": DEVICE, "hostname": "fixed"})
            store.add_rows(fixed_rows(app.workspace.chain))
        await open_partition(app, pilot)
        section = app.screen
        await wait_for(pilot, lambda: section.table is not None and section.table.devices == ["edge", "pi", "server"])
        await pilot.press("o")
        await pilot.pause()
        tui_times = {d: list(section.table.times[d]) for d in section.table.devices}
        tui_estimate = section.estimate.to_dict()
        tui_boundaries = list(section.plan.boundaries)
        tui_range = section.range
        summary = app.screen_text()
    r = CliRunner().invoke(cli, ["partition", "resnet18", "--input-size", "32", "--devices", devices,
                                 "--bandwidth", "50Mbit/s", "--latency", "3ms", "--json"])
    assert r.exit_code == 0, r.output
    doc = _json.loads(r.stdout)
    assert {d: doc["times"][d]["blocks_s"] for d in ("edge", "pi", "server")} == tui_times
    assert doc["times"]["server"]["kinds"] == ["measured"] * len(tui_times["server"])
    assert "made for" in doc["times"]["edge"]["note"]  # which machine a predictor's numbers are for
    assert doc["plan"]["boundaries"] == tui_boundaries
    cli_estimate = doc["estimate"]
    for key in ("period_s", "throughput_per_s", "latency_s"):
        assert cli_estimate[key] == tui_estimate[key]
    assert cli_estimate["bottleneck"] == tui_estimate["bottleneck"]
    # the predicted device's interval: per block in the times, the plan's throughput range in both
    iv = doc["times"]["edge"]["interval"]
    assert iv["level"] == 0.9 and all(lo < t < hi for lo, t, hi in zip(iv["blocks_low_s"], tui_times["edge"],
                                                                       iv["blocks_high_s"]))
    assert "interval" not in doc["times"]["pi"] and doc["range"]["devices"] == ["edge"]
    lo, mid, hi = doc["range"]["throughput_per_s"]
    assert lo <= mid <= hi and lo < hi and mid == cli_estimate["throughput_per_s"]
    assert doc["range"]["throughput_per_s"] == tui_range["throughput_per_s"]
    assert f"items/s ({lo:.3g}-{hi:.3g}, 90%)" in summary


@sync
async def test_calibrate_in_measure_stores_probes_and_a_predictor_that_partition_offers_by_name(tui_env, monkeypatch):
    """Measure's Calibrate runs `gapp calibrate`'s code here: c keeps the probes measured, k again resumes and
    records a predictor; the Partition section then offers it by name, with the machine it was made for."""
    from gapp_tui.predict import probes
    from gapp_tui.predict.predictor import Predictor
    from gapp_tui.store import Store
    from gapp_tui.tui.messages import CalibrateEvent
    from gapp_tui.tui.widgets.partition.devices import DeviceNotes

    monkeypatch.setenv("XDG_DATA_HOME", str(tui_env / "data"))  # where the calibrated predictor is written
    monkeypatch.setenv("XDG_CACHE_HOME", str(tui_env / "cache"))
    monkeypatch.setattr(probes, "POOL_SIZE", 24)  # a prefix of the real pool (a probe is its seed): seconds, not minutes
    monkeypatch.setattr(probes, "CORE_SIZE", 24)  # first a long core round, to cancel in the middle of
    probes._pool_and_graphs.cache_clear()
    folder = tui_env / "predictors"
    _tiny_predictor(folder / "tiny.pt")  # the base to adapt (the one chosen in Results)
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    blocks_seen: list[dict] = []

    def hook(message):
        if isinstance(message, CalibrateEvent) and message.event["event"] == "block":
            blocks_seen.append(message.event)

    app = small_app(devices=FLOPS_DEVICES)
    try:
        async with run(app, (100, 30), hook) as pilot:
            await trace(app, pilot)
            app.choose_predictor(str(folder / "tiny.pt"))
            await pilot.press("2")
            await pilot.pause()
            section = app.screen
            section.query_one("#threads", Input).value = "1"
            bad = section.query_one("#budget", Input)
            bad.value = "soon"
            section.query_one("#start").focus()
            await pilot.press("k")
            await pilot.pause()
            assert not section.running and any("soon" in n for n in notifications(app))
            # cancel once probes are coming in: what was measured stays, no predictor is recorded
            bad.value = "10m"
            await pilot.press("k")
            await wait_for(pilot, lambda: any(e["kind"] == "core" for e in blocks_seen), 120)
            await pilot.press("c")
            await wait_for(pilot, lambda: not section.running, 120)
            await pilot.pause(0.2)
            assert section.calibration is None and "calibration stopped" in app.screen_text()
            with Store() as st:
                kept = st.rows(model=probes.MODEL_NAME)
                assert kept and not st.device_predictors()
            # k again within a small budget: resumes from the stored probes, adapts, records the predictor
            monkeypatch.setattr(probes, "CORE_SIZE", 6)
            bad.value = "6s"
            await pilot.press("k")
            await wait_for(pilot, lambda: section.calibration is not None or not section.running, 180)
            report = section.calibration
            assert report is not None, app.screen_text()
            assert report["new_rows"] < report["probes_measured"]  # the probes measured before were not again
            name = Path(report["predictor"]).stem
            # the status line repainted and grown to its two lines (a layout pass later on a busy machine)
            await wait_for(pilot, lambda: "held-out probes" in app.screen_text()
                           and f"predicted:{name}" in app.screen_text(), 30)
            text = app.screen_text()
            assert "held-out probes" in text and f"predicted:{Path(report['predictor']).stem}" in text
            with Store() as st:
                rows = st.rows(model=probes.MODEL_NAME, device=report["device_key"])
                rec = st.device_predictor(report["device_key"])
            assert len(rows) == report["probes_measured"] >= len(kept)
            assert rec is not None and Path(rec["path"]).is_file() and rec["threads"] == 1
            name = Path(rec["path"]).stem
            assert Predictor.load(rec["path"]).adaptation is not None
            # K calibrates again measuring the stored probes anew; the steadiness check compares its reference probes
            bad.value = "3s"
            section.query_one("#start").focus()
            await pilot.press("K")
            await wait_for(pilot, lambda: section.calibration is not None or not section.running, 180)
            again = section.calibration
            assert again is not None and again["rounds"][0]["measured"] == 1, app.screen_text()
            assert again["rounds"][1]["kind"] == "core" and again["rounds"][1]["measured"] > 0  # measured anew
            assert again["steadiness"]["ratio"] > 0 and again["predictor"] == report["predictor"]
            # Partition offers it by name, with its machine, and completes the devices field with it
            await open_partition(app, pilot)
            part = app.screen
            assert part.offers == [(name, report["machine"])]
            assert f"calibrated: {name} (made for {report['machine']}" in str(part.query_one(DeviceNotes).render())
            assert await part.suggester.get_suggestion("pi=pred") == f"pi=predicted:{name}"
            devices = part.query_one("#devices", Input)
            devices.value = f"pi=predicted:{name}, server=20GFLOP/s"
            devices.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: part.table is not None and part.table.sources.get("pi") == ["predicted"] * 2, 60)
            assert part.sources["pi"].long.startswith(f"predicted by pi's own predictor {name} (made for")
    finally:
        probes._pool_and_graphs.cache_clear()


@pytest.mark.ssh
@sync
async def test_calibrate_over_ssh_asks_about_the_host_key_then_records_the_devices_predictor(tui_env, sshd,
                                                                                           monkeypatch):
    """Calibrate on the SSH host typed in Measure: the unknown key is asked about, `y` starts the calibration again."""
    from gapp_tui.predict import probes
    from gapp_tui.store import Store
    from gapp_tui.tui.widgets.measure.hostkey import HostKeyScreen

    monkeypatch.setenv("XDG_DATA_HOME", str(tui_env / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tui_env / "cache"))
    monkeypatch.setattr(probes, "POOL_SIZE", 24)
    monkeypatch.setattr(probes, "CORE_SIZE", 6)
    probes._pool_and_graphs.cache_clear()
    folder = tui_env / "predictors"
    _tiny_predictor(folder / "tiny.pt")
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    known_hosts = tui_env / "known_hosts"
    known_hosts.touch()
    app = small_app(host=f"{sshd.target}:{sshd.port}", identity=str(sshd.client_key), known_hosts=str(known_hosts))
    try:
        async with run(app, (100, 30)) as pilot:
            await trace(app, pilot)
            app.choose_predictor(str(folder / "tiny.pt"))
            await pilot.press("2")
            await pilot.pause()
            section = app.screen
            assert section.query_one("#target", Select).value == "ssh"
            section.query_one("#remote-python", Input).value = sys.executable  # the "device" is this machine
            section.query_one("#threads", Input).value = "1"
            section.query_one("#budget", Input).value = "4s"
            section.query_one("#start").focus()
            await pilot.press("k")
            await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen), 30)
            await pilot.press("y")
            await wait_for(pilot, lambda: section.calibration is not None or (
                not section.running and app.screen is section and "failed" in app.screen_text()), 180)
            report = section.calibration
            assert report is not None, app.screen_text()
            assert str(sshd.port) in report["machine"] and sshd.known_hosts_line.split()[2] in known_hosts.read_text()
            with Store() as st:
                rows = st.rows(model=probes.MODEL_NAME, device=report["device_key"])
                rec = st.device_predictor(report["device_key"])
            assert len(rows) == report["probes_measured"] > 1 and all(r["extra"]["remote"]["host"] for r in rows)
            assert rec is not None and Path(rec["path"]).is_file()
    finally:
        probes._pool_and_graphs.cache_clear()
