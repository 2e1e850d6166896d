"""The Models section with any model: import paths completed as they are typed, the front end and leaves shown.

Real Textual Pilot, real completion (installed modules on this machine), real traces of the capture test
models in tests/custom_models.py.
"""

from __future__ import annotations

import asyncio
import sys
import time

from textual import events
from textual.widgets import Input, Static

from gapp_tui.zoo import complete_model
from tests.test_tui import run, small_app, sync, tui_env, wait_for  # noqa: F401  (tui_env is a fixture)


async def type_into(pilot, field: Input, text: str) -> None:
    field.focus()
    field.value = ""
    await pilot.pause()
    await pilot.press(*text)


async def suggestion(pilot, field: Input, timeout: float = 30.0) -> str:
    await wait_for(pilot, lambda: bool(field._suggestion), timeout)
    return field._suggestion


def test_completion_offers_registry_names_then_installed_packages_and_their_callables():
    assert complete_model("resnet1")[:2] == ["resnet101", "resnet152"]
    assert complete_model("tim")[0] == "timm"  # a package before the standard library's `time`
    assert complete_model("tests.custom_mo") == ["tests.custom_models"]
    assert complete_model("tests.custom_models")[0] == "tests.custom_models:"  # the module named: its colon
    assert complete_model("tests.custom_models:ga") == ["tests.custom_models:gated"]
    assert complete_model("no_such_package_xyz") == []


@sync
async def test_typing_an_import_path_prefix_offers_its_completion_and_right_accepts_it(tui_env):
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#model-name", Input)
        await type_into(pilot, field, "tests.custom_mo")
        assert await suggestion(pilot, field) == "tests.custom_models"
        await pilot.press("right")  # accepts it
        assert field.value == "tests.custom_models"
        await pilot.press(*":ga")
        assert await suggestion(pilot, field) == "tests.custom_models:gated"
        await pilot.press("right")
        assert field.value == "tests.custom_models:gated"
        await type_into(pilot, field, "tim")
        assert await suggestion(pilot, field) == "timm"


@sync
async def test_completing_a_large_package_does_not_hold_the_keys(tui_env, monkeypatch):
    """Listing timm.models' callables reads about a hundred source files (seconds, the first time); keys
    typed meanwhile go in at once. (Pilot's own ``press`` waits until the process is idle, so the keys are
    posted by hand and timed up to the field taking them.)"""
    from gapp_tui import import_paths

    import_paths.callables.cache_clear()  # the first listing, as in a fresh app
    # from its sources, as in a fresh app (another test of this run may have imported it)
    monkeypatch.delitem(sys.modules, "timm.models", raising=False)
    app = small_app()
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#model-name", Input)
        field.focus()
        field.value = "timm.models:"  # the listing starts in its thread
        field.cursor_position = len(field.value)
        waits = []
        for key in "vit_t":
            n = len(field.value)
            t0 = time.perf_counter()
            app.post_message(events.Key(key, key))
            while len(field.value) == n:
                await asyncio.sleep(0.001)
            waits.append(time.perf_counter() - t0)
        listing = not field._suggestion  # no suggestion yet: the listing was still running
        assert field.value == "timm.models:vit_t"
        assert listing and max(waits) < 0.5, (listing, waits)
        assert (await suggestion(pilot, field, 60)).startswith("timm.models:vit_t")


@sync
async def test_tracing_a_model_that_needs_an_automatic_leaf_shows_the_front_end_and_the_leaf(tui_env):
    app = small_app(model="tests.custom_models:gated", input_size="")
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        line = app.screen.query_one("#model-capture", Static)
        assert not line.display  # nothing traced yet
        app.screen.query_one("#input-shape", Input).value = "1,3,16,16"
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.workspace.ready)
        await pilot.pause()
        text = str(line.render())
        assert line.display
        assert text.startswith("captured with torch.fx · 1 leaf: GatedUnit at gate (automatic: ")
        assert "control flow" in text


@sync
async def test_a_model_torch_fx_cannot_trace_shows_torch_export_and_why(tui_env):
    app = small_app(model="tests.custom_models:size_loop", input_size="")
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        app.screen.query_one("#input-shape", Input).value = "1,3,16,16"
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.workspace.ready)
        await pilot.pause()
        text = str(app.screen.query_one("#model-capture", Static).render())
        assert text.startswith("captured with torch.export in place of torch.fx (torch.fx cannot trace")
