"""BlockGraph features: every model, on meta tensors, with a versioned schema."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from gapp_tui.blocks import BlockChain
from gapp_tui.errors import BadInput
from gapp_tui.features import (
    FEATURE_SCHEMA_VERSION,
    NODE_COLUMNS,
    OP_KINDS,
    TOTAL_COLUMNS,
    extract,
    load_features,
    save_features,
)
from gapp_tui.zoo import ModelSpec, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_registry_model_decomposes_and_extracts_on_meta(name):
    chain = BlockChain.from_spec(ModelSpec(name), device="meta")
    assert all(p.device.type == "meta" for p in chain.graph_module.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no op of a torchvision model falls outside the vocabulary
        graphs = extract(chain)
    assert len(graphs) == len(chain) >= 2
    for g in graphs:
        assert g.data.x.shape[1] == len(NODE_COLUMNS)
        assert g.data.x.shape[0] >= 2 and torch.isfinite(g.data.x).all()
        assert g.data.edge_index.max() < g.data.x.shape[0]
    # the last cut is the classifier output
    assert chain.cuts[-1].tensors[0].shape == (1, 1000)
    assert sum(g.data.totals[0, TOTAL_COLUMNS.index("flops")] for g in graphs) > 0


def test_flops_match_the_flop_counter_on_the_whole_model():
    from torch.utils.flop_counter import FlopCounterMode

    spec = ModelSpec("resnet18", input_size=64)
    chain = BlockChain.from_spec(spec, device="meta")
    graphs = extract(chain)
    model = spec.build("meta")
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(spec.shape, device="meta"))
    total = sum(float(g.data.totals[0, TOTAL_COLUMNS.index("flops")]) for g in graphs)
    assert total == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_conv_node_carries_its_hyperparameters():
    chain = BlockChain.from_spec(ModelSpec("resnet18"), device="meta")
    g = extract(chain)[0]  # stem: conv 7x7 stride 2
    conv_rows = g.data.x[g.data.op_kind == OP_KINDS.index("conv2d")]
    row = dict(zip(NODE_COLUMNS, conv_rows[0].tolist()))
    assert (row["in_channels"], row["out_channels"], row["kernel_h"], row["stride_h"], row["padding_h"]) == (3, 64, 7, 2, 3)
    assert row["params"] == 64 * 3 * 7 * 7
    assert (row["out_d1"], row["out_d2"], row["out_d3"]) == (64, 112, 112)
    assert row["bytes_written"] == 64 * 112 * 112 * 4


def test_block_totals_follow_the_cuts():
    chain = BlockChain.from_spec(ModelSpec("densenet121", input_size=64), device="meta")
    for g in extract(chain):
        t = dict(zip(TOTAL_COLUMNS, g.data.totals[0].tolist()))
        assert t["in_bytes"] == chain.cuts[g.block_index].bytes
        assert t["out_tensors"] == chain.cuts[g.block_index + 1].count
        assert t["params"] == chain.blocks[g.block_index].params


def test_huge_models_cost_no_real_memory():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chain = BlockChain.from_spec(ModelSpec("vit_h_14"), device="meta")
    extract(chain)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert sum(b.params for b in chain.blocks) > 600e6  # 2.5 GB of float32 weights...
    assert grown_mib < 400  # ...that were never allocated


def test_unknown_ops_fall_into_other_with_a_warning():
    spec = ModelSpec("tests.custom_models:branchy", input_shape=(1, 3, 8, 8))
    chain = BlockChain.from_spec(spec, leaves=["Gate"])
    with pytest.warns(UserWarning, match="Gate"):
        graphs = extract(chain)
    assert any("Gate" in g.unknown_ops for g in graphs)
    assert any(g.data.op_kind.eq(OP_KINDS.index("other")).any() for g in graphs)


def test_saved_features_round_trip_with_their_schema(tmp_path):
    chain = BlockChain.from_spec(ModelSpec("mobilenet_v2", input_size=64), device="meta")
    graphs = extract(chain)
    files = save_features(graphs, chain, tmp_path)
    back = load_features(files["graphs"])
    assert [g.block_name for g in back] == chain.names
    assert torch.equal(back[3].data.x, graphs[3].data.x)
    assert files["csv"].read_text().count("\n") == len(graphs) + 1
    doc = torch.load(files["graphs"], weights_only=True)
    assert doc["schema"]["schema_version"] == FEATURE_SCHEMA_VERSION


def test_features_of_another_schema_version_are_refused(tmp_path):
    chain = BlockChain.from_spec(ModelSpec("resnet18", input_size=32), device="meta")
    files = save_features(extract(chain), chain, tmp_path)
    doc = torch.load(files["graphs"], weights_only=True)
    doc["schema"]["schema_version"] = FEATURE_SCHEMA_VERSION + 1
    torch.save(doc, files["graphs"])
    with pytest.raises(BadInput, match="schema version"):
        load_features(files["graphs"])


def test_unwritable_output_dir(tmp_path):
    chain = BlockChain.from_spec(ModelSpec("resnet18", input_size=32), device="meta")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BadInput, match="not writable"):
        save_features(extract(chain), chain, blocker / "sub")


def test_input_nodes_do_no_work():
    # DenseNet's dense layers take up to dozens of inputs computed by earlier blocks
    chain = BlockChain.from_spec(ModelSpec("densenet121", input_size=64), device="meta")
    for g in extract(chain):
        inputs = g.data.x[g.data.op_kind == OP_KINDS.index("input")]
        for col in ("flops", "bytes_read", "bytes_written"):
            assert inputs[:, NODE_COLUMNS.index(col)].abs().sum() == 0
        assert (inputs[:, NODE_COLUMNS.index("out_d1")] > 0).all()  # shapes are kept


# ----------------------------------------------------------------------------- composite calls


def _kinds(g):
    return [OP_KINDS[k] for k in g.data.op_kind.tolist()]


def test_multihead_attention_is_recorded_op_by_op_with_its_flops():
    from torch.utils.flop_counter import FlopCounterMode

    spec = ModelSpec("vit_b_32", input_size=64)
    chain = BlockChain.from_spec(spec, device="meta")
    graphs = extract(chain)
    layer = next(g for g in graphs if g.block_name.endswith("encoder_layer_0"))
    kinds = _kinds(layer)
    # in-projection, attention core, out-projection, then the MLP's two linears
    assert kinds.count("attention") == 1 and kinds.count("linear") == 4
    assert kinds.index("linear") < kinds.index("attention") < len(kinds) - 1 - kinds[::-1].index("linear")
    rows = [dict(zip(NODE_COLUMNS, r)) for r in layer.data.x.tolist()]
    qkv = next(r for r in rows if r["op_linear"] == 1)
    assert (qkv["in_features"], qkv["out_features"]) == (768, 3 * 768)
    assert qkv["params"] == 3 * 768 * 768 + 3 * 768
    # every node is connected: the recorded ops hang off the block input and feed the residual add
    edges = layer.data.edge_index
    assert set(range(1, layer.data.num_nodes)) <= set(edges[1].tolist())
    # FLOPs are the same as counting the whole model at once
    with FlopCounterMode(display=False) as counter:
        spec.build("meta")(torch.empty(spec.shape, device="meta"))
    total = sum(float(g.data.totals[0, TOTAL_COLUMNS.index("flops")]) for g in graphs)
    assert total == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_shifted_window_attention_shows_its_window_roll_and_mask():
    chain = BlockChain.from_spec(ModelSpec("swin_t", input_size=128), device="meta")
    graphs = {g.block_name: g for g in extract(chain)}
    plain, shifted = _kinds(graphs["features.1.0"]), _kinds(graphs["features.1.1"])
    assert "roll" not in plain and plain.count("matmul") == 2 and plain.count("softmax") == 1
    assert shifted.count("roll") == 2  # shift, then shift back
    assert "clamp" in shifted  # the attention mask (masked_fill)
    assert len(shifted) > len(plain) > 30


def test_a_composite_call_that_cannot_be_replayed_stays_one_node():
    from gapp_tui import composite

    chain = BlockChain.from_spec(ModelSpec("swin_t", input_size=128), device="meta")
    block = chain.blocks[chain.names.index("features.1.0")]
    node = next(n for n in block.module.graph.nodes if composite.expandable(n, block.module))
    arg = node.all_input_nodes[0]
    saved = arg.meta["gapp_value"]
    arg.meta["gapp_value"] = dataclasses.replace(saved, shape=(3,))  # a shape the call cannot take
    try:
        assert composite.expand(node, block.module) is None
        g = extract(chain)[chain.names.index("features.1.0")]
        assert _kinds(g).count("attention") == 1 and "softmax" not in _kinds(g)
    finally:
        arg.meta["gapp_value"] = saved
