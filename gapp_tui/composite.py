"""Composite calls, recorded op by op: what torch.fx keeps as one node but the CPU runs as many.

torch.fx stops at ``nn.MultiheadAttention`` (a leaf ``torch.nn`` module) and
at functions wrapped with ``torch.fx.wrap`` such as torchvision's
``shifted_window_attention``. A graph that shows such a call as one
"attention" node hides the projections, reshapes, window padding and
rolls, masks and softmax that make up most of its time on a CPU. This module
runs the call once more on meta tensors (no memory, no arithmetic) under a
``TorchFunctionMode`` that records every torch function it calls: the
name, the tensors it read (which earlier op or which outer input produced
each), the tensor it made and its FLOPs. :mod:`gapp_tui.features` turns
the records into nodes and edges in place of the one node.

A leaf module -- one ``torch.fx`` was told not to trace into (``--leaf``) or
found it could not trace (:mod:`gapp_tui.capture`) -- is a composite call too:
any ``call_module`` node whose module is not a ``torch.nn`` layer is replayed
and recorded the same way, so the predictor sees its convolutions, norms and
reshapes rather than one opaque node. A leaf whose code needs real values
(an ``if`` on a tensor's contents) cannot run on meta tensors and stays one node.

``F.multi_head_attention_forward`` checks for torch-function overrides
itself, so it cannot be recorded from the inside; it is replaced by the
same computation written out (:func:`_mha`) — the path PyTorch takes with
``need_weights=False``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode

from .shapes import TensorInfo

#: call_function targets (by ``__name__``) and call_module classes (by name) that are expanded
EXPANDED_FUNCTIONS = frozenset({"shifted_window_attention", "shifted_window_attention_v2"})
EXPANDED_MODULES = frozenset({"MultiheadAttention"})

_TRANSPOSE_PROPERTIES = frozenset({"T", "mT", "H", "mH"})


@dataclasses.dataclass
class SubOp:
    """One torch function call inside a composite call."""

    name: str  # torch function name, e.g. "linear", "roll", "__getitem__"
    inputs: list[TensorInfo]  # tensors read that are activations
    params: list[TensorInfo]  # tensors read that are weights or buffers
    out: TensorInfo
    flops: int
    sources: list[tuple[str, int]]  # per activation input: ("op", index), ("arg", index of outer node) or ("none", -1)
    hyper: dict[str, float]


def _info(t: torch.Tensor) -> TensorInfo:
    return TensorInfo("", tuple(t.shape), str(t.dtype), t.numel() * t.element_size())


def _meta_like(info: TensorInfo | None) -> torch.Tensor | None:
    if info is None or not info.is_tensor or "[" in info.dtype:
        return None
    dtype = getattr(torch, info.dtype.replace("torch.", ""), None)
    if not isinstance(dtype, torch.dtype):
        return None
    return torch.empty(info.shape, dtype=dtype, device="meta")


def _mha(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, embed_dim_to_check: int, num_heads: int,
         in_proj_weight: torch.Tensor | None, in_proj_bias: torch.Tensor | None, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """``F.multi_head_attention_forward`` written out for (seq, batch, embed) inputs, as PyTorch's slow path runs it."""
    sig = inspect.signature(F.multi_head_attention_forward)
    b = sig.bind(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias, *args, **kwargs)
    b.apply_defaults()
    a = b.arguments
    tgt, bsz, embed = query.shape
    head = embed // num_heads
    if a["use_separate_proj_weight"]:
        qb, kb, vb = (in_proj_bias.chunk(3) if in_proj_bias is not None else (None, None, None))
        q = F.linear(query, a["q_proj_weight"], qb)
        k = F.linear(key, a["k_proj_weight"], kb)
        v = F.linear(value, a["v_proj_weight"], vb)
    elif query is key and key is value:
        qkv = F.linear(query, in_proj_weight, in_proj_bias)
        qkv = qkv.unflatten(-1, (3, embed)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        q, k, v = qkv[0], qkv[1], qkv[2]
    else:
        w_q, w_kv = in_proj_weight.split([embed, 2 * embed])
        b_q, b_kv = (in_proj_bias.split([embed, 2 * embed]) if in_proj_bias is not None else (None, None))
        q = F.linear(query, w_q, b_q)
        kv = F.linear(key, w_kv, b_kv)
        k, v = kv.unflatten(-1, (2, embed)).unsqueeze(0).transpose(0, -2).squeeze(-2)
    src = k.shape[0]
    q = q.view(tgt, bsz * num_heads, head).transpose(0, 1).view(bsz, num_heads, tgt, head)
    k = k.view(src, bsz * num_heads, head).transpose(0, 1).view(bsz, num_heads, src, head)
    v = v.view(src, bsz * num_heads, head).transpose(0, 1).view(bsz, num_heads, src, head)
    mask = a["attn_mask"]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.permute(2, 0, 1, 3).contiguous().view(bsz * tgt, embed)
    out = F.linear(out, a["out_proj_weight"], a["out_proj_bias"])
    return out.view(tgt, bsz, embed), None


class _Recorder(TorchFunctionMode):
    def __init__(self, args: dict[int, int], params: set[int]) -> None:
        super().__init__()
        self.args = args  # id(tensor) -> index of the outer input it stands for
        self.params = params  # id(tensor) of weights and buffers
        self.made: dict[int, int] = {}  # id(tensor) -> index of the sub-op that made it
        self.ops: list[SubOp] = []
        self.keep: list[torch.Tensor] = []  # keeps ids unique while recording

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name == "multi_head_attention_forward":
            with self:
                return _mha(*args, **kwargs)
        if name == "__get__":
            owner = getattr(func, "__self__", None)
            prop = getattr(owner, "__name__", "")
            if prop not in _TRANSPOSE_PROPERTIES:
                return func(*args, **kwargs)
            name = "transpose"
        with FlopCounterMode(display=False) as counter:
            out = func(*args, **kwargs)
        first = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor) else out
        if not isinstance(first, torch.Tensor):
            return out
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        acts = [t for t in tensors if id(t) not in self.params]
        sources: list[tuple[str, int]] = []
        for t in acts:
            if id(t) in self.made:
                sources.append(("op", self.made[id(t)]))
            elif id(t) in self.args:
                sources.append(("arg", self.args[id(t)]))
            else:  # made inside the call by something that was not recorded (a constant)
                sources.append(("none", -1))
        hyper: dict[str, float] = {}
        if name == "linear" and len(args) > 1 and isinstance(args[1], torch.Tensor):
            hyper = {"in_features": float(args[1].shape[-1]), "out_features": float(args[1].shape[0])}
        elif name in _CONV_FUNCTIONS and len(args) > 1 and isinstance(args[1], torch.Tensor):
            hyper = conv_hyper(args[1], *conv_options(args, kwargs))
        self.ops.append(SubOp(name, [_info(t) for t in acts], [_info(t) for t in tensors if id(t) in self.params],
                              _info(first), int(counter.get_total_flops()), sources, hyper))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.made[id(t)] = len(self.ops) - 1
                self.keep.append(t)
        return out


