"""Capture front ends: automatic leaves, torch.export, the capture report, the input made explicit."""

from __future__ import annotations

import pytest
import torch

from gapp_tui.blocks import BlockChain
from gapp_tui.capture import CaptureError, capture
from gapp_tui.errors import BadInput
from gapp_tui.features import NODE_COLUMNS, OP_KINDS, extract
from gapp_tui.zoo import ModelSpec


def custom(name: str, **kw) -> ModelSpec:
    return ModelSpec(f"tests.custom_models:{name}", input_shape=kw.pop("input_shape", (1, 3, 16, 16)), **kw)


def kinds(graph) -> list[str]:
    return [OP_KINDS[k] for k in graph.data.op_kind.tolist()]


# ----------------------------------------------------------------------------- automatic leaves


def test_data_dependent_submodule_becomes_a_leaf_and_composes():
    chain = BlockChain.from_spec(custom("gated"))
    report = chain.capture
    assert report.front_end == "fx" and report.attempts == 2
    assert [(lf.path, lf.cls, lf.automatic) for lf in report.leaves] == [("gate", "GatedUnit", True)]
    assert "control flow" in report.leaves[0].reason
    assert chain.names == ["stem", "gate", "layers.0", "layers.1", "head"]
    assert chain.composition_error() <= 1e-4


def test_a_leaf_that_reads_values_is_built_for_real_and_recorded():
    # meta tensors have no values for `if y.mean() > 0`: the model is built for real instead
    chain = BlockChain.from_spec(custom("gated"), device="meta")
    assert next(chain.graph_module.parameters()).device.type == "cpu"
    graph = extract(chain)[chain.names.index("gate")]
    assert kinds(graph)[:4] == ["input", "conv2d", "mean", "compare"] and "other" not in kinds(graph)


def test_a_leaf_is_recorded_op_by_op_on_meta_tensors():
    chain = BlockChain.from_spec(custom("padded"), device="meta")
    assert [lf.cls for lf in chain.capture.leaves] == ["SamePad"]
    graph = extract(chain)[chain.names.index("down")]
    assert kinds(graph) == ["input", "pad", "conv2d", "relu"]  # not one opaque node
    conv = dict(zip(NODE_COLUMNS, graph.data.x[kinds(graph).index("conv2d")].tolist()))
    assert (conv["in_channels"], conv["out_channels"], conv["kernel_h"], conv["stride_h"]) == (8, 8, 3, 2)
    assert conv["flops"] > 0 and conv["params"] == 8 * 8 * 9 + 8


def test_user_leaves_are_reported_as_asked_for():
    chain = BlockChain.from_spec(custom("padded"), leaves=["Unit"])
    by_path = {lf.path: lf for lf in chain.capture.leaves}
    assert by_path["layers.0"].reason == "--leaf" and not by_path["layers.0"].automatic
    assert by_path["down"].automatic
    assert chain.composition_error() <= 1e-4


def test_forward_arguments_with_defaults_are_fixed():
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x, mask=None, causal=False):
            if mask is not None:
                x = x + mask
            return self.fc(x) * (2 if causal else 1)

    gm, report = capture(Masked(), (2, 4))
    assert [n.name for n in gm.graph.nodes if n.op == "placeholder"] == ["x"]
    assert report.front_end == "fx"
    assert all("assert" not in str(n.target) for n in gm.graph.nodes)


# ----------------------------------------------------------------------------- torch.export


def test_a_model_fx_cannot_trace_goes_through_torch_export():
    chain = BlockChain.from_spec(custom("size_loop", input_shape=(1, 3, 32, 32)))
    report = chain.capture
    assert report.front_end == "export" and "own forward" in report.fallback
    assert chain.names == ["stem", "layers.0", "layers.1", "head"]
    assert chain.composition_error() <= 1e-4
    graphs = extract(chain)
    assert kinds(graphs[1]).count("conv2d") == 2 and "other" not in kinds(graphs[1])
    conv = dict(zip(NODE_COLUMNS, graphs[1].data.x[kinds(graphs[1]).index("conv2d")].tolist()))
    assert (conv["in_channels"], conv["out_channels"], conv["kernel_h"], conv["padding_h"]) == (8, 8, 3, 1)


def test_export_of_a_registry_model_matches_the_fx_blocks():
    fx_chain = BlockChain.from_spec(ModelSpec("resnet18", input_size=32), device="meta")
    ex_chain = BlockChain.from_spec(ModelSpec("resnet18", input_size=32, capture="export"))
    assert ex_chain.capture.front_end == "export" and ex_chain.names == fx_chain.names
    assert [c.bytes for c in ex_chain.cuts] == [c.bytes for c in fx_chain.cuts]
    assert [b.flops for b in ex_chain.blocks] == [b.flops for b in fx_chain.blocks]
    assert ex_chain.composition_error() <= 1e-4
    # the same convolutions, with the same hyperparameters, in every block
    for a, b in zip(extract(fx_chain), extract(ex_chain)):
        conv = OP_KINDS.index("conv2d")
        assert torch.equal(a.data.x[a.data.op_kind == conv][:, len(OP_KINDS):len(OP_KINDS) + 11],
                           b.data.x[b.data.op_kind == conv][:, len(OP_KINDS):len(OP_KINDS) + 11])


def test_fx_only_names_where_it_fails_and_suggests_export():
    with pytest.raises(CaptureError) as info:
        BlockChain.from_spec(custom("size_loop", capture="fx", input_shape=(1, 3, 32, 32)))
    message = str(info.value)
    assert "own forward" in message and "--capture export" in message and "\n" not in message


def test_bad_capture_front_end_is_refused():
    with pytest.raises(BadInput, match="auto, fx, export"):
        ModelSpec("resnet18", capture="jit")


