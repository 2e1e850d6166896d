"""Issue 22: the terminal app tells the truth and shows where you are.

One Pilot test per finding of the issue, written against the app as it was (each
failed there) and kept to protect the fix. They assert through what the screen
shows (:func:`screen_text`, the terminal's text) and public attributes.

resnet18 at 32x32 (two blocks, or natural blocks where cuts need room), quick
precision: every test takes a few seconds.
"""

from __future__ import annotations

import re
import threading
import types

import pytest
from textual.widgets import Input, Select

from gapp_tui.tui.app import GappApp
from gapp_tui.tui.state import UiState
from gapp_tui.tui.widgets.partition.strip import CutStrip
from tests.test_tui import (  # noqa: F401  (tui_env is a fixture)
    FLOPS_DEVICES,
    _tiny_predictor,
    measure_quick,
    notifications,
    open_partition,
    run,
    small_app,
    sync,
    trace,
    tui_env,
    wait_for,
    wait_for_run,
)


def screen_text(app: GappApp) -> str:
    """What the terminal shows now, as plain text."""
    return app.screen_text()


def widget_text(app: GappApp, widget) -> str:
    """The lines of the screen inside ``widget``'s region."""
    r = widget.region
    lines = screen_text(app).splitlines()
    return "\n".join(line[r.x:r.x + r.width] for line in lines[r.y:r.y + r.height])


async def type_into(pilot, field: Input, text: str) -> None:
    """Focus a field, clear it and type ``text`` key by key, as a user does."""
    field.focus()
    field.value = ""
    await pilot.pause()
    await pilot.press(*text)


# ---------------------------------------------------------------------------------------------- 1. edits applied


@sync
async def test_a_link_typed_and_left_with_esc_or_tab_is_applied_and_saved(tui_env):
    """Finding: after typing 100Mbit/s and leaving with Esc the estimate kept the old link and `s` saved it."""
    from gapp_tui.partition.plan import Plan

    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await type_into(pilot, section.query_one("#bandwidth", Input), "1Mbit/s")
        await pilot.press("escape")
        await pilot.pause()
        assert section.link.bandwidth == pytest.approx(1e6 / 8)
        await type_into(pilot, section.query_one("#latency", Input), "7ms")
        await pilot.press("tab")
        await pilot.pause()
        assert section.link.latency == pytest.approx(0.007)
        section.query_one(CutStrip).focus()
        await pilot.press("s")
        await pilot.pause()
        saved = Plan.load(app.last_plan_path)
        assert saved.links[0].bandwidth == pytest.approx(1e6 / 8) and saved.links[0].latency == pytest.approx(0.007)


@sync
async def test_devices_typed_and_left_with_tab_are_applied(tui_env):
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await type_into(pilot, section.query_one("#devices", Input), "edge=4GFLOP/s, server=20GFLOP/s")
        await pilot.press("tab")
        await wait_for(pilot, lambda: section.plan is not None and section.plan.devices == ["edge", "server"], 20)


# ---------------------------------------------------------------------------------------------- 2. whose times


