"""Where to run the plan: every stage on this machine, or each device's stage on its SSH host."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ....partition.hosts import RunPlace
from ...keys import key_text


class RunWhereScreen(ModalScreen["RunPlace | None"]):
    """Dismisses with the chosen :class:`RunPlace` (None: nothing runs)."""

    BINDINGS = [
        Binding("h", "here", "This machine", id="run_where.here", tooltip="Run every stage on this machine"),
        Binding("o", "hosts", "On the hosts", id="run_where.hosts",
                tooltip="Run each device's stage on its SSH host (the others here)"),
        Binding("escape", "cancel", "Cancel", id="run_where.cancel", tooltip="Run nothing"),
    ]

    def __init__(self, places: Sequence[RunPlace]) -> None:
        super().__init__()
        self.places = list(places)  # [this machine, the plan's hosts]

    def _key(self, action: str) -> str:
        binding = next(b for b in self.BINDINGS if isinstance(b, Binding) and b.action == action)
        return key_text(self.app, binding)

    def compose(self) -> ComposeResult:
        here, hosts = self.places[0], self.places[-1]
        with Vertical(id="run-where-box"):
            yield Static("[b]Run the plan where?[/b]", id="run-where-title")
            yield Static(f"[b]{self._key('here')}[/b]  {here.words()}\n"
                         f"[b]{self._key('hosts')}[/b]  {hosts.words()}\n\n"
                         f"[dim]{self._key('cancel')}: run nothing[/]", id="run-where-text")
            with Horizontal(id="run-where-buttons"):
                yield Button(f"This machine ({self._key('here')})", id="here", variant="primary", compact=True)
                yield Button(f"On the hosts ({self._key('hosts')})", id="hosts", variant="warning", compact=True)

    def on_mount(self) -> None:
        self.query_one("#hosts", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.places[0] if event.button.id == "here" else self.places[-1])

    def action_here(self) -> None:
        self.dismiss(self.places[0])

    def action_hosts(self) -> None:
        self.dismiss(self.places[-1])

    def action_cancel(self) -> None:
        self.dismiss(None)
