"""Why squeezenet's classifier is predicted 2.5x too fast: a 1x1 convolution's time against its output positions.

    .venv/bin/python benchmarks/conv1x1_positions.py [--threads 1]

At batch below 16 PyTorch runs a 1x1 convolution on its own im2col kernel
(one GEMM of the weights with the ``H*W`` output positions per sample, see
``BlockGNN(dispatch=True)``). This times ``Conv2d(512, 1000, 1)`` -- squeezenet's
class-score layer -- on maps of 1 to 128 positions, and the ``Linear(512, 1000)``
doing the same GEMM with the positions as rows, on one thread. Writes
benchmarks/results/conv1x1_positions.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSITIONS = (1, 2, 4, 6, 8, 9, 12, 16, 20, 25, 32, 36, 49, 64, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "conv1x1_positions.md"))
    args = ap.parse_args()
    import torch

    sys.path.insert(0, str(ROOT))
    from gapp_tui.measure.timer import Precision, time_callable

    # the synthetic corpus's precision (as its meta file records it) and label (the minimum): the numbers compare with its rows
    precision = Precision.from_dict(json.loads((ROOT / "gapp_tui" / "data" / "synthetic_meta.json").read_text())["precision"])
    ms = lambda fn, x: time_callable(fn, (x,), "cpu", precision).min_ms  # noqa: E731
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(512, 1000, 1).eval()
    lin = torch.nn.Linear(512, 1000).eval()
    mb = 512 * 1000 * 4 / 1e6
    rows = []
    for n in POSITIONS:
        c = ms(conv, torch.randn(1, 512, 1, n))
        lt = ms(lin, torch.randn(n, 512))
        rows.append((n, c, 2 * 512 * 1000 * n / 1e6 / c, lt))
        print(f"{n:4d} positions: conv {c:.3f} ms, linear {lt:.3f} ms", file=sys.stderr, flush=True)
    lines = [
        f"# A 1x1 convolution's time against its output positions ({args.threads} thread(s), the fastest call)",
        "",
        f"`Conv2d(512, 1000, 1)` (squeezenet's classifier, {mb:.1f} MB of weights) at batch 1 on a 1 x N map,"
        " and `Linear(512, 1000)` on N rows (the same GEMM).",
        "",
        "| output positions N | conv ms | conv GFLOP/s | linear ms |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {c:.3f} | {g:.1f} | {lt:.3f} |" for n, c, g, lt in rows]
    lines += ["", f"Command: `.venv/bin/python benchmarks/conv1x1_positions.py {' '.join(sys.argv[1:])}`"
              f" (load average {os.getloadavg()[0]:.1f} at the end)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
