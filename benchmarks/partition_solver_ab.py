"""The solver's speed in one checkout, for comparing two commits in alternating fresh processes.

    .venv/bin/python benchmarks/partition_solver_ab.py ROOT      # ROOT: a checkout (e.g. `git worktree add`)

Imports ``solve`` and ``benchmarks/partition_solver.synthetic`` from ROOT, solves the synthetic 300 x 4
(60 calls) and 1,000 x 8 (12 calls) tables (throughput, overlapped, the 100 Mbit/s link of
``partition_solver.py``) and prints ``{"300x4": [fastest_ms, median_ms], "1000x8": [...]}``. Run it for the
two checkouts in turn, several times, on the same machine: a shared machine's load moves single runs
by 2-3x. Results of the issue-23 comparison: ``benchmarks/results/partition_solver_int8_ab.md``.
"""

import json
import statistics
import sys
import time

root = sys.argv[1]
sys.path.insert(0, root)
sys.path.insert(0, root + "/benchmarks")
from partition_solver import synthetic  # noqa: E402

from gapp_tui.partition import Link, solve  # noqa: E402

link = Link.parse("100Mbit/s", "2ms", "50us")
out = {}
for n, k, reps in ((300, 4, 60), (1000, 8, 12)):
    t = synthetic(n, k)
    d = t.devices
    solve(t, d, link)
    xs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        solve(t, d, link)
        xs.append(time.perf_counter() - t0)
    out[f"{n}x{k}"] = (min(xs) * 1e3, statistics.median(xs) * 1e3)
print(json.dumps(out))
