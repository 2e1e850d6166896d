"""Measure: time every block here or on an SSH host, live, with a log; rows land in the store as they come.

One concept: the Measure section -- the target and timing fields, and its two workers that measure on
that target (the traced model's blocks with ``m``; the probe suite of ``gapp calibrate`` with ``k``).

The measurement runs in this section's worker (local engine or SSH runner);
an unknown host key stops it with a question, and accepting starts it again.
When it ends, :mod:`gapp_tui.measure.sanity` says what not to trust (a sum of
blocks far from the full model, a wide spread, a setting the predictor was not
made for) and ``f`` measures again, replacing the stored rows.

**Calibrate** (``k``) runs :func:`gapp_tui.predict.calibrate.calibrate` -- the code
of ``gapp calibrate`` -- on the same target (this machine, or the SSH host of
the form) within the budget field's device time: the estimate before it starts,
progress per probe, and at the end the adapted predictor's accuracy on the
held-out probe blocks. The predictor is written and recorded as the device's
own (:func:`gapp_tui.predict.calibrate.record`), so the Partition section
offers it by name. ``c`` cancels; the probes measured stay in the store and
the next calibration resumes from them.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, ProgressBar, RichLog, Select, Static
from textual.worker import Worker, WorkerState

from ...errors import BadInput, one_line
from ...measure.eta import Eta
from ...measure.sanity import check_result, predictor_setting
from ...units import format_clock, parse_duration
from ..labels import is_here, machine_words, threads_words
from ..messages import (AcceleratorFound, CalibrateDone, CalibrateEvent, HostKeyQuestion, MeasureDone, MeasureLog,
                        MeasureProgress, MeasureStarted)
from ..widgets.measure.hostkey import HostKeyScreen
from .base import Section, labelled

CPU_TARGET, SSH_TARGET = ("this machine (CPU)", "cpu"), ("SSH host", "ssh")
MODES = [("in-context", "in-context"), ("standalone", "standalone"), ("both", "both")]
PRECISIONS = [("quick", "quick"), ("1% interval", "normal")]
DTYPES = [("float32", "float32"), ("float16", "float16"), ("bfloat16", "bfloat16")]
SSH_FIELDS = (  # label, input id, placeholder, value, tooltip
    ("host", "host", "user@host[:port]", "", "SSH target (keys or the SSH agent; ~/.ssh/config honoured)"),
    ("key", "identity", "~/.ssh/id_ed25519", "", "Private key file"),
    ("known_hosts", "known-hosts", "~/.ssh/known_hosts", "", "Where host keys are checked and recorded"),
    ("python", "remote-python", "python3", "", "Python on the device"),  # empty: python3 (the remembered one is filled in)
)


class MeasureSection(Section):
    SECTION = "measure"
    AUTO_FOCUS = "#start"
    BINDINGS = [
        Binding("m", "start", "Start", id="measure.start",
                tooltip="Measure the traced model's blocks (rows already stored are kept, not timed again)"),
        Binding("f", "remeasure", "Re-measure", id="measure.remeasure",
                tooltip="Measure again from scratch, replacing the stored rows (--force)"),
        Binding("c", "cancel", "Cancel", id="measure.cancel", tooltip="Stop now; blocks already measured are kept"),
        Binding("k", "calibrate", "Calibrate", id="measure.calibrate",
                tooltip="Calibrate a predictor for the target: measure probe blocks within the budget, adapt, record it"),
        Binding("K", "recalibrate", "Recalibrate", id="measure.recalibrate", show=False,
                tooltip="Calibrate again, measuring the stored probes anew (--remeasure): after the device's speed moved"),
    ]
    FIELD_NAMES = {"host": "SSH host", "identity": "key file", "known-hosts": "known_hosts file",
                   "remote-python": "remote python", "threads": "threads", "target": "Target", "mode": "Mode",
                   "precision": "precision", "dtype": "dtype", "budget": "calibration budget"}
    FIELD_HINT = "the next measurement (m) uses it · Tab next field · Esc leaves"

    def __init__(self) -> None:
        super().__init__()
        self.started_at: float | None = None
        self.last: Any = None
        self.running = False
        self._logged_index = -1
        self._cancel: threading.Event | None = None
        self._chain: Any = None  # the chain the status and the log speak of
        self._eta: Eta | None = None
        self._config: Any = None
        self._target_words = ""
        self._filling = False
        self._after_host_key = "measure"  # what an accepted host key starts again: measure or calibrate
        self._remeasure = False  # a calibration that measures the stored probes anew (K)
        #: the last calibration's report (the predictor it wrote, its held-out accuracy), or None
        self.calibration: dict[str, Any] | None = None

    @staticmethod
    def _ssh_fields(fields: tuple[tuple[str, str, str, str, str], ...]) -> Iterator[Widget]:
        for label, id_, placeholder, value, tooltip in fields:
            yield from labelled(label, Input(id=id_, compact=True, placeholder=placeholder, value=value, tooltip=tooltip))

    def compose(self) -> ComposeResult:
        yield self.tabs()
        with Vertical(id="measure-form"):
            with Horizontal(classes="form-row"):
                yield from labelled("Target", Select(
                    [CPU_TARGET, SSH_TARGET], id="target", value="cpu", allow_blank=False, compact=True,
                    tooltip="Where to measure: here, or a device over SSH (typing a host chooses it)"))
                yield from self._ssh_fields(SSH_FIELDS[:2])
            with Horizontal(classes="form-row"):
                yield from self._ssh_fields(SSH_FIELDS[2:])
            with Horizontal(classes="form-row"):
                yield from labelled("Mode", Select(
                    MODES, id="mode", value="in-context", allow_blank=False, compact=True,
                    tooltip="in-context: inside end-to-end runs; standalone: each block alone"))
                yield from labelled("threads", Input(
                    id="threads", compact=True, placeholder="all", type="integer", tooltip="Threads (empty: every core)"))
                yield from labelled("precision", Select(
                    PRECISIONS, id="precision", value="normal", allow_blank=False, compact=True,
                    tooltip="How many runs per block: until the median's 95% interval is within 1%"
                            " (at most 3 s a block), or a quick few (tests, smoke checks)"))
                yield from labelled("dtype", Select(
                    DTYPES, id="dtype", value="float32", allow_blank=False, compact=True,
                    tooltip="Numeric type of the weights and the input"))
            with Horizontal(classes="form-row"):
                yield Button("Start (m)", id="start", variant="primary", compact=True)
                yield Button("Cancel (c)", id="cancel", variant="error", compact=True, disabled=True)
                yield Button("Calibrate (k)", id="calibrate", compact=True)
                yield from labelled("budget", Input(
                    id="budget", compact=True, value="10m", placeholder="10m",
                    tooltip="Device time the calibration may spend measuring probes (10m, 90s, 1h)"))
                yield Static("", id="measure-model", classes="inline-status")
        yield Static("Trace a model in Models (1), then press m.", id="measure-status", classes="status-line")
        yield ProgressBar(id="measure-progress", total=1, show_eta=False)  # determinate: no animation at rest
        yield RichLog(id="measure-log", markup=True, wrap=True, max_lines=2000)
        yield self.status_line()
        yield Footer(compact=True, show_command_palette=False)  # room for the keys at 80 columns; Ctrl+P still works

    def on_mount(self) -> None:
        s = self.gapp.ui_state
        self._filling = True
        with self.prevent(Input.Changed, Select.Changed):
            for field, value in (("#host", s.host), ("#identity", s.identity), ("#known-hosts", s.known_hosts),
                                 ("#remote-python", s.remote_python or "python3"), ("#threads", s.threads)):
                self.query_one(field, Input).value = value
            for field, value, choices in (("#mode", s.mode, MODES), ("#precision", s.precision, PRECISIONS),
                                          ("#dtype", s.dtype, DTYPES)):
                if value in [v for _, v in choices]:
                    self.query_one(field, Select).value = value
            if s.host:
                self.query_one("#target", Select).value = "ssh"
        self._filling = False
        super().on_mount()
        self.find_accelerator()

    @work(thread=True, exclusive=True, exit_on_error=False, group="accelerator", description="looking for a GPU")
    def find_accelerator(self) -> None:
        """Offer CUDA only when this machine has it (torch is imported here, off the event loop)."""
        import torch  # slow: in a worker, so the app starts without waiting for it

        if torch.cuda.is_available():
            self.post_message(AcceleratorFound("cuda", torch.cuda.get_device_name(0)))

    def on_accelerator_found(self, message: AcceleratorFound) -> None:
        select = self.query_one("#target", Select)
        value = select.value
        with self.prevent(Select.Changed):
            select.set_options([CPU_TARGET, (f"this machine (CUDA: {message.name})", message.kind), SSH_TARGET])
            select.value = value

    def sync(self) -> None:
        ws = self.gapp.workspace
        label = self.query_one("#measure-model", Static)
        label.update(f"model: [b]{ws.label()}[/b], {len(ws.chain)} blocks" if ws.ready else "no model traced yet")
        if not ws.ready or self.running or self._chain is ws.chain:
            return
        # another model than the one the status and the log speak of: nothing of the previous one stays
        if self._chain is not None:
            self.log_line(f"[dim]── model changed: {ws.label()} ──[/]")
        self._chain, self.last = ws.chain, None
        self.query_one(ProgressBar).update(total=1, progress=0)
        self.query_one("#measure-status", Static).update(
            f"Choose the target and press [b]m[/b] to measure every block of {ws.label()}; [b]c[/b] cancels"
            " (finished blocks are kept); [b]f[/b] measures again what is already stored.")

    # ------------------------------------------------------------------ the form

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._filling:
            return
        s = self.gapp.ui_state
        if event.input.id == "host":
            # the host field drives the target: a host typed is where to measure, none is this machine
            target = self.query_one("#target", Select)
            want = "ssh" if event.value.strip() else "cpu"
            if (target.value == "ssh") != (want == "ssh"):
                target.value = want
        elif event.input.id == "threads":
            s.threads = event.value.strip()
        elif event.input.id == "remote-python":
            s.remote_python = event.value.strip() or "python3"

    def on_select_changed(self, event: Select.Changed) -> None:
        if self._filling or event.select.id not in ("mode", "precision", "dtype"):
            return
        setattr(self.gapp.ui_state, event.select.id, str(event.value))

    # ------------------------------------------------------------------ start / cancel

    def config(self, force: bool = False) -> Any:
        from ...measure.engine import MeasureConfig, parse_modes  # slow (torch), as the measure imports below
        from ...measure.timer import Precision  # slow (torch)

        target = str(self.query_one("#target", Select).value)
        threads_text = self.query_one("#threads", Input).value.strip()
        try:
            threads = int(threads_text) if threads_text else None
        except ValueError:
            raise BadInput(f"threads {threads_text!r} is not a whole number; give 1, 2, ... or leave it empty for all")
        precision = Precision.quick() if self.query_one("#precision", Select).value == "quick" else Precision()
        return MeasureConfig(
            modes=parse_modes(str(self.query_one("#mode", Select).value)),
            device="cuda" if target == "cuda" else "cpu",
            threads=threads,
            dtype=str(self.query_one("#dtype", Select).value),
            precision=precision,
            force=force,
        )

    def ssh_fields(self) -> dict[str, str]:
        """What the SSH fields hold now (typed, not yet used): host, identity, known_hosts, remote_python."""
        return {key: self.query_one(f"#{wid}", Input).value.strip()
                for key, wid in (("host", "host"), ("identity", "identity"), ("known_hosts", "known-hosts"),
                                 ("remote_python", "remote-python"))}

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

    def action_remeasure(self) -> None:
        self.action_start(force=True)

    def action_start(self, accept_new_host_key: bool = False, force: bool = False) -> None:
        ws = self.gapp.workspace
        if self.running:
            self.notify("A measurement is running: cancel it first (c).", title="Measure", severity="warning")
            return
        if not ws.ready:
            self.notify("Trace a model first: press 1, pick one, Enter.", title="Measure", severity="warning")
            return
        try:
            config = self.config(force)
            config.check()
            ssh = self.ssh_options(accept_new_host_key) if self.query_one("#target", Select).value == "ssh" else None
        except (BadInput, ValueError) as exc:
            self.notify(str(exc), title="Measure", severity="error")
            return
        s = self.gapp.ui_state
        if ssh is not None:
            s.host, s.identity, s.known_hosts = ssh.host, ssh.identity or "", ssh.known_hosts or ""
        self._config, self._chain = config, ws.chain
        self._eta = Eta(len(ws.chain), config.modes, config.precision, config.full)
        self._target_words = ssh.label if ssh is not None else f"this machine ({config.device.upper()})"
        self._cancel = threading.Event()
        if force:
            self.log_line("[b]measuring again[/b]: the stored rows of this model and setting are replaced")
        self._after_host_key = "measure"
        self.measure(ws.chain, config, ssh, self._cancel)
        self.set_running(True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="measure", description="measurement")
    def measure(self, chain: Any, config: Any, ssh: Any, cancel: threading.Event) -> None:
        """Measure ``chain`` here (``ssh`` None) or on an SSH host; rows go to the store as they finish."""
        from ...measure import engine  # slow (torch), as the imports below
        from ...measure.remote_engine import measure_remote  # slow (torch)

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
            result = engine.measure(chain, config, store=store, progress=progress, cancel=cancel,
                                    command="gapp (TUI)")
        else:
            session = self._connect(ssh)
            if session is None:
                return
            with session:
                self.post_message(MeasureStarted(len(chain), ssh.label))
                result = measure_remote(session, chain, config, store=store, remote_python=ssh.remote_python,
                                        progress=progress, cancel=cancel, command="gapp (TUI)",
                                        log=lambda line: self.post_message(MeasureLog(line)))
        self.post_message(MeasureDone(result, cancelled=result.interrupted is not None))

    def _connect(self, ssh: Any) -> Any:
        """A worker's SSH session, or None once the user is asked about a host key not in known_hosts."""
        from ...ssh import UnknownHostKey  # slow (paramiko)

        self.post_message(MeasureLog(f"connecting to {ssh.label} …"))
        try:
            session = ssh.connect()
        except UnknownHostKey as exc:
            self.post_message(HostKeyQuestion(exc.host_label, ssh.port or 22, exc.key_type, exc.fingerprint))
            return None
        if session.recorded_host_key:
            self.post_message(MeasureLog(f"recorded host key {session.recorded_host_key}"))
        return session

    def on_host_key_question(self, message: HostKeyQuestion) -> None:
        self.set_running(False)
        force = bool(self._config is not None and self._config.force)

        def answered(accept: bool | None) -> None:
            if accept:
                self.log_line(f"accepted {message.key_type} {message.fingerprint}")
                if self._after_host_key == "calibrate":
                    self.action_calibrate(accept_new_host_key=True, remeasure=self._remeasure)
                else:
                    self.action_start(accept_new_host_key=True, force=force)
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
        buttons = {b: self.query_one(f"#{b}", Button) for b in ("start", "calibrate", "cancel")}
        on_buttons = self.focused in buttons.values() or self.focused is None
        buttons["cancel"].disabled = not running
        buttons["start"].disabled = buttons["calibrate"].disabled = running
        if on_buttons or (running and self.focused is self.query_one("#budget", Input)):
            # a disabled button's focus would fall to the next field, where c would type instead of cancelling
            buttons["cancel" if running else "start"].focus()
        if running:
            self.started_at = time.monotonic()
            self.query_one(ProgressBar).update(total=1, progress=0)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        elif event.button.id == "cancel":
            self.action_cancel()
        elif event.button.id == "calibrate":
            self.action_calibrate()

    # ------------------------------------------------------------------ progress

    def log_line(self, text: str) -> None:
        self.query_one(RichLog).write(text)

    def on_measure_started(self, message: MeasureStarted) -> None:
        self.log_line(f"[b]measuring[/b] {self.gapp.workspace.label()} on {message.target}")

    def on_measure_log(self, message: MeasureLog) -> None:
        self.log_line(message.text)

    def _remaining(self, now: float) -> str:
        left = self._eta.remaining(now) if self._eta is not None else None
        if left is None:
            return ""
        if left.bound:
            return f" · remaining at most {format_clock(left.seconds)}" if left.seconds >= 1 else " · finishing"
        return f" · remaining ~{format_clock(left.seconds)}"

    def on_measure_progress(self, message: MeasureProgress) -> None:
        p = message.event
        now = time.monotonic()
        if self._eta is not None:
            self._eta.update(p, now)
        bar = self.query_one(ProgressBar)
        status = self.query_one("#measure-status", Static)
        if p.phase == "prepare":
            status.update(f"preparing: {p.name}")
            return
        if p.phase == "done":
            return
        bar.update(total=max(1, p.total), progress=p.index)
        tail = f" · elapsed {format_clock(now - (self.started_at or now))}" + self._remaining(now)
        if p.phase == "in-context":
            # every run times the whole chain; a block is kept once its interval is narrow enough
            chain = f" · one run {p.estimate_ms:.2f} ms" if p.estimate_ms is not None else ""
            left = p.total - p.index
            waiting = (f" · still narrowing [b]{p.name}[/b]" + (f" and {left - 1} more" if left > 1 else "")
                       if p.name and left > 0 else " · all timed")
            status.update(f"[b]in-context[/b]: timing all {p.total} blocks in every run of the model ·"
                          f" {p.index}/{p.total} settled" + waiting + chain + tail)
        elif p.phase == "full":
            status.update(f"[b]full model[/b]: timing the unsplit model{tail}")
        else:
            est = f" · last {p.estimate_ms:.2f} ms" if p.estimate_ms is not None else ""
            doing = "from the store" if p.skipped else ("timed" if p.estimate_ms is not None else "timing")
            status.update(f"[b]{p.phase}[/b] block {min(p.index + 1, p.total)}/{p.total}: {doing}"
                          f" [b]{p.name}[/b]{est} · sum {p.sum_ms:.1f} ms" + tail)
        if p.estimate_ms is not None and p.phase in ("standalone", "full", "overhead"):
            tag = " [dim](stored)[/]" if p.skipped else ""
            self.log_line(f"{p.phase:>10}  {p.index:>3}/{p.total}  {p.name:<24} {p.estimate_ms:9.3f} ms{tag}")
        elif p.phase == "in-context" and p.index != self._logged_index:
            self._logged_index = p.index
            chain = f"run {p.estimate_ms:9.3f} ms" if p.estimate_ms is not None else ""
            what = "all timed" if p.index >= p.total else f"settled; still timing {p.name or '-':<16}"
            self.log_line(f"{p.phase:>10}  {p.index:>3}/{p.total}  {what} {chain}")

    def _flags(self, result: Any) -> list[str]:
        """What not to trust in ``result`` (:func:`gapp_tui.measure.sanity.check_result`)."""
        predictor, name = None, "the predictor"
        path = self.gapp.workspace.predictor
        if path:
            try:
                from ...predict import registry  # slow (torch): loaded already when a predictor was chosen

                predictor, name = predictor_setting(registry.load(path).training), f"the predictor {Path(path).stem}"
            except (BadInput, OSError, ValueError):
                predictor = None
        load = os.getloadavg()[0] if is_here(result.device or {}) and hasattr(os, "getloadavg") else None
        return [str(f) for f in check_result(result, predictor=predictor, predictor_name=name, load=load)]

    def on_measure_done(self, message: MeasureDone) -> None:
        self.set_running(False)
        r = message.result
        self.last = r
        n = 0 if r is None else r.measured
        self.notify(f"{n} rows measured" + (" (cancelled)" if message.cancelled else ""), title="Measure", timeout=3)
        status = self.query_one("#measure-status", Static)
        if self._chain is not self.gapp.workspace.chain:
            # another model was traced while this one was measured: its rows are stored, but nothing shows them
            self.log_line(f"[dim]finished measuring the previous model: {n} rows stored[/]")
            self.sync()
            return
        if r is None:
            self.gapp.set_measurement(r)
            status.update("stopped before anything was measured")
            return
        parts = r.setting_parts or {}
        where = machine_words(r.device, r.device.get("key", "")) if r.device else self._target_words
        words = f"measured on {where}" + (f", {threads_words(parts['threads'])}" if parts.get("threads") else "")
        self.gapp.set_measurement(r, words.replace("on this machine", "here"))
        sums = [f"{m}: sum {v['sum_ms']:.2f} ms" + (f" vs full {v['full_ms']:.2f} ms ({v['gap_pct']:+.1f}%)"
                                                     if v.get("full_ms") and v.get("gap_pct") is not None else "")
                for m, v in r.sums.items()]
        head = "[yellow]cancelled[/]" if message.cancelled else "[green]done[/]"
        what = (f"{r.measured} measured, {r.skipped} from the store" if r.measured
                else f"nothing timed: all {r.skipped} rows were in the store already ([b]f[/b] measures again)")
        lines = [" · ".join([f"{head} on {where}: {what}", *sums, "3: see Results"])]
        flags = self._flags(r) if not message.cancelled else []
        lines += [f"[b yellow]⚠[/] {f}" for f in flags]
        if flags:
            lines.append("[b]f re-measures[/b] (replaces these rows)")
        status.update("\n".join(lines))
        self.log_line(f"{head}: {r.measured} rows measured, {r.skipped} already stored ({r.db or 'memory'})")
        for f in flags:
            self.log_line(f"[yellow]⚠ {f}[/]")
        bar = self.query_one(ProgressBar)
        if not message.cancelled:
            bar.update(total=1, progress=1)

    # ------------------------------------------------------------------ calibrate

    def _threads(self) -> int | None:
        text = self.query_one("#threads", Input).value.strip()
        try:
            threads = int(text) if text else None
        except ValueError:
            threads = 0
        if threads is not None and threads < 1:
            raise BadInput(f"threads {text!r} is not a positive whole number; give 1, 2, ... or leave it empty for all")
        return threads

    def action_recalibrate(self) -> None:
        self.action_calibrate(remeasure=True)

    def action_calibrate(self, accept_new_host_key: bool = False, remeasure: bool = False) -> None:
        """Measure the probe suite on the target within the budget and adapt a predictor to it (``gapp calibrate``)."""
        if self.running:
            self.notify("A measurement is running: cancel it first (c).", title="Calibrate", severity="warning")
            return
        target = str(self.query_one("#target", Select).value)
        try:
            if target == "cuda":
                raise BadInput("calibration measures on a CPU: choose this machine (CPU) or an SSH host as the target")
            budget_s = parse_duration(self.query_one("#budget", Input).value.strip() or "10m", "budget")
            threads = self._threads()
            ssh = self.ssh_options(accept_new_host_key) if target == "ssh" else None
        except (BadInput, ValueError) as exc:
            self.notify(one_line(exc), title="Calibrate", severity="error")
            return
        if ssh is not None:
            s = self.gapp.ui_state
            s.host, s.identity, s.known_hosts = ssh.host, ssh.identity or "", ssh.known_hosts or ""
        base = self.gapp.workspace.predictor  # adapt the predictor chosen in Results, else the shipped one
        self._after_host_key = "calibrate"
        self._remeasure = remeasure
        self._target_words = ssh.label if ssh is not None else "this machine (CPU)"
        self._cancel = threading.Event()
        self.calibration = None
        self.log_line(f"[b]calibrating[/b] {self._target_words} within {format_clock(budget_s)} of device time"
                      f" ({threads_words(threads)}), adapting {Path(base).stem if base else 'the shipped predictor'}")
        self.query_one("#measure-status", Static).update(
            f"[b]calibrate[/b]: measuring a speed-check probe on {self._target_words}…")
        self.calibrate_device(ssh, threads, budget_s, base, self._cancel, remeasure)
        self.set_running(True)
        self.query_one(ProgressBar).update(total=budget_s, progress=0)

    @work(thread=True, exclusive=True, exit_on_error=False, group="calibrate", description="calibration")
    def calibrate_device(self, ssh: Any, threads: int | None, budget_s: float, base: str | None,
                         cancel: threading.Event, remeasure: bool = False) -> None:
        """The calibration of ``gapp calibrate`` on this machine (``ssh`` None) or the SSH host; rows are stored."""
        from ...predict import calibrate as cal  # slow (torch), as the imports below
        from ...predict.predictor import Predictor, default_predictor_path  # slow (torch)

        store = self.gapp.worker_store()
        base_path = base or str(default_predictor_path())
        base_pred = Predictor.load(base_path)
        emit = lambda e: self.post_message(CalibrateEvent(e))  # noqa: E731
        try:
            if ssh is None:
                runner = cal.LocalRunner(store, threads, remeasure=remeasure)
                pred, report = cal.calibrate(runner, base_pred, budget_s, on_event=emit, cancel=cancel,
                                             command="gapp (TUI) calibrate")
            else:
                session = self._connect(ssh)
                if session is None:
                    return
                with session:
                    session.check_python(ssh.remote_python)
                    runner = cal.RemoteRunner(session, store, threads, ssh.remote_python,
                                              log=lambda line: self.post_message(MeasureLog(line)), remeasure=remeasure)
                    pred, report = cal.calibrate(runner, base_pred, budget_s, on_event=emit, cancel=cancel,
                                                 command="gapp (TUI) calibrate")
        except cal.Interrupted as exc:
            self.post_message(CalibrateDone(None, stopped=str(exc)))
            return
        cal.record(pred, report, store, base_path=base_path)
        self.post_message(CalibrateDone(report))

    def on_calibrate_event(self, message: CalibrateEvent) -> None:
        e = message.event
        kind = e["event"]
        status = self.query_one("#measure-status", Static)
        if "spent_s" in e and "budget_s" in e:
            self.query_one(ProgressBar).update(total=max(e["budget_s"], 1e-9), progress=min(e["spent_s"], e["budget_s"]))
        if kind == "estimate":
            line = (f"this device runs the probes {e['speed_vs_base']:.2f}x the base predictor's times · estimated:"
                    f" {e['core_probes']} core probes ~{format_clock(e['core_s'])}, all {e['pool_probes']}"
                    f" ~{format_clock(e['pool_s'])} · budget {format_clock(e['budget_s'])}")
            self.log_line(line)
            status.update(f"[b]calibrate[/b]: {line}")
        elif kind == "round" and e["phase"] == "start":
            self.log_line(f"[b]{e['kind']}[/b]: measuring {e['probes']} probe block(s)")
        elif kind == "round":
            self.log_line(f"  {e['kind']} done in {e['seconds']:.1f} s · device time {format_clock(e['spent_s'])}"
                          f" of {format_clock(e['budget_s'])}")
        elif kind == "block":
            self.log_line(f"  [dim]{e['index']}/{e['total']} {e['name'][:48]} {e['ms']:.3f} ms[/]")
            status.update(f"[b]calibrate[/b] ({e['kind']}): probe {e['index']}/{e['total']} {e['name'][:40]}"
                          f" {e['ms']:.3f} ms · device time {format_clock(e['spent_s'])} of {format_clock(e['budget_s'])}")
        elif kind == "steadiness":
            self.log_line(f"  [yellow]warning[/]: {e['warning']}" if e["moved"] else
                          f"  steady: the reference probes ran {e['ratio']:.2f}x their first time")
        elif kind == "adapted" and e.get("cv"):
            self.log_line(f"  adapted to {e['probes']} probes ({e['method']}): held-out probes"
                          f" {e['cv'].get('within10', float('nan')):.0f}% within ±10%,"
                          f" MAPE {e['cv'].get('mape', float('nan')):.1f}%")

    def on_calibrate_done(self, message: CalibrateDone) -> None:
        self.set_running(False)
        status = self.query_one("#measure-status", Static)
        if message.report is None:
            self.log_line(f"[yellow]calibration stopped[/]: {message.stopped}")
            status.update(f"[yellow]calibration stopped[/]: {message.stopped}")
            self.notify("the probes measured are kept; k resumes", title="Calibration stopped", timeout=4)
            return
        r = self.calibration = message.report
        held = r.get("held_out") or {}
        within, mape = held.get("within10"), held.get("mape")
        accuracy = (f"held-out probes: [b]{within:.0f}%[/b] within ±10%, MAPE [b]{mape:.1f}%[/b]"
                    if within is not None and mape is not None else "held-out probes: too few to judge")
        name = Path(r["predictor"]).stem
        iv = r.get("interval")
        text = (f"[green]calibrated[/] {r['machine']}: {r['probes_measured']} probes in"
                f" {format_clock(r['device_seconds'])} of {format_clock(r['budget_s'])} · {accuracy}"
                + (f" · {100 * iv['level']:.0f}% interval from {iv['samples']} held-out probes" if iv else "")
                + f"\npredictor [b]{name}[/b] recorded as {r['device_key']}'s own: in Partition (4) write"
                  f" [b]DEVICE=predicted:{name}[/b]")
        steady = r.get("steadiness") or {}
        if steady.get("moved"):
            fixed = steady.get("corrected")
            text += (f"\n[yellow]the device's speed moved[/]: its reference probes ran {steady['ratio']:.2f}x their first"
                     + (f" time; the labels were corrected to the speed most probes saw ({fixed['end']:.2f}x at the end),"
                        " approximately" if fixed else " time, so these times can be off by as much")
                     + ": when it is quiet, K calibrates again measuring every probe anew")
        status.update(text)
        self.log_line(text)
        self.query_one(ProgressBar).update(total=1, progress=1)
        self.notify(f"{name}: {accuracy}" + (" · the device's speed moved: K recalibrates" if steady.get("moved") else ""),
                    title="Calibrated", timeout=6, severity="warning" if steady.get("moved") else "information")

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        if worker.group == "calibrate" and state != WorkerState.SUCCESS:
            self.set_running(False)
            if state == WorkerState.ERROR and worker.error is not None:
                self.log_line(f"[red]calibration failed:[/] {one_line(worker.error)}")
                self.query_one("#measure-status", Static).update(f"[red]calibration failed:[/] {one_line(worker.error)}")
            return
        if worker.group == "calibrate":
            return
        if worker.group == "measure" and state != WorkerState.SUCCESS:
            self.set_running(False)
            if state == WorkerState.ERROR and worker.error is not None:
                self.log_line(f"[red]failed:[/] {one_line(worker.error)}")
                self.query_one("#measure-status", Static).update(f"[red]failed:[/] {one_line(worker.error)}")
