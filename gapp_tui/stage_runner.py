"""The stand-alone stage runner: loads and runs the stages that ``gapp export`` wrote.

This one file is the deployment side of GAPP. It imports only the Python
standard library, ``torch`` and the package of the runtime a stage uses
(``executorch`` or ``onnxruntime``) -- never ``gapp_tui`` -- so ``gapp export``
copies it next to the artifacts (as ``gapp_runner.py``) and it can be copied
to a Raspberry Pi with them. GAPP itself loads artifacts through this module
too (``gapp measure --runtime``, the export's reproduction check), so what
GAPP measures and checks is what the device runs.

What a caller may rely on
-------------------------
* :func:`installed_runtimes` -- ``{runtime: version or None}`` for ``eager``,
  ``executorch`` and ``onnxruntime``, without importing them (``MODULE`` and
  ``PIP`` say what is looked up: a launcher asks a host the same question over
  SSH); :func:`missing_text` is the one line saying one is missing on a host.
* :func:`load_artifact` ``(path, runtime, threads=None)`` -- a callable
  ``fn(*tensors) -> tuple[torch.Tensor, ...]`` running one artifact
  (``.pt2`` under eager PyTorch, ``.pte`` under ExecuTorch, ``.onnx`` under
  ONNX Runtime). A missing runtime raises :class:`RuntimeMissing` (an
  ``ImportError``) whose message names the runtime and how to install it.
* :func:`read_manifest` ``(dir)`` -- the manifest as a dict (format below).
* :func:`load_stage` ``(dir, k, threads=None, verify=False)`` -- a :class:`Stage`: what
  stage ``k`` receives (``in_specs``, the *wire* tensors: int8 where a cut is
  sent as int8), ``receive_buffers()`` (empty tensors to receive into, e.g.
  with ``torch.distributed.irecv``), and ``stage(*wire_in) -> wire_out``: decode
  the cut it receives, run the artifact, encode the cut it sends. A launcher
  drives one item at a time with exactly this call.
* :func:`run_chain` ``(dir, x)`` -- every stage in this process, one after the
  other, through the same encode/decode: the output the deployed pipeline gives.
* ``python gapp_runner.py DIR [--stage K] [--items N] [--threads T] [--json]``:
  check that the stages load here, run the chain on a reproducible input and
  time it (or one stage on the inputs the manifest describes).

The manifest (``manifest.json``, ``format: gapp-export``, ``version: 1``)
-------------------------------------------------------------------------
``stages[k]``: ``device``, ``host``, ``blocks`` ``[lo, hi)``, ``runtime``,
``quantize`` (``null`` or ``int8``), ``artifact`` (file name), ``sha256``,
``in_cut`` and ``out_cut`` (indices into ``cuts``). ``cuts``: the input, every
cut a stage boundary sits on, and the output, each with ``index`` (the chain's
cut number), ``tensors`` (``name``, ``shape``, ``dtype``, ``bytes``: what the
model computes there) and ``wire`` (per tensor: ``dtype`` ``float32`` or
``int8`` with ``scale`` and ``zero_point``, ``bytes``: what is sent). An int8
wire tensor ``q`` stands for ``(q - zero_point) * scale``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

FORMAT = "gapp-export"
MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
RUNTIMES = ("eager", "executorch", "onnxruntime")
#: file suffix of each runtime's artifact
SUFFIX = {"eager": ".pt2", "executorch": ".pte", "onnxruntime": ".onnx"}
#: the module that must import for a runtime to run artifacts, and its pip name
MODULE = {"eager": "torch", "executorch": "executorch", "onnxruntime": "onnxruntime"}
PIP = {"eager": "torch", "executorch": "executorch", "onnxruntime": "onnxruntime"}
#: per runtime (module, distribution): what a launcher asks a host for, the way :func:`runtime_version` looks
PACKAGES = {r: (MODULE[r], PIP[r]) for r in MODULE}
WIRE_DTYPES = ("float32", "int8")


class RuntimeMissing(ImportError):
    """The runtime an artifact needs is not installed here; the message says how to install it."""


class BadManifest(ValueError):
    """A manifest (or a stage index) that this runner cannot use; the message names what is wrong."""


# ----------------------------------------------------------------------------- runtimes


def runtime_version(runtime: str) -> str | None:
    """The installed version of a runtime's package, or None when it is not installed (nothing is imported)."""
    module = MODULE[runtime]
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.metadata.version(PIP[runtime])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def installed_runtimes() -> dict[str, str | None]:
    """``{runtime: version or None}`` for every runtime this runner knows."""
    return {r: runtime_version(r) for r in RUNTIMES}


def missing_text(runtime: str, host: str | None = None, python: str | None = None, hint: str | None = None) -> str:
    """The one line saying ``runtime`` is missing on ``host`` (default: this machine) and how to install it.

    ``python``: the interpreter on that host (the advice becomes ``PYTHON -m pip install ...``);
    ``hint`` replaces the advice altogether.
    """
    where = host or os.uname().nodename
    advice = hint or (f"{python} -m pip install {PIP[runtime]}" if python else f"pip install {PIP[runtime]}")
    return (f"runtime {runtime!r} is not installed on {where}"
            f"{f' for {python}' if python else ''} (no module {MODULE[runtime]!r}); install it with {advice}")


