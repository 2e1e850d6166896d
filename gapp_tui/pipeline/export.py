"""Export a partition plan for deployment: one artifact per stage, a manifest, the stand-alone runner.

:func:`export_plan` reads a plan (``gapp partition -o``), builds the model
with the plan's seed exactly as ``gapp pipeline run`` does, and writes into a
directory

* ``stage{k}.pt2|.pte|.onnx``: stage ``k``'s blocks as one module compiled for
  its device's runtime (:mod:`gapp_tui.runtime`: ``torch.export`` program,
  ExecuTorch XNNPACK program, ONNX graph), int8 where the device is quantized
  (calibrated on random inputs, or on the user's: ``calibration``);
* ``manifest.json``: the stages in order (device, host, blocks, runtime,
  quantization, artifact and its SHA-256), every cut a stage boundary sits on
  with the tensors the model computes there and what is sent (float32, or
  int8 with scale and zero point: ``cut_dtype``), the links, the plan's
  estimate and the estimate re-made with the bytes really sent, the
  reproduction check, and what the runner needs installed (format in
  :mod:`gapp_tui.stage_runner`);
* ``gapp_runner.py``: a copy of :mod:`gapp_tui.stage_runner` (torch and the
  runtime's package only; no GAPP) and ``README.txt`` saying how to run it.

Then it checks the export: the exported stages, loaded by that runner and run
one after the other through the wire encoding, against the unsplit model on
an input neither the export nor the calibration used. The largest absolute
difference and the cosine similarity of the final output are reported; an
all-float32 export must be within ``tolerance`` (1e-4), one with int8 stages
or cuts reaches ``min_cosine`` (0.99) or is reported as failing.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from .. import runtime as runtime_mod
from .. import stage_runner
from ..blocks import BlockChain
from ..errors import BadInput
from .compare import plan_stage_compute, stage_estimate
from .config import PlanView, read_plan, spec_to_dict

CUT_DTYPES = ("auto", "float32", "int8")
TOLERANCE = 1e-4
MIN_COSINE = 0.99
#: seeds of the inputs: the example that fixes shapes, calibration (1..N), and the check (never calibrated on)
CHECK_SEED = 10_000


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_plan` wrote and found (``to_dict()`` is the ``--json`` document)."""

    directory: str
    manifest: dict[str, Any]
    check: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.check.get("ok"))

    def to_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "ok": self.ok, "check": self.check, "manifest": self.manifest}


class StageModule(nn.Module):
    """Blocks ``[lo, hi)`` of a chain as one module: positional cut tensors in, a tuple out."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for b in self.blocks:
            values = b(*values)
        return tuple(values)


def per_device(values: Sequence[str] | str | None, devices: Sequence[str], option: str,
               parse: Callable[[str], Any], default: Any) -> dict[str, Any]:
    """``["executorch"]`` or ``["pi=executorch", "server=eager"]`` (comma-joined too) -> a value per device."""
    out = {d: default for d in devices}
    items = [values] if isinstance(values, str) else list(values or [])
    for v in items:
        for part in [p.strip() for p in str(v).split(",") if p.strip()]:
            if "=" in part:
                dev, val = (x.strip() for x in part.split("=", 1))
                if dev not in devices:
                    raise BadInput(f"{option} names device {dev!r}, which is not in the plan ({', '.join(devices)})")
                out[dev] = parse(val)
            else:
                for d in devices:
                    out[d] = parse(part)
    return out


def _deployment(view: PlanView, runtime: Sequence[str] | str | None,
                quantize: Sequence[str] | str | None) -> tuple[dict[str, str], dict[str, str | None]]:
    """Each device's runtime and quantization: the options where given, else the plan's (``runtimes``), else eager.

    A runtime given on the command line for a device drops the plan's int8 for it
    unless ``--quantize`` says int8 too.
    """
    devices = list(view.devices)
    from_plan = {d: ("eager", None) for d in devices}
    plan_runtimes = getattr(view.plan, "runtimes", None) or {}
    for d, text in plan_runtimes.items():
        rt, _, q = str(text).partition("-")
        from_plan[d] = (runtime_mod.parse_runtime(rt), q or None)
    unset = object()
    given_rt = per_device(runtime, devices, "--runtime", runtime_mod.parse_runtime, unset)
    given_q = per_device(quantize, devices, "--quantize", lambda v: v, unset)
    runtimes, quant = {}, {}
    for d in devices:
        runtimes[d] = from_plan[d][0] if given_rt[d] is unset else given_rt[d]
        q = given_q[d] if given_q[d] is not unset else (from_plan[d][1] if given_rt[d] is unset else None)
        quant[d] = runtime_mod.parse_quantize(q, runtimes[d])
    return runtimes, quant


def build_chain(view: PlanView, seed: int) -> Any:
    """The plan's chain with the weights every stage of ``gapp pipeline run --seed`` builds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        chain = BlockChain.from_spec(view.spec, view.granularity, device="cpu")
    return chain


