# Issue 20 experiments (not a benchmark of the release): what the scripts here share -- the stored rows of a run of
# benchmarks/predict_calibrate.py (/tmp/gapp-pc<N>.sqlite, not kept in git) and the BlockGraphs of its test blocks.
import sqlite3

from gapp_tui.predict.dataset import model_graphs

_graphs: dict = {}


def rows(path, probe_rows):
    """``{(model, block): min_ms}`` of the probe rows (``probe_rows``) or of the test blocks' rows in store ``path``."""
    q = "like" if probe_rows else "not like"
    with sqlite3.connect(path) as c:
        return {(m, int(b)): v for m, b, v in c.execute(
            f"select model, block, min_ms from measurements where model {q} '%probes%' and mode='standalone'")}


def test_graphs(keys):
    """The BlockGraph of each ``(model, block)`` test block, as the benchmark measured it (batch 1, 128 px)."""
    for m in {m for m, _ in keys} - set(_graphs):
        _graphs[m] = {g.block_index: g for g in model_graphs(m, 1, 128)[0]}
    return [_graphs[m][b] for m, b in keys]
