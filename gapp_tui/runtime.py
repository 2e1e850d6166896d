"""Runtimes: what a block or a stage runs under on a device, and int8.

A runtime is a property of a device: ``eager`` (PyTorch as GAPP runs it),
``executorch`` (ExecuTorch with the XNNPACK delegate: a ``.pte`` program, what
a Raspberry Pi user ships) or ``onnxruntime`` (an ``.onnx`` graph under ONNX
Runtime's CPU provider). ExecuTorch and ONNX Runtime stages may be ``int8``.

* :func:`compile_artifact` turns a module and example inputs into an artifact file
  under a runtime: ``torch.export`` first (every runtime), then for ExecuTorch
  ``to_edge_transform_and_lower`` with the XNNPACK partitioner and
  ``to_executorch``; for ONNX Runtime ``torch.onnx.export(dynamo=True)``.
  ``quantize="int8"``: for ExecuTorch PT2E (``prepare_pt2e`` with the
  XNNPACK quantizer, symmetric, per channel; calibration; ``convert_pt2e``)
  before lowering, for ONNX Runtime static quantization (QDQ, per channel)
  of the exported graph; both calibrated on the inputs given.
* :func:`runner` compiles into a directory and returns the callable that runs
  the artifact (loaded by :mod:`gapp_tui.stage_runner`, the same code the
  stand-alone runner on the device uses), so a time measured under a runtime
  is the time of the artifact that will be shipped.
* :func:`require` raises :class:`~gapp_tui.errors.BadInput` naming the runtime
  and ``pip install 'gapp-tui[RUNTIME]'`` when its packages are missing;
  :func:`parse_runtime` and :func:`parse_quantize` check names.

The runtimes' packages are optional extras and imported here only when used
(they take seconds to import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import stage_runner
from .errors import BadInput, closest
from .stage_runner import RUNTIMES, SUFFIX

QUANTIZE = ("int8",)
#: modules each runtime needs to *compile* artifacts here (the device only needs the runtime itself)
COMPILE_MODULES = {
    "eager": ("torch",),
    "executorch": ("executorch", "torchao"),
    "onnxruntime": ("onnxruntime", "onnx", "onnxscript"),
}


def install_hint(runtime: str) -> str:
    """How to install a runtime for GAPP: the optional extra."""
    return f"pip install 'gapp-tui[{runtime}]'"


def parse_runtime(name: str) -> str:
    """``eager``, ``executorch`` or ``onnxruntime`` (``ort``, ``et`` and case are forgiven); BadInput otherwise."""
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    key = {"ort": "onnxruntime", "et": "executorch", "pytorch": "eager", "torch": "eager"}.get(key, key)
    if key not in RUNTIMES:
        raise BadInput(f"runtime {name!r} is not known{closest(str(name), RUNTIMES)}; give one of {', '.join(RUNTIMES)}")
    return key


def parse_quantize(value: str | None, runtime: str) -> str | None:
    """None (float32) or ``int8``; int8 needs executorch or onnxruntime. BadInput otherwise."""
    if value is None or str(value).lower() in ("", "none", "float32", "fp32"):
        return None
    q = str(value).lower()
    if q not in QUANTIZE:
        raise BadInput(f"quantization {value!r} is not supported; give int8 (or none)")
    if runtime == "eager":
        raise BadInput("--quantize int8 needs --runtime executorch or onnxruntime (eager PyTorch runs float32 here)")
    return q


def missing_modules(runtime: str) -> list[str]:
    """The modules a runtime needs for compiling that cannot be imported here (nothing is imported)."""
    return [m for m in COMPILE_MODULES[runtime] if importlib.util.find_spec(m) is None]


def available(runtime: str) -> bool:
    return not missing_modules(parse_runtime(runtime))


def require(runtime: str) -> str:
    """The runtime's name when everything it needs is installed; BadInput saying how to install it otherwise."""
    rt = parse_runtime(runtime)
    missing = missing_modules(rt)
    if missing:
        raise BadInput(
            f"runtime {rt!r} is not installed here (missing {', '.join(missing)}); install it with {install_hint(rt)}"
        )
    return rt


def installed() -> dict[str, str | None]:
    """``{runtime: version or None}`` (None: not installed); nothing is imported."""
    return {rt: (stage_runner.runtime_version(rt) if not missing_modules(rt) else None) for rt in RUNTIMES}


# ----------------------------------------------------------------------------- compiling


