"""ATen operations, and other functional calls, in the feature vocabulary.

A ``torch.export`` graph names its operations by ATen (``aten.hardtanh``,
``aten._native_batch_norm_legit_no_training``, ``aten.embedding``); a leaf
recorded op by op (:mod:`gapp_tui.composite`) and the models of timm, pytorchcv
and Hugging Face bring operations torchvision models do not use. :data:`KINDS`
maps those names onto the kinds of :data:`gapp_tui.features.OP_KINDS` (the
same operation, or the nearest: an embedding gathers rows). Only names no
torchvision model uses are added, so feature schema 2 and the features of
every torchvision model are unchanged.

A functional call carries no module to read hyperparameters from;
:func:`call_hyper` reads them from its arguments' shapes instead.
"""

from __future__ import annotations

import math

import torch
from torch import fx

from .composite import conv_hyper, conv_options

KINDS: dict[str, str] = {
    "hardtanh": "relu6", "native_layer_norm": "layernorm", "native_batch_norm": "batchnorm",
    "native_batch_norm_legit_no_training": "batchnorm", "instance_norm": "instancenorm",
    "max_pool1d": "maxpool", "max_pool3d": "maxpool", "max_pool2d_with_indices": "maxpool",
    "avg_pool1d": "avgpool", "avg_pool3d": "avgpool", "adaptive_avg_pool1d": "adaptive_avgpool",
    "adaptive_avg_pool3d": "adaptive_avgpool", "adaptive_max_pool1d": "adaptive_maxpool",
    "scaled_dot_product_flash_attention_for_cpu": "attention", "scaled_dot_product_efficient_attention": "attention",
    "conv_transpose1d": "conv_transpose", "conv_transpose2d": "conv_transpose", "conv_transpose3d": "conv_transpose",
    "t": "transpose", "slice": "getitem", "select": "getitem", "index": "getitem", "index_select": "getitem",
    "narrow": "getitem", "split_with_sizes": "split", "tensor_split": "split", "unsafe_view": "reshape",
    "view_as": "reshape", "alias": "contiguous", "to_copy": "contiguous", "to": "contiguous", "type_as": "contiguous",
    "detach": "contiguous", "lift_fresh_copy": "contiguous", "copy": "contiguous", "native_dropout": "dropout",
    "constant_pad_nd": "pad", "reflection_pad1d": "pad", "reflection_pad2d": "pad", "replication_pad2d": "pad",
    "upsample_nearest2d": "interpolate", "upsample_bilinear2d": "interpolate", "upsample_bicubic2d": "interpolate",
    "reciprocal": "div", "square": "pow", "clamp_min": "clamp", "clamp_max": "clamp", "minimum": "clamp",
    "maximum": "clamp", "full": "zeros", "ones": "zeros", "ones_like": "zeros", "full_like": "zeros",
    "empty": "zeros", "new_ones": "zeros", "new_full": "zeros", "new_empty": "zeros", "scalar_tensor": "zeros",
    "sym_size": "size", "sym_numel": "size", "assert_tensor_metadata": "size", "assert_scalar": "size",
    "set_grad_enabled": "size",
    # operations of Hugging Face and timm models, under the nearest kind: an embedding gathers rows,
    # arange makes a constant, logical operators compare (a cumulative sum stays outside: no such kind)
    "embedding": "getitem", "gather": "getitem", "index_put": "getitem", "arange": "zeros",
    "and": "compare", "or": "compare", "logical_and": "compare", "logical_or": "compare", "logical_not": "compare",
    "bitwise_and": "compare", "bitwise_or": "compare", "bitwise_not": "compare", "any": "compare", "all": "compare",
    "diff": "sub", "min": "max", "amin": "max", "argmax": "max", "var": "mean", "std": "mean", "tril": "clamp",
    "triu": "clamp", "log": "pow", "abs": "neg", "sign": "neg",
}


def _pair(v: object) -> tuple[float, float]:
    if isinstance(v, (tuple, list)):
        v = list(v) + [v[-1]] if len(v) == 1 else v
        return float(v[0]), float(v[1])
    return float(v), float(v)  # type: ignore[arg-type]


def _number(v: object) -> object:
    """An argument as written, or 0 where the graph computes it (a node: its value is not recorded)."""
    if isinstance(v, fx.Node):
        return 0
    if isinstance(v, (tuple, list)):
        return [0 if isinstance(x, fx.Node) else x for x in v]
    return v


def call_hyper(node: fx.Node, kind: str) -> dict[str, float]:
    """Hyperparameters of a functional call (an ATen op, ``F.conv2d``) from its arguments' shapes."""
    args = node.args

    def shape(i: int) -> tuple[int, ...] | None:
        info = args[i].meta.get("gapp_value") if len(args) > i and isinstance(args[i], fx.Node) else None
        return info.shape if info is not None and info.is_tensor else None

    if kind in ("conv1d", "conv2d", "conv3d") and shape(1):
        weight = torch.empty(shape(1), device="meta")
        stride, padding, dilation, groups = conv_options(tuple(args), dict(node.kwargs))
        if not isinstance(groups, int):  # computed from a size (timm's CondConv): input channels / weight's
            groups = shape(0)[1] // shape(1)[1] if shape(0) and len(shape(0)) > 1 else 1
        return conv_hyper(weight, _number(stride), _number(padding), _number(dilation), groups)
    if kind == "linear" and shape(1) and len(shape(1)) == 2:
        return {"in_features": float(shape(1)[1]), "out_features": float(shape(1)[0])}
    if not isinstance(node.target, torch._ops.OpOverload):
        # the functional norms and pools of a torch.fx graph kept their zeros in feature schema 2
        # (torchvision's convnext and inception call them); only export graphs get them from arguments
        return {}
    if kind == "batchnorm" and shape(1):
        return {"in_channels": float(shape(1)[0]), "out_channels": float(shape(1)[0])}
    if kind == "layernorm" and len(args) > 1 and isinstance(args[1], (tuple, list)):
        return {"in_features": float(math.prod(args[1])), "out_features": float(math.prod(args[1]))}
    if kind in ("maxpool", "avgpool") and len(args) > 1 and not isinstance(args[1], fx.Node):
        kernel = args[1]
        stride = args[2] if len(args) > 2 and args[2] else kernel
        h = {}
        h["kernel_h"], h["kernel_w"] = _pair(kernel)
        h["stride_h"], h["stride_w"] = _pair(stride)
        h["padding_h"], h["padding_w"] = _pair(args[3] if len(args) > 3 else 0)
        return h
    return {}
