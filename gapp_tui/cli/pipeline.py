"""`gapp pipeline run PLAN`: execute a partition plan for real and compare it with its estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import BadInput
from .common import err, fail, handle_errors, format_bytes, out, print_json
from .options import (
    opt_accept_new_host_key,
    opt_connect_timeout,
    opt_identity,
    opt_known_hosts,
    opt_remote_tmp,
    opt_ssh_config,
    ssh_options,
)

pipeline_app = typer.Typer(
    name="pipeline",
    help="Run a partition plan for real (torch.distributed, gloo): one process per stage.",
    no_args_is_help=True,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")


def _ms(seconds: Any) -> str:
    return "-" if seconds is None else f"{float(seconds) * 1e3:.2f}"


@pipeline_app.command("run")
@handle_errors
def run(
    plan: Optional[Path] = typer.Argument(
        None, help="Plan file written by `gapp partition ... -o PLAN` (with --from-export: optional, its hosts are used).",
        show_default=False,
    ),
    from_export: Optional[Path] = typer.Option(
        None, "--from-export",
        help="Run the stages `gapp export` wrote in this directory: each loads its artifact with the stand-alone runner"
        " under its runtime (a remote stage gets the runner and its artifact copied; its host needs Python, torch and"
        " the runtime, not GAPP).", show_default=False,
    ),
    items: int = typer.Option(50, "--items", "-n", help="Items streamed and measured (after the warm-up)."),
    warmup: int = typer.Option(5, "--warmup", help="Items streamed first and not measured."),
    latency_items: int = typer.Option(5, "--latency-items", help="Items sent one at a time after the stream (unloaded latency)."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address stage 0 listens on for the rendezvous."),
    master_port: int = typer.Option(0, "--master-port", help="Rendezvous port (0: a free one)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds any rendezvous, send or receive may take before the run fails."),
    deadline: float = typer.Option(600.0, "--deadline", help="Seconds the whole run may take."),
    threads: int = typer.Option(1, "--threads", help="Intra-op threads per stage."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights (identical in every stage)."),
    pin: bool = typer.Option(False, "--pin", help="Pin stage s to CPU s (modulo the CPUs of its host)."),
    nice: Optional[int] = typer.Option(
        None, "--nice", help="Priority of every stage, -20..19 (negative needs root): stages sharing a busy machine."
    ),
    identity: Optional[Path] = opt_identity(),
    known_hosts: Optional[Path] = opt_known_hosts(),
    ssh_config: Optional[Path] = opt_ssh_config(),
    accept_new_host_key: bool = opt_accept_new_host_key(),
    connect_timeout: float = opt_connect_timeout(),
    remote_python: str = typer.Option(
        "python3", "--remote-python",
        help="Python on the hosts of remote stages (it needs torch and GAPP; with --from-export torch and the runtime).",
    ),
    remote_tmp: Optional[str] = opt_remote_tmp(),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Execute PLAN with one process per stage; report throughput, latency and per-stage times beside the estimate.

    Stages of devices with a host in the plan are started there over SSH (the host needs torch and GAPP);
    give --master-addr an address every host can reach. With --from-export DIR the stages run the exported
    artifacts under their runtimes (every host's runtime is checked before any stage starts), compared with the
    export's estimate.
    """
    from ..pipeline import run_plan  # slow (torch)

    if plan is None and from_export is None:
        raise BadInput("no plan given; give PLAN (a file written by `gapp partition -o`) or --from-export DIR")
    if nice is not None and not -20 <= nice <= 19:
        raise BadInput(f"--nice {nice} is out of range; give -20..19")
    ssh = ssh_options("", identity=identity, remote_python=remote_python, remote_tmp=remote_tmp,
                              known_hosts=known_hosts, ssh_config=ssh_config,
                              accept_new_host_key=accept_new_host_key, connect_timeout=connect_timeout)

    status = err.status("starting the stages")
    status.start()

    def on_event(name: str, info: dict[str, Any]) -> None:
        text = {
            "started": f"stages started (pids {', '.join(map(str, info.get('pids', [])))}); building their blocks",
            "built": "every stage built its blocks; joining the process group",
            "joined": "process group joined; warming up",
            "streaming": f"streaming {items} items",
            "done": "done",
        }.get(name, name)
        status.update(text)

    try:
        result = run_plan(
            plan, from_export=from_export, items=items, warmup=warmup, latency_items=latency_items, master_addr=master_addr,
            master_port=master_port or None, timeout=timeout, deadline=deadline, threads=threads, seed=seed,
            ssh=ssh, on_event=on_event, pin=pin, nice=nice,
        )
    finally:
        status.stop()
    doc = result.to_dict()
    if json_:
        print_json(doc)
    else:
        show(doc)
    if not result.output_ok or not result.weights_match:
        cos = f", cosine {result.output_cosine:.5f}" if result.min_cosine is not None else ""
        fail(
            f"the pipeline's output differs from the unsplit model's (max |diff| {result.output_max_abs_diff:.2e}{cos},"
            f" {'artifacts' if result.export else 'weights'} match: {result.weights_match})",
            1,
        )


