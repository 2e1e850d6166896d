"""How quickly the terminal app answers: moving a cut, and a key press during a measurement.

    python benchmarks/tui_responsiveness.py [--moves 60] [--probes 40]

1. **Moving a cut** on large chains (resnet101 and densenet201 cut at every
   operation, traced on the meta device): the time from the arrow key's event
   to the end of the repaint that shows the new estimate (``call_after_refresh``
   fires after the frame is written), over many moves. Target: under 50 ms for
   a model of 300 blocks or more.
2. **A key during a measurement**: resnet18 (64x64) measured in context on this
   machine in the app's worker thread while key events are posted to the app;
   the time from posting a key to its binding's action running. Target: under 100 ms.

Prints a markdown table and writes benchmarks/results/tui_responsiveness.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual import events
from textual.binding import Binding

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from gapp_tui.tui.app import GappApp  # noqa: E402
from gapp_tui.tui.state import UiState  # noqa: E402
from gapp_tui.tui.workspace import Workspace  # noqa: E402


class ProbeApp(GappApp):
    """The app plus one invisible binding whose action records when it ran."""

    BINDINGS = GappApp.BINDINGS + [Binding("z", "probe", "probe", show=False)]

    def action_probe(self) -> None:
        self.handled.append(time.perf_counter())


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (linear interpolation); the value itself for a single sample."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def cut_moves(model: str, moves: int) -> dict:
    from gapp_tui.blocks import BlockChain
    from gapp_tui.partition.estimate import estimate
    from gapp_tui.tui.widgets.partition.strip import CutStrip
    from gapp_tui.zoo import ModelSpec

    spec = ModelSpec(model)
    chain = BlockChain.from_spec(spec, "op", device="meta")
    app = ProbeApp(state=UiState(model=model, devices="pi=2GFLOP/s, server=20GFLOP/s"), remember=False,
                   workspace=Workspace(spec=spec, chain=chain))
    app.handled = []
    times: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        while getattr(app.screen, "plan", None) is None:  # the block times come from a worker of the section
            await pilot.pause(0.05)
        section = app.screen
        strip = section.query_one(CutStrip)
        strip.focus()
        await pilot.pause(0.2)
        for i in range(moves):
            key = "right" if (i // 10) % 2 == 0 else "left"  # wander back and forth
            before = tuple(section.plan.boundaries)
            painted = asyncio.Event()
            t0 = time.perf_counter()
            app.post_message(events.Key(key, None))
            while tuple(section.plan.boundaries) == before:
                await asyncio.sleep(0)
            app.call_after_refresh(painted.set)
            await painted.wait()
            times.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        for _ in range(200):
            estimate(section.table, section.plan)
        est_us = (time.perf_counter() - t0) / 200 * 1e6
    return {"model": f"{model} (op)", "blocks": len(chain), "moves": len(times),
            "median_ms": statistics.median(times), "p95_ms": pct(times, 0.95), "max_ms": max(times),
            "estimate_us": est_us}


async def keys_while_measuring(probes: int) -> dict:
    from textual.widgets import Input

    app = ProbeApp(state=UiState(model="resnet18", input_size="64"), remember=False)
    app.handled = []
    lat: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        while not app.workspace.ready:
            await pilot.pause(0.05)
        await pilot.press("2")
        await pilot.pause()
        app.screen.query_one("#threads", Input).value = "1"
        app.screen.query_one("#start").focus()
        await pilot.press("m")
        while not app.screen.running:
            await pilot.pause(0.01)
        await asyncio.sleep(0.5)
        for _ in range(probes):
            if not app.sections["measure"].running:
                break
            n = len(app.handled)
            t0 = time.perf_counter()
            app.post_message(events.Key("z", "z"))
            while len(app.handled) == n:
                await asyncio.sleep(0.0005)
            lat.append((app.handled[-1] - t0) * 1e3)
            await asyncio.sleep(0.05)
        still = app.sections["measure"].running
        app.sections["measure"].action_cancel()
        while app.sections["measure"].running:
            await pilot.pause(0.05)
    return {"probes": len(lat), "during_measurement": still, "median_ms": statistics.median(lat),
            "p95_ms": pct(lat, 0.95), "max_ms": max(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=60)
    ap.add_argument("--probes", type=int, default=40)
    ap.add_argument("--models", default="resnet101,densenet201")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GAPP_DB"] = str(Path(tmp) / "gapp.sqlite")
        os.environ["GAPP_TUI_STATE"] = str(Path(tmp) / "tui.json")
        load_before = os.getloadavg()
        cuts = [asyncio.run(cut_moves(m, args.moves)) for m in args.models.split(",")]
        keys = asyncio.run(keys_while_measuring(args.probes))
        load_after = os.getloadavg()
    lines = [
        "## TUI responsiveness",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};"
        f" load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (shared machine).",
        "",
        "| what | model | blocks | samples | median ms | p95 ms | max ms | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cuts:
        lines.append(f"| move a cut: re-estimate + repaint | {c['model']} | {c['blocks']} | {c['moves']} |"
                     f" {c['median_ms']:.1f} | {c['p95_ms']:.1f} | {c['max_ms']:.1f} | < 50 ms |")
    lines.append(f"| key handled while measuring | resnet18 64x64, in-context | 10 | {keys['probes']} |"
                 f" {keys['median_ms']:.1f} | {keys['p95_ms']:.1f} | {keys['max_ms']:.1f} | < 100 ms |")
    lines.append("")
    lines.append("The estimate alone (partition.estimate on the same plan): "
                 + ", ".join(f"{c['model']} {c['estimate_us']:.0f} µs" for c in cuts) + ".")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tui_responsiveness.md").write_text(text)
    (out / "tui_responsiveness.json").write_text(json.dumps(
        {"cut_moves": cuts, "keys_while_measuring": keys, "load_before": load_before, "load_after": load_after},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