def load_calibration(path: str | Path | None, spec: Any, count: int, seed: int = 0) -> list[torch.Tensor]:
    """Model inputs for int8 calibration: ``count`` random ones, or a saved tensor (``torch.save``) of N inputs."""
    if path is None:
        if count < 1:
            raise BadInput(f"calibration inputs {count} must be at least 1")
        return [spec.example_input("cpu", seed=seed + 1 + j) for j in range(count)]
    p = Path(path)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BadInput(f"calibration file {str(p)!r} does not exist; give a tensor saved with torch.save") from None
    except Exception as exc:
        raise BadInput(f"calibration file {str(p)!r} cannot be read as tensors ({type(exc).__name__})") from None
    items = list(data) if isinstance(data, (list, tuple)) else list(data.unbind(0)) if isinstance(data, torch.Tensor) else []
    shape = tuple(spec.shape)
    items = [t.reshape(shape) if isinstance(t, torch.Tensor) and t.numel() == math.prod(shape) else t for t in items]
    if not items or not all(isinstance(t, torch.Tensor) and tuple(t.shape) == shape for t in items):
        raise BadInput(f"calibration file {str(p)!r} must hold N inputs of shape {list(shape)} (a [N, ...] tensor or a list)")
    return [t.float() for t in items]


def _wire(tensors: Sequence[Any], values: Sequence[Sequence[torch.Tensor]], dtype: str) -> list[dict[str, Any]]:
    """What a cut sends per tensor: int8 (scale and zero point from the calibration values' range) or as is."""
    wire = []
    for j, t in enumerate(tensors):
        elems = math.prod(t.shape) if t.shape else 1
        floating = str(t.dtype) in ("torch.float32", "torch.float16", "torch.bfloat16", "torch.float64")
        if dtype == "int8" and floating:
            lo = min(0.0, min(float(v[j].min()) for v in values))
            hi = max(0.0, max(float(v[j].max()) for v in values))
            scale = (hi - lo) / 255.0 or 1.0
            wire.append({"dtype": "int8", "scale": scale, "zero_point": int(round(-128 - lo / scale)), "bytes": elems})
        else:
            wire.append({"dtype": str(t.dtype).replace("torch.", ""), "bytes": int(t.bytes)})
    return wire


