"""Models: pick a model and its input, trace it, see its blocks and cuts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from ...formatting import human_bytes, human_count
from ..messages import Traced
from ..widgets.models.form import ModelForm
from .base import Section


class ModelsSection(Section):
    SECTION = "models"
    AUTO_FOCUS = "#blocks"
    BINDINGS = [
        Binding("t", "trace", "Trace", id="models.trace", tooltip="Trace the model in the form into blocks"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield ModelForm(id="model-form")
        yield Static("Type a model name (→ completes, Ctrl+P searches all models) and press Enter to trace it. Esc leaves a field; then 1–4 switch sections and ? helps.", id="model-status",
                     classes="status-line")
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
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    def on_mount(self) -> None:
        s = self.gapp.ui_state
        self.query_one(ModelForm).fill(s.model, s.input_size, s.batch_size, s.num_classes, s.granularity)
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
        self.query_one("#model-status", Static).update(f"tracing {spec.label()} ({granularity}) …")
        self.query_one("#blocks", DataTable).loading = True
        self.gapp.trace(spec, granularity)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_trace()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "trace":
            self.action_trace()

    def trace_failed(self) -> None:
        self.query_one("#blocks", DataTable).loading = False
        self.query_one("#model-status", Static).update("tracing failed: see the message; fix the form and press Enter")

    def on_traced(self, message: Traced) -> None:
        self.sync()
        self.query_one("#blocks", DataTable).focus()

    def sync(self) -> None:
        ws = self.gapp.workspace
        table = self.query_one("#blocks", DataTable)
        if not ws.ready:
            return
        if getattr(table, "_gapp_chain", None) is ws.chain:
            return
        table.loading = False
        table.clear()
        chain = ws.chain
        for r in chain.summary():
            shapes = " ".join("x".join(map(str, s)) or "scalar" for s in r["out_shapes"][:2])
            if len(r["out_shapes"]) > 2:
                shapes += f" +{len(r['out_shapes']) - 2}"
            table.add_row(str(r["index"]), r["name"], str(r["ops"]), human_count(r["params"]),
                          human_count(r["flops"]), shapes, human_bytes(r["out_bytes"]), str(r["out_tensors"]),
                          key=str(r["index"]))
        table._gapp_chain = chain  # type: ignore[attr-defined]
        from ...zoo import families, is_import_path

        family = chain.spec.family
        members = [] if is_import_path(chain.spec.name) else families().get(family, [])
        kin = f" · {family} family: {', '.join(members[:6])}{' …' if len(members) > 6 else ''}" if members else ""
        params = sum(b.params for b in chain.blocks)
        flops = sum(b.flops for b in chain.blocks)
        self.query_one("#model-status", Static).update(
            f"[b]{chain.spec.label()}[/b] · {len(chain)} blocks ({chain.granularity}) · "
            f"{human_count(params)} params · {human_count(flops)}FLOPs · input {human_bytes(chain.cuts[0].bytes)} · "
            f"traced in {ws.trace_seconds:.1f} s{kin} · [dim]2: measure it[/]"
        )

    def pick_model(self, name: str) -> None:
        """Fill the form with ``name`` (from the palette) and trace it."""
        self.query_one("#model-name", Input).value = name
        self.action_trace()
