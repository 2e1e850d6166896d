"""Partition: devices in order, the link, a strip of blocks with cuts, the estimate as you move them.

Every change (a cut moved, a device or the link edited) re-estimates at once
with :func:`gapp_tui.partition.estimate.estimate` — plain arithmetic on the
cost table, microseconds for hundreds of blocks — and repaints. "Optimal"
asks :func:`gapp_tui.partition.solver.solve` for the best plan.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, Label, Select, Static

from ...errors import BadInput
from ..devices import DeviceSource, cost_table, device_times, format_devices, parse_devices
from ..widgets.partition.estimate import EstimatePanel, ms
from ..widgets.partition.strip import STAGE_COLOURS, CutStrip
from .base import Section


class PartitionSection(Section):
    SECTION = "partition"
    AUTO_FOCUS = "#strip"
    BINDINGS = [
        Binding("o", "optimal", "Optimal", id="partition.optimal", tooltip="Jump to the solver's optimal plan"),
        Binding("a", "add_cut", "+Cut", id="partition.add_cut",
                tooltip="Split the selected stage: a new cut and a copy of its device"),
        Binding("d,delete", "remove_cut", "-Cut", id="partition.remove_cut",
                tooltip="Remove the selected cut (its next stage's device leaves the plan)"),
        Binding("l", "link_from_probe", "Probe", show=False, id="partition.link_from_probe",
                tooltip="Fill the link from the newest stored `gapp link probe` (of the Measure host, if any)"),
        Binding("s", "save", "Save", show=False, id="partition.save", tooltip="Save the plan as JSON (for gapp pipeline run)"),
        Binding("r", "run_pipeline", "Run", show=False, id="partition.run_pipeline",
                tooltip="Run the plan for real on this machine and compare with the estimate"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.table: Any = None  # CostTable
        self.columns: list[Any] = []  # DeviceTimes per device
        self.plan: Any = None  # Plan (the user's)
        self.estimate: Any = None  # Estimate of self.plan
        self.optimal: Any = None  # Plan from the solver (cached per table+link)
        self.optimal_estimate: Any = None
        self.link: Any = None
        self._chain: Any = None
        self._pipeline_text = ""
        self._good: dict[str, str] | None = None
        self._summary_lines = -1

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="form-row", id="partition-devices-row"):
            yield Label("Devices", classes="field-label")
            yield Input(id="devices", compact=True, placeholder="pi=2GFLOP/s, server=measured",
                        tooltip="Devices in pipeline order, each =measured, =predicted or =<FLOPs rate>. Enter applies.")
        with Horizontal(classes="form-row", id="partition-link-row"):
            yield Label("Link", classes="field-label")
            yield Input(id="bandwidth", compact=True, placeholder="100Mbit/s", tooltip="Link bandwidth (Enter applies)")
            yield Label("latency", classes="field-label")
            yield Input(id="latency", compact=True, placeholder="2ms", tooltip="Link latency per transfer (Enter applies)")
            yield Select([("overlapped", "overlapped"), ("serial", "serial")], id="communication",
                         value="overlapped", allow_blank=False, compact=True,
                         tooltip="overlapped: receive, compute and send run at once; serial: one after another")
        yield Static(id="device-notes", classes="status-line")
        yield CutStrip(id="strip")
        yield Static(id="cut-info", classes="cut-info")
        yield EstimatePanel(id="estimate")
        yield Static(id="summary", classes="summary")
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    def on_mount(self) -> None:
        s = self.gapp.ui_state
        self.query_one("#devices", Input).value = s.devices
        self.query_one("#bandwidth", Input).value = s.bandwidth
        self.query_one("#latency", Input).value = s.latency
        super().on_mount()

    # ------------------------------------------------------------------ building the model

    def sync(self) -> None:
        ws = self.gapp.workspace
        if not ws.ready:
            self.query_one("#device-notes", Static).update("No model yet: press 1 and trace one.")
            return
        if self._chain is not ws.chain or self.table is None:
            self.rebuild(keep_cuts=False)
        else:
            self.rebuild(keep_cuts=True)

    def rebuild(self, keep_cuts: bool = True, boundaries: list[int] | None = None) -> bool:
        """Re-read devices, times and link; keep the user's cuts when they still fit.

        On a bad value the error is shown, the fields go back to the last good
        values and the current plan stays (False is returned).
        """
        from ...partition.link import Link

        ws = self.gapp.workspace
        chain = ws.chain
        fields = {k: self.query_one(f"#{k}", Input) for k in ("devices", "bandwidth", "latency")}
        try:
            sources = parse_devices(fields["devices"].value)
            link = Link.parse(fields["bandwidth"].value or "100Mbit/s", fields["latency"].value or "0")
            predicted = self.gapp.predicted_times()
            predicting = predicted is None and self.gapp.predict_fn() is not None
            columns = [device_times(src, chain, self.gapp.store(), predicted, predicting=predicting)
                       for src in sources]
            table = cost_table(chain, columns)
        except (BadInput, ValueError) as exc:
            self.notify(str(exc), title="Partition", severity="error")
            if self._good is not None:
                for k, v in self._good.items():
                    fields[k].value = v
            return False
        old = boundaries
        if old is None and self.plan is not None and keep_cuts and self._chain is chain:
            old = list(self.plan.boundaries)
        if old is None and ws.cuts and len(ws.cuts) == len(sources) + 1 and ws.cuts[-1] == len(chain):
            old = list(ws.cuts)
        self._chain = chain
        self.table, self.columns, self.link = table, columns, link
        fields["devices"].value = format_devices(sources)
        self._good = {k: f.value for k, f in fields.items()}
        st = self.gapp.ui_state
        st.devices, st.bandwidth, st.latency = self._good["devices"], self._good["bandwidth"], self._good["latency"]
        k, n = len(sources), table.n
        if old is None or len(old) != k + 1 or old[-1] != n:
            old = [round(n * s / k) for s in range(k + 1)]  # an even split by block count to start from
        self.optimal = self.optimal_estimate = None
        self.plan = None
        self._set_plan(old, objective="manual")
        notes = " │ ".join(
            f"[b {STAGE_COLOURS[i % len(STAGE_COLOURS)]}]{c.source.name}[/] {ms(table.total(c.source.name))} ({c.note})"
            for i, c in enumerate(columns))
        self.query_one("#device-notes", Static).update(notes)
        return True

    def _communication(self) -> str:
        return str(self.query_one("#communication", Select).value)

    def _set_plan(self, boundaries: list[int], objective: str = "manual") -> None:
        from ...partition.estimate import estimate
        from ...partition.plan import Plan

        devices = [c.source.name for c in self.columns]
        if self.plan is not None and self.plan.devices == devices and self.plan.communication == self._communication() \
                and self.plan.links and self.plan.links[0].bandwidth == self.link.bandwidth \
                and self.plan.links[0].latency == self.link.latency:
            plan = self.plan.with_boundaries(boundaries, objective)
        else:
            plan = Plan.build(self.table, devices, boundaries, self.link, communication=self._communication(),
                              objective=objective)
        self.plan = plan
        self.estimate = estimate(self.table, plan)
        self.gapp.workspace.cuts = tuple(plan.boundaries)
        self.refresh_views()

    # ------------------------------------------------------------------ views

    def refresh_views(self) -> None:
        est, plan, table = self.estimate, self.plan, self.table
        strip = self.query_one(CutStrip)
        bn_stage = est.bottleneck["index"] if est.bottleneck["kind"] == "stage" else None
        strip.set_plan([table.times[d] for d in plan.devices], plan.boundaries, bn_stage)
        self.query_one(EstimatePanel).show(est, table.blocks)
        self._show_cut_info()
        self._show_summary()

    def _show_cut_info(self) -> None:
        strip = self.query_one(CutStrip)
        info = self.query_one("#cut-info", Static)
        if strip.cuts < 1:
            info.update("One device: no cut. Press a to add one.")
            return
        c = self.plan.boundaries[strip.selected]
        t = self.table
        from ...formatting import human_bytes

        where = "before the first block" if c == 0 else (
            "after the last block" if c == t.n else f"after block {c - 1} {t.blocks[c - 1]}")
        info.update(f"cut {strip.selected}/{strip.cuts} {where} · {human_bytes(t.cut_bytes[c])} in "
                    f"{t.cut_tensors[c]} tensor{'s' if t.cut_tensors[c] != 1 else ''}\n"
                    "[dim]←/→ move the cut · ↑/↓ other cut · s save · r run · l probed link · ? keys[/]",
                    layout=False)  # two lines, always

    def _show_summary(self) -> None:
        est = self.estimate
        text = (f"[b]{est.throughput:.3g}[/b] items/s · period {ms(est.period_s)} · latency {ms(est.latency_s)}"
                f" · bottleneck [b red]{est.bottleneck['name']}[/]")
        if self.optimal_estimate is not None:
            best = self.optimal_estimate
            share = est.throughput / best.throughput * 100 if best.throughput > 0 else math.nan
            text += f"\noptimal {best.throughput:.3g} items/s: this plan reaches {share:.0f}%"
        else:
            text += "\n[dim]o: jump to the optimal plan[/]"
        if self._pipeline_text:
            text += "\n" + self._pipeline_text
        lines = text.count("\n")
        self.query_one("#summary", Static).update(text, layout=lines != self._summary_lines)
        self._summary_lines = lines

    # ------------------------------------------------------------------ events

    def on_cut_strip_moved(self, message: CutStrip.Moved) -> None:
        if self.table is None:
            return
        self._set_plan(list(message.boundaries))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.gapp.workspace.ready and self.rebuild(keep_cuts=True):
            self._update_optimal()
            self.query_one(CutStrip).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.table is not None and self.plan is not None and event.value != self.plan.communication:
            if self.rebuild(keep_cuts=True):
                self._update_optimal()

    def _update_optimal(self) -> None:
        if self.table is None:
            return
        from ...partition.estimate import estimate
        from ...partition.solver import solve

        self.optimal = solve(self.table, self.plan.devices, self.link, communication=self._communication())
        self.optimal_estimate = estimate(self.table, self.optimal)
        self._show_summary()

    # ------------------------------------------------------------------ actions

    def _ready(self) -> bool:
        if self.table is None:
            self.notify("Trace a model first (press 1).", title="Partition", severity="warning")
            return False
        return True

    def action_optimal(self) -> None:
        if not self._ready():
            return
        self._update_optimal()
        self._set_plan(list(self.optimal.boundaries), objective=self.optimal.objective)

    def _apply_devices(self, sources: list[DeviceSource], boundaries: list[int]) -> None:
        self.query_one("#devices", Input).value = format_devices(sources)
        if self.rebuild(boundaries=boundaries):
            self._update_optimal()

    def action_add_cut(self) -> None:
        if not self._ready():
            return
        strip = self.query_one(CutStrip)
        sources = [c.source for c in self.columns]
        b = list(self.plan.boundaries)
        # split the stage after the selected cut (the only stage when there is no cut) at its middle
        s = strip.selected if strip.cuts >= 1 else 0
        base = sources[s]
        names = {d.name for d in sources}
        i = 2
        while f"{base.name}{i}" in names:
            i += 1
        copy = DeviceSource(f"{base.name}{i}", base.kind, base.ref, base.rate)
        mid = (b[s] + b[s + 1]) // 2
        sources.insert(s + 1, copy)
        b.insert(s + 1, mid)
        self._apply_devices(sources, b)
        strip.selected = s + 1

    def action_remove_cut(self) -> None:
        if not self._ready():
            return
        strip = self.query_one(CutStrip)
        if strip.cuts < 1:
            self.notify("No cut to remove.", title="Partition", severity="warning")
            return
        c = strip.selected
        sources = [col.source for col in self.columns]
        b = list(self.plan.boundaries)
        del sources[c]
        del b[c]
        self._apply_devices(sources, b)

    def action_link_from_probe(self) -> None:
        from ...link_probe import latest_link
        from ...partition.link import format_bandwidth, format_time

        store = self.gapp.store()
        if store is None:
            return
        host = self.gapp.ui_state.host or None
        found = latest_link(store.path, host) or (latest_link(store.path) if host else None)
        if found is None:
            self.notify("No stored link probe: run `gapp link probe --host user@device` first.",
                        title="Link", severity="warning")
            return
        self.query_one("#bandwidth", Input).value = format_bandwidth(found["bandwidth_Bps"])
        self.query_one("#latency", Input).value = format_time(found["latency_s"])
        if self._ready() and self.rebuild(keep_cuts=True):
            self._update_optimal()
        self.notify(f"{found['host']} ({found['direction']}, {found['measured_at']})", title="Link from probe",
                    timeout=4)

    def action_save(self) -> None:
        if not self._ready():
            return
        from ...partition.estimate import estimate

        plan = self.plan
        plan.estimate = estimate(self.table, plan).to_dict()
        path = self.gapp.plan_path(plan)
        try:
            plan.save(path)
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror}", title="Save plan", severity="error")
            return
        self.gapp.last_plan_path = path
        self.notify(f"{path}\nrun it with: gapp pipeline run {path}", title="Plan saved", timeout=6)

    def action_run_pipeline(self) -> None:
        if not self._ready():
            return
        self.action_save()
        path: Path | None = getattr(self.gapp, "last_plan_path", None)
        if path is None:
            return
        self._pipeline_text = "[yellow]pipeline running…[/]"
        self._show_summary()
        self.gapp.run_pipeline(path)

    def pipeline_done(self, report: Any) -> None:
        self._pipeline_text = report
        self._show_summary()

    def worker_finished(self, worker: Any, state: Any) -> None:
        from textual.worker import WorkerState

        if worker.group == "pipeline" and state != WorkerState.SUCCESS:
            self._pipeline_text = f"[red]pipeline run {state.name.lower()}[/]"
            self._show_summary()
