"""Where you are: the tab bar of the sections at the top, the status line at the bottom.

Every section shows both (see :class:`~gapp_tui.tui.sections.base.Section`). The
tab bar names the four sections with their keys and marks the one shown (a
click switches); the status line says what the app works on (model, what was
measured, where the devices' times come from, the plan's throughput) or, while
the cursor is in a field, which field the keys go to.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

#: (mode name, key, title) of the sections, in tab order
TABS = (("models", "1", "Models"), ("measure", "2", "Measure"), ("results", "3", "Results"),
        ("partition", "4", "Partition"))


class SectionTabs(Static):
    """One line: ``GAPP  1 Models  2 Measure  3 Results  4 Partition``, the current one highlighted."""

    DEFAULT_CSS = """
    SectionTabs { height: 1; width: 1fr; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str, tabs: Sequence[tuple[str, str, str]] = TABS) -> None:
        super().__init__(self._content(current, tabs), id="tabs", markup=True)
        self.current = current

    @staticmethod
    def _content(current: str, tabs: Sequence[tuple[str, str, str]]) -> str:
        parts = [" [b]GAPP[/b] "]
        for name, key, title in tabs:
            if name == current:
                parts.append(f"[reverse b $accent] {key} {title} [/]")
            else:
                parts.append(f"[@click=app.section('{name}')] [b]{key}[/b] {title} [/]")
        parts.append("  [dim]? help · ^p actions[/]")
        return "".join(parts)


class StatusLine(Static):
    """One line at the bottom: what the app works on, or the field being typed in."""

    DEFAULT_CSS = """
    StatusLine {
        dock: bottom; margin-bottom: 1; height: 1; width: 1fr; padding: 0 1;
        background: $panel; color: $text; text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    def __init__(self) -> None:
        super().__init__("", id="status-line", markup=False)
        self._text: Text | None = None

    def show(self, text: Text) -> None:
        text.no_wrap, text.overflow = True, "ellipsis"
        if self._text is None or text.plain != self._text.plain or text.spans != self._text.spans:
            self._text = text
            self.update(text, layout=False)  # one line, always: no layout pass (it changes on every cut move)