@dataclasses.dataclass
class Artifact:
    """One compiled artifact: its file, runtime, quantization, and what compiling it took."""

    path: Path
    runtime: str
    quantize: str | None
    bytes: int
    compile_s: float
    version: str | None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


class _Tupled(nn.Module):
    """A module whose output is always a tuple of tensors (what every runtime returns)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.inner(*args)
        return out if isinstance(out, tuple) else (out,) if isinstance(out, torch.Tensor) else tuple(out)


def compile_artifact(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    runtime: str,
    path: str | Path,
    quantize: str | None = None,
    calibration: Sequence[Sequence[torch.Tensor]] | None = None,
) -> Artifact:
    """Write ``module`` as an artifact of ``runtime`` at ``path`` (its suffix is the runtime's).

    ``example_inputs`` fix the shapes (static: batch and image size as given).
    ``calibration``: input tuples for int8 (default: the example inputs).
    BadInput when the runtime is missing or the quantization does not fit it;
    a module the exporter cannot handle raises its error with the runtime named.
    """
    rt = require(runtime)
    q = parse_quantize(quantize, rt)
    path = Path(path).with_suffix(SUFFIX[rt])
    path.parent.mkdir(parents=True, exist_ok=True)
    # clones: inputs recorded under inference_mode cannot enter torch.export's tracing
    args = tuple(t.detach().float().contiguous().clone() for t in example_inputs)
    calib = [tuple(t.detach().float().contiguous().clone() for t in c) for c in (calibration or [args])]
    wrapped = _Tupled(module).eval()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if rt == "eager":
                torch.export.save(torch.export.export(wrapped, args), str(path))
            elif rt == "executorch":
                _executorch(wrapped, args, path, q, calib)
            else:
                _onnxruntime(wrapped, args, path, q, calib)
        except BadInput:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeError(f"compiling for {rt}{' int8' if q else ''} failed: {type(exc).__name__}: {text}") from exc
    return Artifact(path, rt, q, path.stat().st_size, time.perf_counter() - t0, stage_runner.runtime_version(rt))


def _executorch(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, quantize: str | None,
                calibration: list[tuple[torch.Tensor, ...]]) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # optional: executorch
    from executorch.exir import to_edge_transform_and_lower  # optional: executorch

    program = torch.export.export(module, args)
    if quantize == "int8":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (  # optional: executorch
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import (  # optional: executorch's quantizer
            convert_pt2e,
            prepare_pt2e,
        )

        quantizer = XNNPACKQuantizer()
        quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            for c in calibration:
                prepared(*c)
        program = torch.export.export(convert_pt2e(prepared), args)
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(lowered.buffer)


def _onnxruntime(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, quantize: str | None,
                 calibration: list[tuple[torch.Tensor, ...]]) -> None:
    # the exporter reports its progress on stdout, which belongs to --json documents
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(module, args, dynamo=True, verbose=False)
    if quantize != "int8":
        program.save(str(path))
        return
    from onnxruntime.quantization import (  # optional: onnxruntime
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    with tempfile.TemporaryDirectory(prefix="gapp-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        program.save(str(fp32))
        import onnxruntime as ort  # optional: onnxruntime

        names = [i.name for i in ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter([{n: t.numpy() for n, t in zip(names, c)} for c in calibration])

            def get_next(self) -> dict[str, Any] | None:
                return next(self.items, None)

        # it advises a pre-processing pass on the root logger; the dynamo exporter's graph is already optimised
        logging.disable(logging.WARNING)
        try:
            quantize_static(str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)


def runner(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    runtime: str,
    directory: str | Path,
    name: str,
    quantize: str | None = None,
    calibration: Sequence[Sequence[torch.Tensor]] | None = None,
    threads: int | None = None,
) -> tuple[Callable[..., tuple[torch.Tensor, ...]], Artifact]:
    """Compile ``module`` into ``directory/name`` and load it: (callable, artifact).

    The callable is what the stand-alone runner runs on the device:
    ``fn(*tensors) -> tuple of tensors``.
    """
    art = compile_artifact(module, example_inputs, runtime, Path(directory) / name, quantize, calibration)
    return stage_runner.load_artifact(art.path, art.runtime, threads, install_hint(art.runtime)), art


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two tensors, flattened (1.0 for two zero tensors)."""
    x, y = a.detach().double().flatten(), b.detach().double().flatten()
    nx, ny = float(x.norm()), float(y.norm())
    if nx == 0 and ny == 0:
        return 1.0
    return float(x @ y) / (nx * ny) if nx and ny else 0.0
