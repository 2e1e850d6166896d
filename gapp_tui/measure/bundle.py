"""What travels to a device for a remote measurement: the chain as TorchScript, its inputs, the agent.

:func:`write_bundle` writes into a local directory everything the device needs,
so that it needs only Python 3 and torch -- neither torchvision nor the user's
model code:

* ``agent.py``, ``timer.py``, ``device.py``, ``events.py``: the device agent,
  the same timing core and device description local measurement uses, and
  GAPP's event protocol (:mod:`gapp_tui.ssh.events`);
* ``model.pt``: one TorchScript archive holding every block's
  ``torch.fx.GraphModule`` (``blocks.0`` ...) and the unsplit model (``full``,
  for the sum-versus-full check). The blocks and the model share their
  parameters, and one archive stores a shared tensor once: the weights travel
  once, not twice;
* ``inputs.pt``: the model's input and the recorded input tuple of every block
  (one run of the chain on the same seeded input local measurement uses);
* ``job.json``: what to measure and how (see :mod:`gapp_tui.measure.agent`).

Under a runtime other than eager (``runtime="executorch"``, ``"onnxruntime"``,
``quantize="int8"``) the blocks and the model travel as that runtime's
artifacts instead of TorchScript: compiled here, exactly as local measurement
compiles them (:func:`gapp_tui.measure.engine.compile_chain`), with the
stand-alone runner (``gapp_runner.py``, :mod:`gapp_tui.stage_runner`) that the
agent loads them with -- the device then needs Python, torch and that runtime.

Why TorchScript rather than ``torch.export``
--------------------------------------------
A Raspberry Pi often runs an older torch than the server (the aarch64 wheel
that was current when its image was made). A TorchScript archive records the
oldest file-format version its operators need and loads on torch releases from
years back; ``torch.export``'s ``.pt2`` has no compatibility promise across
versions (its serialised schema changes between releases) and needs a recent
torch on the device. TorchScript runs through the same ATen kernels as eager
mode; the profiling executor's first calls are made before timing (the agent's
``jit_warmup``). Each block is scripted (``torch.jit.script``, which keeps the
code's control flow) and, where scripting fails, traced on its recorded inputs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import stage_runner
from ..errors import BadInput
from ..ssh import events
from . import agent, device, timer
from .engine import MeasureConfig, compile_chain, parse_dtype

#: the stand-alone runner's name next to the agent (it loads a runtime's artifacts there)
RUNNER_FILE = "gapp_runner.py"

#: the files copied next to the agent on the device (all torch + stdlib only), by their name there
AGENT_FILES = {name: Path(module.__file__) for name, module in (
    ("agent.py", agent), ("timer.py", timer), ("device.py", device), ("events.py", events))}


class _Blocks(torch.nn.Module):
    """The archive's top module: ``blocks`` (a ModuleList) and no full model."""

    def __init__(self, blocks: list[Any]) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _BlocksAndFull(torch.nn.Module):
    """The archive's top module: ``blocks`` and ``full`` (the unsplit model)."""

    def __init__(self, blocks: list[Any], full: Any) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)
        self.full = full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the agent calls ``full`` itself, with every input the model takes (one or several)


@dataclasses.dataclass
class Bundle:
    """A written bundle: its directory, its files and how each block was serialised."""

    directory: Path
    files: list[str]
    job: dict[str, Any]
    methods: list[str]  # "script" or "trace" per block, then the full model's
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "files": self.files, "methods": self.methods, "bytes": self.bytes}


