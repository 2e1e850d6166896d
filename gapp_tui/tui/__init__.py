"""The GAPP terminal app (Textual): ``gapp`` with no command, or ``python -m gapp_tui.tui``."""
