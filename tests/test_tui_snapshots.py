"""Snapshots of every section at 80x24 and 120x40 (pytest-textual-snapshot; SVGs in tests/__snapshots__).

Update them after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

import pytest

from tests.tui_snapshot_app import make_app

SIZES = [(80, 24), (120, 40)]


async def _settle(pilot) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def _section(key: str, extra: tuple[str, ...] = ()):
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press(key)
        if key == "4":  # the devices' block times come from a worker of the section
            for _ in range(200):
                if getattr(pilot.app.screen, "plan", None) is not None:
                    break
                await pilot.pause(0.05)
        await pilot.press(*extra)
        await _settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models_section(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=_section("1"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_measure_section(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=_section("2"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_table(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=_section("3"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_results_bars(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=_section("3", ("v", "v")))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_partition_section(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size,
                        run_before=_section("4", ("right", "o")))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size,
                        run_before=_section("question_mark"))


def test_models_section_before_anything_is_traced(snap_compare, tmp_path, monkeypatch):
    from gapp_tui.tui.app import GappApp
    from gapp_tui.tui.state import UiState

    monkeypatch.setenv("GAPP_DB", str(tmp_path / "gapp.sqlite"))
    app = GappApp(state=UiState(), remember=False)
    assert snap_compare(app, terminal_size=(80, 24))
