"""`gapp` with no command: open the terminal app (or say why it cannot)."""

from __future__ import annotations

import sys


def open_app() -> None:
    try:
        from ..tui.app import run  # the Textual app
    except ImportError:
        # the TUI is not built yet: show what the CLI can do instead
        from . import app

        app(["--help"], standalone_mode=False)
        return
    if not sys.stdout.isatty():
        from .common import fail

        fail("the terminal app needs a terminal; run a command instead (see `gapp --help`)", 2)
    run()
