"""Partition: devices in order, the link, a strip of blocks with cuts, the estimate as you move them.

One concept: the Partition section, the plan on screen (its fields, its cuts, its estimate) and its
two workers (block times, pipeline runs); its widgets live in ``tui/widgets/partition/``.

The devices are written in the one device syntax (:mod:`gapp_tui.partition.devices`)
and their block times come from the one block-times service
(:func:`gapp_tui.partition.times.cost_table`), the same that ``gapp partition``
uses, in a worker of this section (a predicted device runs the GNN). Every
change of a cut or the link re-estimates at once with
:func:`gapp_tui.partition.estimate.estimate` — plain arithmetic on the cost
table, microseconds for hundreds of blocks — and repaints. "Optimal" asks
:func:`gapp_tui.partition.solver.solve` for the best plan.

What is on screen is what is saved: a field is applied when it is left (Enter,
Tab, Esc or a click elsewhere), and while new devices' times are being computed
the plan cannot be saved or run. Every time shown names where it comes from
(:func:`gapp_tui.tui.labels.source_of`): a device without a predictor of its
own is never shown as having its own times.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from ...errors import BadInput, one_line
from ...partition.devices import EXAMPLE, DeviceSpec, format_devices, parse_devices
from ...partition.estimate import estimate
from ...partition.hosts import RunPlace, measured_host, run_choices
from ...partition.link import Link, stored_link
from ...partition.plan import Plan
from ...partition.solver import solve
from ...partition.times import cost_table, plan_range
from ...units import format_bandwidth, format_time
from ..labels import Source, bottleneck_words, cut_load, cut_words, source_of
from ..messages import PipelineDone, TimesReady
from ..widgets.partition.devices import DeviceNotes, DeviceSuggester
from ..widgets.partition.estimate import EstimatePanel
from ..widgets.partition.strip import CutStrip, ms
from ..widgets.partition.where import RunWhereScreen
from .base import Section

LINK_FIELDS = ("devices", "bandwidth", "latency")


def range_words(rng: dict[str, Any] | None) -> str:
    """`` (10.8-13.9, 90%)``: the throughput range of the plan (empty when no device's times carry an interval)."""
    if rng is None:
        return ""
    lo, _, hi = rng["throughput_per_s"]
    return f" ({lo:.3g}-{hi:.3g}, {100 * rng['level']:.0f}%)"


class PartitionSection(Section):
    SECTION = "partition"
    AUTO_FOCUS = "#strip"
    BINDINGS = [
        Binding("o", "optimal", "Optimal", id="partition.optimal", tooltip="Jump to the solver's optimal plan"),
        Binding("a", "add_cut", "Add cut", id="partition.add_cut",
                tooltip="Split the selected stage: a new cut and a copy of its device (added to Devices)"),
        Binding("d,delete", "remove_cut", "Remove cut", id="partition.remove_cut",
                tooltip="Remove the selected cut (its next stage's device leaves the plan)"),
        Binding("l", "link_from_probe", "Probed link", show=False, id="partition.link_from_probe",
                tooltip="Fill the link from the newest stored `gapp link probe` (of the Measure host, if any)"),
        Binding("s", "save", "Save", show=False, id="partition.save",
                tooltip="Save the plan on screen as JSON (for gapp pipeline run)"),
        Binding("r", "run_pipeline", "Run", show=False, id="partition.run_pipeline",
                tooltip="Run the plan for real and compare with the estimate: every stage on this machine, or (asked when"
                        " a device has an SSH host) each device's stage on its host"),
    ]
    WIDGET_KEYS = {"#strip": CutStrip}
    FIELD_NAMES = {"devices": "Devices", "bandwidth": "Link bandwidth", "latency": "Link latency",
                   "communication": "communication"}
    FIELD_HINT = "Enter, Tab or Esc applies it (a value that does not parse is refused)"

    def __init__(self) -> None:
        super().__init__()
        self.table: Any = None  # CostTable
        self.columns: list[Any] = []  # DeviceTimes per device (gapp_tui.partition.times)
        self.sources: dict[str, Source] = {}  # device name -> where its times come from, in words
        self.devices: list[DeviceSpec] = []
        self.plan: Any = None  # Plan (the user's)
        self.estimate: Any = None  # Estimate of self.plan
        #: the plan's estimate with predicted blocks at their interval's ends (partition.times.plan_range), or None
        self.range: dict[str, Any] | None = None
        self.optimal: Any = None  # Plan from the solver (cached per table+link)
        self.optimal_estimate: Any = None
        self.link: Any = None
        #: new devices whose block times are being computed (the plan on screen is not theirs yet)
        self.pending = False
        self._chain: Any = None
        self.pipeline_text = ""
        self._pipeline_chain: Any = None  # the chain the run line speaks of
        self._run_place: RunPlace | None = None  # where the latest run's stages run
        self._good: dict[str, str] | None = None
        self._summary_shape: tuple[int, int] = (-1, -1)
        self._pending_cuts: list[int] | None = None
        self._times_token = 0  # the latest block-times request (older answers are dropped)
        self.suggester = DeviceSuggester()
        #: the calibrated predictors to offer: (name for =predicted:NAME, the machine it was made for)
        self.offers: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield self.tabs()
        with Horizontal(classes="form-row", id="partition-devices-row"):
            yield Label("Devices", classes="field-label")
            yield Input(id="devices", compact=True, placeholder=EXAMPLE, suggester=self.suggester,
                        tooltip="Devices in pipeline order, each =measured[:KEY], =predicted[:PREDICTOR] or"
                                " =<FLOPs rate>, as in `gapp partition --devices`. Applied when you leave the field;"
                                " NAME=pr completes a calibrated predictor's name (→ accepts it).")
        with Horizontal(classes="form-row", id="partition-link-row"):
            yield Label("Link", classes="field-label")
            yield Input(id="bandwidth", compact=True, placeholder="100Mbit/s",
                        tooltip="Link bandwidth (applied when you leave the field)")
            yield Label("latency", classes="field-label")
            yield Input(id="latency", compact=True, placeholder="2ms",
                        tooltip="Link latency per transfer (applied when you leave the field)")
            yield Select([("overlapped", "overlapped"), ("serial", "serial")], id="communication",
                         value="overlapped", allow_blank=False, compact=True,
                         tooltip="overlapped: receive, compute and send run at once; serial: one after another")
        yield DeviceNotes(id="device-notes", classes="device-notes")
        yield CutStrip(id="strip")
        yield Static(id="cut-info", classes="cut-info")
        yield EstimatePanel(id="estimate")
        yield Static(id="summary", classes="summary")
        yield self.status_line()
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    def on_mount(self) -> None:
        s = self.gapp.ui_state
        with self.prevent(Input.Changed, Select.Changed):
            self.query_one("#devices", Input).value = s.devices
            self.query_one("#bandwidth", Input).value = s.bandwidth
            self.query_one("#latency", Input).value = s.latency
            if s.communication in ("overlapped", "serial"):
                self.query_one("#communication", Select).value = s.communication
        super().on_mount()

    # ------------------------------------------------------------------ building the model

    def sync(self) -> None:
        ws = self.gapp.workspace
        if not ws.ready:
            self.query_one("#device-notes", Static).update("No model yet: press 1 and trace one.")
            return
        if self._pipeline_chain is not None and self._pipeline_chain is not ws.chain:
            self.pipeline_text, self._pipeline_chain = "", None  # a run of the previous model says nothing now
        # shown again: the store may hold new measurements, so the block times are read again
        self.rebuild(keep_cuts=self._chain is ws.chain, refresh=True, quiet=True)

    def _fields_changed(self) -> bool:
        return self._good is None or any(self.query_one(f"#{k}", Input).value != self._good[k] for k in LINK_FIELDS)

    def rebuild(self, keep_cuts: bool = True, boundaries: list[int] | None = None, refresh: bool = False,
                quiet: bool = False) -> bool:
        """Re-read devices and link; compute the devices' block times in a worker, keeping the cuts that fit.

        A value that does not parse is shown, the fields go back to the last
        good values and the current plan stays (False is returned). Block times
        are computed again when the devices or the model changed, or ``refresh``.
        """
        ws = self.gapp.workspace
        fields = {k: self.query_one(f"#{k}", Input) for k in LINK_FIELDS}
        try:
            devices = parse_devices(fields["devices"].value)
            link = Link.parse(fields["bandwidth"].value or "100Mbit/s", fields["latency"].value or "0")
        except BadInput as exc:
            self._refuse(str(exc))
            return False
        with self.prevent(Input.Changed):
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
        if self.table is None or self._chain is not ws.chain or devices != self.devices:
            self.pending = True
            self.query_one("#device-notes", Static).update(
                f"[dim]computing the block times of {format_devices(devices)}…[/]")
        self._times_token += 1
        self.compute_times(ws.chain, devices, link, quiet, self._times_token)
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="times", description="block times")
    def compute_times(self, chain: Any, devices: list[DeviceSpec], link: Link, quiet: bool = False,
                      token: int = 0) -> None:
        """The devices' block times from the one block-times service (store, predictor or FLOPs), and their sources."""
        store = self.gapp.worker_store()
        try:
            table, columns = cost_table(chain, devices, store=store, predict=self.gapp.predict_for)
        except BadInput as exc:
            self.post_message(TimesReady(chain, devices, link, None, [], error=one_line(exc), quiet=quiet,
                                         token=token))
            return
        described = {d["key"]: d.get("description") or {} for d in store.devices()} if any(
            c.device.source == "measured" for c in columns) else {}
        sources = [source_of(c, described.get(c.store_key or ""), self.gapp.predictor_choices.get(c.device.name))
                   for c in columns]
        self.post_message(TimesReady(chain, devices, link, table, columns, sources=sources, token=token))

    def on_times_ready(self, message: TimesReady) -> None:
        if message.chain is not self.gapp.workspace.chain or message.token != self._times_token:
            return  # a model traced since, or devices changed since: their own times are on their way
        self.pending = False
        if message.error is not None:
            # the devices parse but one has no times (nothing measured yet...): say what would work
            self.query_one("#device-notes", Static).update(f"[red]{message.error}[/]")
            if not message.quiet:
                self.notify(message.error, title="Partition", severity="error")
            return
        self._chain = message.chain
        self.devices = list(message.devices)
        self.table, self.columns = message.table, message.columns
        self.sources = {c.device.name: s for c, s in zip(message.columns, message.sources or [])}
        strip = self.query_one(CutStrip)
        strip.set_scale(max((max(c.times) for c in self.columns if c.times), default=0.0), self.table.blocks,
                        [d for d, src in self.sources.items() if src.foreign])
        strip.set_optimal(None)
        self.plan = None
        self._apply_link(message.link)
        self._show_devices()
        self._update_optimal()

    def _load_offers(self) -> None:
        """The store's device predictors (``gapp calibrate``, or Calibrate in Measure), by name and machine."""
        store = self.gapp.store()
        offers: dict[str, str] = {}
        for rec in store.device_predictors() if store is not None else []:
            path = Path(rec["path"])
            if path.is_file() and path.stem not in offers:
                made = rec.get("made_for") or {}
                offers[path.stem] = str(made.get("label") or made.get("device_key") or rec["device_key"])
        self.offers = list(offers.items())
        self.suggester.names = [n for n, _ in self.offers]

    def _show_devices(self) -> None:
        self._load_offers()
        words = self.query_one(DeviceNotes).show(self.columns, self.sources, self.offers)
        self.gapp.workspace.devices_words = words
        self.gapp.refresh_status()

    def _apply_link(self, link: Link) -> None:
        """Plan with ``link`` on the cuts that still fit (an even split when none do)."""
        self.link = link
        k, n = len(self.devices), self.table.n
        old = self._pending_cuts
        if old is None or len(old) != k + 1 or old[-1] != n:
            old = [round(n * s / k) for s in range(k + 1)]  # an even split by block count to start from
        self.optimal = self.optimal_estimate = None
        self.query_one(CutStrip).set_optimal(None)
        self._set_plan(old, objective="manual")

    def _refuse(self, message: str) -> None:
        """A value that does not parse: say so, put the fields back to the last good values, keep the plan."""
        self.notify(message, title="Partition", severity="error")
        if self._good is not None:
            with self.prevent(Input.Changed):
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
        self.range = plan_range(self.table, plan, self.columns)
        self.gapp.workspace.cuts = tuple(plan.boundaries)
        self.refresh_views()

    # ------------------------------------------------------------------ views

    def refresh_views(self) -> None:
        est, plan, table = self.estimate, self.plan, self.table
        strip = self.query_one(CutStrip)
        bn_stage = est.bottleneck["index"] if est.bottleneck["kind"] == "stage" else None
        strip.set_plan([table.times[d] for d in plan.devices], plan.boundaries, bn_stage, plan.devices,
                       [st.compute_s for st in est.stages])
        self.query_one(EstimatePanel).show(est, table.blocks, {d: s.short for d, s in self.sources.items()})
        self._show_cut_info()
        self._show_summary()

    def _show_cut_info(self) -> None:
        strip = self.query_one(CutStrip)
        info = self.query_one("#cut-info", Static)
        if strip.cuts < 1:
            info.update("One device: no cut. Press a to add one.", layout=False)
            return
        c = self.plan.boundaries[strip.selected]
        info.update(f"[b]cut {strip.selected}/{strip.cuts}[/b] {cut_words(self.table.blocks, c)} · "
                    f"{cut_load(self.table, c)} [dim]· ←/→ move it · ↑/↓ other cut · ◇ optimal · ? keys[/]",
                    layout=False)  # one line, always

    def on_cut_strip_selected(self, message: CutStrip.Selected) -> None:
        if self.plan is not None:
            self._show_cut_info()

    def _show_summary(self) -> None:
        est = self.estimate
        text = (f"[b]{est.throughput:.3g}[/b] items/s{range_words(self.range)} · period {ms(est.period_s)}"
                f" · latency {ms(est.latency_s)}"
                f" · bottleneck [b red]{bottleneck_words(est, self.table.blocks)}[/]")
        plan_words = f"{est.throughput:.3g} items/s"
        if self.optimal_estimate is not None:
            best = self.optimal_estimate
            share = est.throughput / best.throughput * 100 if best.throughput > 0 else math.nan
            text += f"\noptimal (◇) {best.throughput:.3g} items/s: this plan reaches {share:.0f}%"
            plan_words += f", {share:.0f}% of optimal"
        else:
            text += "\n[dim]o: jump to the optimal plan[/]"
        foreign = [d for d in self.plan.devices if self.sources.get(d) and self.sources[d].foreign]
        if foreign:
            plan_words += " (partly on another machine's times)"
            text += f" · [yellow]{', '.join(foreign)}: another machine's times[/]"
        if self.pipeline_text:
            text += "\n" + self.pipeline_text
        summary = self.query_one("#summary", Static)
        # a layout pass only when the wrapped height changes (the hot path of the strip keeps the same height)
        width = max(1, summary.content_size.width or self.size.width - 2)
        shape = (len(Text.from_markup(text).wrap(self.app.console, width)), width)
        summary.update(text, layout=shape != self._summary_shape)
        self._summary_shape = shape
        if plan_words != self.gapp.workspace.plan_words:
            self.gapp.workspace.plan_words = plan_words
            self.gapp.refresh_status()

    # ------------------------------------------------------------------ events

    def on_cut_strip_moved(self, message: CutStrip.Moved) -> None:
        if self.table is None:
            return
        self._set_plan(list(message.boundaries))

    def _apply_fields(self) -> bool:
        """Apply what was typed in the devices and link fields (when it differs from what is applied)."""
        if not self.gapp.workspace.ready or not self._fields_changed():
            return True
        if self.rebuild(keep_cuts=True):
            self._update_optimal()
            return True
        return False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._apply_fields():
            self.query_one(CutStrip).focus()

    def on_input_blurred(self, event: Input.Blurred) -> None:
        """Leaving a field applies it: what is on screen is the plan (Tab, Esc or a click elsewhere)."""
        if event.input.id in LINK_FIELDS:
            self._apply_fields()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.gapp.ui_state.communication = str(event.value)
        if self.table is not None and self.plan is not None and event.value != self.plan.communication:
            if self.rebuild(keep_cuts=True):
                self._update_optimal()

    def _update_optimal(self) -> None:
        if self.table is None or self.plan is None:
            return
        self.optimal = solve(self.table, self.plan.devices, self.link, communication=self._communication())
        self.optimal_estimate = estimate(self.table, self.optimal)
        self.query_one(CutStrip).set_optimal(self.optimal.boundaries)
        self._show_summary()

    # ------------------------------------------------------------------ actions

    def _ready(self) -> bool:
        if self.table is None:
            why = ("No block times yet: see the line under the link for what is missing."
                   if self.gapp.workspace.ready else "Trace a model first (press 1).")
            self.notify(why, title="Partition", severity="warning")
            return False
        return True

    def _current(self) -> bool:
        """The plan on screen is the fields' plan: apply pending edits; refuse while new times are computed."""
        if not self._ready() or not self._apply_fields():
            return False
        if self.pending:
            self.notify("The devices changed and their block times are still being computed: the plan on screen is"
                        " not theirs yet. Try again when the devices line shows them.", title="Partition",
                        severity="warning")
            return False
        return True

    def action_optimal(self) -> None:
        if not self._ready():
            return
        self._update_optimal()
        self._set_plan(list(self.optimal.boundaries), objective=self.optimal.objective)

    def _apply_devices(self, devices: list[DeviceSpec], boundaries: list[int]) -> None:
        with self.prevent(Input.Changed):
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
        added = base.with_name(f"{base.name}{i}")
        devices.insert(s + 1, added)
        b.insert(s + 1, mid)
        self._apply_devices(devices, b)
        strip.selected = s + 1
        self.notify(f"{added.text()}, a copy of {base.name}, runs the new stage: Devices now reads"
                    f" {format_devices(devices)} (edit it there; d removes the cut)", title=f"Cut added: {added.name}",
                    timeout=6)

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
        gone = devices[c]
        del devices[c]
        del b[c]
        self._apply_devices(devices, b)
        self.notify(f"Devices now: {format_devices(devices)} ({gone.name} left the plan)", title="Cut removed",
                    timeout=4)

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
        with self.prevent(Input.Changed):
            self.query_one("#bandwidth", Input).value = format_bandwidth(link.bandwidth)
            self.query_one("#latency", Input).value = format_time(link.latency)
        if self._ready() and self.rebuild(keep_cuts=True):
            self._update_optimal()
        self.notify(f"{row['host']} ({row['direction']}, {row['measured_at']})", title="Link from probe", timeout=4)

    def action_save(self) -> None:
        if self._current():
            self._save(self.plan)

    def _save(self, plan: Plan, announce: bool = True) -> Path | None:
        """Save ``plan`` with its estimate; the path (None when it cannot be written, said in a notification).
        ``announce``: a toast says where and how to run it (a run says so in its own line instead)."""
        plan.estimate = estimate(self.table, plan).to_dict()
        path = self.gapp.plan_path(plan)
        try:
            plan.save(path)
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror}", title="Save plan", severity="error")
            return None
        self.gapp.last_plan_path = path
        link = plan.links[0] if plan.links else None
        what = f"{', '.join(plan.devices)} at {list(plan.boundaries)}" + (
            f", {format_bandwidth(link.bandwidth)} {format_time(link.latency)}" if link is not None else "")
        hosts = RunPlace(tuple(plan.devices), {d: h for d, h in plan.hosts.items() if h})
        if hosts.remote:
            what += f"\n{hosts.words()}"
        if announce:
            self.notify(f"{path}\n{what}\nrun it with: gapp pipeline run {path}", title="Plan saved", timeout=6)
        return path

    def _ssh_fields(self) -> dict[str, str]:
        """The Measure section's SSH fields (as typed there), else the remembered ones."""
        s = self.gapp.ui_state
        fields = {"host": s.host, "identity": s.identity, "known_hosts": s.known_hosts,
                  "remote_python": s.remote_python}
        measure = self.gapp.sections.get("measure")
        if measure is not None:
            fields.update(measure.ssh_fields())
        fields["remote_python"] = fields["remote_python"] or "python3"
        return fields

    def run_places(self) -> list[RunPlace]:
        """Where the plan on screen can run: this machine, then (when a device has an SSH host) the plan's hosts."""
        store = self.gapp.store() if any(c.store_key for c in self.columns) else None
        measured = {c.device.name: measured_host(store, c.store_key, c.setting) for c in self.columns
                    if c.store_key} if store is not None else {}
        here = [d for d, src in self.sources.items() if src.here]
        return run_choices(self.plan.devices, measured, here, self._ssh_fields()["host"])

    def action_run_pipeline(self) -> None:
        if not self._current():
            return
        places = self.run_places()
        if len(places) == 1:
            self._run_at(places[0])
            return

        def chosen(place: RunPlace | None) -> None:
            if place is not None:
                self._run_at(place)

        self.app.push_screen(RunWhereScreen(places), chosen)

    def _run_at(self, place: RunPlace) -> None:
        """Save the plan with ``place``'s hosts and run it in the pipeline worker."""
        plan = dataclasses.replace(self.plan, hosts=dict(place.hosts))
        path = self._save(plan, announce=False)  # the run line names the file; a toast would cover it
        if path is None:
            return
        where = place.words() if place.remote else "every stage as a process on this machine"
        self.pipeline_text = f"[yellow]pipeline running: {where} (the plan saved as {path.name})…[/]"
        self._run_place = place
        self._pipeline_chain = self.gapp.workspace.chain
        self._show_summary()
        self.run_pipeline(path, self._ssh_fields() if place.remote else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pipeline", description="pipeline run")
    def run_pipeline(self, path: Path, ssh: dict[str, str] | None = None, items: int = 30) -> None:
        """Run a saved plan for real (one gloo process per stage, a host's over SSH); measured against estimated."""
        from ...pipeline.config import read_plan  # slow (torch): the pipeline package imports it
        from ...pipeline.run import master_address, run_plan  # slow (torch)
        from ...ssh import SSHOptions  # slow (paramiko): only a run on a host pays for it

        options = None
        master = "127.0.0.1"
        if ssh is not None:
            options = SSHOptions(identity=ssh["identity"] or None, known_hosts=ssh["known_hosts"] or None,
                                 remote_python=ssh["remote_python"]).check()
            view = read_plan(path)
            master = master_address(view.devices, view.hosts)
        result = run_plan(path, items=items, warmup=3, latency_items=3, timeout=30.0, deadline=300.0, ssh=options,
                          master_addr=master)
        self.post_message(PipelineDone(result))

    def _stand_ins(self, report: Any) -> list[str]:
        """Devices of the run that ran here but stand for other hardware (not measured on this machine)."""
        hosts = getattr(report.plan, "hosts", {}) or {}
        devices = list(getattr(report.plan, "devices", self.plan.devices if self.plan else []))
        return [d for d in devices if not hosts.get(d) and not (self.sources.get(d) and self.sources[d].here)]

    def on_pipeline_done(self, message: PipelineDone) -> None:
        r = message.report
        est = r.estimate.get("throughput_per_s")
        rerun = r.estimate_with_run_compute.get("throughput_per_s")
        stand_ins = self._stand_ins(r)
        hosts = {d: h for d, h in (getattr(r.plan, "hosts", {}) or {}).items() if h}
        place = RunPlace(tuple(r.plan.devices), hosts)
        if place.remote:
            where = place.words() + (f"; {', '.join(stand_ins)} not on its own hardware" if stand_ins else "")
        else:
            where = "every stage ran on this machine" + (f", not on {', '.join(stand_ins)}" if stand_ins else "")
        if self.link is not None and not hosts:
            where += f", over loopback, not a {format_bandwidth(self.link.bandwidth)} link"
        text = f"[b]pipeline run[/b] ({where}): measured [b]{r.throughput_per_s:.3g}[/b] items/s"
        if est:
            text += f" vs estimated {est:.3g} ({r.throughput_per_s / est * 100:.0f}%)"
        if rerun:
            text += f" · with this run's stage times {rerun:.3g} ({r.throughput_per_s / rerun * 100:.0f}%)"
        text += " · output " + ("[green]matches[/]" if r.output_ok else f"[red]differs by {r.output_max_abs_diff:.2g}[/]")
        self.pipeline_text = text
        self._show_summary()
        self.notify(f"{r.throughput_per_s:.3g} items/s measured "
                    + (place.words() if place.remote else "on this machine"), title="Pipeline run", timeout=4)

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        if worker.group == "pipeline" and state != WorkerState.SUCCESS:
            where = f" ({self._run_place.words()})" if self._run_place is not None and self._run_place.remote else ""
            self.pipeline_text = f"[red]pipeline run {state.name.lower()}{where}[/]"
            self._show_summary()
        elif worker.group == "times" and state == WorkerState.ERROR:
            self.pending = False
            if self.table is None:
                self.query_one("#device-notes", Static).update(f"[red]{one_line(worker.error)}[/]")
