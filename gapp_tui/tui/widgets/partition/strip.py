"""The strip of blocks with the plan's cut markers: move a cut with the keys or the mouse.

Each column shows one block (or, when the model has more blocks than the strip
has columns, the slowest of the few blocks it stands for) as a bar whose height
is the block's time on the device of its stage, in that stage's colour. Below
the bars a ruler marks every cut; the selected cut is highlighted.

The strip only edits boundaries; it posts :class:`CutStrip.Moved` and the
section re-estimates. Rendering is O(width), whatever the number of blocks.
"""

from __future__ import annotations

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


class CutStrip(Widget, can_focus=True):
    """Blocks ``0..n-1`` and boundaries ``[0, b1, ..., n]``; ``selected`` is the index of a cut (1..k-1)."""

    BINDINGS = [
        Binding("left", "move(-1)", "Cut ←", show=False, id="partition.cut_left", tooltip="Move the selected cut one block left"),
        Binding("right", "move(1)", "Cut →", show=False, id="partition.cut_right", tooltip="Move the selected cut one block right"),
        Binding("shift+left", "move(-10)", "Cut ←10", show=False, id="partition.cut_left10",
                tooltip="Move the selected cut ten blocks left"),
        Binding("shift+right", "move(10)", "Cut →10", show=False, id="partition.cut_right10",
                tooltip="Move the selected cut ten blocks right"),
        Binding("up", "select(-1)", "Prev cut", show=False, id="partition.prev_cut", tooltip="Select the previous cut"),
        Binding("down", "select(1)", "Next cut", show=False, id="partition.next_cut", tooltip="Select the next cut"),
    ]

    class Moved(Message):
        """The boundaries changed (a cut moved): ``boundaries`` is ``[0, b1, ..., n]``."""

        def __init__(self, strip: CutStrip, boundaries: tuple[int, ...]) -> None:
            self.strip = strip
            self.boundaries = boundaries
            super().__init__()

    selected: reactive[int] = reactive(1)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.times: list[float] = []
        self.stage_of: list[int] = []
        self.boundaries: list[int] = [0, 0]
        self.highlight_stage: int | None = None

    # ------------------------------------------------------------------ data

    def set_plan(self, times_by_stage: Sequence[Sequence[float]], boundaries: Sequence[int],
                 bottleneck_stage: int | None = None) -> None:
        """Block times (one column per device, the stage's device is used) and the boundaries."""
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
        if self.selected > max(1, len(b) - 2):
            self.selected = max(1, len(b) - 2)
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

    def watch_selected(self) -> None:
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

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.n == 0 or width == 0:
            return Strip.blank(width)
        bar_rows = max(1, self.size.height - 1)
        if y < bar_rows:
            return self._bar_line(y, bar_rows, width)
        return self._ruler_line(width)

    def _bar_line(self, y: int, rows: int, width: int) -> Strip:
        peak = max(self.times) if self.times else 0.0
        levels = rows * 8
        cut_cols = {self._start_column(b) for b in self.boundaries[1:-1]}
        segs: list[Segment] = []
        cols = 0
        for c, (lo, hi) in enumerate(self._column_blocks()):
            t = max(self.times[lo:hi])
            stage = self.stage_of[lo]
            h = 0 if peak <= 0 else max(1, round(t / peak * levels))
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

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
