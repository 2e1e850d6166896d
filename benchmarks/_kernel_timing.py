"""What the kernel micro-benchmarks share (conv1x1_positions.py, weight_cache_knee.py).

They time single layers with the synthetic corpus's precision and label (the
minimum over calls, as its meta file records them), so that their numbers
compare with the corpus's rows, and write one Markdown table each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(doc: str, result: str) -> argparse.Namespace:
    """``--threads`` (default 1) and ``--out`` (default benchmarks/results/RESULT)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / result))
    return ap.parse_args()


def corpus_timer(threads: int) -> Callable[..., float]:
    """``ms(fn, *inputs)``: the fastest call's milliseconds on ``threads`` threads, at the synthetic corpus's precision."""
    import torch

    sys.path.insert(0, str(ROOT))
    from gapp_tui.measure.timer import Precision, time_callable

    precision = Precision.from_dict(json.loads((ROOT / "gapp_tui" / "data" / "synthetic_meta.json").read_text())["precision"])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return lambda fn, *inputs: time_callable(fn, inputs, "cpu", precision).min_ms


def write_table(lines: list[str], out: str, script: str) -> None:
    """Print the table with the command that made it, and write it to ``out``."""
    lines = [*lines, "", f"Command: `.venv/bin/python benchmarks/{script} {' '.join(sys.argv[1:])}`"
             f" (load average {os.getloadavg()[0]:.1f} at the end)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
