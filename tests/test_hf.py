"""Hugging Face models built from a configuration: random weights, no download, one input."""

from __future__ import annotations

import json
import math

import pytest

from gapp_tui.blocks import BlockChain
from gapp_tui.errors import BadInput
from gapp_tui.zoo import ModelSpec

pytest.importorskip("transformers")

#: a BERT-like encoder small enough to build and run in a second
TINY_BERT = "bert:num_hidden_layers=2,hidden_size=64,num_attention_heads=2,intermediate_size=128,vocab_size=1000"


def test_bert_like_encoder_from_a_config_composes():
    spec = ModelSpec("transformers:BertModel", hf_config=TINY_BERT, input_shape=(1, 16))
    chain = BlockChain.from_spec(spec)
    assert chain.spec.dtype.is_floating_point is False  # token ids
    assert chain.names == ["embeddings", "encoder.layer.0", "encoder.layer.1", "pooler"]
    assert chain.composition_error() <= 1e-4


def test_bert_like_encoder_predicts_finite_positive_times():
    from gapp_tui.predict.predictor import Predictor, default_predictor_path

    spec = ModelSpec("transformers:AutoModel", hf_config=TINY_BERT, input_shape=(16,), batch_size=2)
    doc = Predictor.load(default_predictor_path()).predict_model(spec)
    assert doc["input_shape"] == [2, 16] and doc["capture"]["front_end"] == "export"
    assert len(doc["blocks"]) == 4
    assert all(math.isfinite(b["predicted_ms"]) and b["predicted_ms"] > 0 for b in doc["blocks"])
    assert doc["unknown_ops"] == []  # embeddings, positions and masks map onto the vocabulary


def test_shipped_configuration_gives_the_natural_input():
    spec = ModelSpec("transformers:AutoModel", hf_config="bert-base-uncased")
    assert spec.shape == (1, 128) and str(spec.dtype) == "torch.int64"
    vit = ModelSpec("transformers:AutoModel", hf_config="google/vit-base-patch16-224", batch_size=2)
    assert vit.shape == (2, 3, 224, 224) and vit.dtype.is_floating_point


def test_configuration_from_a_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "distilbert", "n_layers": 1, "dim": 32, "n_heads": 2,
                                "hidden_dim": 64, "vocab_size": 200}))
    spec = ModelSpec("transformers:AutoModel", hf_config=str(path), input_shape=(1, 8))
    model = spec.build("meta")
    assert type(model).__name__ == "DistilBertModel" and len(model.transformer.layer) == 1


@pytest.mark.parametrize(
    "path, config, fragment",
    [
        ("transformers:AutoModel", "bert-base-uncase", "did you mean bert-base-uncased"),
        ("transformers:AutoModel", "bert:num_hidden_layers", "is not field=value"),
        ("transformers:AutoModel", "openai/whisper-tiny", "encoder-decoder"),
        ("transformers:BertModel", None, "needs a configuration"),
    ],
)
def test_what_is_not_supported_is_said(path, config, fragment):
    with pytest.raises(BadInput, match=fragment):
        ModelSpec(path, hf_config=config).build("meta")


def test_gapp_blocks_and_predict_take_a_hugging_face_config():
    from tests.test_cli_models import gapp

    r = gapp("blocks", "transformers:BertModel", "--hf-config", TINY_BERT, "--input-shape", "16", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["input_shape"] == [1, 16] and doc["input_dtype"] == "int64"
    assert doc["capture"]["front_end"] == "export" and doc["composition_max_abs_diff"] <= 1e-4
    r = gapp("predict", "transformers:BertModel", "--hf-config", TINY_BERT, "--input-shape", "1,16", "--json")
    assert r.returncode == 0, r.stderr
    assert all(b["predicted_ms"] > 0 for b in json.loads(r.stdout)["blocks"])
    r = gapp("blocks", "transformers:BertModel")
    assert r.returncode == 2 and "needs a configuration" in r.stderr and len(r.stderr.strip().splitlines()) == 1