def show(doc: dict[str, Any]) -> None:
    """The human report: per-stage table, then measured versus estimated totals."""
    est = doc.get("estimate") or {}
    est_stages = est.get("stages") or []
    est_links = est.get("transfers") or []
    m = doc["measured"]
    exported = bool(doc.get("export"))
    what = f"exported stages ({doc['export']})" if exported else "stages"
    table = Table(title=f"{doc['model']['name']} pipeline: {len(doc['devices'])} {what}, {doc['items']} items"
                        " (times are means)")
    cols = [("stage", "right"), ("device", "left"), ("blocks", "left")]
    if exported:
        cols.append(("runtime", "left"))
    cols += [("compute ms", "right"), ("est.", "right"), ("send wait ms", "right"), ("link est.", "right"),
             ("sent", "right")]
    for col, just in cols:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s, st in enumerate(doc["stages"]):
        lo, hi = st["blocks"]
        e = est_stages[s] if s < len(est_stages) else {}
        link = est_links[s] if s < len(est_links) else {}
        cells = [str(s), st["device"], f"{lo}-{hi}"]
        if exported:
            cells.append(st.get("runtime", "?") + (" int8" if st.get("quantize") else ""))
        cells += [_ms(st["compute_s"]["mean"]), _ms(e.get("compute_s")),
                  _ms(st["send_s"]["mean"]) if len(doc["stages"]) > 1 else "-", _ms(link.get("seconds")),
                  f"{format_bytes(st['out_bytes'])}/{st['out_tensors']}"]
        table.add_row(*cells)
    out.print(table)
    ratio = doc.get("throughput_ratio")
    est_tp = est.get("throughput_per_s")
    out.print(
        f"throughput: {m['throughput_per_s']:.2f} items/s measured"
        + (f", {est_tp:.2f} estimated (measured/estimated {ratio:.3f})" if est_tp else ", no estimate in the plan")
    )
    run_est = doc.get("estimate_with_run_compute") or {}
    if run_est.get("throughput_per_s"):
        out.print(
            f"with this run's stage compute times the model predicts {run_est['throughput_per_s']:.2f} items/s"
            f" (measured/predicted {doc['throughput_ratio_run_compute']:.3f})"
        )
    out.print(
        f"period: {_ms(m['period_s'])} ms measured" + (f", {_ms(est.get('period_s'))} ms estimated" if est else "")
        + (f" (bottleneck: {est['bottleneck']['name']})" if est.get("bottleneck") else "")
    )
    iso = m["latency_isolated_s"]
    stream = m["latency_stream_s"]
    out.print(
        f"latency (round trip at stage 0): one at a time mean {_ms(iso['mean'])} ms, p50 {_ms(iso['p50'])} ms"
        + (f"; estimated {_ms(est.get('latency_s'))} ms" if est.get("latency_s") is not None else "")
        + f"; while streaming mean {_ms(stream['mean'])} ms, p50 {_ms(stream['p50'])} ms"
    )
    chk = doc["check"]
    ok = "[green]ok[/]" if chk["output_ok"] else "[red]MISMATCH[/]"
    if exported:
        same = ("[green]every artifact is the one exported[/]" if chk["weights_match"]
                else "[red]an artifact is not the one exported[/]")
        bound = (f"cosine {chk['output_cosine']:.6f} (>= {chk['min_cosine']})" if chk.get("min_cosine") is not None
                 else f"<= {chk['tolerance']:g}")
        out.print(f"output check: max |pipeline - unsplit model| = {chk['output_max_abs_diff']:.2e}, {bound} {ok};"
                  f" {same}")
        return
    same = "[green]identical in every stage[/]" if chk["weights_match"] else "[red]DIFFERENT between stages[/]"
    out.print(f"output check: max |pipeline - unsplit model| = {chk['output_max_abs_diff']:.2e} {ok}; weights {same}")

