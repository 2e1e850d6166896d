"""Five journeys of a new user through the terminal app, checking what the screen says at each step.

    python benchmarks/tui_walkthrough.py [--quick] [--size 100x30]

The app runs headlessly (Textual's Pilot) on a private store, state and plan
folder; keys are pressed as a user presses them, and after each step the
terminal's text is read and checked, as a person would read it:

1. **trace another model at another size** — the tab bar and the status line say
   where you are; Tab goes from the model to its size; the shape follows it;
2. **measure and re-measure** — live progress names the block and the time
   left; ``m`` again says nothing was timed and ``f`` measures again; what is
   suspect is flagged with its cause;
3. **read Results with a predictor** — the machine and setting in words, the
   predictor's own machine, MAPE, share within ±10% and Spearman, the sort
   indicator, the plots' legends;
4. **edit the link and the cuts, save and run** — a link typed and left with
   Esc is the link estimated and saved; the cut label follows the selection;
   ``a`` says which device it added; the run says where the stages ran;
5. **find every action in Help and the palette** — every key of every section
   and widget, with its key shown.

Default: resnet18 at 224, then mobilenet_v2 at 96 px, natural blocks, each
block's median to a 1% interval on one thread (minutes). ``--quick``: the
test suite's version (mobilenet_v3_small at 48 px in two blocks, quick
precision; tests/test_tui_walkthrough.py runs it). Prints one line per check
and writes benchmarks/results/tui_walkthrough.md; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))


@dataclasses.dataclass
class Check:
    journey: str
    step: str
    expected: str
    seen: str
    ok: bool


class Walk:
    """The app, its pilot, and the checks made so far."""

    def __init__(self, app, pilot, journey: str = "") -> None:
        self.app, self.pilot, self.journey = app, pilot, journey
        self.checks: list[Check] = []

    # ------------------------------------------------------------------ reading the screen

    def lines(self) -> list[str]:
        return self.app.screen_text().splitlines()

    def find(self, *words: str) -> str | None:
        """The first line of the screen (or two lines read together: text wraps) holding every one of ``words``."""
        lines = [line.strip() for line in self.lines()]
        for line in lines + [f"{a} {b}" for a, b in zip(lines, lines[1:])]:
            if all(w in line for w in words):
                return line
        return None

    def check(self, step: str, *words: str, absent: tuple[str, ...] = ()) -> bool:
        """A line with all ``words`` is on screen, and none of ``absent`` is anywhere."""
        line = self.find(*words) if words else ""
        text = "\n".join(self.lines())
        there = [a for a in absent if a in text]
        ok = line is not None and not there
        seen = (line or "(no such line)") + (f" — but {there} is on screen" if there else "")
        self.checks.append(Check(self.journey, step, " + ".join(words) or f"no {absent}", seen, ok))
        print(f"{'✓' if ok else '✗'} [{self.journey}] {step}: {seen[:110]}", flush=True)
        if not ok and __import__("os").environ.get("WALK_DEBUG"):
            print(text, flush=True)
        return ok

    def fact(self, step: str, ok: bool, seen: str) -> bool:
        """A check on the app's state (what a saved file holds), beside the screen checks."""
        self.checks.append(Check(self.journey, step, "", seen, ok))
        print(f"{'✓' if ok else '✗'} [{self.journey}] {step}: {seen[:110]}", flush=True)
        if not ok and __import__("os").environ.get("WALK_DEBUG"):
            print(text, flush=True)
        return ok

    def bottom(self) -> str:
        """The status line (above the footer)."""
        return self.lines()[-2]

    # ------------------------------------------------------------------ acting

    async def wait(self, condition, timeout: float, what: str) -> None:
        t0 = time.monotonic()
        while not condition():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"[{self.journey}] waited {timeout:.0f} s for {what}; the screen:\n"
                                   + "\n".join(self.lines()))
            await self.pilot.pause(0.1)

    async def wait_text(self, *words: str, timeout: float = 60.0) -> None:
        await self.wait(lambda: self.find(*words) is not None, timeout, " + ".join(words))

    async def press(self, *keys: str) -> None:
        for k in keys:
            await self.pilot.press(k)
        await self.pilot.pause(0.1)

    async def type_into(self, selector: str, text: str) -> None:
        """Click into a field (focus it), empty it and type ``text``."""
        from textual.widgets import Input

        field = self.app.screen.query_one(selector, Input)
        field.focus()
        await self.pilot.pause()
        field.value = ""
        await self.press(*text)

    async def choose(self, selector: str, label: str) -> None:
        """Open a drop-down, move to ``label`` with the arrow keys and take it, as a user does."""
        from textual.widgets import Select

        select = self.app.screen.query_one(selector, Select)
        select.focus()
        await self.pilot.pause()
        await self.press("enter")
        overlay = select.query("SelectOverlay").first()  # the open list (an OptionList)
        for _ in range(overlay.option_count):
            option = overlay.get_option_at_index(overlay.highlighted or 0)
            if str(option.prompt) == label:
                break
            await self.press("down")
        await self.press("enter")


