"""Synthetic training blocks: deterministic, traceable into one block, inside the vocabulary, joined by seed."""

from __future__ import annotations

import csv
import gzip

import pytest
import torch

from gapp_tui.blocks import BlockChain
from gapp_tui.errors import BadInput
from gapp_tui.features import extract
from gapp_tui.predict.dataset import concat, leave_one_family_out, synthetic_dataset
from gapp_tui.predict.synthetic import DEFAULT_CYCLE, FAMILY, KINDS, MODEL_NAME, sample
from gapp_tui.zoo import ModelSpec


def test_a_seed_always_draws_the_same_block():
    a, b = sample(7), sample(7)
    assert a.description == b.description and a.input_shape == b.input_shape
    assert [p.shape for p in a.module.parameters()] == [p.shape for p in b.module.parameters()]
    assert sample(8).description != a.description


@pytest.mark.parametrize("seed,kind", [(s, k) for k in KINDS for s in range(5)])
def test_every_kind_runs_traces_into_one_block_and_stays_in_the_vocabulary(seed, kind):
    sb = sample(seed, "meta", kind=kind)
    assert sb.kind == kind and sample(seed, "meta").kind == DEFAULT_CYCLE[seed % len(DEFAULT_CYCLE)]
    chain = BlockChain.from_spec(ModelSpec(MODEL_NAME, input_shape=sb.input_shape), 1, device="meta", model=sb.module)
    (g,) = extract(chain, warn=False)
    assert g.unknown_ops == ()
    flops = float(g.data.totals[0, list(g.total_columns).index("flops")])
    assert 0 <= flops <= 2.5e9
    real = sample(seed, kind=kind)
    out = real.module(torch.randn(real.input_shape))
    assert torch.isfinite(out).all()


def _write(path, rows):
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["seed", "kind", "description", "input_shape", "time_ms"])
        w.writeheader()
        w.writerows(rows)


def test_synthetic_rows_join_their_seeds_features_and_stale_rows_are_skipped(tmp_path):
    rows = []
    for seed in (0, 1, 2):
        sb = sample(seed, "meta")
        rows.append({"seed": seed, "kind": sb.kind, "description": sb.description,
                     "input_shape": "x".join(map(str, sb.input_shape)), "time_ms": 0.5 + seed})
    rows.append({**rows[0], "seed": 3})  # seed 3 draws another block than the one recorded: skipped
    _write(tmp_path / "s.csv.gz", rows)
    with pytest.warns(UserWarning, match="1 synthetic rows skipped"):
        ds = synthetic_dataset(tmp_path / "s.csv.gz", cache=None)
    assert len(ds) == 3 and set(ds.family) == {FAMILY}
    assert ds.y.tolist() == [0.5, 1.5, 2.5]
    both = concat(ds, ds)
    assert len(both) == 6 and both.items[4] == [(4, 1)]
    # a synthetic block is never the held-out family
    both.family[0:3] = ["resnet"] * 3
    folds = list(leave_one_family_out(both))
    assert [f for f, _ in folds] == ["resnet"]
    tr, va, te = folds[0][1]
    assert te == [0, 1, 2] and sorted(tr + va) == [3, 4, 5]


def test_missing_synthetic_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="build_synthetic.py"):
        synthetic_dataset(tmp_path / "nope.csv.gz", cache=None)


def test_feature_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    """assemble() extracts a model's BlockGraphs once; a second call reads them back and leaves the file alone."""
    from gapp_tui.predict import dataset as D

    gs, sig = D.model_graphs("squeezenet1_1", 1, 32)
    rows = [{"model": "squeezenet1_1", "family": "squeezenet", "batch_size": 1, "input_size": 32, "block": i,
             "block_name": g.block_name, "median_ms": 0.1 * (i + 1), "chain_sig": sig} for i, g in enumerate(gs)]
    cache = tmp_path / "features.pt"
    first = D.assemble(rows, {}, cache=cache)
    assert cache.is_file() and len(first) == len(gs)
    written = cache.stat().st_mtime_ns
    monkeypatch.setattr(D, "model_graphs", lambda *a, **k: pytest.fail("extracted again despite the cache"))
    again = D.assemble(rows, {}, cache=cache)
    assert cache.stat().st_mtime_ns == written
    assert [g.block_name for g in again.graphs] == [g.block_name for g in first.graphs]
    assert all(torch.equal(a.data.x, b.data.x) for a, b in zip(again.graphs, first.graphs))
