"""The shape pass: every value of a captured graph annotated with its shape, bytes and FLOPs.

A pass in the manner of ``torch.fx.passes.shape_prop``: an ``Interpreter``
that fills ``node.meta`` and does not rewrite the graph. It runs on meta
tensors (a model built on the meta device) or on fake tensors (a real model),
so it costs no memory and no arithmetic; only a model whose code needs real
values (an ``if`` on a tensor's contents inside a leaf module) is run once
for real. It serves every front end of :mod:`gapp_tui.capture`: the nodes of
a ``torch.fx`` trace and of a ``torch.export`` graph are annotated alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from .errors import BadInput

COMPUTE_OPS = ("call_module", "call_function", "call_method")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One value crossing a cut: its name in the graph, shape, dtype and size."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int

    @property
    def is_tensor(self) -> bool:
        return self.dtype.startswith("torch.")


class ShapeFlopPass(fx.Interpreter):
    """Annotates every node with ``meta['gapp_value']`` (a :class:`TensorInfo`) and ``meta['flops']``."""

    def run_node(self, n: fx.Node) -> Any:
        if n.op in COMPUTE_OPS:
            with FlopCounterMode(display=False) as counter:
                result = super().run_node(n)
            n.meta["flops"] = int(counter.get_total_flops())
        else:
            result = super().run_node(n)
            n.meta["flops"] = 0
        n.meta["gapp_value"] = describe(n.name, result)
        return result


def describe(name: str, value: Any) -> TensorInfo:
    if isinstance(value, torch.Tensor):
        return TensorInfo(name, tuple(value.shape), str(value.dtype), value.numel() * value.element_size())
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        nbytes = sum(v.numel() * v.element_size() for v in value)
        return TensorInfo(name, tuple(value[0].shape), f"{type(value).__name__}[{value[0].dtype}]", nbytes)
    return TensorInfo(name, (), type(value).__name__, 0)


def as_inputs(shape: Sequence[int] | Sequence[Sequence[int]],
              dtype: torch.dtype | Sequence[torch.dtype] = torch.float32,
              ) -> tuple[tuple[tuple[int, ...], ...], tuple[torch.dtype, ...]]:
    """One shape or several (one per input) and one dtype for all or one per input, as (shapes, dtypes)."""
    several = len(shape) > 0 and not hasattr(shape[0], "__index__")  # a shape of shapes, not of ints
    shapes = tuple(tuple(int(d) for d in s) for s in shape) if several \
        else (tuple(int(d) for d in shape),)  # type: ignore[arg-type, union-attr]
    dtypes = tuple(dtype) if isinstance(dtype, (tuple, list)) else (dtype,) * len(shapes)
    if len(dtypes) != len(shapes):
        raise BadInput(f"{len(dtypes)} input dtypes for {len(shapes)} inputs; give one for all or one per input")
    return shapes, dtypes  # type: ignore[return-value]


def propagate_shapes(gm: fx.GraphModule, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> None:
    """Fill ``node.meta`` with shapes and FLOPs without running real arithmetic.

    Raises :class:`BadInput` naming the first node that could not be run.
    """
    try:
        run_shape_pass(gm, shape, dtype)
    except BadInput:
        raise
    except Exception as exc:
        raise BadInput(
            f"shape propagation failed at node {failing_node(gm)!r}: {first_line(exc)}"
            " (is the input shape right for this model? see --input-shape / --input-size)"
        ) from None


def run_shape_pass(gm: fx.GraphModule, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> None:
    """:func:`propagate_shapes` without the translation of errors (the caller decides what they mean).

    ``shape`` and ``dtype`` may name several inputs (:func:`as_inputs`), given to the graph in order.
    """
    shapes, dtypes = as_inputs(shape, dtype)
    params = list(gm.parameters()) + list(gm.buffers())
    if params and all(p.device.type == "meta" for p in params):  # a model with no weights is not on meta
        with torch.no_grad():  # shapes need no autograd (RevNet's custom Function fails with it on meta)
            ShapeFlopPass(gm).run(*(torch.empty(s, dtype=d, device="meta") for s, d in zip(shapes, dtypes)))
        return
    try:
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
            ShapeFlopPass(gm).run(*(mode.from_tensor(torch.empty(s, dtype=d)) for s, d in zip(shapes, dtypes)))
    except Exception:
        # data-dependent code (a leaf module with an `if` on values) needs real
        # numbers; the model is real, so run it once for real
        for n in gm.graph.nodes:
            n.meta.pop("gapp_value", None)
        with torch.no_grad():
            ShapeFlopPass(gm).run(*(torch.zeros(s, dtype=d) for s, d in zip(shapes, dtypes)))


def failing_node(gm: fx.GraphModule) -> str:
    for n in gm.graph.nodes:
        if "gapp_value" not in n.meta:
            return n.name
    return "?"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
