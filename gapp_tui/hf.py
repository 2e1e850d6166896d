"""Hugging Face models from a configuration: random weights, nothing downloaded.

``--hf-config`` names the architecture; the import path names what builds it:

* ``transformers:AutoModel --hf-config bert-base-uncased`` -- a configuration
  shipped with GAPP (:func:`config_names`: BERT, DistilBERT, RoBERTa, ALBERT,
  GPT-2, ViT, DeiT, Whisper), the architecture fields of the checkpoint's
  published ``config.json``;
* ``--hf-config bert:num_hidden_layers=4,hidden_size=256`` -- a model type and
  fields, built with ``AutoConfig.for_model``;
* ``--hf-config path/to/config.json`` -- a configuration file on disk.

An Auto class is built with ``from_config``, any other class or callable is
called with the configuration. The hub is never contacted (``HF_HUB_OFFLINE``).

The model's input is its first ``forward`` argument, the others keep their
defaults: token ids for text models (``input_ids``, ``(batch, 128)`` int64
unless ``--input-shape`` says otherwise), ``pixel_values`` for vision models,
``input_features`` for Whisper's encoder. Not supported yet: models that need
two inputs, which includes every encoder-decoder model as a whole (Whisper,
T5, BART: the decoder needs its own ids; use the encoder class) -- a chain of
blocks has one input.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import BadInput, closest

_CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs.json"
#: tokens in the default text input (a typical sequence length for encoder benchmarks)
TEXT_TOKENS = 128


def offline() -> None:
    """Never reach the hub, and keep stderr to GAPP's own lines (call before transformers is imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # importing transformers registers enums with torch's pytree, which logs a deprecation per enum
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


@lru_cache(maxsize=1)
def _shipped() -> dict[str, dict[str, Any]]:
    doc = json.loads(_CONFIGS.read_text())
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def config_names() -> tuple[str, ...]:
    """The configurations shipped with GAPP."""
    return tuple(sorted(_shipped()))


@lru_cache(maxsize=32)
def load_config(text: str) -> Any:
    """A ``transformers`` configuration from a shipped name, ``type:field=value,...`` or a config.json path."""
    offline()
    try:
        from transformers import AutoConfig  # slow and optional: only for Hugging Face models
    except ImportError:
        raise BadInput(f"--hf-config {text!r} needs the transformers package (pip install 'gapp-tui[zoo]')") from None
    fields: dict[str, Any]
    if text in _shipped():
        fields = dict(_shipped()[text])
    elif text.endswith(".json") or os.path.sep in text:
        try:
            fields = json.loads(Path(text).read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(f"--hf-config {text!r} cannot be read as a config.json ({exc})") from None
    elif ":" in text or "=" not in text:
        model_type, _, rest = text.partition(":")
        fields = {"model_type": model_type, **_parse_fields(text, rest)}
    else:
        raise BadInput(f"--hf-config {text!r} is not valid; give a shipped name, type:field=value,... or a config.json")
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise BadInput(f"--hf-config {text!r} names no model_type")
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError:
        from transformers import CONFIG_MAPPING  # optional: transformers

        hint = closest(text, config_names()) or closest(model_type, list(CONFIG_MAPPING.keys()))
        raise BadInput(
            f"--hf-config {text!r}: unknown model type {model_type!r}{hint}"
            f" (shipped configurations: {', '.join(config_names())})"
        ) from None


def _parse_fields(text: str, rest: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BadInput(f"--hf-config {text!r}: {item!r} is not field=value (e.g. bert:num_hidden_layers=4)")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def build(factory: Any, config_text: str, path: str) -> Any:
    """Build a model from ``factory`` (an Auto class, a model class or a callable) and the configuration."""
    config = load_config(config_text)
    if hasattr(config, "use_cache"):
        config.use_cache = False  # outputs hold tensors only, no cache objects
    if getattr(config, "is_encoder_decoder", False) and not _is_encoder(factory):
        raise BadInput(
            f"{path} with --hf-config {config_text!r} is an encoder-decoder model, which takes two inputs; GAPP"
            " captures one-input models, so give its encoder (e.g. transformers.models.whisper.modeling_whisper:"
            "WhisperEncoder)"
        )
    if hasattr(factory, "from_config"):
        return factory.from_config(config)
    return factory(config)


def _is_encoder(factory: Any) -> bool:
    return "Encoder" in getattr(factory, "__name__", "")


def natural_input(config_text: str) -> tuple[tuple[int, ...], str]:
    """The input of one item (no batch dimension) and its dtype for a configuration."""
    config = load_config(config_text)
    if hasattr(config, "num_mel_bins"):  # audio encoders: mel frames
        return (config.num_mel_bins, 2 * config.max_source_positions), "float32"
    if hasattr(config, "image_size"):
        size = config.image_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (getattr(config, "num_channels", 3), h, w), "float32"
    tokens = min(TEXT_TOKENS, getattr(config, "max_position_embeddings", TEXT_TOKENS) or TEXT_TOKENS)
    return (tokens,), "int64"


def needs_config(factory: Any) -> bool:
    """Is ``factory`` a transformers class that cannot be called without a configuration?"""
    module = getattr(factory, "__module__", "") or ""
    return module.startswith("transformers") and isinstance(factory, type)