@dataclasses.dataclass
class Setting:
    first: tuple[str, str]  # model, size the app starts with
    second: tuple[str, str]  # the model and size the user traces
    granularity: str
    precision: str  # label in the Measure form
    timeout: float


QUICK = Setting(("resnet18", "32"), ("mobilenet_v3_small", "48"), "2", "quick", 120.0)
FULL = Setting(("resnet18", "224"), ("mobilenet_v2", "96"), "natural", "1% interval", 1800.0)


async def journeys(setting: Setting, size: tuple[int, int], plans: Path) -> list[Check]:
    from gapp_tui.partition.plan import Plan
    from gapp_tui.tui.app import SECTION_CLASSES, GappApp
    from gapp_tui.tui.keys import key_actions, key_text
    from gapp_tui.tui.labels import cut_words
    from gapp_tui.tui.state import UiState

    state = UiState(model=setting.first[0], input_size=setting.first[1], granularity=setting.granularity)
    app = GappApp(state=state, remember=False)
    async with app.run_test(size=size, notifications=True) as pilot:  # toasts on screen, as a user sees them
        w = Walk(app, pilot, "1 trace")
        await pilot.pause(0.5)
        # ------------------------------------------------------------ 1. trace another model at another size
        w.check("the tab bar names the sections", "1 Models", "2 Measure", "3 Results", "4 Partition")
        w.check("the status line says where the keys go", "typing in", "Model")
        name, px = setting.second
        await w.type_into("#model-name", name)
        await w.press("tab")
        w.check("Tab goes to the size", "typing in", "size")
        app.focused.value = ""  # select what is there and type over it
        await w.press(*px)
        w.check("the shape follows the size", f"= 1,3,{px},{px}", absent=("1,3,224,224",) if px != "224" else ())
        await w.press("enter")
        await w.wait(lambda: app.workspace.ready and app.workspace.spec.name == name, setting.timeout, "the trace")
        await pilot.pause(0.3)
        label = app.workspace.spec.label()
        w.check("the blocks of the new model are listed", label, "blocks (")
        w.check("the status line names the model", label, "traced")

        # ------------------------------------------------------------ 2. measure and re-measure
        w.journey = "2 measure"
        await w.press("escape", "2")
        w.check("the tab bar shows Measure", "2 Measure")
        w.check("the form names every choice", "Mode", "threads", "precision", "dtype")
        await w.type_into("#threads", "1")
        await w.press("tab")
        await w.choose("#precision", setting.precision)
        w.check("precision chosen", "precision", setting.precision)
        await w.press("escape")
        app.screen.query_one("#start").focus()
        await w.press("m")
        await w.wait(lambda: app.screen.running or app.workspace.measurement is not None, 30, "the start")
        if app.screen.running and w.find("in-context:") is None:
            await w.wait(lambda: w.find("in-context:") is not None or not app.screen.running, 60, "progress")
        if app.screen.running:
            w.check("progress names the blocks being timed", "in-context:", "timing all")
        await w.wait(lambda: app.workspace.measurement is not None, setting.timeout, "the measurement")
        await pilot.pause(0.3)
        w.check("done, on which machine", "done on this machine", "measured", absent=("·  ·",))
        flags = [line for line in w.lines() if "⚠" in line]
        if flags:
            w.check("what is suspect comes with a re-measure key", "f re-measures")
        first = app.workspace.measurement
        await w.press("m")
        await w.wait(lambda: app.workspace.measurement is not first, 60, "m again")
        await pilot.pause(0.3)
        w.check("m again times nothing and says how to measure again", "nothing timed", "f measures again")
        again = app.workspace.measurement
        await w.press("f")
        await w.wait(lambda: app.workspace.measurement is not again, setting.timeout, "f")
        await pilot.pause(0.3)
        w.check("f measured again", "done on this machine", f"{app.workspace.measurement.measured} measured, 0 from")
        await w.wait_text(label, "measured here", "1 thread", timeout=15)  # once the toast over it has gone
        w.check("the status line says where it was measured", label, "measured here", "1 thread")

        # ------------------------------------------------------------ 3. Results with a predictor
        w.journey = "3 results"
        await w.press("3")
        await pilot.pause(0.5)
        w.check("the machine in words", "Device", "this machine (")
        w.check("the setting in words", "Setting", f"{px}px, batch 1, float32, 1 thread")
        await w.press("p")
        await w.press("down", "enter")
        await w.wait_text("MAPE", timeout=120)
        w.check("the predictor's own machine is named", "predicted by", "made for")
        w.check("accuracy above the table", "MAPE", "within ±10%", "Spearman")
        app.screen.query_one("#results-table").focus()
        await w.press("s")
        w.check("the sorted column is marked", "block ▲")
        await w.press("v")
        w.check("the scatter's legend", "predicted ↑", "y = x")
        await w.press("v")
        w.check("the bars' legend", "measured median", "predicted")

        # ------------------------------------------------------------ 4. link, cuts, save, run
        w.journey = "4 partition"
        await w.press("4")
        await w.wait(lambda: getattr(app.screen, "plan", None) is not None, 120, "the block times")
        await pilot.pause(0.3)
        section = app.screen
        w.check("pi's times are FLOPs, no hardware", "pi", "FLOPs at 2GFLOP/s: no hardware measured")
        w.check("the server's times name the machine", "server", "measured on this machine (", "1 thread")
        await w.type_into("#bandwidth", "20Mbit/s")
        w.check("the field being typed in is named", "typing in", "Link bandwidth")
        await w.press("escape")
        w.fact("the link left with Esc is applied", abs(section.link.bandwidth - 2.5e6) < 1, f"{section.link}")
        await w.press("right")
        w.check("the cut is named by its block", "cut 1/1", cut_words(section.table.blocks, section.plan.boundaries[1]))
        await w.press("a")
        await w.wait(lambda: len(section.plan.devices) == 3, 60, "the added stage")
        await pilot.pause(0.3)
        w.check("a added a cut", "cut 2/2")
        w.check("a says which device it added", "Cut added: server2")
        await w.press("up")
        w.check("↑ selects the other cut and the label follows", "cut 1/2")
        await w.press("down", "d")  # the new cut goes, and its device
        await w.wait(lambda: len(section.plan.devices) == 2, 60, "the removed stage")
        await w.press("o")
        w.check("o: the optimal plan", "this plan reaches 100%")
        w.check("the strip marks the optimum and names stage totals", "◇ optimal cut")
        await w.press("s")
        saved = Plan.load(app.last_plan_path)
        w.fact("the saved plan is the one on screen",
               saved.boundaries == section.plan.boundaries and abs(saved.links[0].bandwidth - 2.5e6) < 1,
               f"{saved.devices} {saved.boundaries} {saved.links[0].bandwidth * 8 / 1e6:g} Mbit/s")
        await w.press("r")
        await w.wait(lambda: "output" in section.pipeline_text or "red" in section.pipeline_text, 300,
                     "the pipeline run")
        await pilot.pause(0.5)
        app.clear_notifications()  # on a quiet machine the run ends before the save's toast times out: read on after it
        await pilot.pause(0.3)
        w.check("the run says where its stages ran", "pipeline run", "on this machine", "not on pi")
        w.check("the run line is shown to its end", "output")

        # ------------------------------------------------------------ 5. every action in Help and the palette
        w.journey = "5 keys"
        everything = key_actions(type(app), SECTION_CLASSES)
        app.clear_notifications()  # the run's toasts have timed out for a user who reads on: they would cover lines
        await w.press("question_mark")
        await pilot.pause(0.5)
        pages = []
        for _ in range(10):  # the help scrolls: read it a page at a time, as a user does
            r = app.screen.query_one("#help-body").region
            pages.append(" ".join(line[r.x:r.right] for line in app.screen_text().splitlines()[r.y:r.bottom]))
            await w.press("pagedown")
            await pilot.pause(0.4)  # the scroll is animated
        flat = " ".join(" ".join(pages).replace("│", " ").split())
        missing = [k.binding.tooltip for k in everything if (k.binding.tooltip or "")[:30] not in flat]
        w.fact(f"help lists all {len(everything)} keys", not missing, f"missing: {missing}" if missing else "all")
        await w.press("escape")
        absent = []
        for k in everything:
            if k.action in ("leave_field",):
                continue
            await w.press("ctrl+p")
            await w.press(*k.binding.description)
            await pilot.pause(0.3)
            key = key_text(app, k.binding)
            if w.find(f"{key} · ") is None or w.find(k.binding.description) is None:
                absent.append(f"{k.section}: {k.binding.description} ({key})")
            await w.press("escape")
        palette_keys = len([k for k in everything if k.action != 'leave_field'])
        w.fact(f"the palette finds all {palette_keys} actions with their keys", not absent,
               f"missing: {absent}" if absent else "all")
        return w.checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the test suite's small model and quick precision")
    ap.add_argument("--size", default="100x30", help="terminal size, COLSxROWS")
    args = ap.parse_args()
    cols, rows = (int(v) for v in args.size.lower().split("x"))
    setting = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GAPP_DB"] = str(Path(tmp) / "gapp.sqlite")
        os.environ["GAPP_TUI_STATE"] = str(Path(tmp) / "tui.json")
        os.environ["GAPP_PLANS"] = str(Path(tmp) / "plans")
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        checks = asyncio.run(journeys(setting, (cols, rows), Path(tmp) / "plans"))
        seconds = time.monotonic() - t0
    failed = [c for c in checks if not c.ok]
    lines = ["## TUI walkthrough", "",
             f"{'quick' if args.quick else 'full'} setting, {cols}x{rows}, {seconds:.0f} s, load average {load:.1f}"
             f" at start: {len(checks) - len(failed)} of {len(checks)} checks pass.", "",
             "| journey | step | the screen said |", "| --- | --- | --- |"]
    lines += [f"| {c.journey} | {'' if c.ok else '✗ '}{c.step} | {c.seen.replace('|', '/')[:120]} |" for c in checks]
    text = "\n".join(lines) + "\n"
    if not args.quick:
        (ROOT / "results").mkdir(exist_ok=True)
        (ROOT / "results" / "tui_walkthrough.md").write_text(text)
    print("\n" + text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
