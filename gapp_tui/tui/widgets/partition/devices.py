"""The devices line of the Partition section: each device, its total time, and where its times come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from ...labels import Source
from .strip import ms
from .strip import STAGE_COLOURS


class DeviceNotes(Static):
    """One line per device (cut at the width; the full notes in the tooltip): times of another machine in yellow."""

    def show(self, columns: Sequence[Any], sources: Mapping[str, Source]) -> str:
        """Show the block-times service's columns; returns a few words per device for the status line."""
        text = Text(no_wrap=True, overflow="ellipsis")
        words = []
        for i, c in enumerate(columns):
            src = sources.get(c.device.name) or Source(c.device.source, c.note)
            if i:
                text.append("\n")
            text.append(f"{c.device.name:<8} ", style=f"bold {STAGE_COLOURS[i % len(STAGE_COLOURS)]}")
            text.append(f"{ms(c.total):>9}  ")
            text.append(src.long, style="yellow" if src.foreign else "")
            words.append(f"{c.device.name} {src.word}")
        self.update(text)
        self.tooltip = "\n".join(c.note for c in columns)
        return " · ".join(words)
