"""Results: the measured blocks of the current model, predicted beside them, sums and plots."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Label, Select, Static, TabbedContent, TabPane

from ...errors import BadInput
from ...partition.times import chain_rows
from ..widgets.results.plots import Bars, Point, Scatter
from .base import Section

COLUMNS = [("#", "index"), ("block", "name"), ("median ms", "median"), ("IQR ms", "iqr"), ("runs", "runs"),
           ("predicted ms", "predicted"), ("error %", "error")]
VIEWS = ("table", "scatter", "bars")


class ResultsSection(Section):
    SECTION = "results"
    AUTO_FOCUS = "#results-table"
    BINDINGS = [
        Binding("s", "sort", "Sort", id="results.sort", tooltip="Sort the table by the next column (again: reverse)"),
        Binding("v", "view", "View", id="results.view", tooltip="Next view: table, scatter, bars"),
        Binding("p", "predictor", "Predictor", id="results.predictor", tooltip="Choose the predictor shown"),
        Binding("e", "export", "Export", show=False, id="results.export", tooltip="Write these rows to CSV and JSON"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.predicted: list[float] | None = None
        self.sort_column = 0
        self.sort_reverse = False
        self._loading_choices = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="form-row", id="results-choices"):
            yield Label("Device", classes="field-label")
            yield Select([], id="device", compact=True, prompt="(none)", tooltip="Which measured device")
            yield Label("mode", classes="field-label")
            yield Select([("in-context", "in-context"), ("standalone", "standalone")], id="mode", value="in-context",
                         allow_blank=False, compact=True, tooltip="Which measurement mode")
        with Horizontal(classes="form-row", id="results-choices2"):
            yield Label("Setting", classes="field-label")
            yield Select([], id="setting", compact=True, prompt="(none)", tooltip="Input shape/dtype/threads")
            yield Label("predictor", classes="field-label")
            yield Select([("none", "")], id="predictor", value="", allow_blank=False, compact=True,
                         tooltip="Predicted times shown beside the measured ones")
        yield Static("", id="sum-vs-full", classes="status-line")
        with TabbedContent(id="results-views"):
            with TabPane("Table", id="table"):
                table = DataTable(id="results-table", zebra_stripes=True, cursor_type="row")
                for label, key in COLUMNS:
                    table.add_column(label, key=key)
                yield table
            with TabPane("Scatter", id="scatter"):
                yield Scatter(id="scatter-plot")
            with TabPane("Bars", id="bars"):
                with VerticalScroll():
                    yield Bars(id="bars-plot")
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
        dev_select = self.query_one("#device", Select)
        current = dev_select.value if dev_select.value in devices else None
        wanted = self.gapp.workspace.device if self.gapp.workspace.device in devices else None
        self._loading_choices = True
        # values set here are not user choices: their Changed messages are never posted
        with self.prevent(Select.Changed):
            dev_select.set_options([(d, d) for d in devices])
            choice = wanted or current or (devices[-1] if devices else None)
            if choice is not None:
                dev_select.value = choice
            settings = list(dict.fromkeys(r["setting"] for r in rows if r["device_key"] == choice))
            set_select = self.query_one("#setting", Select)
            cur_setting = set_select.value
            set_select.set_options([(s, s) for s in settings])
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
        self.fill_table()
        self.fill_sums(None if dev == Select.BLANK else str(dev), None if setting == Select.BLANK else str(setting))
        self.fill_plots()

    # ------------------------------------------------------------------ views

    def _pred_ms(self, block: int) -> float | None:
        if self.predicted is None or block >= len(self.predicted):
            return None
        return self.predicted[block] * 1e3

    def fill_table(self) -> None:
        table = self.query_one("#results-table", DataTable)
        table.clear()
        for r in self.rows:
            p = self._pred_ms(r["block"])
            err = (p - r["median_ms"]) / r["median_ms"] * 100 if p is not None and r["median_ms"] > 0 else None
            table.add_row(
                r["block"], r["block_name"], round(r["median_ms"], 4), round(r["iqr_ms"] or 0.0, 4), r["runs"] or 0,
                round(p, 4) if p is not None else None, round(err, 1) if err is not None else None,
                key=str(r["block"]),
            )
        if self.sort_column:
            self._apply_sort()

    def fill_sums(self, device: str | None, setting: str | None) -> None:
        panel = self.query_one("#sum-vs-full", Static)
        if device is None or not self.rows and not setting:
            panel.update("Nothing measured for this model yet: press 2 and m to measure it.")
            return
        store = self.gapp.store()
        full = store.full_time(self.gapp.workspace.chain.spec.name, device, setting) if store is not None else None
        parts = []
        n = len(self.gapp.workspace.chain)
        for mode in ("in-context", "standalone"):
            rows = [r for r in self._matching_rows(device=device, setting=setting, mode=mode) if r["block"] >= 0]
            if not rows:
                continue
            total = sum(r["median_ms"] for r in rows)
            text = f"[b]{mode}[/b] sum of {len(rows)}/{n} blocks {total:.2f} ms"
            if full and len(rows) == n:
                text += f" vs full {full:.2f} ms ([b]{(total - full) / full * 100:+.1f}%[/b])"
            parts.append(text)
        if self.predicted is not None:
            parts.append(f"[b]predicted[/b] sum {sum(self.predicted) * 1e3:.2f} ms")
        panel.update(" · ".join(parts) or "no block rows for this choice")

    def fill_plots(self) -> None:
        family = self.gapp.workspace.chain.spec.family
        points = []
        for r in self.rows:
            p = self._pred_ms(r["block"])
            if p is not None:
                points.append(Point(r["median_ms"], p, family, r["block_name"]))
        points += self._other_points()
        empty = "no predicted times: choose a predictor (p)" if self.predicted is None else "nothing measured yet"
        self.query_one(Scatter).set_points(points, empty)
        self.query_one(Bars).set_rows([(r["block_name"], r["median_ms"], self._pred_ms(r["block"])) for r in self.rows])

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

        def sort_key(value: Any) -> Any:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return (1, 0)
            return (0, value)

        table.sort(key, key=sort_key, reverse=self.sort_reverse)

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(COLUMNS)
        self.sort_reverse = False
        self._apply_sort()
        self.notify(f"sorted by {COLUMNS[self.sort_column][0]}", timeout=1.5)

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
