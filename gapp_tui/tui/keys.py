"""Every key of the app, read from the bindings themselves: the one list the help screen and the palette show.

A key is declared once, as a Textual ``Binding`` with a description (its name in
the footer and the palette) and a tooltip (what it does): on the app (everywhere),
on a section, or on a widget a section names in ``WIDGET_KEYS`` (the partition
strip's arrows). A section added later, or a key added to a section, appears in
the help screen and the command palette by itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from textual.binding import Binding

#: printable keys closer together than this (seconds), outside a field, are typing: keys pressed one by
#: one as commands come slower (a fast typist's letters come 50-100 ms apart, a key held down 30-40 ms)
TYPING_BURST_S = 0.08


@dataclasses.dataclass(frozen=True)
class KeyAction:
    """One binding and where it acts: ``section`` None is everywhere; ``widget`` a selector inside the section."""

    section: str | None
    binding: Binding
    widget: str | None = None

    @property
    def action(self) -> str:
        return self.binding.action

    def title(self, section_titles: Mapping[str, str]) -> str:
        """The palette's name: ``Partition: Add cut``, ``Section: Models``, ``Help``."""
        if self.section is None:
            if self.action.startswith("section("):
                return f"Section: {self.binding.description}"
            return self.binding.description
        return f"{section_titles.get(self.section, self.section.title())}: {self.binding.description}"


def _declared(cls: type) -> list[Binding]:
    """The bindings a class declares itself (not its bases': those are the app's or Textual's)."""
    return [b for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding) and b.description]


def key_actions(app_class: type, sections: Mapping[str, type]) -> list[KeyAction]:
    """The app's keys, then each section's and its widgets' (in ``sections`` order)."""
    out = [KeyAction(None, b) for b in app_class.BINDINGS if isinstance(b, Binding) and b.description]
    for name, cls in sections.items():
        out += [KeyAction(name, b) for b in _declared(cls)]
        for selector, widget in getattr(cls, "WIDGET_KEYS", {}).items():
            out += [KeyAction(name, b, selector) for b in _declared(widget)]
    return out


def key_text(app: Any, binding: Binding) -> str:
    """Every key of a binding as shown on screen: ``d / delete``, ``←``, ``? / f1``."""
    return " / ".join(app.get_key_display(Binding(k.strip(), binding.action)) for k in binding.key.split(","))


def section_keys(app: Any, section: str) -> Iterator[tuple[str, str]]:
    """(keys, description) of the keys that act in ``section`` (for a hint line)."""
    for k in key_actions(type(app), app.MODES):
        if k.section == section:
            yield key_text(app, k.binding), k.binding.description


class TypingGuard:
    """Tells typing that missed a field from keys pressed as commands (issue 22: keys never steal typing).

    A printable key that comes within ``window`` seconds of the previous one
    is typing when it is another key, or when the previous one was typing
    too: a word typed while no field has the cursor does not run the
    sections' letters one after another. One key repeated (held down, pressed
    twice) is meant as a command. The first key of a burst cannot be told
    from a command and acts; ``new_burst`` is true on the first key refused.
    """

    def __init__(self, window: float = TYPING_BURST_S) -> None:
        self.window = window
        self.new_burst = False
        self._last_at = float("-inf")
        self._last_key: str | None = None
        self._typing = False

    def typing(self, key: str, at: float) -> bool:
        """Whether the printable ``key`` pressed at ``at`` (monotonic seconds) is typing, not a command."""
        typing = at - self._last_at < self.window and (key != self._last_key or self._typing)
        self.new_burst = typing and not self._typing
        self._last_at, self._last_key, self._typing = at, key, typing
        return typing
