"""Capture: a model turned into one graph of operations, annotated with shapes, by one of two front ends.

One concept: capture (a model, on one input or several, to one annotated graph, whichever front end makes it).

* ``fx``: ``torch.fx`` symbolic tracing. Where tracing fails inside a module
  (an ``if`` on a tensor, ``float()`` of a size, a loop over a shape), that
  module's class becomes a *leaf* -- kept as one call, not traced into -- and
  the trace is tried again, innermost failure first, until it succeeds or
  the failure is in the model's own ``forward``. Leaves the user names
  (``--leaf``) are kept as they are. A leaf is not blind to the predictor:
  :mod:`gapp_tui.composite` records the operations it runs, on meta tensors.
  Arguments of ``forward`` after the input(s) that have defaults
  (``attn_mask=None``) are fixed to those defaults, so the graph takes one input
  per shape given (a model whose ``forward`` requires two gets two shapes).
* ``export``: ``torch.export`` (non-strict), for models ``torch.fx`` cannot
  trace at all. The graph is ATen operations; every node keeps the module path
  it ran in (``nn_module_stack``), which is all :mod:`gapp_tui.blocks` needs to
  find the natural blocks.
* ``auto`` (the default): ``fx``, and ``export`` when ``fx`` cannot trace the
  model's own ``forward``, its graph does not run on the shape pass, or it
  needed a leaf that holds several natural blocks (a stage whose own
  ``forward`` it cannot trace), which export keeps apart.

Either way the result is a ``GraphModule`` whose nodes carry
``meta['gapp_value']`` and ``meta['flops']`` (:mod:`gapp_tui.shapes`) and a
:class:`CaptureReport` saying which front end made it and which modules
became leaves, and why.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import inspect
import operator
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _assert_is_none

from .errors import BadInput
from .granularity import unit_map
from .shapes import as_inputs, failing_node, first_line, propagate_shapes, run_shape_pass

FRONT_ENDS = ("auto", "fx", "export")
#: guard nodes torch.fx adds for the arguments it fixes to their defaults
_GUARDS = (torch._assert, _assert_is_none)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A module kept as one call: its path, its class and why."""

    path: str
    cls: str
    reason: str  # torch.fx's error inside the module, or "--leaf" when the user asked
    automatic: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CaptureReport:
    """How a graph was captured: what the CLI, ``--json`` and the TUI show."""

    front_end: str  # "fx" or "export": the one that made the graph
    requested: str = "auto"  # auto, fx or export
    leaves: tuple[Leaf, ...] = ()
    fallback: str | None = None  # why fx was not used, when auto chose export
    attempts: int = 1  # traces tried (one more per automatic leaf class)
    seconds: float = 0.0

    @property
    def automatic_leaves(self) -> tuple[Leaf, ...]:
        return tuple(lf for lf in self.leaves if lf.automatic)

    def to_dict(self) -> dict[str, Any]:
        return {
            "front_end": self.front_end,
            "requested": self.requested,
            "leaves": [lf.to_dict() for lf in self.leaves],
            "fallback": self.fallback,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line: ``torch.fx, 3 automatic leaves: BagNetUnit (3)``; ``fallback`` says why when it is export."""
        name = {"fx": "torch.fx", "export": "torch.export"}[self.front_end]
        text = name + (" in place of torch.fx" if self.fallback else "")
        auto = self.automatic_leaves
        if auto:
            counts: dict[str, int] = {}
            for lf in auto:
                counts[lf.cls] = counts.get(lf.cls, 0) + 1
            kinds = ", ".join(f"{c} ({k})" if k > 1 else c for c, k in counts.items())
            text += f", {len(auto)} automatic lea{'f' if len(auto) == 1 else 'ves'}: {kinds}"
        return text

    def explain(self, width: int = 70) -> str:
        """What a person reads in the TUI: the front end, every leaf (count, classes, paths) and why.

        ``captured with torch.fx · no leaves``;
        ``captured with torch.fx · 1 leaf: GatedUnit at gate (automatic: torch.fx cannot trace ...)``;
        each reason is cut to ``width`` characters.
        """
        name = {"fx": "torch.fx", "export": "torch.export"}[self.front_end]
        text = f"captured with {name}"
        if self.fallback:
            text += f" in place of torch.fx ({_cut(self.fallback, width)})"
        if not self.leaves:
            return text + (" · no leaves" if self.front_end == "fx" else "")
        by_class: dict[str, list[Leaf]] = {}
        for lf in self.leaves:
            by_class.setdefault(lf.cls, []).append(lf)
        parts = []
        for cls, members in by_class.items():
            where = ", ".join(lf.path for lf in members[:3]) + (f" +{len(members) - 3}" if len(members) > 3 else "")
            why = "asked for (--leaf)" if not members[0].automatic else f"automatic: {_cut(members[0].reason, width)}"
            parts.append(f"{cls} at {where} ({why})")
        n = len(self.leaves)
        return f"{text} · {n} lea{'f' if n == 1 else 'ves'}: " + "; ".join(parts)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class CaptureError(BadInput):
    """No front end could capture the model; the message says where each one failed."""


class NeedsRealValues(BadInput):
    """The model's code reads tensor values (``if x.mean() > 0``), which meta tensors do not have.

    Raised for a model on the meta device only: the same model built for real
    can be captured (the shape pass then runs it once).
    """


#: what the errors of code that reads a meta tensor's values say
_VALUE_MARKERS = ("meta tensor", "item()", "data-dependent", "data dependent", "_local_scalar_dense", "DataDependent")


def capture(
    model: nn.Module,
    shape: Sequence[int] | Sequence[Sequence[int]],
    dtype: torch.dtype | Sequence[torch.dtype] = torch.float32,
    front_end: str = "auto",
    leaves: Iterable[str] = (),
    label: str = "model",
) -> tuple[fx.GraphModule, CaptureReport]:
    """Capture ``model`` on an input of ``shape`` and annotate its graph; see the module docstring.

    ``shape`` and ``dtype`` may name several inputs (a shape per input, in ``forward``'s order; a dtype for
    all or per input): the graph then has one placeholder per input.
    ``leaves``: module class names or paths ``torch.fx`` must not trace into.
    Raises :class:`BadInput` (a :class:`CaptureError` when no front end could
    capture the model) with one line naming where and why.
    """
    if front_end not in FRONT_ENDS:
        raise BadInput(f"capture front end {front_end!r} is not valid; give one of {', '.join(FRONT_ENDS)}")
    shapes, dtypes = as_inputs(shape, dtype)
    _check_inputs(model, len(shapes), label)
    with _state_kept(model), _calls_as_forward(model):
        return _capture(model, shapes, dtypes, front_end, leaves, label)


def _check_inputs(model: nn.Module, given: int, label: str) -> None:
    """BadInput in one line when ``forward`` needs more inputs than were given (saying how to give them), or
    takes fewer."""
    required = _required_inputs(model)
    if len(required) > given:
        names = ", ".join(required)
        example = " ".join(["--input-shape SHAPE"] * len(required))
        raise BadInput(
            f"{label} takes {len(required)} inputs ({names}) and {given} input shape{'s were' if given > 1 else ' was'}"
            f" given; give one shape per input, in forward's order: {example} (or one --input-shape with ';'"
            " between shapes)"
        )
    positional = _positional_inputs(model)
    if positional is not None and given > len(positional):
        raise BadInput(f"{label} takes at most {len(positional)} input{'s' if len(positional) != 1 else ''}"
                       f" ({', '.join(positional)}) and {given} input shapes were given; give one shape per input")


def _module_call(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    return nn.Module.__call__(self, *args, **kwargs)  # looked up at call time: the one a front end patched


@contextlib.contextmanager
def _calls_as_forward(model: nn.Module) -> Iterator[None]:
    """Modules that define ``__call__`` instead of ``forward`` (pytorchcv's TResNet units) are seen by the
    front ends as modules while captured.

    Both front ends learn which module an operation ran in from ``nn.Module.__call__``, which such a
    module bypasses: its operations would land in whatever module called it, and its units would vanish
    from the natural blocks. While captured, each one's class is a subclass whose ``forward`` is its
    ``__call__`` and whose ``__call__`` is ``nn.Module``'s; the class is put back afterwards.
    """
    swapped: list[tuple[nn.Module, type]] = []
    made: dict[type, type] = {}
    for m in model.modules():
        cls = type(m)
        if cls.__call__ is nn.Module.__call__ or cls.forward is not nn.Module.forward:
            continue  # the usual module; or one with both, whose __call__ may call forward itself
        if cls not in made:
            made[cls] = type(cls.__name__, (cls,), {"forward": cls.__call__, "__call__": _module_call,
                                                    "__module__": cls.__module__, "__qualname__": cls.__qualname__})
        swapped.append((m, cls))
        m.__class__ = made[cls]
    try:
        yield
    finally:
        for m, cls in swapped:
            m.__class__ = cls


def _required_inputs(model: nn.Module) -> list[str]:
    """Names of ``forward``'s arguments that have no default (the input and any it cannot do without)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is inspect.Parameter.empty]


def _positional_inputs(model: nn.Module) -> list[str] | None:
    """Names of ``forward``'s positional arguments, or None when it takes ``*args`` (or has no signature)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _capture(model: nn.Module, shape: Sequence[Sequence[int]], dtype: Sequence[torch.dtype], front_end: str,
             leaves: Iterable[str], label: str) -> tuple[fx.GraphModule, CaptureReport]:
    t0 = time.perf_counter()
    leaves = tuple(leaves)
    fx_failure: str | None = None
    shape_error: BadInput | None = None
    if front_end in ("auto", "fx"):
        try:
            gm, found, attempts = trace_fx(model, leaves, label, len(shape))
        except _FxFailure as exc:
            if front_end == "fx":
                raise CaptureError(f"{exc}; make that module a leaf ({exc.hint}) or try --capture export") from None
            fx_failure = str(exc)
        else:
            try:
                run_shape_pass(gm, shape, dtype)
            except Exception as exc:
                if _on_meta(model) and any(m in f"{type(exc).__name__}: {exc}" for m in _VALUE_MARKERS):
                    raise NeedsRealValues(
                        f"{label} reads tensor values while it runs ({first_line(exc)}); meta tensors have none"
                    ) from None
                shape_error = BadInput(
                    f"shape propagation failed at node {failing_node(gm)!r}: {first_line(exc)}"
                    " (is the input shape right for this model? see --input-shape / --input-size)"
                )
                if front_end == "fx":
                    raise shape_error from None
                fx_failure = f"the torch.fx graph of {label} does not run on the shape pass ({first_line(exc)})"
            else:
                report = CaptureReport("fx", front_end, found, None, attempts, time.perf_counter() - t0)
                swallowed = _swallowing_leaf(model, found)
                if swallowed is None or front_end == "fx":
                    return gm, report
                # a leaf that holds several natural blocks would make them one: export keeps them apart
                why = (f"torch.fx could trace {label} only with {swallowed[0].cls} ({swallowed[0].path}) as a leaf,"
                       f" which holds {swallowed[1]} blocks")
                try:
                    exported = export_graph(model, shape, dtype, label)
                    run_shape_pass(exported, shape, dtype)
                except Exception:  # noqa: BLE001 -- export cannot do better: keep the fx graph and its leaf
                    return gm, report
                return exported, CaptureReport("export", front_end, (), why, attempts + 1, time.perf_counter() - t0)
    try:
        gm = export_graph(model, shape, dtype, label, fx_failure)
    except CaptureError:
        if shape_error is not None:  # fx traced it: its error names the node, export's would not
            raise shape_error from None
        raise
    propagate_shapes(gm, shape, dtype)
    report = CaptureReport("export", front_end, (), fx_failure, 1 if fx_failure is None else 2,
                           time.perf_counter() - t0)
    return gm, report


#: module attributes that hold the model's structure, not state its code keeps between calls
_STRUCTURE = frozenset({"_parameters", "_buffers", "_modules"})


@contextlib.contextmanager
def _state_kept(model: nn.Module) -> Iterator[None]:
    """Undo what the model's own code stores on its modules while it is traced, exported or shape-propagated.

    Some models cache tensors on first use (timm's attention-bias caches, keyed by device; ConViT
    replaces its ``rel_indices`` buffer when the number of patches changes): filled during capture they
    would hold proxies or fake tensors, which the real model then reads. Buffers are put back too.
    """
    saved = []
    buffers = []
    for m in model.modules():
        state = vars(m)
        contents = {k: copy.copy(v) for k, v in state.items()
                    if k not in _STRUCTURE and type(v) in (dict, list, collections.OrderedDict)}
        saved.append((state, dict(state), contents))
        buffers.append((m._buffers, dict(m._buffers)))
    try:
        yield
    finally:
        for live, before_buffers in buffers:
            if not _same_items(live, before_buffers):
                live.clear()
                live.update(before_buffers)
        for state, before, contents in saved:
            for k in [k for k in state if k not in before]:
                del state[k]
            for k, v in before.items():
                if state.get(k) is not v:
                    state[k] = v
            for k, c in contents.items():
                v = state[k]
                if not _same_items(v, c):
                    v.clear()
                    v.update(c) if isinstance(v, dict) else v.extend(c)


def _same_items(a: dict | list, b: dict | list) -> bool:
    """Same keys and the very same objects (``==`` on tensors would compare values)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(a[k] is b[k] for k in a)  # type: ignore[call-overload]
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _swallowing_leaf(model: nn.Module, leaves: Sequence[Leaf]) -> tuple[Leaf, int] | None:
    """The first automatic leaf that holds two or more natural blocks, and how many it holds."""
    if not any(lf.automatic for lf in leaves):
        return None
    units = set(unit_map(model).values())
    for lf in leaves:
        inside = sum(1 for u in units if u.startswith(f"{lf.path}."))
        if lf.automatic and inside >= 2:
            return lf, inside
    return None


def _on_meta(model: nn.Module) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


# --------------------------------------------------------------------------- torch.fx


class _FxFailure(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class _Tracer(fx.Tracer):
    """The default tracer plus leaf modules: named by the user (class name or path) or found automatically."""

    def __init__(self, names: Iterable[str], classes: Iterable[type]) -> None:
        super().__init__()
        self.names = set(names)
        self.classes = set(classes)
        self.kept: dict[str, type] = {}  # path -> class of every module kept whole because of names/classes

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.classes or type(m).__name__ in self.names or module_qualified_name in self.names:
            self.kept[module_qualified_name] = type(m)
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace_fx(model: nn.Module, leaves: Iterable[str] = (), label: str = "model",
             inputs: int = 1) -> tuple[fx.GraphModule, tuple[Leaf, ...], int]:
    """Trace with ``torch.fx``, making leaves of the modules it cannot trace (see the module docstring).

    Returns the graph module, every leaf (the user's and the automatic ones, in
    graph order) and the number of traces tried. Raises ``_FxFailure`` when
    the failure is in the model's own ``forward``. ``inputs``: how many of
    ``forward``'s arguments are inputs (the ones after them with defaults are fixed).
    """
    names = tuple(leaves)
    classes: dict[type, tuple[str, str]] = {}  # automatic leaf class -> (first failing path, reason)
    concrete = _fixed_defaults(model, inputs)
    n_modules = sum(1 for _ in model.modules())
    attempts = 0
    while True:
        attempts += 1
        tracer = _Tracer(names, classes)
        try:
            graph = tracer.trace(model, concrete_args=concrete or None)
            break
        except Exception as exc:
            reason = first_line(exc)
            where = _innermost(tracer, model)
            if where is None or attempts > n_modules:
                raise _FxFailure(f"torch.fx cannot trace {label} in its own forward: {reason}",
                                 "--capture export") from None
            path, cls = where
            if cls in classes:  # already a leaf and failing again: give up on this class
                raise _FxFailure(f"torch.fx cannot trace {label} at module {path!r} ({cls.__name__}): {reason}",
                                 f"--leaf {cls.__name__}") from None
            classes[cls] = (path, reason)
    gm = fx.GraphModule(tracer.root, graph, model.__class__.__name__)
    _drop_fixed_inputs(gm, concrete, inputs)
    found = []
    for n in gm.graph.nodes:
        if n.op == "call_module" and str(n.target) in tracer.kept:
            cls = tracer.kept[str(n.target)]
            if cls in classes:
                found.append(Leaf(str(n.target), cls.__name__, classes[cls][1], True))
            else:
                found.append(Leaf(str(n.target), cls.__name__, "--leaf", False))
    return gm, tuple(dict.fromkeys(found)), attempts


def _innermost(tracer: _Tracer, model: nn.Module) -> tuple[str, type] | None:
    """The innermost module being traced when tracing failed (not the model itself, not a leaf)."""
    for path, cls in reversed(list(tracer.module_stack.values())):
        if not path:
            return None
        if cls in tracer.classes:
            continue
        return path, cls
    return None


def _fixed_defaults(model: nn.Module, inputs: int = 1) -> dict[str, Any]:
    """``forward``'s arguments after the ``inputs`` first that have a (non-tensor) default: fixed to it while tracing."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for p in params[inputs:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not inspect.Parameter.empty and not isinstance(p.default, torch.Tensor):
            out[p.name] = p.default
    return out


def _drop_fixed_inputs(gm: fx.GraphModule, fixed: dict[str, Any], inputs: int = 1) -> None:
    """Remove the placeholders torch.fx made for arguments fixed to their defaults, and their guards."""
    if not fixed:
        return
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"][inputs:]
    for ph in placeholders:
        value = ph.args[0] if ph.args else None
        for user in list(ph.users):
            if user.op == "call_function" and user.target in _GUARDS:
                gm.graph.erase_node(user)
            elif user.op == "call_function" and user.target is operator.eq and all(
                    u.op == "call_function" and u.target in _GUARDS for u in user.users):
                for u in list(user.users):
                    gm.graph.erase_node(u)
                gm.graph.erase_node(user)
            else:
                user.args = fx.node.map_arg(user.args, lambda a: value if a is ph else a)
                user.kwargs = fx.node.map_arg(user.kwargs, lambda a: value if a is ph else a)
        if not ph.users:
            gm.graph.erase_node(ph)
    gm.recompile()


# --------------------------------------------------------------------------- torch.export


def export_graph(model: nn.Module, shape: Sequence[int] | Sequence[Sequence[int]],
                 dtype: torch.dtype | Sequence[torch.dtype] = torch.float32, label: str = "model",
                 fx_failure: str | None = None) -> fx.GraphModule:
    """``torch.export`` (non-strict) of ``model`` on an input of ``shape`` (or one per input), as a flat GraphModule.

    Parameters and buffers are attributes (``get_attr``), the input checks
    export adds are dropped, and the output's structure is kept in
    ``gm._out_spec`` (what :meth:`gapp_tui.blocks.BlockChain.rebuild_output`
    uses). Raises :class:`CaptureError` when export fails too.
    """
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    shapes, dtypes = as_inputs(shape, dtype)
    xs = tuple(torch.zeros(s, dtype=d, device=device) for s, d in zip(shapes, dtypes))
    try:
        with torch.no_grad():
            ep = torch.export.export(model, xs, strict=False)
        gm = ep.module()
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        if _on_meta(model) and any(m in text for m in (*_VALUE_MARKERS, "cpu and meta", "meta and cpu")):
            # code that reads values, or makes a tensor of its own on the CPU (torch.zeros(...) in forward),
            # cannot run on meta weights: the caller builds the model for real
            raise NeedsRealValues(f"{label} reads tensor values or makes CPU tensors while it runs"
                                  f" ({first_line(exc)}); meta tensors cannot") from None
        before = f"{fx_failure}; " if fx_failure else ""
        raise CaptureError(f"{before}torch.export cannot capture {label} either: {first_line(exc)}"
                           " (make the failing module a leaf with --leaf and --capture fx)") from None
    for n in list(gm.graph.nodes):
        if n.op == "call_module" and str(n.target).startswith("_guards"):
            gm.graph.erase_node(n)
    gm.recompile()
    return gm