def _tensors(cut: Any) -> list[dict[str, Any]]:
    return [{"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "bytes": t.bytes}
            for t in cut.tensors]


def export_plan(
    plan: str | Path | Mapping[str, Any] | Any,
    directory: str | Path,
    *,
    runtime: Sequence[str] | str | None = None,
    quantize: Sequence[str] | str | None = None,
    cut_dtype: str = "auto",
    seed: int = 0,
    calibration: str | Path | None = None,
    calibration_count: int = 8,
    tolerance: float = TOLERANCE,
    min_cosine: float = MIN_COSINE,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``plan`` into ``directory`` and check it (see the module docstring).

    ``runtime`` and ``quantize``: one value for every device or ``DEVICE=VALUE``
    items; a device named in neither runs what the plan's ``runtimes`` say
    (``pi=measured@executorch-int8`` in ``gapp partition``), else eager float32.
    ``cut_dtype``: ``auto`` sends a cut as int8 when the device that sends it is
    int8 (as the partition estimate counts it), ``int8``/``float32`` force it
    for every cut between stages (the model's input and output stay as they
    are). BadInput (before anything is built or written) on a bad plan, option,
    or a runtime that is not installed here.
    """
    say = progress or (lambda s: None)
    view = read_plan(plan)
    devices = list(view.devices)
    runtimes, quant = _deployment(view, runtime, quantize)
    for rt in dict.fromkeys(runtimes.values()):
        runtime_mod.require(rt)
    if cut_dtype not in CUT_DTYPES:
        raise BadInput(f"cut dtype {cut_dtype!r} is not valid; give one of {', '.join(CUT_DTYPES)}")
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise BadInput(f"export directory {str(out)!r} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / stage_runner.MANIFEST).is_file():
        raise BadInput(f"export directory {str(out)!r} is not empty and holds no export; give a new or empty directory")

    say("building the model")
    chain = build_chain(view, seed)
    from .run import check_cuts  # noqa: PLC0415  (the launcher's check: only tensors may cross a used cut)

    check_cuts(chain, view.boundaries, view.granularity)
    spec, n, b, k = view.spec, len(chain), list(view.boundaries), len(devices)
    lossy = any(quant.values()) or cut_dtype == "int8"
    calib_x = load_calibration(calibration, spec, calibration_count, seed) if lossy else []
    x_example = spec.example_input("cpu", seed=seed)
    with torch.inference_mode():
        recorded = chain.block_inputs(x_example)
        calib_rec = [chain.run(x, record=True) for x in calib_x]

    def values_at(c: int, record: tuple[Any, list[tuple[Any, ...]]]) -> tuple[torch.Tensor, ...]:
        output, inputs = record
        return inputs[c] if c < n else _flat(output)

    out.mkdir(parents=True, exist_ok=True)
    # the cut at each boundary position s (0: the input, k: the output); an empty stage repeats a cut
    cuts = []
    for s in range(k + 1):
        c = b[s]
        wire_dtype = "float32"
        if 0 < s < k:
            # auto: an int8 device sends int8 (an empty one re-quantizes what it forwards, losslessly after an
            # int8 cut: the same cut has the same scale), which is what the partition estimate counts
            wire_dtype = cut_dtype if cut_dtype != "auto" else ("int8" if quant[devices[s - 1]] else "float32")
        tensors = chain.cuts[c].tensors
        cuts.append({"position": s, "index": c, "tensors": _tensors(chain.cuts[c]),
                     "wire": _wire(tensors, [values_at(c, r) for r in calib_rec], wire_dtype)})
    stages = []
    for s, d in enumerate(devices):
        lo, hi = b[s], b[s + 1]
        entry = {"index": s, "device": d, "host": view.hosts.get(d), "blocks": [lo, hi],
                 "block_names": chain.names[lo:hi], "runtime": runtimes[d], "quantize": quant[d],
                 "in_cut": s, "out_cut": s + 1, "artifact": None, "sha256": None, "bytes": 0}
        if hi > lo:
            say(f"stage {s} ({d}): blocks {lo}-{hi} for {runtimes[d]}{' int8' if quant[d] else ''}")
            module = StageModule([blk.module for blk in chain.blocks[lo:hi]]).eval()
            art = runtime_mod.compile_artifact(module, recorded[lo], runtimes[d], out / f"stage{s}", quant[d],
                                               [r[1][lo] for r in calib_rec] if quant[d] else None)
            entry.update(artifact=art.path.name, sha256=stage_runner.sha256(art.path), bytes=art.bytes,
                         compile_s=art.compile_s, runtime_version=art.version)
        else:  # nothing to run: the stage forwards what it receives
            entry.update(runtime="eager", quantize=None)
        stages.append(entry)

    manifest = {
        "format": stage_runner.FORMAT,
        "version": stage_runner.MANIFEST_VERSION,
        "model": spec_to_dict(spec),
        "granularity": view.granularity,
        "seed": seed,
        "blocks": chain.names,
        "devices": devices,
        "hosts": {d: view.hosts.get(d) for d in devices},
        "boundaries": b,
        "stages": stages,
        "cuts": cuts,
        "links": [lk.to_dict() if hasattr(lk, "to_dict") else dict(lk) for lk in view.links],
        "estimate": _estimates(view, chain, cuts),
        "calibration": ({"inputs": len(calib_x), "source": str(calibration) if calibration else "random"}
                        if calib_x else None),
        "cut_dtype": cut_dtype,
        "requires": {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
                     **{rt: stage_runner.runtime_version(rt) for rt in dict.fromkeys(s["runtime"] for s in stages)
                        if rt != "eager"}},
        "runner": "gapp_runner.py",
        # the plan exported, with the deployment chosen (what `gapp pipeline run --from-export` runs)
        "plan": {**view.plan.to_dict(), "runtimes": {d: runtimes[d] + ("-int8" if quant[d] else "")
                                                     for d in devices if runtimes[d] != "eager"}},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gapp": __version__,
    }
    (out / stage_runner.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.copyfile(stage_runner.__file__, out / "gapp_runner.py")
    (out / "README.txt").write_text(_readme(manifest))

    say("checking the exported stages against the unsplit model")
    check = check_export(out, chain, seed, tolerance, min_cosine)
    manifest["check"] = check
    (out / stage_runner.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportResult(str(out), manifest, check)


def _flat(output: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(output, torch.Tensor):
        return (output,)
    if isinstance(output, dict):
        return tuple(output.values())
    return tuple(output)


def check_export(directory: Path, chain: Any, seed: int, tolerance: float = TOLERANCE,
                 min_cosine: float = MIN_COSINE) -> dict[str, Any]:
    """Run the export through the stand-alone runner and compare with the unsplit model (eager, float32).

    Per stage, the stage alone on the exact inputs the unsplit chain gives it
    (where an error comes from); then the whole chain through the wire
    encoding (what the deployment computes). ``ok``: within ``tolerance`` when
    everything is float32, cosine at least ``min_cosine`` otherwise.
    """
    manifest = stage_runner.read_manifest(directory)
    x = chain.spec.example_input("cpu", seed=seed + CHECK_SEED)
    with torch.inference_mode():
        ref_out, inputs = chain.run(x, record=True)
        ref = _flat(ref_out)
        loaded = [stage_runner.load_stage(directory, s["index"], hint=runtime_mod.install_hint(s["runtime"]))
                  for s in manifest["stages"]]
        per_stage = []
        n = len(chain)
        for st in loaded:
            lo, hi = st.info["blocks"]
            if hi == lo:
                continue
            want = inputs[hi] if hi < n else ref
            got = st.compute(*[t.clone() for t in inputs[lo]])
            per_stage.append({"stage": st.index, "max_abs_diff": max(_diff(g, w) for g, w in zip(got, want)),
                              "cosine": min(runtime_mod.cosine(g, w) for g, w in zip(got, want))})
        got = stage_runner.run_chain(directory, x, stages=loaded)
    diff = max(_diff(g, w) for g, w in zip(got, ref))
    cos = min(runtime_mod.cosine(g, w) for g, w in zip(got, ref))
    lossy = any(s["quantize"] for s in manifest["stages"]) or any(
        w["dtype"] == "int8" for c in manifest["cuts"] for w in c["wire"])
    ok = cos >= min_cosine if lossy else diff <= tolerance
    return {"max_abs_diff": diff, "cosine": cos, "int8": lossy, "tolerance": None if lossy else tolerance,
            "min_cosine": min_cosine if lossy else None, "ok": bool(ok), "stages": per_stage,
            "reference": "the unsplit model, eager PyTorch, float32", "input_seed": seed + CHECK_SEED}


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def _estimates(view: PlanView, chain: Any, cuts: list[dict[str, Any]]) -> dict[str, Any]:
    """The plan's estimate, and the same plan re-estimated with the bytes the exported boundaries send."""
    plan_est = dict(view.estimate or {})
    compute = plan_stage_compute(plan_est)
    doc: dict[str, Any] = {"plan": _summary(plan_est) if plan_est else None, "wire": None,
                           "times": sorted({src for st in plan_est.get("stages") or [] for src in st.get("sources", [])})}
    if compute is None:
        doc["note"] = "the plan carries no estimate (a hand-made plan): nothing to re-estimate"
        return doc
    wire_bytes: dict[int, float] = {}
    for c in cuts[1:]:
        wire_bytes.setdefault(c["index"], float(sum(w["bytes"] for w in c["wire"])))
    doc["wire"] = _summary(stage_estimate(view, chain, compute, wire_bytes) or {}) or None
    for st, planned in zip((doc["wire"] or {}).get("stages", []), doc["plan"]["stages"]):
        st["sources"] = planned["sources"]  # the same compute times as the plan's: only the bytes changed
    return doc


def _summary(est: Mapping[str, Any]) -> dict[str, Any]:
    if not est:
        return {}
    keep = ("period_s", "throughput_per_s", "latency_s", "bottleneck", "communication")
    d = {k: est.get(k) for k in keep}
    d["stages"] = [{k: st.get(k) for k in ("stage", "device", "start", "end", "compute_s", "busy_s", "sources")}
                   for st in est.get("stages") or []]
    d["transfers"] = [{k: t.get(k) for k in ("link", "src", "dst", "cut", "bytes", "seconds", "is_return")}
                      for t in est.get("transfers") or []]
    return d


def _readme(manifest: Mapping[str, Any]) -> str:
    req = manifest["requires"]
    pkgs = " ".join(f"{p}=={v}" for p, v in req.items() if p not in ("python",) and v)
    lines = [
        f"GAPP export of {manifest['model']['name']}: {len(manifest['stages'])} stage(s) on "
        + ", ".join(f"{s['device']} ({s['runtime']}{', int8' if s['quantize'] else ''})" for s in manifest["stages"]),
        "",
        "Needs Python with: " + pkgs,
        "(only the runtime of the stages a device runs is needed on that device; GAPP itself is not)",
        "",
        "  python gapp_runner.py .              # load every stage here, run the chain, time it",
        "  python gapp_runner.py . --stage 0    # load and time one stage on zero inputs",
        "",
        "Run the pipeline for real from the machine that has GAPP (stages with a host in the plan are",
        "started there over SSH, with this runner and their artifact copied; the host needs no GAPP):",
        "  gapp pipeline run --from-export .",
        "",
        "From Python (what a launcher does for stage k, one item at a time):",
        "  import gapp_runner as r",
        "  st = r.load_stage('.', k, threads=2)",
        "  bufs = st.receive_buffers()          # receive the previous stage's tensors into these",
        "  out = st(*bufs)                      # the tensors to send to the next stage",
        "",
        "manifest.json describes the stages, the tensors crossing every cut (and how they are sent),",
        "the links and the estimate; gapp_runner.py's docstring describes its format.",
    ]
    return "\n".join(lines) + "\n"
