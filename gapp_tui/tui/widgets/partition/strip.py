"""The strip of blocks with the plan's cut markers: move a cut with the keys or the mouse.

Six lines, each explaining itself:

* the scale (what a full bar means) and the blocks on each side of the
  selected cut, with their times on their stages' devices;
* three lines of bars, one column per block (or, when the model has more blocks
  than the strip has columns, the slowest of the few blocks it stands for): the
  block's time on the device of its stage, in that stage's colour. The scale is
  the slowest block on any device of the plan, fixed while cuts move, so a bar
  changes only when its block changes device;
* a ruler with every cut (``▲``, the selected one highlighted) and the solver's
  optimal cuts (``◇``);
* each stage's device and total compute time under its blocks.

The strip only edits boundaries; it posts :class:`CutStrip.Moved` (and
:class:`CutStrip.Selected`) and the section re-estimates. Rendering is O(width),
whatever the number of blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"
STAGE_COLOURS = ("#5fafff", "#ffaf5f", "#87d787", "#d787d7", "#d7d75f", "#5fd7d7", "#ff8787", "#afafaf")
DIM = Style(color="#8a8a8a")


def ms(seconds: float) -> str:
    v = seconds * 1e3
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


class CutStrip(Widget, can_focus=True):
    """Blocks ``0..n-1`` and boundaries ``[0, b1, ..., n]``; ``selected`` is the index of a cut (1..k-1)."""

    BINDINGS = [
        *(Binding(f"{shift}{side}", f"move({sign * step})", f"Move cut {'' if step == 1 else '10 '}{side}", show=False,
                  id=f"partition.cut_{side}{'' if step == 1 else step}",
                  tooltip=f"Move the selected cut {'one block' if step == 1 else 'ten blocks'} {side}")
          for shift, step in (("", 1), ("shift+", 10)) for side, sign in (("left", -1), ("right", 1))),
        Binding("up", "select(-1)", "Previous cut", show=False, id="partition.prev_cut", tooltip="Select the previous cut"),
        Binding("down", "select(1)", "Next cut", show=False, id="partition.next_cut", tooltip="Select the next cut"),
    ]

    @dataclass
    class Moved(Message):
        """The boundaries changed (a cut moved): ``boundaries`` is ``[0, b1, ..., n]``."""

        strip: CutStrip
        boundaries: tuple[int, ...]

    @dataclass
    class Selected(Message):
        """Another cut was selected (``index``: 1..k-1)."""

        strip: CutStrip
        index: int

    selected: reactive[int] = reactive(1)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.times: list[float] = []
        self.stage_of: list[int] = []
        self.boundaries: list[int] = [0, 0]
        self.highlight_stage: int | None = None
        #: seconds a full bar stands for (fixed while cuts move; see :meth:`set_scale`)
        self.scale: float = 0.0
        self.blocks: list[str] = []
        self.devices: list[str] = []
        self.totals: list[float] = []  # compute seconds per stage
        self.optimal: list[int] | None = None
        self.foreign: set[str] = set()

    # ------------------------------------------------------------------ data

    def set_scale(self, seconds: float, blocks: Sequence[str] = (), foreign: Sequence[str] = ()) -> None:
        """What a full bar means: the slowest block on any device of the plan (set when the times change).

        ``foreign``: devices whose times were made for another machine (their stages say so).
        """
        self.scale = seconds
        self.blocks = list(blocks)
        self.foreign = set(foreign)
        self.refresh()

    def set_plan(self, times_by_stage: Sequence[Sequence[float]], boundaries: Sequence[int],
                 bottleneck_stage: int | None = None, devices: Sequence[str] = (),
                 totals: Sequence[float] = ()) -> None:
        """Block times (one column per device, the stage's device is used), the boundaries, and stage totals."""
        b = list(boundaries)
        n = b[-1]
        self.boundaries = b
        self.stage_of = [0] * n
        self.times = [0.0] * n
        for s in range(len(b) - 1):
            col = times_by_stage[s]
            for i in range(b[s], b[s + 1]):
                self.stage_of[i] = s
                self.times[i] = col[i]
        self.highlight_stage = bottleneck_stage
        self.devices, self.totals = list(devices), list(totals)
        if self.selected > max(1, len(b) - 2):
            self.selected = max(1, len(b) - 2)
        self.refresh()

    def set_optimal(self, boundaries: Sequence[int] | None) -> None:
        """The solver's boundaries, marked ``◇`` on the ruler (None: not known)."""
        self.optimal = list(boundaries) if boundaries is not None else None
        self.refresh()

    @property
    def n(self) -> int:
        return self.boundaries[-1]

    @property
    def cuts(self) -> int:
        return len(self.boundaries) - 2

    def _set_boundary(self, cut: int, value: int) -> None:
        b = list(self.boundaries)
        value = max(b[cut - 1], min(b[cut + 1], value))
        if value != b[cut]:
            b[cut] = value
            self.boundaries = b
            self.post_message(self.Moved(self, tuple(b)))

    # ------------------------------------------------------------------ actions

    def action_move(self, delta: int) -> None:
        if self.cuts < 1:
            self.app.bell()
            return
        cut = self.selected
        b = self.boundaries
        target = b[cut] + delta
        if target < b[cut - 1] or target > b[cut + 1]:
            self.app.bell()  # a cut never passes its neighbour
        self._set_boundary(cut, target)

    def action_select(self, delta: int) -> None:
        if self.cuts >= 1:
            self.selected = (self.selected - 1 + delta) % self.cuts + 1

    def on_click(self, event: events.Click) -> None:
        """A click selects the nearest cut and moves it to the block boundary clicked."""
        if self.cuts < 1 or self.n == 0:
            return
        boundary = self._boundary_at(event.x)
        nearest = min(range(1, self.cuts + 1), key=lambda c: abs(self.boundaries[c] - boundary))
        self.selected = nearest
        self._set_boundary(nearest, boundary)

    def watch_selected(self, selected: int) -> None:
        self.post_message(self.Selected(self, selected))
        self.refresh()

    # ------------------------------------------------------------------ geometry
    # With n <= width every block gets w = width // n columns; with more blocks
    # than columns, column c stands for blocks [ceil(c n / W), ceil((c+1) n / W)).

    def _layout(self) -> tuple[int, int]:
        """(columns used, columns per block; 0 when blocks share columns)."""
        width, n = self.size.width, self.n
        if n == 0 or width == 0:
            return 0, 0
        if n <= width:
            w = width // n
            return w * n, w
        return width, 0

    def _start_column(self, b: int) -> int:
        """The column where block ``b`` starts (``b == n``: one past the end)."""
        cols, w = self._layout()
        return b * w if w else b * cols // self.n

    def _boundary_at(self, x: int) -> int:
        cols, w = self._layout()
        x = max(0, min(cols, x))
        return round(x / w) if w else round(x * self.n / cols)

    def _column_blocks(self) -> list[tuple[int, int]]:
        cols, w = self._layout()
        n = self.n
        if w:
            return [(c // w, c // w + 1) for c in range(cols)]
        return [((c * n + cols - 1) // cols, max(((c + 1) * n + cols - 1) // cols, (c * n + cols - 1) // cols + 1))
                for c in range(cols)]

    # ------------------------------------------------------------------ rendering

    BAR_ROWS = 3

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.n == 0 or width == 0:
            return Strip.blank(width)
        if y == 0:
            return self._info_line(width)
        if y <= self.BAR_ROWS:
            return self._bar_line(y - 1, self.BAR_ROWS, width)
        if y == self.BAR_ROWS + 1:
            return self._ruler_line(width)
        if y == self.BAR_ROWS + 2:
            return self._totals_line(width)
        return Strip.blank(width)

    def _text_strip(self, parts: Sequence[tuple[str, Style]], width: int) -> Strip:
        segs, used = [], 0
        for text, style in parts:
            if used >= width:
                break
            text = text[: width - used]
            segs.append(Segment(text, style))
            used += len(text)
        if used < width:
            segs.append(Segment(" " * (width - used)))
        return Strip(segs, width)

    def _block_words(self, i: int) -> list[tuple[str, Style]]:
        stage = self.stage_of[i]
        colour = STAGE_COLOURS[stage % len(STAGE_COLOURS)]
        name = self.blocks[i] if i < len(self.blocks) else str(i)
        device = self.devices[stage] if stage < len(self.devices) else ""
        where = (f" for {device}, not {device}'s" if device in self.foreign else f" on {device}") if device else ""
        return [(f"{i} {name} ", Style(bold=True)), (ms(self.times[i]), Style(color=colour, bold=True)),
                (where, Style(color="#d7d75f") if device in self.foreign else DIM)]

    def _info_line(self, width: int) -> Strip:
        left = [(f"full bar {ms(self.scale)}", DIM)]
        right: list[tuple[str, Style]] = []
        if self.cuts >= 1:
            c = self.boundaries[self.selected]
            if c > 0:
                right += self._block_words(c - 1)
            right.append((" ▲ " if 0 < c < self.n else (" ◀ " if c == 0 else " ▶ "), Style(color="#ffd75f", bold=True)))
            if c < self.n:
                right += self._block_words(c)
        used = sum(len(t) for t, _ in right)
        room = width - used - 2
        if room < 12:
            return self._text_strip(right, width)
        left_text = left[0][0][:room]
        return self._text_strip([(left_text, DIM), (" " * (width - used - len(left_text)), Style()), *right], width)

    def _bar_line(self, y: int, rows: int, width: int) -> Strip:
        peak = self.scale if self.scale > 0 else (max(self.times) if self.times else 0.0)
        levels = rows * 8
        cut_cols = {self._start_column(b) for b in self.boundaries[1:-1]}
        segs: list[Segment] = []
        cols = 0
        for c, (lo, hi) in enumerate(self._column_blocks()):
            t = max(self.times[lo:hi])
            stage = self.stage_of[lo]
            h = 0 if peak <= 0 else min(levels, max(1, round(t / peak * levels)))
            fill = h - (rows - 1 - y) * 8
            ch = BARS[max(0, min(8, fill))]
            colour = STAGE_COLOURS[stage % len(STAGE_COLOURS)]
            bold = stage == self.highlight_stage
            bg = "#4e4e4e" if c in cut_cols else None
            segs.append(Segment(ch, Style(color=colour, bold=bold, bgcolor=bg)))
            cols += 1
        if width > cols:
            segs.append(Segment(" " * (width - cols)))
        return Strip(segs, width)

    def _ruler_line(self, width: int) -> Strip:
        cols, _ = self._layout()
        chars = ["─"] * cols
        styles = [Style(color="#6c6c6c")] * cols
        for b in (self.optimal or [])[1:-1]:
            c = min(cols - 1, self._start_column(b))
            chars[c], styles[c] = "◇", Style(color="#87d787", bold=True)
        for cut in range(1, self.cuts + 1):
            b = self.boundaries[cut]
            c = min(cols - 1, self._start_column(b))
            sel = cut == self.selected
            chars[c] = "◀" if b == 0 else ("▶" if b == self.n else "▲")
            if sel and self.has_focus:
                styles[c] = Style(color="black", bgcolor="#ffd75f", bold=True)
            elif sel:
                styles[c] = Style(color="#ffd75f", bold=True)
            else:
                styles[c] = Style(color="white", bold=True)
        segs = [Segment(ch, st) for ch, st in zip(chars, styles)]
        if width > cols:
            segs.append(Segment(" " * (width - cols)))
        return Strip(segs, width)

    def _totals_line(self, width: int) -> Strip:
        """Each stage's device and compute total, written from the stage's first column."""
        chars = [" "] * width
        styles = [Style()] * width
        for s in range(len(self.boundaries) - 1):
            lo, hi = self.boundaries[s], self.boundaries[s + 1]
            if hi <= lo or s >= len(self.devices):
                continue
            start = self._start_column(lo)
            end = max(start + 1, self._start_column(hi))
            total = self.totals[s] if s < len(self.totals) else 0.0
            device = self.devices[s]
            own = " (not its times)" if device in self.foreign else ""
            text = f"{device}{own} {ms(total)}"
            if len(text) > end - start:
                text = f"{device} {ms(total)}" if len(f"{device} {ms(total)}") <= end - start else device
            colour = STAGE_COLOURS[s % len(STAGE_COLOURS)]
            style = Style(color=colour, bold=True, reverse=s == self.highlight_stage)
            for k, ch in enumerate(text[: max(1, end - start)]):
                if start + k < width:
                    chars[start + k], styles[start + k] = ch, style
        if self.optimal is not None:
            legend = "◇ optimal cut"
            at = width - len(legend)
            if at > 0 and all(ch == " " for ch in chars[at - 1:]):
                for k, ch in enumerate(legend):
                    chars[at + k], styles[at + k] = ch, Style(color="#87d787")
        return Strip([Segment(ch, st) for ch, st in zip(chars, styles)], width)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