@sync
async def test_a_predicted_device_without_a_predictor_of_its_own_is_not_shown_as_its_times(tui_env):
    """Finding: `pi=predicted` took the shipped x86 predictor and the stage showed just "predicted"."""
    app = small_app(devices="pi=predicted, server=2GFLOP/s")
    async with run(app, (80, 24)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await wait_for(pilot, lambda: section.table is not None and "pi" in section.table.devices, 60)
        await pilot.pause()
        from gapp_tui.tui.widgets.partition.estimate import EstimatePanel

        stage_rows = [line for line in widget_text(app, section.query_one(EstimatePanel)).splitlines()
                      if line.strip().startswith("0 pi")]
        assert stage_rows and "not pi's" in stage_rows[0], stage_rows  # the stage's times are not pi's
        assert "not pi's" in widget_text(app, section.query_one("#device-notes"))


# ---------------------------------------------------------------------------------------------- 3. measurement sanity


def _inflate_full_model(factor: float) -> None:
    """Make the stored full-model time ``factor`` times larger: what a busy machine with threads=all stored."""
    from gapp_tui.store import Store

    with Store() as store:
        rows = store.rows(model="resnet18", mode="full")
        for r in rows:
            r["median_ms"] *= factor
        store.add_rows(rows)


@sync
async def test_a_sum_far_from_the_full_model_is_flagged_and_f_measures_again(tui_env):
    """Finding: `sum 7.85 ms vs full 23.67 ms (-66.8%)` passed without a word, and `m` only reloaded the rows."""
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await measure_quick(app, pilot)
        await wait_for(pilot, lambda: app.workspace.measurement is not None)
        _inflate_full_model(3.0)
        first = app.workspace.measurement
        await pilot.press("m")  # everything is stored: nothing is timed again
        await wait_for(pilot, lambda: app.workspace.measurement is not first)
        await pilot.pause()
        text = screen_text(app)
        assert "beyond ±10%" in text and "f re-measures" in text, text
        again = app.workspace.measurement
        assert again.measured == 0
        await pilot.press("f")
        await wait_for(pilot, lambda: app.workspace.measurement is not again)
        forced = app.workspace.measurement
        assert forced.measured >= 3 and forced.skipped == 0  # both blocks and the full model timed again


def _one_thread_predictor(path):
    """An untrained predictor whose training says it was made at 1 thread (as the shipped one is)."""
    import torch

    from gapp_tui.features import NODE_COLUMNS, TOTAL_COLUMNS
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.predictor import Predictor

    torch.manual_seed(0)
    Predictor(BlockGNN(len(NODE_COLUMNS), len(TOTAL_COLUMNS), hidden=8, layers=1), device="test-t1",
              training={"device_note": "a test machine, 1 thread", "threads": 1}).save(path)


@sync
async def test_rows_measured_at_other_threads_than_the_predictor_are_flagged(tui_env, monkeypatch):
    folder = tui_env / "predictors"
    _one_thread_predictor(folder / "tiny.pt")
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        app.choose_predictor(str(folder / "tiny.pt"))
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#precision", Select).value = "quick"
        screen.query_one("#threads", Input).value = "2"
        screen.query_one("#start").focus()
        await pilot.press("m")
        await wait_for(pilot, lambda: app.workspace.measurement is not None)
        await pilot.pause()
        text = screen_text(app)
        assert "2 threads" in text and "1 thread" in text and "tiny" in text, text


@sync
async def test_threads_precision_and_predictor_are_remembered(tui_env, monkeypatch):
    """Finding: threads and the chosen predictor were forgotten on restart."""
    folder = tui_env / "predictors"
    _tiny_predictor(folder / "tiny.pt")
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    app = GappApp(state=UiState(model="resnet18", input_size="32", granularity="2"), remember=True)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        app.choose_predictor(str(folder / "tiny.pt"))
        await pilot.press("2")
        await pilot.pause()
        await type_into(pilot, app.screen.query_one("#threads", Input), "1")
        app.screen.query_one("#precision", Select).value = "quick"
        await pilot.press("escape")
        await pilot.press("q")
        await pilot.pause()
    again = GappApp(state=UiState.load(), remember=False)
    async with run(again, (100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("escape", "2")
        await pilot.pause()
        assert again.screen.query_one("#threads", Input).value == "1"
        assert again.screen.query_one("#precision", Select).value == "quick"
        assert again.workspace.predictor == str(folder / "tiny.pt")
        await pilot.press("1")
        await trace(again, pilot)
        await pilot.press("3")
        await pilot.pause(0.5)
        assert again.workspace.predictor == str(folder / "tiny.pt")  # opening Results does not drop it
        assert again.screen.query_one("#predictor", Select).value == str(folder / "tiny.pt")


# ---------------------------------------------------------------------------------------------- 4. one source of truth


@sync
async def test_changing_the_model_clears_the_previous_models_measurement_line(tui_env):
    """Finding: after switching model, Measure still showed the previous model's `done: ... measured`."""
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await measure_quick(app, pilot)
        await wait_for(pilot, lambda: app.workspace.measurement is not None)
        await pilot.pause()
        assert "done" in str(app.screen.query_one("#measure-status").render())
        await pilot.press("1")
        await pilot.pause()
        size = app.screen.query_one("#input-size", Input)
        size.value = "48"
        size.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.workspace.spec.shape[-1] == 48)
        await pilot.press("2")
        await pilot.pause()
        status = str(app.screen.query_one("#measure-status").render())
        assert "done" not in status and "sum" not in status, status
        assert "1x3x48x48" in widget_text(app, app.screen.query_one("#measure-form"))


@sync
async def test_the_cut_label_always_names_the_selected_cut(tui_env):
    """Finding: after `a` the label said `cut 1/2` while the arrows moved cut 2; ↑/↓ never updated it."""
    app = small_app(devices=FLOPS_DEVICES, granularity="natural")
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        strip = section.query_one(CutStrip)

        def label() -> tuple[int, int]:
            m = re.search(r"cut (\d+)/(\d+)", str(section.query_one("#cut-info").render()))
            assert m, str(section.query_one("#cut-info").render())
            return int(m.group(1)), int(m.group(2))

        await pilot.press("a")
        await wait_for(pilot, lambda: len(section.plan.devices) == 3, 20)
        await pilot.pause()
        assert label() == (strip.selected, 2)
        await pilot.press("up")
        await pilot.pause()
        assert label() == (strip.selected, 2)
        before = list(section.plan.boundaries)
        await pilot.press("right")
        await pilot.pause()
        moved = [i for i, (a, b) in enumerate(zip(before, section.plan.boundaries)) if a != b]
        assert moved == [label()[0]]


# ---------------------------------------------------------------------------------------------- 5. where am I?


@sync
async def test_a_tab_bar_and_a_status_line_show_where_you_are(tui_env):
    """Finding: no tab bar, and on first start the footer showed only `f1 Help`."""
    app = GappApp(state=UiState(model="resnet18", input_size="32", granularity="2"), remember=False)
    async with run(app, (80, 24)) as pilot:
        await pilot.pause()
        top = screen_text(app).splitlines()[0]
        for tab in ("1 Models", "2 Measure", "3 Results", "4 Partition"):
            assert tab in top, top
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert "2 Measure" in lines[0]
        assert any("resnet18" in line and "traced" in line for line in lines[-3:]), lines[-3:]


@sync
async def test_the_field_being_typed_in_is_named_on_screen(tui_env):
    """Finding: focus was nearly invisible, so typing went to what only looked like the Link field."""
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (80, 24)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        app.screen.query_one("#bandwidth", Input).focus()
        await pilot.pause()
        bottom = "\n".join(screen_text(app).splitlines()[-3:])
        assert "typing in Link bandwidth" in bottom, bottom


@sync
async def test_letters_typed_outside_a_field_do_not_retrace_the_model_or_reset_the_cuts(tui_env):
    """Finding: `100Mbit/s` typed while the strip had focus sent 1 to Models and `t` retraced, resetting the cuts."""
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        chain = app.workspace.chain
        await open_partition(app, pilot)
        await pilot.press("right")
        await pilot.pause()
        cuts = app.workspace.cuts
        await pilot.press(*"100Mbit/s")
        await pilot.pause(0.5)
        assert app.workspace.chain is chain and app.workspace.cuts == cuts
        await pilot.press("4")
        await pilot.pause(0.3)
        assert list(app.screen.plan.boundaries) == list(cuts)


@sync
async def test_a_word_typed_outside_a_field_runs_none_of_its_letters(tui_env):
    """Issue 22: `server=measured` typed while the strip had the cursor ran s (save), r (run the pipeline),
    a (add a cut) and d (remove one), one after another. Now only its first letter acts, and the app says
    where typing goes; one key pressed twice quickly still acts twice."""
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("right")
        await pilot.pause()
        devices, cuts = list(section.plan.devices), app.workspace.cuts
        before = len(notifications(app))
        await pilot.press(*"server=measured")
        await pilot.pause(0.5)
        assert section.pipeline_text == "", section.pipeline_text  # r did not run the plan
        assert list(section.plan.devices) == devices and app.workspace.cuts == cuts  # nor a/d the cuts
        told = notifications(app)[before:]
        assert sum("Typing goes to a field" in n for n in told) == 1, told
        assert sum("run it with" in n for n in told) == 1, told  # the first letter, s, saved the plan (once)
        await pilot.pause(0.3)
        await pilot.press("o")  # a key pressed on its own is a command again
        await pilot.pause(0.3)
        assert section.plan.objective != "manual"


@sync
async def test_one_key_pressed_twice_quickly_acts_twice(tui_env):
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("a", "a")  # two cuts added: a repeated key is meant
        await wait_for(pilot, lambda: len(section.plan.devices) == 4, 30)


# ---------------------------------------------------------------------------------------------- 6. the Models form


@sync
async def test_tab_from_the_model_goes_to_the_size_and_the_typed_size_is_traced(tui_env):
    """Finding: Tab went from Model to the Trace button, so a typed size went nowhere."""
    app = GappApp(state=UiState(model="resnet18", input_size="", granularity="2"), remember=False)
    async with run(app, (80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is app.screen.query_one("#input-size", Input)
        app.focused.value = ""
        await pilot.press("4", "8", "enter")
        await wait_for(pilot, lambda: app.workspace.ready)
        await pilot.pause()
        assert app.workspace.spec.shape == (1, 3, 48, 48)
        form = widget_text(app, app.screen.query_one("#model-form"))
        assert "224" not in form and "48" in form, form


# ---------------------------------------------------------------------------------------------- 7. labels


@sync
async def test_results_name_the_device_and_setting_in_words(tmp_path, monkeypatch):
    """Finding: `Device vm-cpu-ecbefc40`, `Setting 1x3x96x96/float32/t1/natura▼`."""
    from tests.tui_snapshot_app import DEVICE, make_app

    app = make_app(tmp_path, monkeypatch)
    async with run(app, (80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert DEVICE not in text and "snapshot" in text, text
        assert "1 thread" in text and "natura▼" not in text, text


@sync
async def test_the_measure_form_labels_every_choice(tui_env):
    """Finding: two unlabelled drop-downs, `normal (1% CI)` and `float32`."""
    app = small_app()
    async with run(app, (80, 24)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        form = widget_text(app, app.screen.query_one("#measure-form"))
        assert "precision" in form and "dtype" in form, form


@sync
async def test_a_cut_has_one_name_in_the_label_and_the_bottleneck(tui_env):
    """Finding: `cut 1/1 after block 4 · 72.0 KiB` and `link pi->server (cut 5, 73728 B)` named one cut."""
    app = small_app(devices="pi=200GFLOP/s, server=200GFLOP/s", bandwidth="1Mbit/s", granularity="natural")
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        assert section.estimate.bottleneck["kind"] == "link"
        c = section.plan.boundaries[1]
        block = section.table.blocks[c - 1]
        info = str(section.query_one("#cut-info").render())
        summary = str(section.query_one("#summary").render())
        assert f"after block {c - 1} {block}" in info
        assert f"after block {c - 1} {block}" in summary and f"cut {c}," not in summary, summary
        assert not re.search(r"\d B\)", summary), summary


@sync
async def test_a_cancelled_measurement_line_has_no_empty_item(tui_env):
    """Finding: `cancelled: … ·  · 3: see Results`."""
    app = small_app(granularity="natural", input_size="224")  # seconds to measure: long enough to be cancelled
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        app.screen.query_one("#threads", Input).value = "1"
        app.screen.query_one("#start").focus()
        await pilot.press("m")
        await wait_for(pilot, lambda: app.screen.running, 20)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.workspace.measurement is not None, 60)
        await pilot.pause()
        status = str(app.screen.query_one("#measure-status").render())
        assert "cancelled" in status and "·  ·" not in status, status


# ---------------------------------------------------------------------------------------------- 8. charts


@sync
async def test_the_strip_keeps_its_scale_and_shows_an_axis_totals_and_the_optimum(tui_env):
    """Finding: no axis, no block names, and the bars rescaled on every move."""
    bars = set(" ▁▂▃▄▅▆▇█")
    app = small_app(devices=FLOPS_DEVICES, granularity="natural")
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        strip = section.query_one(CutStrip)
        n = section.table.n
        assert section.plan.boundaries == [0, n // 2, n]

        def server_columns() -> list[str]:
            text = widget_text(app, strip).splitlines()
            w = strip.size.width // n
            return [line[(n // 2) * w:n * w] for line in text if line and set(line) <= bars]

        before = server_columns()
        await pilot.press("left", "left", "left", "left")  # the slowest pi block moves to the server
        await pilot.pause()
        assert section.plan.boundaries == [0, n // 2 - 4, n]
        after = server_columns()
        assert after == before  # blocks that stayed on the server kept their bars
        text = widget_text(app, strip)
        assert "ms" in text and "pi" in text and "server" in text, text  # the axis and the stage totals
        assert section.table.blocks[n // 2 - 5] in widget_text(app, strip)  # the block left of the cut, named


@sync
async def test_bars_have_a_legend_and_the_table_a_sort_indicator_and_an_accuracy_line(tmp_path, monkeypatch):
    """Findings: Bars had no legend; the Results table no sort indicator and no summary accuracy figure."""
    from gapp_tui.tui.widgets.results.plots import Bars
    from tests.tui_snapshot_app import make_app

    folder = tmp_path / "predictors"
    _tiny_predictor(folder / "tiny.pt")
    monkeypatch.setenv("GAPP_PREDICTORS", str(folder))
    app = make_app(tmp_path, monkeypatch)
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        app.choose_predictor(str(folder / "tiny.pt"))
        section = app.screen
        await wait_for(pilot, lambda: section.predicted is not None, 60)
        await pilot.pause()
        text = screen_text(app)
        assert "MAPE" in text and "±10%" in text and "Spearman" in text, text
        await pilot.press("s")
        await pilot.pause()
        assert "▲" in screen_text(app)
        await pilot.press("v", "v")
        await pilot.pause()
        legend = widget_text(app, section.query_one(Bars))
        assert "measured" in legend and "predicted" in legend, legend


# ---------------------------------------------------------------------------------------------- 9. help and palette


def _every_binding():
    """(section, binding) for every key of every section, the widgets' keys included."""
    from gapp_tui.tui.app import SECTION_CLASSES

    for name, cls in SECTION_CLASSES.items():
        for b in cls.BINDINGS:
            yield name, b
    for b in CutStrip.BINDINGS:
        yield "partition", b


def first_key(app, binding) -> str:
    """How the first of a binding's keys is shown (``d,delete`` -> ``d``, ``left`` -> ``←``)."""
    from textual.binding import Binding

    return app.get_key_display(Binding(binding.key.split(",")[0].strip(), binding.action))


def flat(text: str) -> str:
    """Text with box borders dropped and whitespace collapsed (a table cell wraps over lines)."""
    return " ".join(text.replace("│", " ").split())


@sync
async def test_the_palette_lists_every_key_with_the_key_shown(tui_env):
    """Finding: the palette lacked `v` and `l`, and its entries did not show their keys."""
    from gapp_tui.tui.commands import GappCommands

    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        provider = GappCommands(app.screen)
        hits = [(str(h.text), str(h.help or "")) async for h in provider.discover()]
        for section, b in _every_binding():
            key = first_key(app, b)
            found = [h for h in hits if b.description in h[0] and key in h[1]]
            assert found, (section, b.key, b.description, hits)


@sync
async def test_help_lists_the_keys_that_move_cuts(tui_env):
    """Finding: Help omitted ←/→/↑/↓ on the partition strip."""
    from gapp_tui.tui.sections.help import HelpScreen

    app = small_app()
    async with run(app, (120, 90)) as pilot:
        await pilot.pause()
        app.screen.query_one("#blocks").focus()
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5)
        await pilot.pause(0.3)
        text = flat(widget_text(app, app.screen.query_one("#help-body")))
        for _, b in _every_binding():
            assert flat(b.tooltip) in text, b.tooltip
            assert first_key(app, b) in text


@sync
async def test_adding_a_cut_says_which_device_it_added(tui_env):
    """Finding: `a` silently added `server2=measured` to Devices."""
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: len(app.screen.plan.devices) == 3, 20)
        assert any("server2" in m for m in notifications(app)), notifications(app)


# ---------------------------------------------------------------------------------------------- 10. measure


@sync
async def test_a_typed_host_makes_the_target_that_host(tui_env):
    """Finding: a typed SSH host was ignored while Target stayed "this machine"."""
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#target", Select).value == "cpu"
        await type_into(pilot, screen.query_one("#host", Input), "pi@10.0.0.2")
        await pilot.press("tab")
        await pilot.pause()
        assert screen.query_one("#target", Select).value == "ssh"


@sync
async def test_cuda_is_offered_only_when_this_machine_has_it(tui_env):
    """Finding: CUDA was offered without a GPU and then failed with a CLI hint."""
    import torch

    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause(1.0)
        app.screen.query_one("#target", Select).focus()
        await pilot.press("enter")  # the list of targets opens
        await pilot.pause()
        text = screen_text(app)
        assert "this machine (CPU)" in text and ("CUDA" in text) == torch.cuda.is_available(), text


class _Clock:
    """A monotonic clock the test moves by hand (the measure section's time module is swapped for it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@sync
async def test_progress_names_the_block_and_the_eta_comes_from_the_blocks_already_timed(tui_env, monkeypatch):
    """Findings: progress stayed on `next stem`; `remaining ~5:20` for a run that ended 40 s later.

    A scripted engine reports what a 10-block run reports (the timer's own events): in context,
    the first block settles after 20 s, when at most 10 s are left of the timer's cap (3 s per
    block; a 100 ms chain would need 40 s for its 200 runs); standalone, five blocks come from
    the store at once, then one takes 2 s.
    """
    import time as real_time

    from gapp_tui.measure import engine
    from gapp_tui.measure.record import MeasureResult, Progress
    from gapp_tui.tui.sections import measure as measure_section

    clock = _Clock()
    monkeypatch.setattr(measure_section, "time", types.SimpleNamespace(monotonic=clock.monotonic,
                                                                         perf_counter=real_time.perf_counter))
    reported, go = threading.Event(), threading.Event()
    seen: list[str] = []

    def scripted(chain, config, *, store=None, progress=None, cancel=None, command=None, **_):
        def report(p, advance=0.0):
            clock.now += advance
            progress(p)
            reported.set()
            go.wait(10)  # the test reads the screen, then lets the engine go on
            go.clear()

        n = 10
        if "standalone" in config.modes:
            for i in range(5):
                report(Progress("standalone", i + 1, n, f"block{i}", None, 0.0, skipped=True))
            report(Progress("standalone", 5, n, "block5", None, 0.0))
            report(Progress("standalone", 6, n, "block5", 2.0, 2.0), advance=2.0)
        else:
            report(Progress("in-context", 0, n, "stem", None, 0.0))
            report(Progress("in-context", 1, n, "stem", 100.0, 100.0), advance=20.0)
        return MeasureResult(model="resnet18", model_label="resnet18", setting="", setting_parts={}, device={},
                             device_after=None, chain_sig="", blocks=[], rows={}, full=None, overhead={}, sums={},
                             chain_ms={}, precision={}, measured=0, skipped=0)

    monkeypatch.setattr(engine, "measure", scripted)
    app = small_app(granularity="natural")
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#threads", Input).value = "1"

        async def steps(count: int) -> None:
            for _ in range(count):
                await wait_for(pilot, reported.is_set, 10)
                reported.clear()
                await pilot.pause(0.2)
                seen.append(str(screen.query_one("#measure-status").render()))
                go.set()

        screen.query_one("#start").focus()
        await pilot.press("m")
        await steps(2)
        await wait_for(pilot, lambda: not screen.running, 10)
        in_context = seen[-1]
        assert "next stem" not in in_context and "stem" in in_context, in_context
        m = re.search(r"(\d+):(\d\d)", in_context.split("remaining")[-1])
        assert m and int(m.group(1)) * 60 + int(m.group(2)) <= 13, in_context  # 10 s of the cap, plus a margin

        screen.query_one("#mode", Select).value = "standalone"
        await pilot.pause()
        screen.query_one("#start").focus()
        await pilot.press("m")
        await steps(7)
        await wait_for(pilot, lambda: not screen.running, 10)
        standalone = seen[-1]
        m = re.search(r"(\d+):(\d\d)", standalone.split("remaining")[-1])
        # 4 blocks left at 2 s each, then the full model (at most the timer's 3 s cap)
        assert m and 6 <= int(m.group(1)) * 60 + int(m.group(2)) <= 12, standalone


# ---------------------------------------------------------------------------------------------- the run line


@pytest.mark.slow
@sync
async def test_the_run_line_says_the_stages_ran_here_and_is_shown_whole(tui_env):
    """Findings: `r` ran the "pi" stage on this machine beside a 2 GFLOP/s estimate without saying so;
    the run line was cut off until a resize; and it stayed after another model was traced."""
    app = small_app(devices=FLOPS_DEVICES)
    async with run(app, (100, 30)) as pilot:
        await trace(app, pilot)
        await open_partition(app, pilot)
        section = app.screen
        await pilot.press("r")
        await wait_for_run(pilot, section)
        await pilot.pause(0.3)
        shown = flat(widget_text(app, section.query_one("#summary")))
        assert "on this machine" in shown and "not on pi" in shown, shown
        assert "output matches" in shown, shown  # the end of the run line is on screen
        await pilot.press("1")
        await pilot.pause()
        size = app.screen.query_one("#input-size", Input)
        size.value = "48"
        size.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.workspace.spec.shape[-1] == 48)
        await open_partition(app, pilot)
        await wait_for(pilot, lambda: app.screen.table is not None and app.screen.table.n == 2)
        assert "pipeline run" not in str(app.screen.query_one("#summary").render())


@sync
async def test_opening_measure_keeps_the_remembered_remote_python(tui_env):
    """The remote Python field was composed holding `python3`: that change arrived after the remembered value was
    filled in and overwrote it, so the run key and the next start went back to python3."""
    app = small_app(host="pi@10.255.255.1", remote_python="/opt/venv/bin/python")
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("escape", "2")  # the cursor starts in the Models form
        await pilot.pause(0.3)
        assert app.screen.query_one("#remote-python").value == "/opt/venv/bin/python"
        assert app.ui_state.remote_python == "/opt/venv/bin/python"
