"""Measure: time every block here or on an SSH host, live, with a log; rows land in the store as they come.

The measurement runs in this section's worker (local engine or SSH runner);
an unknown host key stops it with a question, and accepting starts it again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, Input, Label, ProgressBar, RichLog, Select, Static
from textual.worker import Worker, WorkerState

from ...errors import BadInput, one_line
from ...units import format_clock
from ..messages import HostKeyQuestion, MeasureDone, MeasureLog, MeasureProgress, MeasureStarted
from ..widgets.measure.hostkey import HostKeyScreen
from .base import Section

TARGETS = [("this machine (CPU)", "cpu"), ("this machine (CUDA)", "cuda"), ("SSH host", "ssh")]
MODES = [("in-context", "in-context"), ("standalone", "standalone"), ("both", "both")]
PRECISIONS = [("quick (few runs)", "quick"), ("normal (1% CI)", "normal")]
DTYPES = [("float32", "float32"), ("float16", "float16"), ("bfloat16", "bfloat16")]


class MeasureSection(Section):
    SECTION = "measure"
    AUTO_FOCUS = "#start"
    BINDINGS = [
        Binding("m", "start", "Start", id="measure.start", tooltip="Measure the traced model's blocks"),
        Binding("c", "cancel", "Cancel", id="measure.cancel", tooltip="Stop now; blocks already measured are kept"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.started_at: float | None = None
        self.phase_started: dict[str, float] = {}
        self.last: Any = None
        self.running = False
        self._logged_index = -1
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="measure-form"):
            with Horizontal(classes="form-row"):
                yield Label("Target", classes="field-label")
                yield Select(TARGETS, id="target", value="cpu", allow_blank=False, compact=True,
                             tooltip="Where to measure: here, or a device over SSH")
                yield Label("host", classes="field-label")
                yield Input(id="host", compact=True, placeholder="user@pi.local[:port]",
                            tooltip="SSH target (keys or the SSH agent; ~/.ssh/config honoured)")
                yield Label("key", classes="field-label")
                yield Input(id="identity", compact=True, placeholder="~/.ssh/id_ed25519", tooltip="Private key file")
            with Horizontal(classes="form-row"):
                yield Label("known_hosts", classes="field-label")
                yield Input(id="known-hosts", compact=True, placeholder="~/.ssh/known_hosts",
                            tooltip="Where host keys are checked and recorded")
                yield Label("python", classes="field-label")
                yield Input(id="remote-python", compact=True, value="python3", tooltip="Python on the device")
            with Horizontal(classes="form-row"):
                yield Label("Mode", classes="field-label")
                yield Select(MODES, id="mode", value="in-context", allow_blank=False, compact=True,
                             tooltip="in-context: inside end-to-end runs; standalone: each block alone")
                yield Label("threads", classes="field-label")
                yield Input(id="threads", compact=True, placeholder="all", type="integer",
                            tooltip="Threads (empty: every core)")
                yield Select(PRECISIONS, id="precision", value="normal", allow_blank=False, compact=True,
                             tooltip="How many runs per block")
                yield Select(DTYPES, id="dtype", value="float32", allow_blank=False, compact=True, tooltip="Precision")
            with Horizontal(classes="form-row"):
                yield Button("Start (m)", id="start", variant="primary", compact=True)
                yield Button("Cancel (c)", id="cancel", variant="error", compact=True, disabled=True)
                yield Static("", id="measure-model", classes="inline-status")
        yield Static("Trace a model in Models (1), then press m.", id="measure-status", classes="status-line")
        yield ProgressBar(id="measure-progress", total=1, show_eta=False)  # determinate: no animation at rest
        yield RichLog(id="measure-log", markup=True, wrap=True, max_lines=2000)
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    def on_mount(self) -> None:
        s = self.gapp.ui_state
        self.query_one("#host", Input).value = s.host
        self.query_one("#identity", Input).value = s.identity
        self.query_one("#known-hosts", Input).value = s.known_hosts
        if s.host:
            self.query_one("#target", Select).value = "ssh"
        super().on_mount()

    def sync(self) -> None:
        ws = self.gapp.workspace
        label = self.query_one("#measure-model", Static)
        label.update(f"model: [b]{ws.label()}[/b], {len(ws.chain)} blocks" if ws.ready else "no model traced yet")
        if ws.ready and not self.running and self.last is None:
            self.query_one("#measure-status", Static).update(
                "Choose the target and press [b]m[/b] to measure every block; [b]c[/b] cancels (finished blocks are kept)."
                " Rows go to the store as each block finishes.")

    # ------------------------------------------------------------------ start / cancel

    def config(self) -> Any:
        from ...measure.engine import MeasureConfig, parse_modes  # slow (torch), as the measure imports below
        from ...measure.timer import Precision

        target = str(self.query_one("#target", Select).value)
        threads_text = self.query_one("#threads", Input).value.strip()
        threads = int(threads_text) if threads_text else None
        precision = Precision.quick() if self.query_one("#precision", Select).value == "quick" else Precision()
        return MeasureConfig(
            modes=parse_modes(str(self.query_one("#mode", Select).value)),
            device="cuda" if target == "cuda" else "cpu",
            threads=threads,
            dtype=str(self.query_one("#dtype", Select).value),
            precision=precision,
        )

    def ssh_options(self, accept_new_host_key: bool = False) -> Any:
        """The SSH options the fields describe (BadInput on a bad host)."""
        from ...ssh import SSHOptions  # slow (paramiko): only an SSH measurement pays for it

        text = self.query_one("#host", Input).value.strip()
        if not text:
            raise BadInput("no SSH host given; write user@host or user@host:port")
        return SSHOptions(
            host=text,
            identity=self.query_one("#identity", Input).value.strip() or None,
            known_hosts=self.query_one("#known-hosts", Input).value.strip() or None,
            remote_python=self.query_one("#remote-python", Input).value.strip() or "python3",
            accept_new_host_key=accept_new_host_key,
        ).check()

    def action_start(self, accept_new_host_key: bool = False) -> None:
        ws = self.gapp.workspace
        if self.running:
            self.notify("A measurement is running: cancel it first (c).", title="Measure", severity="warning")
            return
        if not ws.ready:
            self.notify("Trace a model first: press 1, pick one, Enter.", title="Measure", severity="warning")
            return
        try:
            config = self.config()
            config.check()
            ssh = self.ssh_options(accept_new_host_key) if self.query_one("#target", Select).value == "ssh" else None
        except (BadInput, ValueError) as exc:
            self.notify(str(exc), title="Measure", severity="error")
            return
        s = self.gapp.ui_state
        if ssh is not None:
            s.host, s.identity, s.known_hosts = ssh.host, ssh.identity or "", ssh.known_hosts or ""
        self._cancel = threading.Event()
        self.measure(ws.chain, config, ssh, self._cancel)
        self.set_running(True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="measure", description="measurement")
    def measure(self, chain: Any, config: Any, ssh: Any, cancel: threading.Event) -> None:
        """Measure ``chain`` here (``ssh`` None) or on an SSH host; rows go to the store as they finish."""
        from ...measure.engine import measure as measure_local  # slow (torch), as the imports below
        from ...measure.remote_engine import measure_remote
        from ...ssh import UnknownHostKey

        store = self.gapp.worker_store()
        last = {"key": None, "at": 0.0}

        def progress(p: Any) -> None:
            # in-context timing reports every end-to-end run (hundreds a second): pass on each
            # change of phase or block count, and otherwise at most ten reports a second
            now = time.monotonic()
            key = (p.phase, p.index, p.skipped)
            if key == last["key"] and now - last["at"] < 0.1:
                return
            last["key"], last["at"] = key, now
            self.post_message(MeasureProgress(p))

        if ssh is None:
            self.post_message(MeasureStarted(len(chain), f"this machine ({config.device})"))
            result = measure_local(chain, config, store=store, progress=progress, cancel=cancel, command="gapp (TUI)")
        else:
            self.post_message(MeasureLog(f"connecting to {ssh.label} …"))
            try:
                session = ssh.connect()
            except UnknownHostKey as exc:
                self.post_message(HostKeyQuestion(exc.host_label, ssh.port or 22, exc.key_type, exc.fingerprint))
                return
            with session:
                if session.recorded_host_key:
                    self.post_message(MeasureLog(f"recorded host key {session.recorded_host_key}"))
                self.post_message(MeasureStarted(len(chain), ssh.label))
                result = measure_remote(session, chain, config, store=store, remote_python=ssh.remote_python,
                                        progress=progress, cancel=cancel, command="gapp (TUI)",
                                        log=lambda line: self.post_message(MeasureLog(line)))
        self.post_message(MeasureDone(result, cancelled=result.interrupted is not None))

    def on_host_key_question(self, message: HostKeyQuestion) -> None:
        self.set_running(False)

        def answered(accept: bool | None) -> None:
            if accept:
                self.log_line(f"accepted {message.key_type} {message.fingerprint}")
                self.action_start(accept_new_host_key=True)
            else:
                self.notify(f"{message.host}: host key refused; nothing was measured", title="SSH", severity="warning")

        known = self.query_one("#known-hosts", Input).value.strip() or "~/.ssh/known_hosts"
        self.app.push_screen(HostKeyScreen(message.host, message.key_type, message.fingerprint, known), answered)

    def action_cancel(self) -> None:
        if not self.running:
            self.notify("Nothing is being measured.", title="Measure", timeout=2)
            return
        if self._cancel is not None:
            self._cancel.set()
        self.log_line("[yellow]cancelling… (blocks already measured are kept)[/]")

    def set_running(self, running: bool) -> None:
        self.running = running
        self.query_one("#start", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running
        if running:
            self.started_at = time.monotonic()
            self.phase_started = {}
            bar = self.query_one(ProgressBar)
            bar.update(total=1, progress=0)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        elif event.button.id == "cancel":
            self.action_cancel()

    # ------------------------------------------------------------------ progress

    def log_line(self, text: str) -> None:
        self.query_one(RichLog).write(text)

    def on_measure_started(self, message: MeasureStarted) -> None:
        self.log_line(f"[b]measuring[/b] {self.gapp.workspace.label()} on {message.target}")

    def on_measure_log(self, message: MeasureLog) -> None:
        self.log_line(message.text)

    def on_measure_progress(self, message: MeasureProgress) -> None:
        p = message.event
        now = time.monotonic()
        start = self.phase_started.setdefault(p.phase, now)
        bar = self.query_one(ProgressBar)
        status = self.query_one("#measure-status", Static)
        if p.phase == "prepare":
            status.update(f"preparing: {p.name}")
            return
        if p.phase == "done":
            return
        bar.update(total=max(1, p.total), progress=p.index)
        elapsed = now - (self.started_at or now)
        phase_elapsed = now - start
        remaining = phase_elapsed / p.index * (p.total - p.index) if p.index else None
        tail = f" · elapsed {format_clock(elapsed)}" + (f" · remaining ~{format_clock(remaining)}" if remaining is not None else "")
        if p.phase == "in-context":
            # every run times the whole chain; blocks are kept as their intervals narrow
            chain = f" · chain median {p.estimate_ms:.2f} ms" if p.estimate_ms is not None else ""
            status.update(f"[b]in-context[/b]: {p.index}/{p.total} blocks converged"
                          + (f", next [b]{p.name}[/b]" if p.name else "") + chain + tail)
        else:
            est = f" · last {p.estimate_ms:.2f} ms" if p.estimate_ms is not None else ""
            status.update(f"[b]{p.phase}[/b] block {min(p.index + 1, p.total)}/{p.total} [b]{p.name}[/b]{est}"
                          f" · sum {p.sum_ms:.1f} ms" + tail)
        if p.estimate_ms is not None and p.phase in ("standalone", "full", "overhead"):
            tag = " [dim](stored)[/]" if p.skipped else ""
            self.log_line(f"{p.phase:>10}  {p.index:>3}/{p.total}  {p.name:<24} {p.estimate_ms:9.3f} ms{tag}")
        elif p.phase == "in-context" and p.index != self._logged_index:
            self._logged_index = p.index
            chain = f"chain {p.estimate_ms:9.3f} ms" if p.estimate_ms is not None else ""
            self.log_line(f"{p.phase:>10}  {p.index:>3}/{p.total}  converged; next {p.name or '-':<16} {chain}")

    def on_measure_done(self, message: MeasureDone) -> None:
        self.set_running(False)
        r = message.result
        self.last = r
        self.gapp.set_measurement(r)
        n = 0 if r is None else r.measured
        self.notify(f"{n} rows measured" + (" (cancelled)" if message.cancelled else ""), title="Measure", timeout=3)
        status = self.query_one("#measure-status", Static)
        if r is None:
            status.update("stopped before anything was measured")
            return
        sums = "; ".join(
            f"{m}: sum {v['sum_ms']:.2f} ms" + (f" vs full {v['full_ms']:.2f} ms ({v['gap_pct']:+.1f}%)"
                                                 if v.get("full_ms") and v.get("gap_pct") is not None else "")
            for m, v in r.sums.items())
        head = "[yellow]cancelled[/]" if message.cancelled else "[green]done[/]"
        status.update(f"{head}: {r.measured} measured, {r.skipped} from the store · {sums} · 3: see Results")
        self.log_line(f"{head}: {r.measured} rows measured, {r.skipped} already stored ({r.db or 'memory'})")
        bar = self.query_one(ProgressBar)
        if not message.cancelled:
            bar.update(total=1, progress=1)

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        if worker.group == "measure" and state != WorkerState.SUCCESS:
            self.set_running(False)
            if state == WorkerState.ERROR and worker.error is not None:
                self.log_line(f"[red]failed:[/] {one_line(worker.error)}")
                self.query_one("#measure-status", Static).update(f"[red]failed:[/] {one_line(worker.error)}")