def require(runtime: str, hint: str | None = None) -> None:
    """RuntimeMissing unless ``runtime`` can be imported here; ``hint`` replaces the install advice."""
    if runtime not in RUNTIMES:
        raise BadManifest(f"runtime {runtime!r} is not known; give one of {', '.join(RUNTIMES)}")
    if runtime_version(runtime) is None:
        raise RuntimeMissing(missing_text(runtime, hint=hint))


def _as_tuple(values: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(values, torch.Tensor):
        return (values,)
    return tuple(values)


def load_artifact(path: str | os.PathLike[str], runtime: str, threads: int | None = None,
                  hint: str | None = None) -> Callable[..., tuple[torch.Tensor, ...]]:
    """A callable running the artifact at ``path`` under ``runtime``: ``fn(*tensors) -> tuple of tensors``.

    ``threads``: intra-op threads of the runtime (torch's for eager, the
    XNNPACK thread pool for ExecuTorch -- one pool per process --, the session's
    for ONNX Runtime); None leaves the runtime's default. Outputs are new
    tensors the caller may keep. RuntimeMissing when the runtime is absent.
    """
    require(runtime, hint)
    path = str(path)
    if runtime == "eager":
        if threads:
            torch.set_num_threads(threads)
        module = torch.export.load(path).module()

        def run_eager(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return _as_tuple(module(*args))

        return run_eager
    if runtime == "executorch":
        from executorch.runtime import Runtime  # optional: executorch

        if threads:
            # the XNNPACK delegate's thread pool is one per process: its size is set here for every method
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool  # optional: executorch

            _unsafe_reset_threadpool(int(threads))
        program = Runtime.get().load_program(path)
        method = program.load_method("forward")

        def run_executorch(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # ExecuTorch wants dense inputs in the default dim order; outputs come back as copies
            return tuple(method.execute([a.contiguous() for a in args]))

        run_executorch.program = program  # type: ignore[attr-defined]  (keeps the program alive)
        return run_executorch
    import onnxruntime as ort  # optional: onnxruntime

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # idle pool threads sleep instead of spinning: a stage shares its CPU with its communication, and a
    # spinning thread on a core it shares takes that core from the others (measured: 10-100x slower blocks)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run_onnxruntime(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feeds = {n: a.detach().contiguous().numpy() for n, a in zip(names, args)}
        return tuple(torch.from_numpy(o) for o in session.run(None, feeds))

    run_onnxruntime.session = session  # type: ignore[attr-defined]
    return run_onnxruntime


# ----------------------------------------------------------------------------- the wire


def encode(values: Sequence[torch.Tensor], wire: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, ...]:
    """The tensors as sent: float32, or int8 with the cut's scale and zero point."""
    out = []
    for v, w in zip(values, wire):
        if w["dtype"] == "int8":
            q = torch.round(v.float() / w["scale"]) + w["zero_point"]
            out.append(q.clamp_(-128, 127).to(torch.int8))
        else:
            out.append(v.contiguous())
    return tuple(out)


def decode(values: Sequence[torch.Tensor], wire: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, ...]:
    """The tensors as the next stage computes on them (int8 wire tensors dequantized to float32)."""
    out = []
    for v, w in zip(values, wire):
        if w["dtype"] == "int8":
            out.append((v.float() - w["zero_point"]) * w["scale"])
        else:
            out.append(v)
    return tuple(out)


def wire_specs(cut: dict[str, Any]) -> list[dict[str, Any]]:
    """Name, shape, dtype and bytes of every tensor a cut sends."""
    return [{"name": t["name"], "shape": list(t["shape"]), "dtype": w["dtype"], "bytes": w["bytes"]}
            for t, w in zip(cut["tensors"], cut["wire"])]


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name.replace("torch.", ""))


# ----------------------------------------------------------------------------- manifest and stages


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an export directory (BadManifest when absent, foreign or newer)."""
    path = Path(directory) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadManifest(f"{str(path)!r} does not exist; give a directory written by `gapp export`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BadManifest(f"{str(path)!r} cannot be read ({exc}); give a directory written by `gapp export`") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadManifest(f"{str(path)!r} is not a GAPP export manifest (format {FORMAT!r})")
    if doc.get("version") != MANIFEST_VERSION:
        raise BadManifest(f"{str(path)!r} has manifest version {doc.get('version')!r}; this runner reads {MANIFEST_VERSION}")
    return doc


class Stage:
    """One exported stage, loaded: what it receives and sends, and how to run one item.

    ``stage(*wire_in)`` takes the tensors as they arrive (the previous cut's
    wire format; stage 0 takes the model input) and returns the tensors to send
    (this stage's cut in its wire format; the last stage returns the model
    output, float32). ``compute(*values)`` runs the artifact alone, on decoded
    values.
    """

    def __init__(self, manifest: dict[str, Any], directory: Path, index: int, threads: int | None = None,
                 hint: str | None = None, verify: bool = False) -> None:
        stages = manifest["stages"]
        if not 0 <= index < len(stages):
            raise BadManifest(f"stage {index} does not exist; this export has stages 0..{len(stages) - 1}")
        self.index = index
        self.info = stages[index]
        self.directory = directory
        self.in_cut = manifest["cuts"][self.info["in_cut"]]
        self.out_cut = manifest["cuts"][self.info["out_cut"]]
        self.runtime = self.info["runtime"]
        if self.info.get("artifact") is None:  # an empty stage forwards what it receives
            self.compute: Callable[..., tuple[torch.Tensor, ...]] = lambda *values: tuple(values)
            return
        path = directory / self.info["artifact"]
        if not path.is_file():
            raise BadManifest(f"artifact {str(path)!r} of stage {index} is missing; copy the whole export directory")
        if verify and sha256(path) != self.info["sha256"]:
            raise BadManifest(f"artifact {str(path)!r} of stage {index} is not the one exported (SHA-256 differs);"
                              " copy the export directory again")
        self.compute = load_artifact(path, self.runtime, threads, hint)

    @property
    def in_specs(self) -> list[dict[str, Any]]:
        return wire_specs(self.in_cut)

    @property
    def out_specs(self) -> list[dict[str, Any]]:
        return wire_specs(self.out_cut)

    def receive_buffers(self) -> list[torch.Tensor]:
        """Empty tensors of the shapes and wire dtypes this stage receives."""
        return [torch.empty(s["shape"], dtype=_dtype(s["dtype"])) for s in self.in_specs]

    def __call__(self, *wire_in: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = decode(wire_in, self.in_cut["wire"])
        return encode(self.compute(*values), self.out_cut["wire"])


def load_stage(directory: str | os.PathLike[str], index: int, threads: int | None = None,
               hint: str | None = None, verify: bool = False) -> Stage:
    """Stage ``index`` of the export in ``directory``, loaded under its runtime.

    ``verify``: first check the artifact's SHA-256 against the manifest (a
    launcher's proof that every device runs the exported weights).
    """
    directory = Path(directory)
    return Stage(read_manifest(directory), directory, index, threads, hint, verify)


def run_chain(directory: str | os.PathLike[str], *inputs: torch.Tensor, threads: int | None = None,
              stages: Sequence[Stage] | None = None, hint: str | None = None) -> tuple[torch.Tensor, ...]:
    """Every stage in order in this process (through the wire encoding): the deployed pipeline's output."""
    if stages is None:
        n = len(read_manifest(directory)["stages"])
        stages = [load_stage(directory, k, threads, hint) for k in range(n)]
    values = encode(inputs, stages[0].in_cut["wire"])
    with torch.inference_mode():
        for st in stages:
            values = st(*values)
    return decode(values, stages[-1].out_cut["wire"])


def example_input(manifest: dict[str, Any], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A reproducible random model input of the manifest's shapes (standard normal)."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(t["shape"], generator=gen).to(_dtype(t["dtype"])) for t in manifest["cuts"][0]["tensors"])


def sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- command line


def _time(fn: Callable[[], Any], items: int) -> dict[str, float]:
    for _ in range(2):
        fn()
    xs = []
    for _ in range(items):
        t0 = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t0)
    xs.sort()
    return {"items": items, "median_ms": xs[len(xs) // 2] * 1e3, "min_ms": xs[0] * 1e3}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the stages of a GAPP export (needs torch and the stages' runtimes).")
    ap.add_argument("directory", help="the export directory (holds manifest.json)")
    ap.add_argument("--stage", type=int, default=None, help="only this stage, on zero inputs of its shapes")
    ap.add_argument("--items", type=int, default=10, help="timed runs (after 2 untimed ones)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads of every runtime")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random model input")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    try:
        manifest = read_manifest(args.directory)
        if args.threads:
            torch.set_num_threads(args.threads)
        doc: dict[str, Any] = {"directory": str(args.directory), "runtimes": installed_runtimes()}
        if args.stage is not None:
            st = load_stage(args.directory, args.stage, args.threads, verify=True)
            bufs = [b.zero_() for b in st.receive_buffers()]
            with torch.inference_mode():
                doc["stage"] = {"index": st.index, "runtime": st.runtime, **_time(lambda: st(*bufs), args.items),
                                "out": st.out_specs}
        else:
            stages = [load_stage(args.directory, k, args.threads, verify=True) for k in range(len(manifest["stages"]))]
            x = example_input(manifest, args.seed)
            out = run_chain(args.directory, *x, stages=stages)
            doc["chain"] = {"stages": len(stages), **_time(lambda: run_chain(args.directory, *x, stages=stages), args.items),
                            "output": [{"shape": list(o.shape), "dtype": str(o.dtype).replace("torch.", "")} for o in out]}
    except (RuntimeMissing, BadManifest) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        for key in ("stage", "chain"):
            if key in doc:
                d = doc[key]
                what = f"stage {d['index']} ({d['runtime']})" if key == "stage" else f"{d['stages']} stage(s) in a chain"
                print(f"{what}: median {d['median_ms']:.3f} ms, min {d['min_ms']:.3f} ms over {d['items']} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
