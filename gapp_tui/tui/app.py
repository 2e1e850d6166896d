"""The GAPP terminal app: Models, Measure, Results and Partition as Textual modes.

Every long operation (tracing, measuring, a pipeline run) runs in a thread
worker started here; threads reach the UI only through ``post_message``, and
worker failures are handled in one ``Worker.StateChanged`` handler, which
shows them in the app — an error never ends the app.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from ..errors import BadInput
from .commands import GappCommands
from .messages import HostKeyQuestion, MeasureDone, MeasureLog, MeasureProgress, MeasureStarted, PipelineDone, Predicted, Traced
from .sections.help import HelpScreen
from .sections.measure import MeasureSection
from .sections.models import ModelsSection
from .sections.partition import PartitionSection
from .sections.results import ResultsSection
from .state import UiState
from .workspace import Workspace

SECTION_CLASSES = {
    "models": ModelsSection,
    "measure": MeasureSection,
    "results": ResultsSection,
    "partition": PartitionSection,
}


def error_text(exc: BaseException) -> str:
    """One line for a failure: a user-fixable error as it is, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, BadInput):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_log_path() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("gapp", appauthor=False)) / "tui-errors.log"


class GappApp(App[None]):
    """The terminal app. ``state`` overrides the remembered state (tests); ``remember=False`` never writes it."""

    TITLE = "GAPP"
    SUB_TITLE = "GNN-assisted pipeline partitioning"
    CSS_PATH = Path(__file__).parent / "gapp.tcss"  # absolute: subclasses (tests, benchmarks) live elsewhere
    MODES = SECTION_CLASSES
    DEFAULT_MODE = "models"
    COMMANDS = App.COMMANDS | {GappCommands}
    BINDINGS = [
        Binding("1", "section('models')", "Models", id="section.models", tooltip="Pick and trace a model"),
        Binding("2", "section('measure')", "Measure", id="section.measure", tooltip="Time the blocks here or over SSH"),
        Binding("3", "section('results')", "Results", id="section.results", tooltip="Measured vs predicted, plots"),
        Binding("4", "section('partition')", "Partition", id="section.partition", tooltip="Cut the model into a pipeline"),
        Binding("question_mark,f1", "help", "Help", id="app.help", tooltip="Every key, and where to start"),
        Binding("escape", "leave_field", "Leave field", show=False, id="app.leave_field",
                tooltip="Leave the text field (then the number keys switch sections)"),
        Binding("q", "quit", "Quit", show=False, id="app.quit", tooltip="Quit (state is remembered)"),
    ]

    def __init__(self, state: UiState | None = None, remember: bool = True, workspace: Workspace | None = None,
                 safety_net: bool = True) -> None:
        super().__init__()
        #: turn an unexpected exception in a handler into a notification instead of an exit (tests switch it off)
        self.safety_net = safety_net
        self.ui_state = state if state is not None else UiState.load()
        self.remember = remember
        self.workspace = workspace or Workspace()
        #: section name -> its screen once mounted (messages are forwarded to it)
        self.sections: dict[str, Screen] = {}
        self._store: Any = None
        self._predict: Any = None
        self._predictions: dict[tuple[int, str | None], list[float]] = {}
        self._predicting: set[tuple[int, str | None]] = set()
        self._predicted_models: dict[str, tuple[Any, list[float]]] = {}
        self.last_plan_path: Path | None = None
        self._measure_cancel: threading.Event | None = None
        self._pending_measure: tuple[Any, Any, Any] | None = None

    def on_mount(self) -> None:
        if self.workspace.ready:
            self.sub_title = self.workspace.label()

    # ------------------------------------------------------------------ sections

    def action_section(self, name: str) -> None:
        if self.current_mode != name:
            self.switch_mode(name)

    def action_leave_field(self) -> None:
        """Esc in a field: focus the section's main widget, so single-key bindings work again."""
        screen = self.screen
        target = getattr(screen, "AUTO_FOCUS", None)
        if target and isinstance(screen, Screen) and not isinstance(screen, HelpScreen):
            try:
                screen.query_one(target).focus()
            except Exception:  # a screen without that widget: nothing to do
                pass

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Any:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help: keys", "Every key of every section", self.action_help)

    def forward(self, section: str, message: Any) -> None:
        """Hand a worker's message to a section (if it has been opened)."""
        target = self.sections.get(section)
        if target is not None:
            message.bubble = False  # handled by the section; it must not come back up to the app
            target.post_message(message)

    # ------------------------------------------------------------------ tracing

    @work(thread=True, exclusive=True, exit_on_error=False, group="trace", description="tracing")
    def trace(self, spec: Any, granularity: str) -> None:
        """Trace ``spec`` into a BlockChain (real tensors on the CPU, so it can be measured)."""
        from ..blocks import BlockChain

        t0 = time.perf_counter()
        chain = BlockChain.from_spec(spec, granularity, device="cpu")
        if not get_current_worker().is_cancelled:
            self.post_message(Traced(chain, time.perf_counter() - t0))

    def on_traced(self, message: Traced) -> None:
        ws = self.workspace
        ws.spec, ws.chain, ws.trace_seconds = message.chain.spec, message.chain, message.seconds
        ws.measurement, ws.cuts = None, ()
        s = self.ui_state
        spec = message.chain.spec
        s.model, s.batch_size, s.num_classes = spec.name, spec.batch_size, spec.num_classes
        s.input_size = str(spec.input_size or "")
        s.granularity = message.chain.granularity
        self.sub_title = spec.label()
        self.forward("models", Traced(message.chain, message.seconds))
        self.notify(f"{spec.label()}: {len(message.chain)} blocks", title="Traced", timeout=3)

    # ------------------------------------------------------------------ measuring

    @work(thread=True, exclusive=True, exit_on_error=False, group="measure", description="measurement")
    def measure(self, chain: Any, config: Any, ssh: dict[str, Any] | None = None,
                accept_new_host_key: bool = False) -> None:
        """Measure ``chain`` here (``ssh`` None) or on an SSH host; rows go to the store as they finish."""
        from ..measure.engine import measure as measure_local

        cancel = threading.Event()
        self._measure_cancel = cancel
        store = self._store_or_none()

        last = {"key": None, "at": 0.0}

        def progress(p: Any) -> None:
            # in-context timing reports every end-to-end run (hundreds a second): pass on each
            # change of phase or block count, and otherwise at most ten reports a second
            now = time.monotonic()
            key = (p.phase, p.index, p.skipped)
            if key == last["key"] and now - last["at"] < 0.1:
                return
            last["key"], last["at"] = key, now
            self.forward("measure", MeasureProgress(p))

        if ssh is None:
            self.forward("measure", MeasureStarted(len(chain), f"this machine ({config.device})"))
            result = measure_local(chain, config, store=store, progress=progress, cancel=cancel, command="gapp (TUI)")
        else:
            from ..measure.remote import UnknownHostKey, connect
            from ..measure.remote_engine import measure_remote

            self.forward("measure", MeasureLog(f"connecting to {ssh['label']} …"))
            try:
                session = connect(ssh["host"], port=ssh["port"], user=ssh["user"], identity=ssh["identity"],
                                  known_hosts=ssh["known_hosts"], accept_new_host_key=accept_new_host_key)
            except UnknownHostKey as exc:
                self._pending_measure = (chain, config, ssh)
                self.post_message(HostKeyQuestion(exc.host_label, ssh["port"] or 22, exc.key_type, exc.fingerprint))
                return
            with session:
                if session.recorded_host_key:
                    self.forward("measure", MeasureLog(f"recorded host key {session.recorded_host_key}"))
                self.forward("measure", MeasureStarted(len(chain), ssh["label"]))
                result = measure_remote(session, chain, config, store=store, remote_python=ssh["remote_python"],
                                        progress=progress, cancel=cancel, command="gapp (TUI)",
                                        log=lambda line: self.forward("measure", MeasureLog(line)))
        self.post_message(MeasureDone(result, cancelled=result.interrupted is not None))

    def cancel_measure(self) -> None:
        if self._measure_cancel is not None:
            self._measure_cancel.set()

    def on_host_key_question(self, message: HostKeyQuestion) -> None:
        from .widgets.measure.hostkey import HostKeyScreen

        section = self.sections.get("measure")
        if section is not None:
            section.set_running(False)  # type: ignore[attr-defined]

        def answered(accept: bool | None) -> None:
            pending, self._pending_measure = self._pending_measure, None
            if accept and pending is not None:
                chain, config, ssh = pending
                if section is not None:
                    section.log_line(f"accepted {message.key_type} {message.fingerprint}")  # type: ignore[attr-defined]
                    section.set_running(True)  # type: ignore[attr-defined]
                self.measure(chain, config, ssh, True)
            else:
                self.notify(f"{message.host}: host key refused; nothing was measured", title="SSH", severity="warning")

        known = self.ui_state.known_hosts or "~/.ssh/known_hosts"
        self.push_screen(HostKeyScreen(message.host, message.key_type, message.fingerprint, known), answered)

    def on_measure_done(self, message: MeasureDone) -> None:
        self.workspace.measurement = message.result
        if message.result is not None:
            self.workspace.device = message.result.device.get("key")
        self.forward("measure", MeasureDone(message.result, message.cancelled))
        results = self.sections.get("results")
        if results is not None and self.screen is results:
            results.sync()  # type: ignore[attr-defined]
        n = 0 if message.result is None else message.result.measured
        self.notify(f"{n} rows measured" + (" (cancelled)" if message.cancelled else ""), title="Measure", timeout=3)

    # ------------------------------------------------------------------ pipeline runs

    @work(thread=True, exclusive=True, exit_on_error=False, group="pipeline", description="pipeline run")
    def run_pipeline(self, path: Path, items: int = 30) -> None:
        """Run a saved plan for real (one gloo process per stage) and report measured against estimated."""
        from ..pipeline.run import run_plan

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
        section = self.sections.get("partition")
        if section is not None:
            section.pipeline_done(text)  # type: ignore[attr-defined]
        self.notify(f"{r.throughput_per_s:.3g} items/s measured", title="Pipeline run", timeout=4)

    # ------------------------------------------------------------------ shared resources

    def store(self) -> Any:
        """The measurement store (``$GAPP_DB`` or the default file), opened once; None when unusable."""
        if self._store is None:
            from ..store import Store

            try:
                self._store = Store()
            except (BadInput, OSError) as exc:
                self.notify(error_text(exc), title="Store", severity="error")
                return None
        return self._store

    def _store_or_none(self) -> Any:
        """The store from a worker thread (errors surface in the worker, not as a notification here)."""
        if self._store is None:
            from ..store import Store

            self._store = Store()
        return self._store

    def predict_fn(self) -> Any:
        """A callable chain -> per-block seconds from the chosen predictor, or None."""
        return self._predict

    # ------------------------------------------------------------------ predictors

    def predictors(self) -> list[tuple[str, Path]]:
        """Predictor files to choose from: the shipped one, ``$GAPP_PREDICTORS`` and ``<user data dir>/gapp/predictors``."""
        from platformdirs import user_data_dir

        from ..predict.predictor import default_predictor_path

        found: list[Path] = []
        if default_predictor_path().is_file():
            found.append(default_predictor_path())
        folders = [Path(user_data_dir("gapp", appauthor=False)) / "predictors"]
        if os.environ.get("GAPP_PREDICTORS"):
            folders.insert(0, Path(os.environ["GAPP_PREDICTORS"]))
        for folder in folders:
            if folder.is_dir():
                found += sorted(folder.glob("*.pt"))
        return [(p.stem, p) for p in dict.fromkeys(found)]

    def choose_predictor(self, path: str | None) -> None:
        """Use the predictor saved at ``path`` (None: none); errors are shown, the previous choice kept."""
        if not path:
            self._predict, self.workspace.predictor = None, None
        else:
            from ..predict.predictor import Predictor

            try:
                predictor = Predictor.load(path)
            except (BadInput, OSError, RuntimeError, ValueError) as exc:
                self.notify(error_text(exc), title="Predictor", severity="error")
                return

            def predict(chain: Any) -> list[float]:
                from ..features import extract

                return [float(ms) / 1e3 for ms in predictor.block_times(extract(chain))]

            self._predict = predict
            self.workspace.predictor = path
            self.notify(f"{Path(path).name}: trained for {predictor.device or 'an unnamed device'}",
                        title="Predictor", timeout=3)
        self._refresh_views()

    def _refresh_views(self) -> None:
        for name in ("results", "partition"):
            section = self.sections.get(name)
            if section is not None and section is self.screen:
                section.sync()  # type: ignore[attr-defined]

    def predicted_times(self) -> list[float] | None:
        """The chosen predictor's per-block seconds for the current chain, or None.

        The first call for a chain starts a worker (features + GNN take a moment);
        the views refresh when it is done.
        """
        ws = self.workspace
        if self._predict is None or not ws.ready:
            return None
        key = (id(ws.chain), ws.predictor)
        if key in self._predictions:
            return self._predictions[key]
        if key not in self._predicting:
            self._predicting.add(key)
            self.predict_chain(ws.chain, key, self._predict)
        return None

    @work(thread=True, exclusive=False, exit_on_error=False, group="predict", description="prediction")
    def predict_chain(self, chain: Any, key: tuple[int, str | None], predict: Any) -> None:
        times = predict(chain)
        self.post_message(Predicted(chain, key, times))

    def on_predicted(self, message: Predicted) -> None:
        self._predictions[message.key] = message.times
        self._predicted_models[message.chain.spec.name] = (message.chain, message.times)
        self._refresh_views()

    def other_points(self, exclude: str) -> list[Any]:
        """Scatter points of the other models predicted in this session (measured on the same device)."""
        from .devices import measured_column
        from .widgets.results.plots import Point

        store = self._store
        if store is None or self.workspace.device is None:
            return []
        points = []
        for name, (chain, predicted) in self._predicted_models.items():
            if name == exclude:
                continue
            found = measured_column(store, chain, self.workspace.device)
            if found is None:
                continue
            for t, p, block in zip(found[0], predicted, chain.blocks):
                if t == t:  # not NaN
                    points.append(Point(t * 1e3, p * 1e3, chain.spec.family, block.name))
        return points

    def plan_path(self, plan: Any) -> Path:
        """Where a saved plan goes: ``$GAPP_PLANS`` or ``<user data dir>/gapp/plans``."""
        base = os.environ.get("GAPP_PLANS")
        if base:
            folder = Path(base)
        else:
            from platformdirs import user_data_dir

            folder = Path(user_data_dir("gapp", appauthor=False)) / "plans"
        name = str(plan.model.get("name", "model")).replace(":", "_").replace("/", "_")
        return folder / f"{name}-{'-'.join(plan.devices)}.json"

    # ------------------------------------------------------------------ worker failures

    @on(Worker.StateChanged)
    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            self.notify(error_text(worker.error), title=f"{worker.description or worker.group} failed",
                        severity="error", timeout=10)
            self.log.error(worker.error)
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED, WorkerState.SUCCESS):
            for section in self.sections.values():
                handler = getattr(section, "worker_finished", None)
                if handler is not None:
                    handler(worker, event.state)
            if event.state != WorkerState.SUCCESS and worker.group == "trace":
                models = self.sections.get("models")
                if models is not None:
                    models.trace_failed()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ the safety net

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected error in a handler: show it, write the traceback to a log file, keep running."""
        if not self.safety_net or not self.is_running or not isinstance(error, Exception):
            super()._handle_exception(error)
            return
        path = error_log_path()
        try:
            import traceback

            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
                fh.write("".join(traceback.format_exception(error)))
        except OSError:
            pass
        self.notify(f"{error_text(error)}\n(traceback in {path})", title="Unexpected error", severity="error",
                    timeout=15)

    # ------------------------------------------------------------------ exit

    def remember_state(self) -> None:
        if self.remember:
            self.ui_state.save()

    async def action_quit(self) -> None:
        self.remember_state()
        self.workers.cancel_all()
        self.exit()


def run() -> None:
    """Open the app (``gapp`` with no command)."""
    GappApp().run()
