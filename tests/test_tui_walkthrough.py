"""The five journeys of a new user (benchmarks/tui_walkthrough.py, quick setting) pass every check of the screen."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_new_users_five_journeys_read_right_on_screen(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPP_DB", str(tmp_path / "gapp.sqlite"))
    monkeypatch.setenv("GAPP_TUI_STATE", str(tmp_path / "tui.json"))
    monkeypatch.setenv("GAPP_PLANS", str(tmp_path / "plans"))
    spec = importlib.util.spec_from_file_location("tui_walkthrough", ROOT / "benchmarks" / "tui_walkthrough.py")
    walkthrough = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, walkthrough)  # its dataclasses look their module up
    spec.loader.exec_module(walkthrough)
    checks = asyncio.run(walkthrough.journeys(walkthrough.QUICK, (100, 30), tmp_path / "plans"))
    failed = [f"[{c.journey}] {c.step}: {c.seen}" for c in checks if not c.ok]
    assert len(checks) >= 30 and not failed, "\n".join(failed)
    assert {c.journey for c in checks} == {"1 trace", "2 measure", "3 results", "4 partition", "5 keys"}
