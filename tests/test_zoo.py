"""ModelSpec and the registry."""

from __future__ import annotations

import pytest
import torch

from gapp_tui.errors import BadInput
from gapp_tui.zoo import ModelSpec, families, family_of, model_names, parse_shape


def test_registry_lists_every_torchvision_classification_model():
    import torchvision

    assert set(model_names()) == set(torchvision.models.list_models(module=torchvision.models))
    assert len(model_names()) >= 80


def test_families_are_name_prefixes():
    fams = families()
    assert {"resnet", "vgg", "efficientnet", "mobilenet", "vit", "swin", "regnet"} <= set(fams)
    assert "resnet18" in fams["resnet"] and "wide_resnet50_2" in fams["wide_resnet"]
    assert family_of("efficientnet_v2_s") == "efficientnet"
    assert sum(len(v) for v in fams.values()) == len(model_names())


def test_natural_input_sizes():
    assert ModelSpec("inception_v3").shape == (1, 3, 299, 299)
    assert ModelSpec("resnet18", batch_size=4).shape == (4, 3, 224, 224)
    assert ModelSpec("resnet18", input_size=64).shape == (1, 3, 64, 64)


def test_inception_and_googlenet_have_no_aux_heads():
    for name in ("inception_v3", "googlenet"):
        model = ModelSpec(name, num_classes=10).build("meta")
        assert getattr(model, "AuxLogits", None) is None and getattr(model, "aux1", None) is None


def test_num_classes_sets_the_head():
    model = ModelSpec("resnet18", num_classes=7).build("meta")
    assert model.fc.out_features == 7


def test_meta_build_allocates_nothing_even_for_regnet():
    model = ModelSpec("regnet_y_400mf").build("meta")
    assert all(p.device.type == "meta" for p in model.parameters())


def test_random_init_is_reproducible_with_a_seed():
    torch.manual_seed(3)
    a = ModelSpec("resnet18", num_classes=4).build()
    torch.manual_seed(3)
    b = ModelSpec("resnet18", num_classes=4).build()
    assert torch.equal(a.fc.weight, b.fc.weight)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(BadInput, match="resnet18"):
        ModelSpec("resnet19")


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -1}, {"num_classes": 0}, {"input_size": -3}])
def test_bad_numbers_are_refused(kwargs):
    with pytest.raises(BadInput):
        ModelSpec("resnet18", **kwargs)


@pytest.mark.parametrize("text", ["1,3,a", "", "1,-3,4", "0x3"])
def test_bad_shapes_are_refused(text):
    with pytest.raises(BadInput):
        parse_shape(text)


def test_shape_spellings():
    assert parse_shape("1,3,32,32") == parse_shape("1x3x32x32") == parse_shape("(1, 3, 32, 32)") == (1, 3, 32, 32)


def test_import_path_model():
    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(2, 3, 16, 16))
    assert spec.shape == (2, 3, 16, 16)
    out = spec.build()(spec.example_input())
    assert out.shape == (2, 5)


@pytest.mark.parametrize(
    "path, fragment",
    [("nosuchpkg.mod:f", "cannot be imported"), ("tests.custom_models:missing", "no attribute"),
     (":f", "malformed")],
)
def test_bad_import_paths(path, fragment):
    with pytest.raises(BadInput, match=fragment):
        ModelSpec(path).build()


def test_callable_returning_no_module():
    with pytest.raises(BadInput, match="not a torch.nn.Module"):
        ModelSpec("tests.custom_models:not_a_module").build()
