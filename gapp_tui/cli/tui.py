"""`gapp` with no command: open the terminal app (or say why it cannot)."""

from __future__ import annotations

import sys

from .common import fail


def open_app() -> None:
    if not sys.stdout.isatty():
        fail("the terminal app needs a terminal; run a command instead (see `gapp --help`)", 2)
    from ..tui.app import run  # slow (textual, torch): only the app pays for it

    run()
