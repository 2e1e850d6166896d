"""What every section shares: its place in the app, the tab bar and status line, and its workers' failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Label, Select
from textual.worker import Worker, WorkerState

from ..widgets.chrome import SectionTabs, StatusLine

if TYPE_CHECKING:
    from ..app import GappApp

FINISHED = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


def labelled(label: str, widget: Widget) -> Iterator[Widget]:
    """A form field: its label, then the widget (``yield from labelled("host", Input(...))``)."""
    yield Label(label, classes="field-label")
    yield widget


class Section(Screen):
    """A top-level section (a Textual mode). ``SECTION`` is its mode name.

    A section starts its own workers (``exit_on_error=False``); when one fails
    the app's one error path shows it (:meth:`GappApp.report_error`), and
    :meth:`worker_ended` lets the section put its own view back in order.

    It composes :meth:`tabs` first and :meth:`status_line` before its footer.
    ``FIELD_NAMES`` names its text fields in words (by id) and ``FIELD_HINT``
    says what leaving one does: the status line shows both while the cursor is
    in a field, so a user always sees where the keys go. ``WIDGET_KEYS`` names
    the widgets whose own bindings the help screen and the palette list too.
    """

    SECTION = ""
    FIELD_NAMES: ClassVar[dict[str, str]] = {}
    FIELD_HINT = "Esc leaves the field"
    WIDGET_KEYS: ClassVar[dict[str, type[Widget]]] = {}

    @property
    def gapp(self) -> GappApp:
        return self.app  # type: ignore[return-value]

    def tabs(self) -> SectionTabs:
        return SectionTabs(self.SECTION)

    def status_line(self) -> StatusLine:
        return StatusLine()

    def on_mount(self) -> None:
        self.gapp.sections[self.SECTION] = self
        self.sync()
        self.refresh_status()

    def on_screen_resume(self) -> None:
        self.sync()
        self.refresh_status()

    def sync(self) -> None:
        """Bring the section up to date with the workspace (cheap; called when shown)."""

    # ------------------------------------------------------------------ the status line

    def refresh_status(self) -> None:
        """Show the field the cursor is in, else what the app works on."""
        lines = self.query(StatusLine)
        if not lines:
            return
        focused = self.focused
        if isinstance(focused, (Input, Select)) and focused.id:
            name = self.FIELD_NAMES.get(focused.id, focused.id.replace("-", " "))
            if isinstance(focused, Input):
                text = Text.assemble(("✎ typing in ", "bold"), (name, "bold reverse"), f": {self.FIELD_HINT}")
            else:
                text = Text.assemble(("▾ ", "bold"), (name, "bold reverse"),
                                     ": Enter opens the list, ↑/↓ choose; Tab moves on")
        else:
            text = self.gapp.status_text()
        lines.first().show(text)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.refresh_status()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        self.call_after_refresh(self.refresh_status)

    # ------------------------------------------------------------------ workers

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state not in FINISHED:
            return
        if event.state == WorkerState.ERROR and worker.error is not None:
            self.gapp.report_error(worker.error, f"{worker.description or worker.group} failed")
        self.worker_ended(worker, event.state)

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        """One of this section's workers ended (success, error or cancel)."""
