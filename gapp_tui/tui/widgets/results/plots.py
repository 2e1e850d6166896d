"""Terminal plots drawn with Unicode characters: predicted-vs-measured scatter and per-block bars.

Both are plain Textual widgets rendering Rich text, so they are deterministic
(snapshot tests) and need no plotting library. The scatter uses log axes
(block times span three decades), a dotted y = x line, and one colour per
model family; the bars show each block's measured time, with the predicted
time as a tick on the same row when there is one. A predictor with a
calibrated interval adds it: a vertical whisker through each scatter point, a
span of ``─`` around the tick on each bar. Both say what they show in a legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

FAMILY_COLOURS = ("#5fafff", "#ffaf5f", "#87d787", "#d787d7", "#d7d75f", "#5fd7d7", "#ff8787", "#afafaf")


@dataclass(frozen=True)
class Point:
    measured_ms: float
    predicted_ms: float
    family: str
    label: str = ""
    low_ms: float | None = None  # the predicted time's interval, when the predictor has one
    high_ms: float | None = None


def family_colours(families: Sequence[str]) -> dict[str, str]:
    return {f: FAMILY_COLOURS[i % len(FAMILY_COLOURS)] for i, f in enumerate(dict.fromkeys(families))}


def _fmt(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.3g}"
    return f"{ms:.2g}"


class Scatter(Widget):
    """Predicted (y) against measured (x), log-log, with the y = x diagonal."""

    DEFAULT_CSS = "Scatter { height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[Point] = []
        self.empty_text = "no predicted times: choose a predictor (p)"

    def set_points(self, points: Sequence[Point], empty_text: str | None = None) -> None:
        self.points = [p for p in points if p.measured_ms > 0 and p.predicted_ms > 0]
        if empty_text is not None:
            self.empty_text = empty_text
        self.refresh()

    def render(self) -> Text:
        w, h = self.size.width, self.size.height
        if not self.points:
            return Text(self.empty_text, style="dim")
        label_w = 7
        pw, ph = max(4, w - label_w - 1), max(3, h - 3)
        values = [p.measured_ms for p in self.points] + [p.predicted_ms for p in self.points]
        values += [v for p in self.points for v in (p.low_ms, p.high_ms) if v is not None and v > 0]
        lo, hi = math.log10(min(values)), math.log10(max(values))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.05
        lo, hi = lo - pad, hi + pad

        def col(v: float) -> int:
            return min(pw - 1, max(0, int((math.log10(v) - lo) / (hi - lo) * (pw - 1) + 0.5)))

        def row(v: float) -> int:
            return min(ph - 1, max(0, ph - 1 - int((math.log10(v) - lo) / (hi - lo) * (ph - 1) + 0.5)))

        grid: list[list[tuple[str, str]]] = [[(" ", "")] * pw for _ in range(ph)]
        for c in range(pw):  # the y = x line
            v = 10 ** (lo + (hi - lo) * c / max(1, pw - 1))
            grid[row(v)][c] = ("·", "#6c6c6c")
        colours = family_colours([p.family for p in self.points])
        whiskers = False
        for p in self.points:  # intervals first: a point drawn later stays visible on another's whisker
            if p.low_ms and p.high_ms and p.low_ms > 0:
                c = col(p.measured_ms)
                for r in range(row(p.high_ms), row(p.low_ms) + 1):
                    if grid[r][c][0] != "●":
                        grid[r][c] = ("│", colours[p.family])
                whiskers = True
        for p in self.points:
            r, c = row(p.predicted_ms), col(p.measured_ms)
            grid[r][c] = ("●", colours[p.family])
        text = Text()
        for r in range(ph):
            if r == 0:
                lab = _fmt(10**hi)
            elif r == ph - 1:
                lab = _fmt(10**lo)
            else:
                lab = ""
            text.append(f"{lab:>{label_w}}│", style="dim")
            for ch, style in grid[r]:
                text.append(ch, style=style)
            text.append("\n")
        text.append(" " * label_w + "└" + "─" * pw + "\n", style="dim")
        axis = f"{_fmt(10**lo)} ms"
        right = f"{_fmt(10**hi)} ms"
        text.append(" " * (label_w + 1) + axis + " measured →".center(max(0, pw - len(axis) - len(right)))
                    + right + "\n", style="dim")
        legend = Text("  predicted ↑  ", style="dim")
        for fam, colour in colours.items():
            legend.append("● ", style=colour)
            legend.append(f"{fam} block  ")
        if whiskers:
            legend.append("│ interval  ", style="dim")
        legend.append("··· y = x (a perfect prediction)", style="#6c6c6c")
        text.append_text(legend)
        return text


class Bars(Widget):
    """One row per block: the measured time as a bar, then the predicted one when known."""

    DEFAULT_CSS = "Bars { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, float | None, float | None]] = []
        self.spans: list[tuple[float, float] | None] = []

    def set_rows(self, rows: Sequence[tuple[str, float | None, float | None]],
                 spans: Sequence[tuple[float, float] | None] | None = None) -> None:
        """``rows``: (block, measured ms, predicted ms); ``spans``: the predicted time's interval per row (or None)."""
        self.rows = list(rows)
        self.spans = list(spans) if spans is not None else [None] * len(self.rows)
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return max(1, len(self.rows) + 1)

    def render(self) -> Text:
        if not self.rows:
            return Text("nothing measured for this model, device and setting yet", style="dim")
        w = self.size.width
        name_w = min(18, max(len(r[0]) for r in self.rows))
        num_w = 9
        bar_w = max(4, w - name_w - num_w - 3)
        peak = max(max(m or 0, p or 0) for _, m, p in self.rows) or 1.0
        peak = max([peak] + [hi for sp in self.spans if sp for hi in sp[1:]])
        text = Text(" " * (name_w + 1))
        text.append("█", style="#5fafff")
        text.append(" measured median (ms at the right)", style="dim")
        if any(p is not None for _, _, p in self.rows):
            text.append("   ")
            text.append("┃", style="bold #ffaf5f")
            text.append(" predicted", style="dim")
            if any(self.spans):
                text.append(" ─── its interval", style="dim")
        text.append(f"   full bar {_fmt(peak)} ms\n", style="dim")
        for i, (name, m, p) in enumerate(self.rows):
            text.append(f"{name[:name_w]:<{name_w}} ", style="bold")
            full = (m or 0) / peak * bar_w
            cells = ["█"] * int(full)
            frac = full - int(full)
            if len(cells) < bar_w and frac >= 1 / 8:
                cells.append(" ▏▎▍▌▋▊▉"[int(frac * 8)])
            cells += [" "] * (bar_w - len(cells))
            styles = ["#5fafff"] * bar_w
            span = self.spans[i] if i < len(self.spans) else None
            if p is not None and span is not None:  # its interval: a span of ─ around the tick
                a, b = (min(bar_w - 1, int(v / peak * bar_w)) for v in span)
                for j in range(a, b + 1):
                    if cells[j] == " ":
                        cells[j], styles[j] = "─", "#ffaf5f"
                    else:
                        styles[j] = "#5fafff on #5f3f1f"
            if p is not None:  # the predicted time: an orange tick on the same row
                at = min(bar_w - 1, int(p / peak * bar_w))
                cells[at], styles[at] = "┃", "bold #ffaf5f"
            for ch, st in zip(cells, styles):
                text.append(ch, style=st)
            text.append(f" {m:>{num_w - 3}.3f} ms" if m is not None else " " * (num_w + 1))
            if i < len(self.rows) - 1:
                text.append("\n")
        return text