# ----------------------------------------------------------------------------- the input


def test_one_item_shape_gets_the_batch_dimension():
    chain = BlockChain.from_spec(custom("two_branch", input_shape=(3, 8, 8), batch_size=2), device="meta")
    assert chain.spec.shape == (2, 3, 8, 8) and chain.cuts[0].tensors[0].shape == (2, 3, 8, 8)
    full = BlockChain.from_spec(custom("two_branch", input_shape=(2, 3, 8, 8)), device="meta")
    assert full.spec.shape == (2, 3, 8, 8)
    registry = ModelSpec("resnet18", input_shape=(3, 64, 64), batch_size=4)
    assert registry.shape == (4, 3, 64, 64)


def test_integer_inputs_are_token_ids():
    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(2, 5), input_dtype="int64")
    x = spec.example_input()
    assert x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < 100
    with pytest.raises(BadInput, match="input dtype"):
        ModelSpec("resnet18", input_dtype="int8")


def test_a_space_to_depth_stem_takes_the_channels_the_class_declares():
    # pytorchcv's TResNet: the first convolution takes 48 channels, made from the 3 of the image
    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:space_to_depth"), device="meta")
    assert chain.spec.shape == (1, 3, 32, 32)
    # built with in_channels=1 and a plain stem: the first convolution's channels are the input's
    gray = BlockChain.from_spec(ModelSpec("tests.custom_models:gray"), device="meta")
    assert gray.spec.shape == (1, 1, 32, 32)


@pytest.mark.parametrize("front_end", ["fx", "export"])
def test_units_written_as_call_instead_of_forward_are_natural_blocks(front_end):
    from tests.custom_models import CallUnit

    model = ModelSpec("tests.custom_models:space_to_depth").build()
    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:space_to_depth", capture=front_end), model=model)
    assert chain.capture.front_end == front_end
    assert chain.names == ["stem", "layers.0", "layers.1", "layers.2", "head"]
    assert all(type(m) is CallUnit for m in model.layers)  # the classes swapped while captured are put back
    assert chain.composition_error() <= 1e-5


# ----------------------------------------------------------------------------- the zoos' known failures

ISSUE_MODELS = [
    "timm.models:vit_tiny_patch16_224",  # traced, then forward() missing 'attn_mask' and 'is_causal'
    "timm.models:mobilevit_xs",  # control flow in MobileVitBlock, which holds transformer layers: export
    "pytorchcv.model_provider:bagnet9",  # control flow in BagNetUnit
    "pytorchcv.model_provider:efficientnet_edge_small_b",  # float() of a size in EffiInitBlock
    "pytorchcv.model_provider:efficientnet_edge_medium_b",
    "pytorchcv.model_provider:efficientnet_edge_large_b",
]


@pytest.mark.parametrize("path", ISSUE_MODELS)
def test_zoo_models_that_used_to_stop_compose_without_flags(path):
    pytest.importorskip(path.split(".")[0])
    torch.manual_seed(0)
    chain = BlockChain.from_spec(ModelSpec(path))
    assert chain.spec.shape[0] == 1 and len(chain.spec.shape) == 4  # the input the model declares
    assert len(chain) >= 3
    assert chain.composition_error() <= 1e-4


def test_state_the_model_caches_while_captured_is_undone():
    class Cached(torch.nn.Module):  # like timm's attention-bias caches: filled on first use, keyed by device
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.randn(4))
            self.cache = {}

        def forward(self, x):
            key = str(x.device)
            if key not in self.cache:
                self.cache[key] = self.bias * 2
            return x + self.cache[key]

    model = Cached()
    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:two_branch", input_shape=(2, 4)), model=model)
    assert model.cache == {}  # no proxy or fake tensor left behind for the real model to read
    assert chain.composition_error() <= 1e-6


def test_a_buffer_the_model_replaces_while_captured_is_put_back():
    # like ConViT's rel_indices: replaced on first use; replaced by a fake or meta tensor during capture,
    # the real model would then read it
    model = ModelSpec("tests.custom_models:positioned").build()
    before = model.pos.table
    chain = BlockChain.from_spec(custom("positioned"), model=model)
    assert [lf.cls for lf in chain.capture.leaves] == ["PositionTable"]
    assert model.pos.table is before
    assert chain.composition_error() <= 1e-6


def test_a_custom_autograd_function_gets_its_shapes_on_meta_tensors():
    # like RevNet's reversible blocks: a Function that frees its input fails under autograd on meta tensors
    chain = BlockChain.from_spec(custom("reversible"), device="meta")
    assert chain.names == ["stem", "units.0", "units.1", "head"]
    assert [b.flops > 0 for b in chain.blocks] == [True] * 4
    real = BlockChain.from_spec(custom("reversible"))
    assert real.composition_error() <= 1e-5


def test_a_model_that_needs_two_inputs_is_refused_in_one_line():
    class TwoFrames(torch.nn.Module):
        def forward(self, first, second):
            return first - second

    with pytest.raises(BadInput, match=r"takes 2 inputs \(first, second\)"):
        capture(TwoFrames(), (1, 3))


def test_a_leaf_that_would_swallow_natural_blocks_sends_auto_to_export():
    # torch.fx can trace Staged only with its ShapeStage as a leaf: both units would become one block
    fx_chain = BlockChain.from_spec(custom("staged", capture="fx"))
    assert [lf.cls for lf in fx_chain.capture.leaves] == ["ShapeStage"] and "stage" in fx_chain.names
    chain = BlockChain.from_spec(custom("staged"))
    assert chain.capture.front_end == "export" and "ShapeStage (stage) as a leaf" in chain.capture.fallback
    assert chain.names == ["stem", "stage.units.0", "stage.units.1", "head"]
    assert chain.composition_error() <= 1e-4