_CONV_FUNCTIONS = frozenset({"conv1d", "conv2d", "conv3d"})


def conv_options(args: tuple, kwargs: dict) -> tuple[Any, Any, Any, int]:
    """(stride, padding, dilation, groups) of a ``conv2d(input, weight, bias, stride, padding, dilation, groups)`` call."""
    names = ("stride", "padding", "dilation", "groups")
    defaults = (1, 0, 1, 1)
    values = list(args[3:7]) + [None] * (4 - len(args[3:7]))
    return tuple(kwargs.get(k, v if v is not None else d) for k, v, d in zip(names, values, defaults))  # type: ignore[return-value]


def conv_hyper(weight: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> dict[str, float]:
    """A convolution's hyperparameters from its weight's shape (out, in / groups, kH[, kW]) and options."""

    def pair(v: Any) -> tuple[float, float]:
        if isinstance(v, str):  # padding="same" / "valid"
            return -1.0, -1.0
        if isinstance(v, (tuple, list)):
            v = list(v) + [v[-1]] if len(v) == 1 else v
            return float(v[0]), float(v[1])
        return float(v), float(v)

    shape = list(weight.shape)
    kernel = shape[2:] + [1] * (2 - len(shape[2:])) if len(shape) < 4 else shape[2:4]
    h: dict[str, float] = {"in_channels": float(shape[1] * groups), "out_channels": float(shape[0]),
                           "groups": float(groups), "kernel_h": float(kernel[0]), "kernel_w": float(kernel[1])}
    h["stride_h"], h["stride_w"] = pair(stride)
    h["padding_h"], h["padding_w"] = pair(padding)
    h["dilation_h"], h["dilation_w"] = pair(dilation)
    return h


def expandable(node: fx.Node, root: nn.Module) -> bool:
    """Is ``node`` a composite call: an expanded function, an expanded torch.nn module, or a leaf module?"""
    if node.op == "call_function":
        return getattr(node.target, "__name__", "") in EXPANDED_FUNCTIONS
    if node.op == "call_module":
        mod = root.get_submodule(str(node.target))
        return type(mod).__name__ in EXPANDED_MODULES or is_leaf_module(mod)
    return False


def is_leaf_module(mod: nn.Module) -> bool:
    """A module torch.fx kept whole although it is not a torch.nn layer (a user's or an automatic leaf)."""
    return not type(mod).__module__.startswith("torch.")


def expand(node: fx.Node, root: nn.Module) -> tuple[list[SubOp], int] | None:
    """The torch calls ``node`` makes, and the index of the one whose tensor it returns; ``None`` if it is not
    a composite call (:func:`expandable`) or cannot be replayed.

    Outer inputs are rebuilt as meta tensors from the shape pass (``node.meta['gapp_value']``);
    ``("arg", i)`` in :attr:`SubOp.sources` is the i-th of ``node.all_input_nodes``.
    """
    if not expandable(node, root):
        return None
    found = _replay(node, root, real=False)
    if found is None and node.op == "call_module" and _is_real(root.get_submodule(str(node.target))):
        # code that reads values (an `if` on a tensor) cannot run on meta tensors; a real leaf runs once
        # on random inputs of the recorded shapes, and its records describe the path those inputs take
        found = _replay(node, root, real=True)
    return found


def _replay(node: fx.Node, root: nn.Module, real: bool) -> tuple[list[SubOp], int] | None:
    inputs = node.all_input_nodes
    stand_in: dict[fx.Node, torch.Tensor] = {}
    for a in inputs:
        t = _meta_like(a.meta.get("gapp_value"))
        if t is None:
            return None
        if real:
            t = _attribute(root, str(a.target)) if a.op == "get_attr" else _random_like(t)
        stand_in[a] = t
    arg_ids = {id(stand_in[a]): i for i, a in enumerate(inputs) if a.op != "get_attr"}
    params = {id(stand_in[a]) for a in inputs if a.op == "get_attr"}
    real_value = lambda v: stand_in[v] if isinstance(v, fx.Node) else v  # noqa: E731
    call_args = tree_map(real_value, node.args)
    call_kwargs = tree_map(real_value, dict(node.kwargs))
    if node.op == "call_module":
        mod = root.get_submodule(str(node.target))
        mod = mod if real else _meta_copy(mod)
        params |= {id(p) for p in mod.parameters()} | {id(b) for b in mod.buffers()}
        fn: Any = mod
    else:
        fn = node.target
    rec = _Recorder(arg_ids, params)
    try:
        with torch.no_grad(), rec:
            out = fn(*call_args, **call_kwargs)
    except Exception:  # a call that cannot be replayed: keep it as one node
        return None
    first = out[0] if isinstance(out, (tuple, list)) else out
    if not rec.ops or not isinstance(first, torch.Tensor) or id(first) not in rec.made:
        return None
    return rec.ops, rec.made[id(first)]


def _attribute(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _is_real(mod: nn.Module) -> bool:
    tensors = [*mod.parameters(), *mod.buffers()]
    return bool(tensors) and all(t.device.type != "meta" for t in tensors)


def _random_like(t: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if t.dtype.is_floating_point:
        return torch.randn(t.shape, generator=gen).to(t.dtype)
    return torch.zeros(t.shape, dtype=t.dtype)


def _meta_copy(mod: nn.Module) -> nn.Module:
    """A copy of ``mod`` on the meta device that never copies its real weights (a leaf may hold many)."""
    memo: dict[int, Any] = {}
    for p in mod.parameters():
        memo[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"), requires_grad=p.requires_grad)
    for b in mod.buffers():
        memo[id(b)] = torch.empty(b.shape, dtype=b.dtype, device="meta")
    return copy.deepcopy(mod, memo).to("meta").eval()
