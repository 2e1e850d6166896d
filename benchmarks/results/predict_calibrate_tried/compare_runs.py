# Issue 20 diagnostic (not a benchmark of the release): how far the stored labels of separate runs of
# benchmarks/predict_calibrate.py agree (first pass against first pass, probes against probes), and each run's
# second pass against its first. Reads the runs' stores /tmp/gapp-pc<N>.sqlite (not kept in git).
#   .venv/bin/python benchmarks/results/predict_calibrate_tried/compare_runs.py 7 8 10 11 12
import itertools
import os
import sqlite3
import sys

import numpy as np


def labels(path, probes):
    with sqlite3.connect(path) as c:
        op = "LIKE" if probes else "NOT LIKE"
        return {(m, b): t for m, b, t in c.execute(
            f"SELECT model, block, min_ms FROM measurements WHERE model {op} '%probes%' AND mode = 'standalone'")}


def agree(a, b):
    keys = [k for k in a if k in b]
    r = np.array([b[k] / a[k] for k in keys])
    g = float(np.median(r))
    return len(keys), g, 100 * float((np.abs(r - 1) <= 0.1).mean()), 100 * float((np.abs(r / g - 1) <= 0.1).mean())


runs = sys.argv[1:]
print("| compared | labels | n | median ratio | within ±10 % | within ±10 % after that ratio |\n|---|---|---|---|---|---|")
for r in runs:
    p2 = f"/tmp/gapp-pc{r}.pass2.sqlite"
    if os.path.exists(p2):
        n, g, w, ws = agree(labels(f"/tmp/gapp-pc{r}.sqlite", False), labels(p2, False))
        print(f"| run {r}: second pass / first | test blocks | {n} | {g:.3f} | {w:.1f} | {ws:.1f} |")
for a, b in itertools.combinations(runs, 2):
    for probes in (False, True):
        n, g, w, ws = agree(labels(f"/tmp/gapp-pc{a}.sqlite", probes), labels(f"/tmp/gapp-pc{b}.sqlite", probes))
        print(f"| run {b} / run {a} | {'probes' if probes else 'test blocks'} | {n} | {g:.3f} | {w:.1f} | {ws:.1f} |")
