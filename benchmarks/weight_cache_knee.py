"""Why vit's batch-1 layers are predicted 0.75x: the bandwidth of a block's weights against their size.

    .venv/bin/python benchmarks/weight_cache_knee.py [--threads 1]

A transformer layer on a few tokens is a handful of GEMMs with few rows: it
reads every weight once per call, so its time is set by where the weights
live. Repeated calls keep weights that fit in the cache there; beyond the
cache they stream from memory. This times an MLP (``Linear(d, 4d)`` then
``Linear(4d, d)``, 8 d^2 parameters) on 1, 4 and 16 rows for widths whose
weights span 2 to 134 MB, on one thread, with the synthetic corpus's
precision and label (the minimum), and reports the weights' bandwidth
(MB per ms = GB/s). Writes benchmarks/results/weight_cache_knee.md.
"""

from __future__ import annotations

import sys

from _kernel_timing import corpus_timer, parse_args, write_table

WIDTHS = (256, 384, 512, 640, 768, 896, 1024, 1280, 1536, 2048)
ROWS = (1, 4, 16)


def main() -> None:
    args = parse_args(__doc__, "weight_cache_knee.md")
    import torch

    ms = corpus_timer(args.threads)
    rows = []
    for d in WIDTHS:
        mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)).eval()
        mb = sum(p.numel() for p in mlp.parameters()) * 4 / 1e6
        times = [ms(mlp, torch.randn(m, d)) for m in ROWS]
        rows.append((d, mb, times))
        print(f"d={d:5d} {mb:6.1f} MB: " + ", ".join(f"{m} rows {t:.3f} ms" for m, t in zip(ROWS, times)),
              file=sys.stderr, flush=True)
    lines = [
        f"# The bandwidth of a block's weights against their size ({args.threads} thread(s), the fastest call)",
        "",
        "`Linear(d, 4d)` then `Linear(4d, d)` on N rows; each cell: ms / weight MB per ms (GB/s).",
        "",
        "| d | weights MB | " + " | ".join(f"{m} row{'s' if m > 1 else ''}" for m in ROWS) + " |",
        "|---|---|" + "---|" * len(ROWS),
    ]
    lines += [f"| {d} | {mb:.1f} | " + " | ".join(f"{t:.3f} / {mb / t:.1f}" for t in times) + " |" for d, mb, times in rows]
    write_table(lines, args.out, "weight_cache_knee.py")


if __name__ == "__main__":
    main()
