"""`gapp export PLAN -o DIR`: a plan as deployable stages (artifacts, manifest, stand-alone runner) or as a
``torch.distributed.pipelining`` split."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import BadInput
from .common import err, fail, format_bytes, handle_errors, out, print_json

FORMATS = ("artifacts", "pipelining")


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@handle_errors
def export(
    plan: Path = typer.Argument(..., help="Plan file written by `gapp partition ... -o PLAN`."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write (new or empty, or an earlier export)."),
    runtime: Optional[list[str]] = typer.Option(
        None, "--runtime", "-r",
        help="eager (torch.export .pt2), executorch (XNNPACK .pte) or onnxruntime (.onnx); one for every device"
        " or DEVICE=RUNTIME (repeatable). Default: what the plan's devices name (pi=measured@executorch-int8), else eager.",
    ),
    quantize: Optional[list[str]] = typer.Option(
        None, "--quantize", "-q", help="int8 for every device, or DEVICE=int8 (executorch and onnxruntime stages)."
        " Default: the plan's (a device written @RUNTIME-int8).",
    ),
    cut_dtype: str = typer.Option(
        "auto", "--cut-dtype",
        help="What crosses a cut between stages: auto (int8 after an int8 stage, else float32), float32 or int8.",
    ),
    calibration: Optional[Path] = typer.Option(
        None, "--calibration", help="Model inputs to calibrate int8 on: a tensor [N, ...] saved with torch.save."
    ),
    calibration_count: int = typer.Option(8, "--calibration-count", help="Random calibration inputs when no file is given."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights (as `gapp pipeline run --seed`)."),
    format_: str = typer.Option(
        "artifacts", "--format",
        help="artifacts (per-stage files, manifest, runner) or pipelining (split_spec for torch.distributed.pipelining"
        " and an example).",
    ),
    microbatches: int = typer.Option(4, "--microbatches", help="pipelining: microbatches per step in the example."),
    schedule: str = typer.Option("GPipe", "--schedule", help="pipelining: GPipe or 1F1B."),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Export PLAN for deployment: one artifact per stage under its device's runtime, a manifest and a runner.

    The chain of exported stages is checked against the unsplit model (max abs diff; float32 within 1e-4,
    int8 reported with its cosine similarity); exit code 1 when it does not reproduce it.
    """
    if format_ not in FORMATS:
        raise BadInput(f"--format {format_!r} is not known; give one of {', '.join(FORMATS)}")
    status = err.status("exporting")
    status.start()
    try:
        if format_ == "pipelining":
            from ..pipeline.pipelining import export_pipelining  # slow (torch)

            doc = export_pipelining(plan, output, seed=seed, microbatches=microbatches, schedule=schedule,
                                    progress=status.update)
        else:
            from ..pipeline.export import export_plan  # slow (torch)

            result = export_plan(plan, output, runtime=runtime, quantize=quantize, cut_dtype=cut_dtype,
                                 seed=seed, calibration=calibration, calibration_count=calibration_count,
                                 progress=status.update)
            doc = result.to_dict()
    finally:
        status.stop()
    if json_:
        print_json(doc)
    elif format_ == "pipelining":
        _show_pipelining(doc)
    else:
        _show(doc)
    if not doc["check"]["ok"]:
        chk = doc["check"]
        fail(f"the exported stages do not reproduce the unsplit model (max |diff| {chk['max_abs_diff']:.2e}"
             + (f", cosine {chk['cosine']:.5f}" if "cosine" in chk else "") + ")", 1)


def _show(doc: dict[str, Any]) -> None:
    m = doc["manifest"]
    table = Table(title=f"{m['model']['name']}: {len(m['stages'])} stage(s) exported to {doc['directory']}")
    for col, just in (("stage", "right"), ("device", "left"), ("blocks", "left"), ("runtime", "left"),
                      ("artifact", "left"), ("size", "right"), ("then sends", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in m["stages"]:
        cut = m["cuts"][s["out_cut"]]
        sends = ", ".join(f"{w['dtype']} {format_bytes(w['bytes'])}" for w in cut["wire"]) if s["index"] < len(m["stages"]) - 1 else "-"
        lo, hi = s["blocks"]
        table.add_row(str(s["index"]), s["device"], f"{lo}-{hi}", s["runtime"] + (" int8" if s["quantize"] else ""),
                      s["artifact"] or "(empty)", format_bytes(s["bytes"]), sends)
    out.print(table)
    est = m["estimate"]
    if est.get("plan") and est.get("wire"):
        p, w = est["plan"], est["wire"]
        out.print(f"estimate: {p['throughput_per_s']:.2f} items/s in the plan; {w['throughput_per_s']:.2f} items/s with the"
                  f" bytes the exported cuts send (bottleneck: {w['bottleneck']['name']})")
    chk = doc["check"]
    verdict = "[green]ok[/]" if chk["ok"] else "[red]MISMATCH[/]"
    bound = f"cosine >= {chk['min_cosine']}" if chk["int8"] else f"max |diff| <= {chk['tolerance']:g}"
    out.print(f"check against the unsplit model: max |diff| {chk['max_abs_diff']:.2e}, cosine {chk['cosine']:.6f}"
              f" ({bound}) {verdict}")
    needs = ", ".join(f"{k} {v}" for k, v in m["requires"].items() if v)
    out.print(f"runner: {doc['directory']}/gapp_runner.py (needs {needs}; not GAPP)")


def _show_pipelining(doc: dict[str, Any]) -> None:
    chk = doc["check"]
    spec = ", ".join(f"{p}: SplitPoint.{w}" for p, w in doc["split_spec"].items())
    out.print(f"split_spec = {{{spec}}}")
    out.print(f"checked with torch.distributed.pipelining.pipeline: {chk['stages']} stages, parameters per stage"
              f" {chk['params_per_stage']} (plan: {chk['plan_params_per_stage']}), max |diff| {chk['max_abs_diff']:.2e}"
              + (" [green]ok[/]" if chk["ok"] else " [red]MISMATCH[/]"))
    for f in doc["files"]:
        err.print(f"  wrote {f}", highlight=False)
    err.print(f"  run it: torchrun --nproc-per-node {chk['stages']} {doc['files'][1]}", highlight=False)
