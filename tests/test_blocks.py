"""BlockChain: natural blocks, runnable pieces, exact cuts, composition."""

from __future__ import annotations

import pytest
import torch

from gapp_tui.blocks import BlockChain
from gapp_tui.errors import BadInput
from gapp_tui.zoo import ModelSpec

# A broad, fast subset run with real tensors on small inputs (every family's structure).
REAL_SUBSET = {
    "resnet18": 32, "resnext50_32x4d": 32, "mobilenet_v2": 32, "mobilenet_v3_small": 32,
    "efficientnet_b0": 32, "efficientnet_v2_s": 32, "densenet121": 32, "googlenet": 32,
    "inception_v3": 75, "squeezenet1_1": 48, "shufflenet_v2_x0_5": 32, "mnasnet0_5": 32,
    "regnet_x_400mf": 32, "regnet_y_400mf": 32, "convnext_tiny": 32, "swin_t": 32,
    "vit_b_32": 32, "alexnet": 64, "vgg11_bn": 32, "maxvit_t": 224,
}


def chain_of(name: str, size: int | None = None, granularity="natural", **kw) -> BlockChain:
    return BlockChain.from_spec(ModelSpec(name, num_classes=10, input_size=size, **kw), granularity)


@pytest.mark.parametrize("name", sorted(REAL_SUBSET))
def test_chain_reproduces_the_unsplit_model(name):
    torch.manual_seed(0)
    chain = chain_of(name, REAL_SUBSET[name])
    assert len(chain) >= 3
    assert chain.composition_error() <= 1e-4


def test_resnet18_natural_blocks():
    chain = chain_of("resnet18", 32)
    assert chain.names == ["stem"] + [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["head"]


def test_inception_v3_natural_blocks():
    chain = BlockChain.from_spec(ModelSpec("inception_v3"), device="meta")
    names = chain.names
    assert names[:5] == ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    mixed = [n for n in names if n.startswith("Mixed_")]
    assert mixed == ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    assert names[-1] == "head"


def test_mobilenet_v2_blocks_are_inverted_residuals():
    from torchvision.models.mobilenetv2 import InvertedResidual

    chain = BlockChain.from_spec(ModelSpec("mobilenet_v2"), device="meta")
    model = ModelSpec("mobilenet_v2").build("meta")
    residuals = [n for n, m in model.named_modules() if isinstance(m, InvertedResidual)]
    assert [n for n in chain.names if n in residuals] == residuals


def test_vit_b_16_has_its_12_encoder_layers():
    chain = BlockChain.from_spec(ModelSpec("vit_b_16"), device="meta")
    layers = [n for n in chain.names if n.startswith("encoder.layers.encoder_layer_")]
    assert len(layers) == 12 and chain.names[0] == "stem"


def test_block_inputs_are_exactly_the_cut_tensors():
    chain = chain_of("densenet121", 32)
    x = chain.spec.example_input()
    _, inputs = chain.run(x, record=True)
    for block, ins in zip(chain.blocks, inputs):
        cut = chain.cuts[block.index]
        assert len(ins) == len(cut.tensors)
        for value, info in zip(ins, cut.tensors):
            assert tuple(value.shape) == info.shape
            assert value.numel() * value.element_size() == info.bytes
    # dense connectivity: several tensors cross most cuts
    assert max(c.count for c in chain.cuts) > 5


def test_skip_connection_crossing_a_cut_is_passed_through():
    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 8, 8))
    chain = BlockChain.from_spec(spec)
    assert chain.names[0] == "stem" and "block1" in chain.names
    after_block1 = chain.cuts[chain.names.index("block1") + 1]
    assert after_block1.count == 2  # block1's output and conv1's output (the skip)
    assert chain.composition_error() == 0.0


def test_each_block_runs_on_its_own():
    chain = chain_of("resnet18", 32)
    inputs = chain.block_inputs(chain.spec.example_input())
    with torch.no_grad():
        outs = chain.blocks[3].module(*inputs[3])
    assert isinstance(outs, tuple) and torch.equal(outs[0], inputs[4][0])


@pytest.mark.parametrize("granularity", ["op", "stage", 4])
def test_granularities_compose(granularity):
    chain = chain_of("resnet18", 32, granularity)
    natural = chain_of("resnet18", 32)
    if granularity == "op":
        assert len(chain) > 40
    elif granularity == "stage":
        assert chain.names == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    else:
        assert len(chain) == 4 < len(natural)
    assert chain.composition_error() <= 1e-4


def test_cut_bytes_follow_the_batch_size():
    one = BlockChain.from_spec(ModelSpec("resnet18", batch_size=1), device="meta")
    four = BlockChain.from_spec(ModelSpec("resnet18", batch_size=4), device="meta")
    assert [4 * c.bytes for c in one.cuts] == [c.bytes for c in four.cuts]
    assert one.cuts[0].bytes == 3 * 224 * 224 * 4


def test_untraceable_module_becomes_a_leaf_without_flags():
    spec = ModelSpec("tests.custom_models:branchy", input_shape=(1, 3, 8, 8))
    chain = BlockChain.from_spec(spec)
    assert [(lf.path, lf.cls) for lf in chain.capture.automatic_leaves] == [("gate", "Gate")]
    assert chain.composition_error() == 0.0


def test_leaf_makes_an_untraceable_module_opaque():
    spec = ModelSpec("tests.custom_models:branchy", input_shape=(1, 3, 8, 8))
    chain = BlockChain.from_spec(spec, leaves=["Gate"])
    assert chain.composition_error() == 0.0


def test_bad_granularity():
    with pytest.raises(BadInput, match="natural, stage, op"):
        chain_of("resnet18", 32, "fine")
    with pytest.raises(BadInput):
        chain_of("resnet18", 32, "0")


def test_wrong_input_shape_is_a_clear_error():
    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 5, 8, 8))
    with pytest.raises(BadInput, match="input shape"):
        BlockChain.from_spec(spec)


def test_overflow_in_both_the_chain_and_the_model_is_not_a_mismatch():
    class Overflow(torch.nn.Module):  # what a 1,000-layer random-init network does to its activations
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.a(x) * 1e38 * 1e38  # inf
            return self.b(y - y)  # nan

    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(2, 4))
    chain = BlockChain.from_spec(spec, model=Overflow())
    assert chain.composition_error() == 0.0
