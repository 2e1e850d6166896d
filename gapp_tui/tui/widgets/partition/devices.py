"""The devices line of the Partition section: each device, its total time, and where its times come from;
the calibrated predictors there are to choose from, and the devices field's completion of their names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.suggester import Suggester
from textual.widgets import Static

from ...labels import Source
from .strip import ms
from .strip import STAGE_COLOURS


class DeviceNotes(Static):
    """One line per device (cut at the width; the full notes in the tooltip): times of another machine in yellow."""

    def show(self, columns: Sequence[Any], sources: Mapping[str, Source],
             offers: Sequence[tuple[str, str]] = ()) -> str:
        """Show the block-times service's columns; returns a few words per device for the status line.

        ``offers``: the calibrated predictors to choose from, (name, the machine it was made for).
        """
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
        if offers:
            text.append("\ncalibrated: ", style="bold")
            text.append("; ".join(f"{name} (made for {machine})" for name, machine in offers))
            text.append(f" · write DEVICE=predicted:{offers[0][0]}", style="dim")
        self.update(text)
        self.tooltip = "\n".join([c.note for c in columns] + [f"DEVICE=predicted:{n}: made for {m}" for n, m in offers])
        return " · ".join(words)


class DeviceSuggester(Suggester):
    """Completes the devices field's last device with a calibrated predictor: ``pi=pr`` -> ``pi=predicted:NAME``."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.names: list[str] = []

    async def get_suggestion(self, value: str) -> str | None:
        last = value.rsplit(",", 1)[-1]
        if "=" not in last:
            return None
        typed = last.split("=", 1)[1].strip()
        if not typed:
            return None
        for name in self.names:
            full = f"predicted:{name}"
            if full.startswith(typed) and full != typed:
                return value + full[len(typed):]
        return None
