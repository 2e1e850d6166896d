"""Results: the measured blocks of the current model, predicted beside them, sums and plots."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Label, Select, Static, TabbedContent, TabPane

from ...errors import BadInput
from ...measure.sanity import check_gap, check_setting, check_spread, gap_pct, predictor_setting
from ...partition.times import chain_rows
from ...store import parse_setting
from ..labels import machine_of, machine_words, setting_words
from ..widgets.results.plots import Bars, Point, Scatter
from .base import Section

COLUMNS = [("#", "index"), ("block", "name"), ("median ms", "median"), ("IQR ms", "iqr"), ("runs", "runs"),
           ("predicted ms", "predicted"), ("error %", "error"), ("interval ms", "interval")]
VIEWS = ("table", "scatter", "bars")
#: the sort indicator after a column's name (ascending, descending; two cells kept free on every header)
SORT_MARKS = (" ▲", " ▼")


class ResultsSection(Section):
    SECTION = "results"
    AUTO_FOCUS = "#results-table"
    BINDINGS = [
        Binding("s", "sort", "Sort", id="results.sort", tooltip="Sort the table by the next column (again: reverse)"),
        Binding("v", "view", "View", id="results.view", tooltip="Next view: table, scatter, bars"),
        Binding("p", "predictor", "Predictor", id="results.predictor", tooltip="Choose the predictor shown"),
        Binding("e", "export", "Export", show=False, id="results.export", tooltip="Write these rows to CSV and JSON"),
    ]
    FIELD_NAMES = {"device": "Device", "mode": "mode", "setting": "Setting", "predictor": "predictor"}

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.predicted: list[float] | None = None
        #: the predictor's calibrated interval for this chain: (low seconds, high seconds, level), or None
        self.interval: tuple[list[float], list[float], float] | None = None
        self.sort_column = 0
        self.sort_reverse = False
        self._loading_choices = False

    def compose(self) -> ComposeResult:
        yield self.tabs()
        with Horizontal(classes="form-row", id="results-choices"):
            yield Label("Device", classes="field-label")
            yield Select([], id="device", compact=True, prompt="(none)", tooltip="Which measured machine")
            yield Label("mode", classes="field-label")
            yield Select([("in-context", "in-context"), ("standalone", "standalone")], id="mode", value="in-context",
                         allow_blank=False, compact=True, tooltip="Which measurement mode")
        with Horizontal(classes="form-row", id="results-choices2"):
            yield Label("Setting", classes="field-label")
            yield Select([], id="setting", compact=True, prompt="(none)",
                         tooltip="Input size, batch, dtype, threads and blocks of the rows shown")
            yield Label("predictor", classes="field-label")
            yield Select([("none", "")], id="predictor", value="", allow_blank=False, compact=True,
                         tooltip="Predicted times shown beside the measured ones")
        yield Static("", id="sum-vs-full", classes="status-line")
        yield Static("", id="accuracy", classes="results-line")
        yield Static("", id="results-flags", classes="results-line")
        with TabbedContent(id="results-views"):
            with TabPane("Table", id="table"):
                table = DataTable(id="results-table", zebra_stripes=True, cursor_type="row")
                for label, key in COLUMNS:
                    table.add_column(label + "  ", key=key)  # room for the sort indicator
                yield table
            with TabPane("Scatter", id="scatter"):
                yield Scatter(id="scatter-plot")
            with TabPane("Bars", id="bars"):
                with VerticalScroll():
                    yield Bars(id="bars-plot")
        yield self.status_line()
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    # ------------------------------------------------------------------ loading

    def on_screen_resume(self) -> None:
        self.sync()

    def sync(self) -> None:
        ws = self.gapp.workspace
        if not ws.ready:
            self.query_one("#sum-vs-full", Static).update("No model yet: trace one in Models (1), measure it (2).")
            return
        self.load_choices()
        self.load_rows()

    def _matching_rows(self, **filters: Any) -> list[dict[str, Any]]:
        store = self.gapp.store()
        chain = self.gapp.workspace.chain
        if store is None:
            return []
        sig = chain.signature()
        shape = "x".join(map(str, chain.spec.shape))
        return [r for r in store.rows(model=chain.spec.name, **filters)
                if r.get("chain_sig") in (sig, None) and r.get("input_shape") == shape]

    def load_choices(self) -> None:
        rows = self._matching_rows()
        devices = list(dict.fromkeys(r["device_key"] for r in rows))
        store = self.gapp.store()
        described = {d["key"]: d.get("description") or {} for d in store.devices()} if store is not None else {}
        dev_select = self.query_one("#device", Select)
        current = dev_select.value if dev_select.value in devices else None
        wanted = self.gapp.workspace.device if self.gapp.workspace.device in devices else None
        self._loading_choices = True
        # values set here are not user choices: their Changed messages are never posted
        with self.prevent(Select.Changed):
            dev_select.set_options([(machine_words(described.get(d), d), d) for d in devices])
            choice = wanted or current or (devices[-1] if devices else None)
            if choice is not None:
                dev_select.value = choice
            settings = list(dict.fromkeys(r["setting"] for r in rows if r["device_key"] == choice))
            set_select = self.query_one("#setting", Select)
            cur_setting = set_select.value
            set_select.set_options([(setting_words(s), s) for s in settings])
            if settings:
                set_select.value = cur_setting if cur_setting in settings else settings[-1]
            pred = self.query_one("#predictor", Select)
            options = [("none", "")] + [(name, str(path)) for name, path in self.gapp.predictors()]
            chosen = self.gapp.workspace.predictor or ""  # also when chosen from the palette or a script
            pred.set_options(options)
            pred.value = chosen if chosen in [v for _, v in options] else ""
        self._loading_choices = False

    def on_select_changed(self, event: Select.Changed) -> None:
        if self._loading_choices or not self.gapp.workspace.ready:
            return
        if event.select.id in ("predictor", "device") and not event.select.has_focus_within:
            return  # a drop-down filling itself (on mount), not a choice: the app's choice stays
        if event.select.id == "predictor":
            self.gapp.choose_predictor(str(event.value) or None)
            return
        if event.select.id == "device":
            self.gapp.workspace.device = str(event.value) if event.value != Select.BLANK else None
            self.load_choices()
        self.load_rows()

    def load_rows(self) -> None:
        dev = self.query_one("#device", Select).value
        setting = self.query_one("#setting", Select).value
        mode = str(self.query_one("#mode", Select).value)
        rows: list[dict[str, Any]] = []
        if dev != Select.BLANK and setting != Select.BLANK:
            rows = [r for r in self._matching_rows(device=str(dev), setting=str(setting), mode=mode) if r["block"] >= 0]
        self.rows = rows
        self.predicted = self.gapp.predicted_times()
        self.interval = self.gapp.predicted_interval() if self.predicted is not None else None
        self.fill_table()
        self.fill_sums(None if dev == Select.BLANK else str(dev), None if setting == Select.BLANK else str(setting))
        self.fill_accuracy()
        self.fill_plots()

    # ------------------------------------------------------------------ views

    def _pred_ms(self, block: int) -> float | None:
        if self.predicted is None or block >= len(self.predicted):
            return None
        return self.predicted[block] * 1e3

    def _span_ms(self, block: int) -> tuple[float, float] | None:
        """The predicted time's interval (low, high ms) of ``block``, when the predictor has one."""
        if self.interval is None or block >= len(self.interval[0]):
            return None
        return self.interval[0][block] * 1e3, self.interval[1][block] * 1e3

    def fill_table(self) -> None:
        table = self.query_one("#results-table", DataTable)
        table.clear()
        for r in self.rows:
            p = self._pred_ms(r["block"])
            err = (p - r["median_ms"]) / r["median_ms"] * 100 if p is not None and r["median_ms"] > 0 else None
            span = self._span_ms(r["block"])
            table.add_row(
                r["block"], r["block_name"], round(r["median_ms"], 4), round(r["iqr_ms"] or 0.0, 4), r["runs"] or 0,
                round(p, 4) if p is not None else None, round(err, 1) if err is not None else None,
                f"{span[0]:.4g}-{span[1]:.4g}" if span else None,
                key=str(r["block"]),
            )
        self._apply_sort()

    def fill_sums(self, device: str | None, setting: str | None) -> None:
        panel = self.query_one("#sum-vs-full", Static)
        flags_panel = self.query_one("#results-flags", Static)
        flags_panel.update("")
        if device is None or not self.rows and not setting:
            panel.update("Nothing measured for this model yet: press 2 and m to measure it.")
            return
        store = self.gapp.store()
        full = store.full_time(self.gapp.workspace.chain.spec.name, device, setting) if store is not None else None
        parts, sums, flags = [], {}, []
        n = len(self.gapp.workspace.chain)
        for mode in ("in-context", "standalone"):
            rows = [r for r in self._matching_rows(device=device, setting=setting, mode=mode) if r["block"] >= 0]
            if not rows:
                continue
            total = sum(r["median_ms"] for r in rows)
            text = f"[b]{mode}[/b] sum of {len(rows)}/{n} blocks {total:.2f} ms"
            if full and len(rows) == n:
                text += f" vs full {full:.2f} ms ([b]{gap_pct(total, full):+.1f}%[/b])"
                sums[mode] = {"sum_ms": total, "full_ms": full, "gap_pct": gap_pct(total, full)}
            flags += check_spread(rows, mode)
            parts.append(text)
        if self.predicted is not None:
            parts.append(f"[b]predicted[/b] by {self._predictor_words()}: sum {sum(self.predicted) * 1e3:.2f} ms")
        panel.update(" · ".join(parts) or "no block rows for this choice")
        try:
            setting_parts = parse_setting(setting) if setting else {}
        except BadInput:
            setting_parts = {}
        flags = check_gap(sums, threads=setting_parts.get("threads")) + flags
        flags += check_setting(setting_parts, self._predictor_setting(), self._predictor_name())
        if flags:
            # compact: what looks wrong, then the causes and remedies once (the Measure section has every line)
            flags_panel.update("[b yellow]⚠[/] " + "; ".join(f.short or f.what for f in flags)
                               + f" — {flags[0].cause}; {flags[0].remedy} [b](2, then f measures again)[/b]")
            flags_panel.tooltip = "\n".join(str(f) for f in flags)

    def _predictor_words(self) -> str:
        """``predictor_cpu (made for 2-core AMD EPYC VM, 1 thread)``: whose times the predicted column holds."""
        path = self.gapp.workspace.predictor
        if not path:
            return "no predictor"
        from ...predict import registry  # slow (torch): loaded already, the predictions came from it

        try:
            return f"{Path(path).stem} (made for {machine_of(registry.made_for(path))})"
        except (BadInput, OSError, ValueError):
            return Path(path).stem

    def _predictor_name(self) -> str:
        path = self.gapp.workspace.predictor
        return f"the predictor {Path(path).stem}" if path else "the predictor"

    def _predictor_setting(self) -> dict[str, Any] | None:
        """What the chosen predictor was made for (None: no predictor, or it cannot be read)."""
        path = self.gapp.workspace.predictor
        if not path or self.predicted is None:
            return None
        from ...predict import registry  # slow (torch): loaded already, the predictions came from it

        try:
            return predictor_setting(registry.load(path).training)
        except (BadInput, OSError, ValueError):
            return None

    def fill_accuracy(self) -> None:
        """MAPE, share within ±10% and Spearman of the predictor against the rows shown (one line)."""
        panel = self.query_one("#accuracy", Static)
        pairs = [(self._pred_ms(r["block"]), r["median_ms"]) for r in self.rows]
        pairs = [(p, m) for p, m in pairs if p is not None and m and m > 0]
        if not pairs:
            panel.update("[dim]p: choose a predictor to see its times and its accuracy here[/]"
                         if self.predicted is None and self.rows else "")
            return
        from ...predict.evaluate import metrics  # slow (torch): loaded already, the predictions came from it

        got = metrics([p for p, _ in pairs], [m for _, m in pairs])
        within = sum(1 for p, m in pairs if abs(p / m - 1) <= 0.10)
        rho = got["spearman"]
        spans = [(self._span_ms(r["block"]), r["median_ms"]) for r in self.rows if r["median_ms"] > 0]
        spans = [(sp, m) for sp, m in spans if sp is not None]
        held = ""
        if spans and self.interval is not None:  # how often the interval holds the measured time (its coverage)
            inside = sum(1 for (lo, hi), m in spans if lo <= m <= hi)
            held = (f" · its {100 * self.interval[2]:.0f}% interval holds [b]{inside}/{len(spans)}[/b]"
                    f" ({inside / len(spans):.0%})")
        panel.update(f"[b]{self._predictor_words()}[/b] vs measured, {len(pairs)} blocks:"
                     f" MAPE [b]{got['mape']:.1f}%[/b] · within ±10% [b]{within}/{len(pairs)}[/b]"
                     f" ({within / len(pairs):.0%}) · Spearman [b]"
                     + (f"{rho:.3f}" if rho == rho else "n/a (under 3 blocks)") + "[/b]" + held)

    def fill_plots(self) -> None:
        family = self.gapp.workspace.chain.spec.family
        points = []
        for r in self.rows:
            p = self._pred_ms(r["block"])
            if p is not None:
                span = self._span_ms(r["block"])
                points.append(Point(r["median_ms"], p, family, r["block_name"], *(span or (None, None))))
        points += self._other_points()
        empty = "no predicted times: choose a predictor (p)" if self.predicted is None else "nothing measured yet"
        self.query_one(Scatter).set_points(points, empty)
        self.query_one(Bars).set_rows([(r["block_name"], r["median_ms"], self._pred_ms(r["block"])) for r in self.rows],
                                      [self._span_ms(r["block"]) for r in self.rows])

    def _other_points(self) -> list[Point]:
        """Points of the other models predicted in this session by the same predictor, measured on this device."""
        store, ws = self.gapp.store(), self.gapp.workspace
        if store is None or ws.device is None:
            return []
        points = []
        for name, (chain, predictor, predicted) in self.gapp.predicted_models.items():
            if name == ws.chain.spec.name or predictor != ws.predictor:
                continue
            for r in chain_rows(store, chain, "auto", ws.device):
                if r["block"] < len(predicted):
                    points.append(Point(r["median_ms"], predicted[r["block"]] * 1e3, chain.spec.family, r["block_name"]))
        return points

    # ------------------------------------------------------------------ actions

    def _apply_sort(self) -> None:
        table = self.query_one("#results-table", DataTable)
        key = COLUMNS[self.sort_column][1]
        for i, (label, k) in enumerate(COLUMNS):  # the indicator on the sorted column; sort() repaints the header
            mark = SORT_MARKS[self.sort_reverse] if i == self.sort_column else "  "
            table.columns[k].label = Text(label + mark, style="bold" if i == self.sort_column else "")

        def sort_key(value: Any) -> Any:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return (1, 0)
            return (0, value)

        table.sort(key, key=sort_key, reverse=self.sort_reverse)

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(COLUMNS)
        self.sort_reverse = False
        self._apply_sort()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        index = [k for _, k in COLUMNS].index(str(event.column_key.value))
        if index == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = index, False
        self._apply_sort()

    def action_view(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = VIEWS[(VIEWS.index(tabs.active) + 1) % len(VIEWS)] if tabs.active in VIEWS else VIEWS[0]

    def action_predictor(self) -> None:
        select = self.query_one("#predictor", Select)
        select.focus()
        select.action_show_overlay()

    def action_export(self) -> None:
        if not self.rows:
            self.notify("Nothing to export for this choice.", title="Export", severity="warning")
            return
        store = self.gapp.store()
        folder = Path(os.environ.get("GAPP_EXPORT_DIR") or Path.cwd() / "gapp-export")
        dev = str(self.query_one("#device", Select).value)
        name = self.gapp.workspace.chain.spec.name.replace(":", "_").replace("/", "_")
        stem = folder / f"{name}-{dev}-{self.query_one('#mode', Select).value}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            csv_path = store.export_csv(stem.with_suffix(".csv"), rows=self.rows)
            json_path = store.export_json(stem.with_suffix(".json"), rows=self.rows)
        except (BadInput, OSError) as exc:
            self.notify(str(exc), title="Export", severity="error")
            return
        self.notify(f"{csv_path}\n{json_path}", title=f"Exported {len(self.rows)} rows", timeout=6)
