"""The command palette: every key of the app as an action (with its key shown), and every model of the registry.

The actions are generated from the bindings (:func:`gapp_tui.tui.keys.key_actions`),
the same list the help screen shows: a key added to a section (or to a widget it
names in ``WIDGET_KEYS``) is in the palette by itself.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..zoo import family_of, model_names
from .keys import KeyAction, key_actions, key_text
from .widgets.chrome import TABS

SECTION_TITLES = {name: title for name, _, title in TABS}


class GappCommands(Provider):
    """Actions first (``Partition: Add cut`` with ``a · Split the selected stage…``), then ``Model: <name>``."""

    def _actions(self) -> list[tuple[str, str, KeyAction]]:
        app = self.app
        out = []
        for k in key_actions(type(app), app.MODES):
            if k.action in ("leave_field", "command_palette"):
                continue  # meaningless from the palette
            help_text = f"{key_text(app, k.binding)} · {k.binding.tooltip or k.binding.description}"
            out.append((k.title(SECTION_TITLES), help_text, k))
        return out

    async def _run(self, k: KeyAction) -> None:
        app = self.app
        if k.section is None:
            await app.run_action(k.action)
            return
        if app.current_mode != k.section:
            await app.switch_mode(k.section)
        screen = app.sections.get(k.section)  # type: ignore[attr-defined]
        if screen is None:
            return
        if k.widget is not None:
            widget = screen.query_one(k.widget)
            widget.focus()
            await widget.run_action(k.action)
        else:
            await screen.run_action(k.action)

    def _pick_model(self, name: str) -> None:
        app = self.app
        app.ui_state.model = name  # type: ignore[attr-defined]
        if app.current_mode != "models":
            app.switch_mode("models")
        screen = app.sections.get("models")  # type: ignore[attr-defined]
        if screen is not None:
            screen.pick_model(name)

    async def discover(self) -> Hits:
        for title, help_text, k in self._actions():
            yield DiscoveryHit(title, partial(self._run, k), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, k in self._actions():
            score = max(matcher.match(title), matcher.match(help_text) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, k), help=help_text)
        if len(query) >= 2:
            for name in model_names():
                title = f"Model: {name}"
                score = matcher.match(title)
                if score > 0:
                    yield Hit(score * 0.9, matcher.highlight(title), partial(self._pick_model, name),
                              help=f"{family_of(name)} family: fill the Models form and trace")
