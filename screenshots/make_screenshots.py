"""Drive the GAPP terminal app headlessly and write an SVG and a PNG of every section.

    python screenshots/make_screenshots.py [--size 100x30] [--model resnet18] [--input-size 224]

Everything shown is real: the model is traced, its blocks are measured on this
machine (one thread, in context, 1% interval on each median) into a temporary
store, and the partition plan is the solver's. PNGs are converted from the SVGs
with cairosvg (needs the Debian package libcairo2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def wait_for(pilot, condition, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the app did not get there in time")
        await pilot.pause(0.1)


async def shoot(size: tuple[int, int], model: str, input_size: str, out: Path) -> list[Path]:
    from textual.widgets import Input

    from gapp_tui.tui.app import GappApp
    from gapp_tui.tui.state import UiState

    written: list[Path] = []
    app = GappApp(state=UiState(model=model, input_size=input_size), remember=False)

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        app.save_screenshot(str(path))
        written.append(path)
        print(f"  {path.relative_to(HERE.parent)}", file=sys.stderr)

    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.workspace.ready)
        await pilot.pause(0.3)
        save("models")

        await pilot.press("2")
        await pilot.pause()
        # one thread and the normal precision (1% interval on the median): on a busy machine the
        # medians of a few runs are noise, and these pictures go into the README
        app.screen.query_one("#threads", Input).value = "1"
        app.screen.query_one("#start").focus()
        await pilot.press("m")
        await wait_for(pilot, lambda: app.workspace.measurement is not None)
        await pilot.pause(4)  # let the notification fade
        save("measure")

        await pilot.press("3")
        await pilot.pause(0.5)
        from gapp_tui.predict.predictor import default_predictor_path

        if default_predictor_path().is_file():  # the shipped predictor, beside the measured times
            app.choose_predictor(str(default_predictor_path()))
            await wait_for(pilot, lambda: app.screen.predicted is not None, 120)
            await pilot.pause(4)  # let the notification fade
        save("results")
        await pilot.press("v")
        await pilot.pause(0.3)
        save("results-scatter")
        await pilot.press("v")
        await pilot.pause(0.3)
        save("results-bars")

        await pilot.press("4")
        await pilot.pause(0.5)
        # a slow link (a Pi on a congested Wi-Fi): the optimum then cuts inside the network
        bandwidth = app.screen.query_one("#bandwidth", Input)
        bandwidth.value = "2Mbit/s"
        bandwidth.focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press("o")
        await pilot.pause(0.3)
        await pilot.press("left")
        await pilot.pause(0.3)
        save("partition")

        await pilot.press("question_mark")
        await pilot.pause(0.3)
        save("help")
    return written


def to_png(svgs: list[Path]) -> None:
    import cairosvg

    for svg in svgs:
        cairosvg.svg2png(url=str(svg), write_to=str(svg.with_suffix(".png")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="100x30", help="terminal size, COLSxROWS")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--input-size", default="224")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    cols, rows = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        # a private store, state and plan folder: the user's own files are never touched
        os.environ["GAPP_DB"] = str(Path(tmp) / "gapp.sqlite")
        os.environ["GAPP_TUI_STATE"] = str(Path(tmp) / "tui.json")
        os.environ["GAPP_PLANS"] = str(Path(tmp) / "plans")
        args.out.mkdir(parents=True, exist_ok=True)
        svgs = asyncio.run(shoot((cols, rows), args.model, args.input_size, args.out))
    to_png(svgs)
    print(f"{len(svgs)} screenshots (SVG and PNG) in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
