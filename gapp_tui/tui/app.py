"""The GAPP terminal app: Models, Measure, Results and Partition as Textual modes.

The app holds what the sections share and nothing they do:

* the current model and what was measured of it (:class:`~.workspace.Workspace`),
  and what is remembered between runs (:class:`~.state.UiState`);
* the measurement store, the predictor chosen for the Results section and the
  predictions already made (a worker of its own computes new ones);
* the one error path, :meth:`GappApp.report_error`: every worker is started
  with ``exit_on_error=False`` and its failure reaches that method through
  Textual's ``Worker.StateChanged`` message (:class:`~.sections.base.Section`
  forwards its workers'), which shows one line and writes the traceback to a
  log file — an error never ends the app.

Each section starts and cancels its own workers (tracing, measuring, building
cost tables, pipeline runs); threads reach the UI only through ``post_message``.
"""

from __future__ import annotations

import io
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir, user_state_dir
from rich.console import Console
from rich.text import Text
from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from ..errors import BadInput, one_line
from ..store import Store
from .commands import GappCommands
from .messages import Predicted
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


def error_log_path() -> Path:
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
                tooltip="Leave the text field, applying what was typed (then the number keys switch sections)"),
        Binding("q", "quit", "Quit", show=False, id="app.quit", tooltip="Quit (state is remembered)"),
    ]
    #: the command palette's own key (Textual's), listed in the help screen with the others
    PALETTE_KEY = "ctrl+p"

    def __init__(self, state: UiState | None = None, remember: bool = True, workspace: Workspace | None = None) -> None:
        super().__init__()
        self.ui_state = state if state is not None else UiState.load()
        self.remember = remember
        self.workspace = workspace or Workspace()
        if self.workspace.predictor is None and self.ui_state.predictor and Path(self.ui_state.predictor).is_file():
            self.workspace.predictor = self.ui_state.predictor  # the predictor chosen last time
        #: section name -> its screen once mounted
        self.sections: dict[str, Any] = {}
        self.last_plan_path: Path | None = None
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        # predicted seconds per block, by chain (its id, with the chain kept alive) and predictor file
        self._predictions: dict[int, tuple[Any, dict[str, list[float]]]] = {}
        self._predicting: set[tuple[int, str]] = set()
        #: (chain id, predictor file) -> the calibrated interval's (low, high, level) per block, when it has one
        self._intervals: dict[tuple[int, str], tuple[list[float], list[float], float] | None] = {}
        #: model name -> (chain, predictor file, seconds per block) of every model predicted in this session
        self.predicted_models: dict[str, tuple[Any, str, list[float]]] = {}
        #: device name -> the predictor registry's Choice its predicted times came from (names its machine)
        self.predictor_choices: dict[str, Any] = {}

    def on_mount(self) -> None:
        if self.workspace.ready:
            self.sub_title = self.workspace.label()

    # ------------------------------------------------------------------ where you are

    def status_text(self) -> Text:
        """The status line: model · traced or measured · devices' times · predictor · the plan's throughput."""
        ws = self.workspace
        text = Text()
        if not ws.ready:
            text.append("no model yet", "bold")
            text.append(" · in Models type a name and press Enter to trace it · Esc leaves a field · ? keys")
            return text
        text.append(ws.spec.label(), "bold")
        text.append(f" · {ws.measured_words}" if ws.measurement is not None and ws.measured_words
                    else f" · traced ({len(ws.chain)} blocks)")
        if ws.plan_words:
            text.append(f" · {ws.plan_words}", "bold")
        if ws.devices_words:
            text.append(f" · {ws.devices_words}")
        if ws.predictor:
            text.append(f" · predictor {Path(ws.predictor).stem}")
        return text

    def screen_text(self) -> str:
        """What the terminal shows now, as plain text (the render ``export_screenshot`` makes): for tests and scripts."""
        width, height = self.size
        console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                          color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
        console.print(self.screen._compositor.render_update(full=True, screen_stack=self._background_screens))
        return console.export_text()

    def refresh_status(self) -> None:
        """Bring the status line of the section shown up to date (the others do it when shown)."""
        screen = self.screen
        if hasattr(screen, "refresh_status"):
            screen.refresh_status()

    # ------------------------------------------------------------------ sections

    def action_section(self, name: str) -> None:
        if self.current_mode != name:
            self.switch_mode(name)

    def action_leave_field(self) -> None:
        """Esc in a field: focus the section's main widget, so single-key bindings work again."""
        screen = self.screen
        target = getattr(screen, "AUTO_FOCUS", None)
        if target and not isinstance(screen, HelpScreen):
            for widget in screen.query(target):
                widget.focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(SECTION_CLASSES))

    def refresh_sections(self, *names: str) -> None:
        """Bring the named sections (default: all) up to date, if they are the one shown."""
        for name, section in self.sections.items():
            if (not names or name in names) and section is self.screen:
                section.sync()

    # ------------------------------------------------------------------ the model and its measurement

    def set_chain(self, chain: Any, seconds: float) -> None:
        """A model was traced (the Models section): it becomes the one every section shows."""
        ws = self.workspace
        ws.spec, ws.chain, ws.trace_seconds = chain.spec, chain, seconds
        # everything that belonged to the previous model goes: each section shows the new one when shown
        ws.measurement, ws.cuts, ws.measured_words, ws.plan_words = None, (), "", ""
        s = self.ui_state
        spec = chain.spec
        s.model, s.batch_size, s.num_classes = spec.name, spec.batch_size, spec.num_classes
        s.input_size = str(spec.input_size or "")
        s.granularity = chain.granularity
        self.sub_title = spec.label()
        kept = {id(c) for c, _, _ in self.predicted_models.values()} | {id(chain)}
        self._predictions = {k: v for k, v in self._predictions.items() if k in kept}
        self._intervals = {k: v for k, v in self._intervals.items() if k[0] in kept}
        self.notify(f"{spec.label()}: {len(chain)} blocks", title="Traced", timeout=3)
        self.refresh_status()

    def set_measurement(self, result: Any, words: str = "") -> None:
        """A measurement of the current model ended (the Measure section); ``words`` say where and how."""
        self.workspace.measurement = result
        self.workspace.measured_words = words
        if result is not None and result.device.get("key"):
            self.workspace.device = result.device.get("key")
        self.refresh_sections("results")
        self.refresh_status()

    # ------------------------------------------------------------------ shared services

    def store(self) -> Store | None:
        """The measurement store (``$GAPP_DB`` or the default file), opened once; None (and a message) when unusable."""
        try:
            return self.worker_store()
        except (BadInput, OSError) as exc:
            self.notify(one_line(exc), title="Store", severity="error")
            return None

    def worker_store(self) -> Store:
        """The store from any thread (errors are raised, for the caller's worker to report)."""
        with self._store_lock:
            if self._store is None:
                self._store = Store()
            return self._store

    def predictors(self) -> list[tuple[str, Path]]:
        """Predictor files to choose from (name, path): see :func:`gapp_tui.predict.registry.available`."""
        from ..predict import registry  # slow (torch): the first time a predictor list is shown

        return [(c.name, c.path) for c in registry.available(self._store)]

    def choose_predictor(self, path: str | None) -> None:
        """Show the predictor saved at ``path`` beside measured times (None: none)."""
        if path and not Path(path).is_file():
            self.notify(f"predictor file {path!r} not found", title="Predictor", severity="error")
            return
        self.workspace.predictor = path or None
        self.ui_state.predictor = path or ""
        self.refresh_sections("results", "partition")
        self.refresh_status()

    def predicted_times(self) -> list[float] | None:
        """The chosen predictor's seconds per block for the current chain, or None (not chosen, or being computed).

        The first call for a chain starts a worker; the sections refresh when it is done.
        """
        ws = self.workspace
        if ws.predictor is None or not ws.ready:
            return None
        done = self._cached(ws.chain)
        if ws.predictor in done:
            return done[ws.predictor]
        key = (id(ws.chain), ws.predictor)
        if key not in self._predicting:
            self._predicting.add(key)
            self.predict_chain(ws.chain, ws.predictor)
        return None

    def predicted_interval(self) -> tuple[list[float], list[float], float] | None:
        """The chosen predictor's interval for the current chain: per-block low and high seconds and the level
        (None: no predictor, not computed yet, or a predictor without a calibrated interval)."""
        ws = self.workspace
        if ws.predictor is None or not ws.ready:
            return None
        return self._intervals.get((id(ws.chain), ws.predictor))

    def predict_for(self, chain: Any, device: Any) -> tuple[list[float], str, Any]:
        """The block-times service's ``predict`` (from a worker): the device's predictor, predictions cached;
        returns (seconds per block, note, the interval's (low, high, level) or None)."""
        from ..predict import registry  # slow (torch): only a predicted device pays for it

        choice = registry.resolve(device.ref, device.name, self.worker_store(), device.runtime_text)
        self.predictor_choices[device.name] = choice  # the Partition section names its machine
        path = str(choice.path)
        cached = self._cached(chain)
        if path not in cached or (id(chain), path) not in self._intervals:
            self._remember(chain, path, *registry.predict_chain_bounds(chain, path))
        return self._cached(chain)[path], choice.describe(device.name), self._intervals.get((id(chain), path))

    def _cached(self, chain: Any) -> dict[str, list[float]]:
        entry = self._predictions.get(id(chain))
        return entry[1] if entry is not None and entry[0] is chain else {}

    def _remember(self, chain: Any, path: str, times: list[float], bounds: Any = None) -> None:
        self._predictions[id(chain)] = (chain, {**self._cached(chain), path: times})
        self._intervals[(id(chain), path)] = bounds

    @work(thread=True, exclusive=False, exit_on_error=False, group="predict", description="prediction")
    def predict_chain(self, chain: Any, path: str) -> None:
        from ..predict import registry  # slow (torch)

        times, bounds = registry.predict_chain_bounds(chain, path)
        self.post_message(Predicted(chain, path, times, bounds))

    def on_predicted(self, message: Predicted) -> None:
        self._predicting.discard((id(message.chain), message.key))
        self._remember(message.chain, message.key, message.times, message.bounds)
        self.predicted_models[message.chain.spec.name] = (message.chain, message.key, message.times)
        self.refresh_sections("results", "partition")

    def plan_path(self, plan: Any) -> Path:
        """Where a saved plan goes: ``$GAPP_PLANS`` or ``<user data dir>/gapp/plans``."""
        base = os.environ.get("GAPP_PLANS")
        folder = Path(base) if base else Path(user_data_dir("gapp", appauthor=False)) / "plans"
        name = str(plan.model.get("name", "model")).replace(":", "_").replace("/", "_")
        return folder / f"{name}-{'-'.join(plan.devices)}.json"

    # ------------------------------------------------------------------ the one error path

    def report_error(self, error: BaseException, title: str) -> None:
        """Show a failure on one line and append its traceback to :func:`error_log_path`; the app keeps running."""
        path = error_log_path()
        detail = ""
        if not isinstance(error, BadInput):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as fh:
                    fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {title}\n")
                    fh.write("".join(traceback.format_exception(error)))
                detail = f"\n(traceback in {path})"
            except OSError:
                pass
        self.log.error(error)
        self.notify(one_line(error) + detail, title=title, severity="error", timeout=10)

    @on(Worker.StateChanged)
    def _app_worker_changed(self, event: Worker.StateChanged) -> None:
        """The app's own workers (predictions); each section handles its own the same way."""
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            self.report_error(worker.error, f"{worker.description or worker.group} failed")
            if worker.group == "predict":
                self._predicting.clear()

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
