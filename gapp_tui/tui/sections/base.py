"""What every section shares: its place in the app, bringing itself up to date, and its workers' failures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from ..app import GappApp

FINISHED = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


class Section(Screen):
    """A top-level section (a Textual mode). ``SECTION`` is its mode name.

    A section starts its own workers (``exit_on_error=False``); when one fails
    the app's one error path shows it (:meth:`GappApp.report_error`), and
    :meth:`worker_ended` lets the section put its own view back in order.
    """

    SECTION = ""

    @property
    def gapp(self) -> GappApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.gapp.sections[self.SECTION] = self
        self.sync()

    def on_screen_resume(self) -> None:
        self.sync()

    def sync(self) -> None:
        """Bring the section up to date with the workspace (cheap; called when shown)."""

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