def to_torchscript(module: torch.nn.Module, example: tuple[Any, ...], what: str) -> tuple[Any, str]:
    """``torch.jit.script`` of ``module``, else ``torch.jit.trace`` on ``example``; (scripted, method)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation and annotation warnings
        try:
            return torch.jit.script(module), "script"
        except Exception as script_exc:
            try:
                with torch.no_grad():
                    return torch.jit.trace(module, example, check_trace=False), "trace"
            except Exception as trace_exc:
                first = str(trace_exc).strip().splitlines()[0] if str(trace_exc).strip() else type(trace_exc).__name__
                raise BadInput(
                    f"{what} cannot be serialised for the device (TorchScript script: "
                    f"{type(script_exc).__name__}; trace: {first}); measure it locally or pick a coarser --granularity"
                ) from None


def write_bundle(
    chain: Any,
    directory: str | Path,
    *,
    modes: tuple[str, ...],
    precision: dict[str, Any],
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    device_name: str | None = None,
    seed: int = 0,
    full: bool = True,
    overhead_modes: tuple[str, ...] = (),
    heartbeat_s: float = 5.0,
    runtime: str = "eager",
    quantize: str | None = None,
    calibration: int = 8,
    progress: Any = None,
) -> Bundle:
    """Serialise ``chain`` and write the agent's files into ``directory`` (see the module docstring).

    ``runtime``/``quantize``/``calibration``: as :class:`~gapp_tui.measure.engine.MeasureConfig`'s;
    ``progress`` receives the ``compile`` progress of a runtime's artifacts.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, source in AGENT_FILES.items():
        shutil.copyfile(source, out / name)
    dt = parse_dtype(dtype)
    # the same reproducible input as local measurement (engine: spec.example_input(seed=...)), kept on CPU:
    # the agent maps everything onto its own device
    x = chain.spec.example_inputs("cpu", seed=seed, float_dtype=dt)  # one tensor per input
    with torch.inference_mode():
        recorded = chain.block_inputs(*x)
    files, methods = list(AGENT_FILES), []
    job = {
        "block_names": [b.name for b in chain.blocks],
        "archive": "model.pt",
        "full": bool(full),
        "inputs": "inputs.pt",
        "modes": list(modes),
        "overhead_modes": list(overhead_modes),
        "precision": precision,
        "device": device,
        "threads": threads,
        "device_name": device_name,
        "heartbeat_s": heartbeat_s,
        "control": True,
    }
    if runtime != "eager":
        cfg = MeasureConfig(device=device, dtype=dtype, full=full, seed=seed, runtime=runtime, quantize=quantize,
                            calibration=calibration)
        arts, full_art, info = compile_chain(chain, recorded, x, cfg, out, progress)
        shutil.copyfile(stage_runner.__file__, out / RUNNER_FILE)
        files += [a.path.name for a in arts] + ([full_art.path.name] if full_art else []) + [RUNNER_FILE]
        job.update(archive=None, serialised=f"{runtime}{'-' + quantize if quantize else ''}",
                   runtime={**info, "blocks": [a.path.name for a in arts],
                            "full": full_art.path.name if full_art else None, "runner": RUNNER_FILE})
        return _finish(out, files, job, [runtime] * len(arts), chain, x, recorded)
    scripted_blocks = []
    for i, block in enumerate(chain.blocks):
        scripted, how = to_torchscript(block.module, tuple(recorded[i]), f"block {i} ({block.name})")
        scripted_blocks.append(scripted)
        methods.append(how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if full:
            scripted_full, how = to_torchscript(chain.model, tuple(x), "the full model")
            methods.append(how)
            top = torch.jit.script(_BlocksAndFull(scripted_blocks, scripted_full))
        else:
            top = torch.jit.script(_Blocks(scripted_blocks))
        torch.jit.save(top, str(out / "model.pt"))
    files.append("model.pt")
    job["serialised"] = "torchscript:" + ",".join(sorted(set(methods)))
    return _finish(out, files, job, methods, chain, x, recorded)


def _finish(out: Path, files: list[str], job: dict[str, Any], methods: list[str], chain: Any, x: Any,
            recorded: list[tuple[Any, ...]]) -> Bundle:
    """Write the inputs and the job; the bundle."""
    torch.save({"model_input": tuple(x), "block_inputs": [tuple(t) for t in recorded]}, str(out / "inputs.pt"))
    files.append("inputs.pt")
    (out / "job.json").write_text(json.dumps(job, indent=1))
    files.append("job.json")
    size = sum((out / f).stat().st_size for f in files)
    return Bundle(out, files, job, methods, size)
