"""Partition: devices in order, the link, a strip of blocks with cuts, the estimate as you move them.

The devices are written in the one device syntax (:mod:`gapp_tui.partition.devices`)
and their block times come from the one block-times service
(:func:`gapp_tui.partition.times.cost_table`), the same that ``gapp partition``
uses, in a worker of this section (a predicted device runs the GNN). Every
change of a cut or the link re-estimates at once with
:func:`gapp_tui.partition.estimate.estimate` — plain arithmetic on the cost
table, microseconds for hundreds of blocks — and repaints. "Optimal" asks
:func:`gapp_tui.partition.solver.solve` for the best plan.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from ...errors import BadInput, one_line
from ...partition.devices import EXAMPLE, DeviceSpec, format_devices, parse_devices
from ...partition.estimate import estimate
from ...partition.link import Link, stored_link
from ...partition.plan import Plan
from ...partition.solver import solve
from ...partition.times import cost_table
from ...units import format_bandwidth, format_bytes, format_time
from ..messages import PipelineDone, TimesReady
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
        self.columns: list[Any] = []  # DeviceTimes per device (gapp_tui.partition.times)
        self.devices: list[DeviceSpec] = []
        self.plan: Any = None  # Plan (the user's)
        self.estimate: Any = None  # Estimate of self.plan
        self.optimal: Any = None  # Plan from the solver (cached per table+link)
        self.optimal_estimate: Any = None
        self.link: Any = None
        self._chain: Any = None
        self.pipeline_text = ""
        self._good: dict[str, str] | None = None
        self._summary_lines = -1
        self._pending_cuts: list[int] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="form-row", id="partition-devices-row"):
            yield Label("Devices", classes="field-label")
            yield Input(id="devices", compact=True, placeholder=EXAMPLE,
                        tooltip="Devices in pipeline order, each =measured[:KEY], =predicted[:PREDICTOR] or"
                                " =<FLOPs rate>, as in `gapp partition --devices`. Enter applies.")
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
        # shown again: the store may hold new measurements, so the block times are read again
        self.rebuild(keep_cuts=self._chain is ws.chain, refresh=True, quiet=True)

    def rebuild(self, keep_cuts: bool = True, boundaries: list[int] | None = None, refresh: bool = False,
                quiet: bool = False) -> bool:
        """Re-read devices and link; compute the devices' block times in a worker, keeping the cuts that fit.

        A value that does not parse is shown, the fields go back to the last
        good values and the current plan stays (False is returned). Block times
        are computed again when the devices or the model changed, or ``refresh``.
        """
        ws = self.gapp.workspace
        fields = {k: self.query_one(f"#{k}", Input) for k in ("devices", "bandwidth", "latency")}
        try:
            devices = parse_devices(fields["devices"].value)
            link = Link.parse(fields["bandwidth"].value or "100Mbit/s", fields["latency"].value or "0")
        except BadInput as exc:
            self._refuse(str(exc))
            return False
        fields["devices"].value = format_devices(devices)
        self._good = {k: f.value for k, f in fields.items()}
        st = self.gapp.ui_state
        st.devices, st.bandwidth, st.latency = self._good["devices"], self._good["bandwidth"], self._good["latency"]
        old = boundaries
        if old is None and self.plan is not None and keep_cuts and self._chain is ws.chain:
            old = list(self.plan.boundaries)
        if old is None and ws.cuts and len(ws.cuts) == len(devices) + 1 and ws.cuts[-1] == len(ws.chain):
            old = list(ws.cuts)
        self._pending_cuts = old
        if not refresh and self.table is not None and self._chain is ws.chain and devices == self.devices:
            self._apply_link(link)  # only the link changed: no new block times needed
            return True
        if self.table is None or self._chain is not ws.chain:
            self.query_one("#device-notes", Static).update("[dim]computing the devices' block times…[/]")
        self.compute_times(ws.chain, devices, link, quiet)
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="times", description="block times")
    def compute_times(self, chain: Any, devices: list[DeviceSpec], link: Link, quiet: bool = False) -> None:
        """The devices' block times from the one block-times service (store, predictor or FLOPs)."""
        try:
            table, columns = cost_table(chain, devices, store=self.gapp.worker_store(), predict=self.gapp.predict_for)
        except BadInput as exc:
            self.post_message(TimesReady(chain, devices, link, None, [], error=one_line(exc), quiet=quiet))
            return
        self.post_message(TimesReady(chain, devices, link, table, columns))

    def on_times_ready(self, message: TimesReady) -> None:
        if message.chain is not self.gapp.workspace.chain:
            return  # a model traced since: its own times are on their way
        if message.error is not None:
            # the devices parse but one has no times (nothing measured yet...): say what would work
            self.query_one("#device-notes", Static).update(f"[red]{message.error}[/]")
            if not message.quiet:
                self.notify(message.error, title="Partition", severity="error")
            return
        self._chain = message.chain
        self.devices = list(message.devices)
        self.table, self.columns = message.table, message.columns
        self.plan = None
        self._apply_link(message.link)
        notes = " │ ".join(
            f"[b {STAGE_COLOURS[i % len(STAGE_COLOURS)]}]{c.device.name}[/] {ms(c.total)} ({c.note})"
            for i, c in enumerate(self.columns))
        self.query_one("#device-notes", Static).update(notes)
        self._update_optimal()

    def _apply_link(self, link: Link) -> None:
        """Plan with ``link`` on the cuts that still fit (an even split when none do)."""
        self.link = link
        k, n = len(self.devices), self.table.n
        old = self._pending_cuts
        if old is None or len(old) != k + 1 or old[-1] != n:
            old = [round(n * s / k) for s in range(k + 1)]  # an even split by block count to start from
        self.optimal = self.optimal_estimate = None
        self._set_plan(old, objective="manual")

    def _refuse(self, message: str) -> None:
        """A value that does not parse: say so, put the fields back to the last good values, keep the plan."""
        self.notify(message, title="Partition", severity="error")
        if self._good is not None:
            for k, v in self._good.items():
                self.query_one(f"#{k}", Input).value = v

    def _communication(self) -> str:
        return str(self.query_one("#communication", Select).value)

    def _set_plan(self, boundaries: list[int], objective: str = "manual") -> None:
        devices = [d.name for d in self.devices]
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
        where = "before the first block" if c == 0 else (
            "after the last block" if c == t.n else f"after block {c - 1} {t.blocks[c - 1]}")
        info.update(f"cut {strip.selected}/{strip.cuts} {where} · {format_bytes(t.cut_bytes[c])} in "
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
        if self.pipeline_text:
            text += "\n" + self.pipeline_text
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
        if self.table is None or self.plan is None:
            return
        self.optimal = solve(self.table, self.plan.devices, self.link, communication=self._communication())
        self.optimal_estimate = estimate(self.table, self.optimal)
        self._show_summary()

    # ------------------------------------------------------------------ actions

    def _ready(self) -> bool:
        if self.table is None:
            why = ("No block times yet: see the line under the link for what is missing."
                   if self.gapp.workspace.ready else "Trace a model first (press 1).")
            self.notify(why, title="Partition", severity="warning")
            return False
        return True

    def action_optimal(self) -> None:
        if not self._ready():
            return
        self._update_optimal()
        self._set_plan(list(self.optimal.boundaries), objective=self.optimal.objective)

    def _apply_devices(self, devices: list[DeviceSpec], boundaries: list[int]) -> None:
        self.query_one("#devices", Input).value = format_devices(devices)
        self.rebuild(boundaries=boundaries)

    def action_add_cut(self) -> None:
        if not self._ready():
            return
        strip = self.query_one(CutStrip)
        devices = list(self.devices)
        b = list(self.plan.boundaries)
        # split the stage after the selected cut (the only stage when there is no cut) at its middle
        s = strip.selected if strip.cuts >= 1 else 0
        base = devices[s]
        names = {d.name for d in devices}
        i = 2
        while f"{base.name}{i}" in names:
            i += 1
        mid = (b[s] + b[s + 1]) // 2
        devices.insert(s + 1, base.with_name(f"{base.name}{i}"))
        b.insert(s + 1, mid)
        self._apply_devices(devices, b)
        strip.selected = s + 1

    def action_remove_cut(self) -> None:
        if not self._ready():
            return
        strip = self.query_one(CutStrip)
        if strip.cuts < 1:
            self.notify("No cut to remove.", title="Partition", severity="warning")
            return
        c = strip.selected
        devices = list(self.devices)
        b = list(self.plan.boundaries)
        del devices[c]
        del b[c]
        self._apply_devices(devices, b)

    def action_link_from_probe(self) -> None:
        store = self.gapp.store()
        if store is None:
            return
        found = stored_link(store, self.gapp.ui_state.host or None)
        if found is None:
            self.notify("No stored link probe: run `gapp link probe --host user@device` first.",
                        title="Link", severity="warning")
            return
        link, row = found
        self.query_one("#bandwidth", Input).value = format_bandwidth(link.bandwidth)
        self.query_one("#latency", Input).value = format_time(link.latency)
        if self._ready() and self.rebuild(keep_cuts=True):
            self._update_optimal()
        self.notify(f"{row['host']} ({row['direction']}, {row['measured_at']})", title="Link from probe", timeout=4)

    def action_save(self) -> None:
        if not self._ready():
            return
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
        path = self.gapp.last_plan_path
        if path is None:
            return
        self.pipeline_text = "[yellow]pipeline running…[/]"
        self._show_summary()
        self.run_pipeline(path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pipeline", description="pipeline run")
    def run_pipeline(self, path: Path, items: int = 30) -> None:
        """Run a saved plan for real (one gloo process per stage) and report measured against estimated."""
        from ...pipeline.run import run_plan  # slow (torch)

        result = run_plan(path, items=items, warmup=3, latency_items=3, timeout=30.0, deadline=300.0)
        self.post_message(PipelineDone(result))

    def on_pipeline_done(self, message: PipelineDone) -> None:
        r = message.report
        est = r.estimate.get("throughput_per_s")
        rerun = r.estimate_with_run_compute.get("throughput_per_s")
        text = f"[b]pipeline run[/b]: measured [b]{r.throughput_per_s:.3g}[/b] items/s"
        if est:
            text += f" vs estimated {est:.3g} ({r.throughput_per_s / est * 100:.0f}%)"
        if rerun:
            text += f" · with this run's stage times {rerun:.3g} ({r.throughput_per_s / rerun * 100:.0f}%)"
        text += " · output " + ("[green]matches[/]" if r.output_ok else f"[red]differs by {r.output_max_abs_diff:.2g}[/]")
        self.pipeline_text = text
        self._show_summary()
        self.notify(f"{r.throughput_per_s:.3g} items/s measured", title="Pipeline run", timeout=4)

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        if worker.group == "pipeline" and state != WorkerState.SUCCESS:
            self.pipeline_text = f"[red]pipeline run {state.name.lower()}[/]"
            self._show_summary()
        elif worker.group == "times" and state == WorkerState.ERROR and self.table is None:
            self.query_one("#device-notes", Static).update(f"[red]{one_line(worker.error)}[/]")
