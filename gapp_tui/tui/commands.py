"""The command palette: every action of the app, and every model of the registry."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..zoo import family_of, model_names

#: (title, help, section to open first or None, action on that section or the app)
ACTIONS: list[tuple[str, str, str | None, str]] = [
    ("Section: Models", "Pick a model and trace it into blocks", None, "section('models')"),
    ("Section: Measure", "Time the blocks here or on an SSH host", None, "section('measure')"),
    ("Section: Results", "Measured vs predicted: table and plots", None, "section('results')"),
    ("Section: Partition", "Cut the model into a pipeline across devices", None, "section('partition')"),
    ("Trace model", "Trace the model in the Models form", "models", "trace"),
    ("Start measurement", "Measure the traced model's blocks", "measure", "start"),
    ("Cancel measurement", "Stop the running measurement (blocks done are kept)", "measure", "cancel"),
    ("Export results", "Write the shown results to CSV and JSON", "results", "export"),
    ("Sort results", "Sort the results table by the next column", "results", "sort"),
    ("Switch predictor", "Choose the predictor whose times are shown", "results", "predictor"),
    ("Jump to optimal plan", "Replace the plan with the solver's optimum", "partition", "optimal"),
    ("Add cut", "Add a cut after the selected one", "partition", "add_cut"),
    ("Remove cut", "Remove the selected cut", "partition", "remove_cut"),
    ("Save plan", "Write the plan to a JSON file", "partition", "save"),
    ("Run pipeline", "Run the plan for real and compare with the estimate", "partition", "run_pipeline"),
    ("Help: keys", "Every key of every section", None, "help"),
]


class GappCommands(Provider):
    """Actions first, then ``Model: <name>`` for each registry model (fills the Models form)."""

    async def _run(self, section: str | None, action: str) -> None:
        app = self.app
        if section is None:
            await app.run_action(action)
            return
        if app.current_mode != section:
            app.switch_mode(section)
        screen = app.sections.get(section)  # type: ignore[attr-defined]
        if screen is not None:
            await screen.run_action(action)

    def _pick_model(self, name: str) -> None:
        app = self.app
        app.ui_state.model = name  # type: ignore[attr-defined]
        if app.current_mode != "models":
            app.switch_mode("models")
        screen = app.sections.get("models")  # type: ignore[attr-defined]
        if screen is not None:
            screen.pick_model(name)

    async def discover(self) -> Hits:
        for title, help_text, section, action in ACTIONS:
            yield DiscoveryHit(title, partial(self._run, section, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, section, action in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, section, action), help=help_text)
        if len(query) >= 2:
            for name in model_names():
                title = f"Model: {name}"
                score = matcher.match(title)
                if score > 0:
                    yield Hit(score * 0.9, matcher.highlight(title), partial(self._pick_model, name),
                              help=f"{family_of(name)} family: fill the Models form and trace")
