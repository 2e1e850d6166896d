"""Results section (being built)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from .base import Section


class ResultsSection(Section):
    SECTION = "results"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("coming", classes="status-line")
        yield Footer(compact=True)
