"""Models: pick a model and its input, trace it (a worker of this section), see its blocks and cuts."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Footer, Input, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...errors import BadInput
from ...units import format_bytes, format_count
from ...zoo import families, is_import_path
from ..messages import Traced
from ..widgets.models.form import ModelForm
from .base import Section


class ModelsSection(Section):
    SECTION = "models"
    AUTO_FOCUS = "#blocks"
    FIELD_NAMES = {"model-name": "Model", "input-size": "size", "batch-size": "batch", "num-classes": "classes",
                   "input-shape": "shape", "granularity": "granularity"}
    BINDINGS = [
        Binding("t", "trace", "Trace", id="models.trace",
                tooltip="Trace the model in the form into blocks (nothing happens when it is the one traced)"),
    ]
    FIELD_HINT = "Enter traces the model in the form · Tab next field · Esc leaves"

    def __init__(self) -> None:
        super().__init__()
        self._shown: Any = None  # the chain the block table shows

    def compose(self) -> ComposeResult:
        yield self.tabs()
        yield ModelForm(id="model-form")
        yield Static("Type a model name (→ completes, Ctrl+P searches all models) and press Enter to trace it. Esc leaves a field; then 1–4 switch sections and ? helps.", id="model-status",
                     classes="status-line")
        capture = Static("", id="model-capture", classes="capture-line", markup=False)  # reasons hold [ ]
        capture.display = False  # until a model is traced: its front end and leaves
        yield capture
        table = DataTable(id="blocks", zebra_stripes=True, cursor_type="row")
        table.add_column("#", key="index")
        table.add_column("block", key="name")
        table.add_column("ops", key="ops")
        table.add_column("params", key="params")
        table.add_column("FLOPs", key="flops")
        table.add_column("output shapes", key="shapes")
        table.add_column("bytes after", key="bytes")
        table.add_column("tensors", key="tensors")
        yield table
        yield self.status_line()
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    def on_mount(self) -> None:
        s = self.gapp.ui_state
        form = self.query_one(ModelForm)
        form.fill(s.model, s.input_size, s.batch_size, s.num_classes, s.granularity)
        form.update_derived()
        super().on_mount()
        if not self.gapp.workspace.ready:
            self.query_one("#model-name", Input).focus()
        else:
            self.query_one("#blocks", DataTable).focus()

    def action_trace(self) -> None:
        form = self.query_one(ModelForm)
        try:
            spec = form.spec()
        except ValueError as exc:  # BadInput and friends: one line in the app, never a crash
            self.notify(str(exc), title="Model", severity="error")
            return
        granularity = form.values()["granularity"]
        ws = self.gapp.workspace
        if ws.ready and form.describes(ws.spec, ws.chain.granularity):
            # the model shown already: tracing it again would only throw away its cuts and measurement
            self.notify(f"{spec.label()} ({granularity}) is the model traced; change a field to trace another.",
                        title="Model", timeout=3)
            return
        self.query_one("#model-status", Static).update(f"tracing {spec.label()} ({granularity}) …")
        self.query_one("#blocks", DataTable).loading = True
        self.trace(spec, granularity)

    @work(thread=True, exclusive=True, exit_on_error=False, group="trace", description="tracing")
    def trace(self, spec: Any, granularity: str) -> None:
        """Trace ``spec`` into a BlockChain (real tensors on the CPU, so it can be measured)."""
        from ...blocks import BlockChain  # slow (torch): the app starts without it

        t0 = time.perf_counter()
        chain = BlockChain.from_spec(spec, granularity, device="cpu")
        if not get_current_worker().is_cancelled:
            self.post_message(Traced(chain, time.perf_counter() - t0))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_trace()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._form_changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._form_changed()

    def _form_changed(self) -> None:
        """An edit not traced yet is shown as pending: the table still shows the model traced."""
        form = self.query_one(ModelForm)
        form.update_derived()
        ws = self.gapp.workspace
        if not ws.ready or self.query_one("#blocks", DataTable).loading:
            return
        if form.describes(ws.spec, ws.chain.granularity):
            self._show_summary()
            return
        try:
            label = form.spec().label()
        except (ValueError, BadInput):
            label = "the model in the form"
        self.query_one("#model-status", Static).update(
            f"[b yellow]form changed, not traced yet:[/] Enter or t traces [b]{label}[/b] "
            f"({form.values()['granularity']}); the blocks below are still [b]{ws.spec.label()}[/b] "
            f"({ws.chain.granularity})")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "trace":
            self.action_trace()

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        if worker.group == "trace" and state != WorkerState.SUCCESS:
            self.query_one("#blocks", DataTable).loading = False
            self.query_one("#model-status", Static).update(
                "tracing failed: see the message; fix the form and press Enter")

    def on_traced(self, message: Traced) -> None:
        self.gapp.set_chain(message.chain, message.seconds)
        self.query_one(ModelForm).show_traced(message.chain.spec)
        self.sync()
        self.query_one("#blocks", DataTable).focus()

    def sync(self) -> None:
        ws = self.gapp.workspace
        table = self.query_one("#blocks", DataTable)
        if not ws.ready:
            return
        if self._shown is ws.chain:
            return
        table.loading = False
        table.clear()
        chain = ws.chain
        for r in chain.summary():
            shapes = " ".join("x".join(map(str, s)) or "scalar" for s in r["out_shapes"][:2])
            if len(r["out_shapes"]) > 2:
                shapes += f" +{len(r['out_shapes']) - 2}"
            table.add_row(str(r["index"]), r["name"], str(r["ops"]), format_count(r["params"]),
                          format_count(r["flops"]), shapes, format_bytes(r["out_bytes"]), str(r["out_tensors"]),
                          key=str(r["index"]))
        self._shown = chain
        self._show_summary()

    def _show_summary(self) -> None:
        ws = self.gapp.workspace
        chain = ws.chain
        family = chain.spec.family
        members = [] if is_import_path(chain.spec.name) else families().get(family, [])
        kin = f" · {family} family: {', '.join(members[:6])}{' …' if len(members) > 6 else ''}" if members else ""
        params = sum(b.params for b in chain.blocks)
        flops = sum(b.flops for b in chain.blocks)
        self.query_one("#model-status", Static).update(
            f"[b]{chain.spec.label()}[/b] · {len(chain)} blocks ({chain.granularity}) · "
            f"{format_count(params)} params · {format_count(flops)}FLOPs · input {format_bytes(chain.cuts[0].bytes)} · "
            f"traced in {ws.trace_seconds:.1f} s{kin} · [dim]2: measure it[/]"
        )
        line = self.query_one("#model-capture", Static)
        line.update(chain.capture.explain() if chain.capture is not None else "")
        line.display = chain.capture is not None

    def pick_model(self, name: str) -> None:
        """Fill the form with ``name`` (from the palette) and trace it."""
        self.query_one("#model-name", Input).value = name
        self.action_trace()
