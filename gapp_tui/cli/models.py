"""`gapp models`, `gapp blocks`, `gapp features`: the registry, the block chain, the features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import BadInput, closest
from .common import capture_line, err, format_bytes, format_count, handle_errors, out, print_json
from .options import MODEL, ModelOptions, option_groups


def register(app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("blocks")(blocks)
    app.command("features")(features)


@handle_errors
def models(
    family: Optional[str] = typer.Argument(None, help="Only this family (e.g. resnet)."),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """List the model registry by family (every torchvision classification model)."""
    from ..zoo import families  # slow (torch)

    fams = families()
    if family is not None:
        if family not in fams:
            raise BadInput(f"unknown family {family!r}{closest(family, fams)} (families: {', '.join(fams)})")
        fams = {family: fams[family]}
    if json_:
        print_json({"families": fams, "count": sum(len(v) for v in fams.values())})
        return
    table = Table(title=f"{sum(len(v) for v in fams.values())} models in {len(fams)} families")
    table.add_column("family", style="bold cyan")
    table.add_column("models")
    for fam, names in fams.items():
        table.add_row(fam, ", ".join(names))
    out.print(table)
    err.print("any package.module:callable returning an nn.Module works too: timm.models:NAME,"
              " pytorchcv.model_provider:NAME, transformers:AutoModel --hf-config NAME, your own code")


@handle_errors
@option_groups
def blocks(
    model: str = typer.Argument(..., help="Registry name (see `gapp models`) or package.module:callable."),
    model_opts: ModelOptions = MODEL,
    check: bool = typer.Option(True, "--check/--no-check", help="Run the chain on a real input and compare with the unsplit model."),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Trace MODEL, cut it into blocks and show each block and the bytes crossing every cut."""
    from ..blocks import BlockChain  # slow (torch)

    spec = model_opts.spec(model)
    with err.status(f"tracing {spec.name}"):
        chain = BlockChain.from_spec(spec, model_opts.granularity, device="cpu" if check else "meta", leaves=model_opts.leaves)
        diff = chain.composition_error() if check else None
    spec = chain.spec  # the input made explicit (a batch dimension added, the size the model declares)
    rows = chain.summary()
    if json_:
        print_json(
            {
                "model": spec.name,
                "input_shape": list(spec.shape),
                "input_dtype": str(spec.dtype).replace("torch.", ""),
                **spec.inputs_doc(),
                "granularity": chain.granularity,
                "capture": chain.capture.to_dict() if chain.capture else None,
                "blocks": rows,
                "input_bytes": chain.cuts[0].bytes,
                "composition_max_abs_diff": diff,
            }
        )
        return
    table = Table(title=f"{spec.label()}: {len(rows)} blocks ({chain.granularity})")
    for col, just in (("#", "right"), ("block", "left"), ("ops", "right"), ("params", "right"),
                      ("FLOPs", "right"), ("output shapes", "left"), ("bytes after", "right"), ("tensors", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        shapes = " ".join("x".join(map(str, s)) or "scalar" for s in r["out_shapes"][:3])
        if len(r["out_shapes"]) > 3:
            shapes += f" +{len(r['out_shapes']) - 3}"
        table.add_row(str(r["index"]), r["name"], str(r["ops"]), format_count(r["params"]), format_count(r["flops"]),
                      shapes, format_bytes(r["out_bytes"]), str(r["out_tensors"]))
    out.print(table)
    err.print(capture_line(chain), highlight=False, markup=False)
    if diff is not None:
        ok = "[green]ok[/]" if diff <= 1e-4 else "[red]MISMATCH[/]"
        err.print(f"composition check: max |chain - model| = {diff:.2e} {ok}")


@handle_errors
@option_groups
def features(
    model: str = typer.Argument(..., help="Registry name or package.module:callable."),
    output_dir: Path = typer.Option(Path("features"), "--output-dir", "--output_dir", "-o", help="Where to write the graphs and the summary."),
    model_opts: ModelOptions = MODEL,
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Extract hardware-independent BlockGraph features (meta tensors: no real memory)."""
    from ..blocks import BlockChain  # slow (torch)
    from ..features import extract, save_features  # slow (torch)

    spec = model_opts.spec(model)
    t0 = time.perf_counter()
    with err.status(f"extracting features of {spec.name}"):
        chain = BlockChain.from_spec(spec, model_opts.granularity, device="meta", leaves=model_opts.leaves)
        graphs = extract(chain)
    seconds = time.perf_counter() - t0
    spec = chain.spec
    files = save_features(graphs, chain, output_dir)
    doc = {
        "model": spec.name,
        "input_shape": list(spec.shape),
        **spec.inputs_doc(),
        "granularity": chain.granularity,
        "capture": chain.capture.to_dict() if chain.capture else None,
        "seconds": round(seconds, 3),
        "files": {k: str(v) for k, v in files.items()},
        "blocks": [g.totals_dict() for g in graphs],
    }
    if json_:
        print_json(doc)
        return
    err.print(f"{len(graphs)} block graphs of {spec.label()} in {seconds:.2f} s -> {output_dir}")
    err.print(capture_line(chain), highlight=False, markup=False)
    for k, v in files.items():
        out.print(f"  {k}: {v}")
