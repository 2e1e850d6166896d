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

import sys

from _kernel_timing import corpus_timer, parse_args, write_table

POSITIONS = (1, 2, 4, 6, 8, 9, 12, 16, 20, 25, 32, 36, 49, 64, 128)


def main() -> None:
    args = parse_args(__doc__, "conv1x1_positions.md")
    import torch

    ms = corpus_timer(args.threads)
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
    write_table(lines, args.out, "conv1x1_positions.py")


if __name__ == "__main__":
    main()
