"""``python -m gapp_tui.tui``: the terminal app itself (what `gapp serve` starts per browser session)."""

from .app import run

run()
