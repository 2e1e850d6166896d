"""The help screen: every key of every section, and where to start.

The keys come from the bindings themselves (:func:`gapp_tui.tui.keys.key_actions`),
the same list the command palette shows, so a key added to a section appears
here by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..keys import key_actions, key_text

INTRO = (
    "[b]GAPP[/b] predicts how long each block of a network takes on a small device and cuts the "
    "network into a pipeline across devices. Start in [b]Models[/b] (pick and trace a model), then "
    "[b]Measure[/b] it here or on an SSH host, look at [b]Results[/b], and cut it in [b]Partition[/b]. "
    "The tab bar at the top shows where you are; the line at the bottom what the app works on, or "
    "which field your keys go to. In a text field keys type: Enter, Tab or Esc applies what you "
    "typed, and Esc gives the keys below back. [b]Ctrl+P[/b] lists every action with its key."
)


def key_rows(app: App[Any], sections: Mapping[str, type]) -> list[tuple[str, str, str]]:
    """(where, key, what) for the app's and every section's bindings, its widgets' included."""
    rows: list[tuple[str, str, str]] = []
    for k in key_actions(type(app), sections):
        b = k.binding
        what = b.tooltip or b.description
        if k.section is None:
            rows.append(("everywhere", key_text(app, b), f"{b.description}: {what}" if b.tooltip else what))
            if b.action == "help":
                rows.append(("everywhere", app.get_key_display(Binding("ctrl+p", "command_palette")),
                             "Command palette: every action below with its key, and every model by name"))
                rows.append(("everywhere", "tab / shift+tab", "Next / previous field (applies what was typed)"))
        else:
            rows.append((k.section, key_text(app, b), what))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close help", id="help.close")]

    def __init__(self, sections: Mapping[str, type]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        table = Table(box=None, pad_edge=False, expand=True)
        table.add_column("where", style="cyan", no_wrap=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        last = None
        for where, key, what in key_rows(self.app, self.sections):
            table.add_row(where if where != last else "", key, what)
            last = where
        with VerticalScroll(id="help-body"):
            yield Static(INTRO, id="help-intro")
            yield Static(table, id="help-keys")
            yield Static("[dim]Esc closes this help.[/]")

    def action_dismiss(self) -> None:
        self.dismiss(None)
