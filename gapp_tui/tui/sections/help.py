"""The help screen: every key of every section, and where to start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "[b]GAPP[/b] predicts how long each block of a network takes on a small device and cuts the "
    "network into a pipeline across devices. Start in [b]Models[/b] (pick and trace a model), then "
    "[b]Measure[/b] it here or on an SSH host, look at [b]Results[/b], and cut it in [b]Partition[/b]. "
    "[b]Ctrl+P[/b] opens the command palette: every action is there. Tab moves between fields; "
    "the number keys switch sections whenever the cursor is not in a text field."
)


def _keys(app: App[Any], binding: Binding) -> str:
    return " / ".join(app.get_key_display(Binding(k.strip(), binding.action)) for k in binding.key.split(","))


def key_rows(app: App[Any], sections: Mapping[str, type]) -> list[tuple[str, str, str]]:
    """(where, key, what) for the app's and every section's bindings."""
    rows: list[tuple[str, str, str]] = []
    for b in app.BINDINGS:
        if isinstance(b, Binding) and b.description:
            rows.append(("everywhere", _keys(app, b), f"{b.description}: {b.tooltip}" if b.tooltip else b.description))
    rows.append(("everywhere", "ctrl+p", "Command palette: every action, and every model by name"))
    rows.append(("everywhere", "tab / shift+tab", "Next / previous field"))
    for name, cls in sections.items():
        for b in cls.__dict__.get("BINDINGS", []):
            if isinstance(b, Binding) and b.description:
                rows.append((name, _keys(app, b), b.tooltip or b.description))
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
        for where, key, what in key_rows(self.app, self.sections):
            table.add_row(where, key, what)
        with VerticalScroll(id="help-body"):
            yield Static(INTRO, id="help-intro")
            yield Static(table, id="help-keys")
            yield Static("[dim]Esc closes this help.[/]")

    def action_dismiss(self) -> None:
        self.dismiss(None)
