"""What every section shares: the header, the footer, the app's workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from ..app import GappApp


class Section(Screen):
    """A top-level section (a Textual mode). ``name`` is its mode name."""

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
