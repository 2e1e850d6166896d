"""`gapp partition MODEL --devices "pi=2GFLOP/s, server=measured" ...`: the optimal plan, its estimate, the baselines.

Block times come from :mod:`gapp_tui.partition.times`, the service the
terminal app's Partition section uses too: the same store, model and devices
give the same numbers in both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import BadInput
from ..partition import OBJECTIVES, Link, baselines, chain_links, estimate, solve
from ..partition.devices import EXAMPLE, SYNTAX, parse_device, with_options
from ..partition.link import stored_link
from ..partition.plan import COMMUNICATION
from ..partition.ranges import range_dict
from ..partition.times import MODES, cost_table, plan_range
from ..store import Store
from ..units import parse_bytes
from .common import err, format_bytes, handle_errors, out, print_json
from .options import MODEL, ModelOptions, option_groups


def register(app: typer.Typer) -> None:
    app.command("partition")(partition)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


@handle_errors
@option_groups
def partition(
    model: str = typer.Argument(..., help="Registry name (see `gapp models`) or package.module:callable."),
    devices: str = typer.Option(
        ..., "--devices", "-d",
        help=f"Devices in pipeline order with the source of their block times, as in the app: {escape(SYNTAX)}"
        f" (e.g. \"{EXAMPLE}\"). A bare NAME is NAME=measured; --times, --rate, --device-times and --predictor"
        " may set the sources of bare names instead.",
    ),
    times: Optional[list[str]] = typer.Option(
        None, "--times", "-t",
        help="For devices named bare in --devices: measured (the store), predicted (the predictor) or flops; "
        "one for all of them or DEVICE=SOURCE (repeatable).",
    ),
    device_times: Optional[list[str]] = typer.Option(
        None, "--device-times",
        help="DEVICE=KEY or DEVICE=KEY/SETTING: the stored device key (and setting) whose times DEVICE uses (repeatable; "
        "default: the device's own name). See `gapp results devices` and `gapp results list`.",
    ),
    rate: Optional[list[str]] = typer.Option(
        None, "--rate", help="DEVICE=RATE for --times flops, e.g. pi=2GFLOPs server=50GFLOPs (repeatable)."
    ),
    mode: str = typer.Option(
        "auto", "--mode", help="Stored block times to use: auto (in-context, else standalone), in-context or standalone."
    ),
    predictor: Optional[list[str]] = typer.Option(
        None, "--predictor",
        help="Predictor file or name for --times predicted: PATH for every predicted device, or DEVICE=PATH "
        "(repeatable). Default: the device's own (`gapp calibrate`), else the predictor GAPP ships.",
    ),
    bandwidth: Optional[str] = typer.Option(
        None, "--bandwidth", help="Link bandwidth, e.g. 100Mbit/s, 12.5MB/s, 1Gbps; one for every link or one per link, comma-separated."
    ),
    latency: str = typer.Option("0", "--latency", help="Link latency per transfer, e.g. 2ms, 500us (one, or one per link)."),
    per_tensor: str = typer.Option("0", "--per-tensor", help="Extra time per tensor of a cut, e.g. 50us (one, or one per link)."),
    send_cpu: str = typer.Option(
        "0", "--send-cpu",
        help="The sender's CPU time per byte sent, e.g. 2ns (one, or one per link); with overlapped communication "
        "it counts as the sending stage's busy time.",
    ),
    link_from_probe: bool = typer.Option(False, "--link-from-probe", help="Take bandwidth and latency from the newest stored link probe (`gapp link probe`)."),
    probe_host: Optional[str] = typer.Option(None, "--probe-host", help="With --link-from-probe: the probe of this host (default: the newest of any)."),
    objective: str = typer.Option("throughput", "--objective", help="throughput (bottleneck, latency as tie-break) or latency."),
    communication: str = typer.Option("overlapped", "--communication", help="overlapped (receive/compute/send concurrently) or serial."),
    return_output: bool = typer.Option(False, "--return-output", help="The output travels back to the first device."),
    allow_empty: bool = typer.Option(True, "--allow-empty/--no-empty", help="May a device get no blocks?"),
    memory: Optional[list[str]] = typer.Option(None, "--memory", help="DEVICE=BYTES weight limit, e.g. pi=512MB (repeatable)."),
    host: Optional[list[str]] = typer.Option(None, "--host", help="DEVICE=user@host:port for `gapp pipeline run` (repeatable; default: this machine)."),
    items: int = typer.Option(1000, "--items", help="Report the time for this many items."),
    db: Optional[Path] = typer.Option(None, "--db", help="Measurement store (default: $GAPP_DB or the user data dir)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the plan file here (read by `gapp pipeline run`)."),
    model_opts: ModelOptions = MODEL,
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Cut MODEL across DEVICES: the exact optimum, its estimate, and the baselines' estimates."""
    from ..blocks import BlockChain  # slow (torch)
    from ..predict import registry  # slow (torch)

    if objective not in OBJECTIVES:
        raise BadInput(f"--objective {objective!r} is not known; give one of {', '.join(OBJECTIVES)}")
    if communication not in COMMUNICATION:
        raise BadInput(f"--communication {communication!r} is not known; give one of {', '.join(COMMUNICATION)}")
    if mode not in MODES:
        raise BadInput(f"--mode {mode!r} is not known; give one of {', '.join(MODES)}")
    if items < 1:
        raise BadInput(f"--items {items} is not valid; give a positive integer")
    items_given = [p.strip() for p in devices.split(",") if p.strip()]
    if not items_given:
        raise BadInput(f"--devices {devices!r} names no device; give e.g. {EXAMPLE}")
    given = [parse_device(p) for p in items_given]
    if len({d.name for d in given}) != len(given):
        raise BadInput(f"--devices {devices!r} names a device twice; a pipeline uses each device once")
    specs = with_options(given, times=times, rates=rate, device_times=device_times, predictors=predictor,
                         explicit={d.name: "=" in p for d, p in zip(given, items_given)})
    names = [d.name for d in specs]
    limits = {d: parse_bytes(v, "--memory") for d, v in _pairs(memory, "--memory", names).items()}
    hosts: dict[str, str | None] = dict(_pairs(host, "--host", names))
    spec = model_opts.spec(model)

    needs_store = link_from_probe or any(d.source == "measured" for d in specs)
    store = Store(db, readonly=True) if needs_store else Store.if_exists(db)
    links = _links(names, bandwidth, latency, per_tensor, link_from_probe, store, return_output, probe_host, send_cpu)

    with err.status(f"tracing {spec.label()}"):
        chain = BlockChain.from_spec(spec, model_opts.granularity, device="meta", leaves=model_opts.leaves)
    spec = chain.spec  # the input made explicit
    table, columns = cost_table(chain, specs, store=store, mode=mode, predict=registry.service(store))
    plan = solve(table, names, links, objective=objective, communication=communication, return_output=return_output,
                 allow_empty=allow_empty, memory=limits or None, hosts=hosts, items=items)
    plan.runtimes = {d.name: d.runtime_text for d in specs if d.runtime != "eager"}  # what `gapp export` deploys
    est = estimate(table, plan, items=items, memory=limits or None)
    rng = plan_range(table, plan, columns, items=items, memory=limits or None)
    base = baselines(table, names, links, communication=communication, return_output=return_output,
                     memory=limits or None, items=items)
    if output is not None:
        plan.save(output)
        err.print(f"plan written to {output}")

    doc = {
        "model": spec.name,
        "input_shape": list(spec.shape),
        "granularity": chain.granularity,
        "blocks": table.n,
        "block_names": table.blocks,
        "devices": names,
        "device_specs": [d.text() for d in specs],
        "times": {c.device.name: c.to_dict() for c in columns},
        "links": [lk.to_dict() for lk in plan.links],
        "objective": objective,
        "plan": plan.to_dict(),
        "estimate": est.to_dict(),
        # predicted devices with a calibrated interval: the plan's estimate at their blocks' low and high ends
        "range": range_dict(rng) if rng is not None else None,
        "baselines": {
            name: {"boundaries": b.boundaries, "estimate": b.estimate,
                   "throughput_vs_plan": _ratio(b.estimate, plan.estimate)}
            for name, b in base.items()
        },
        "output": str(output) if output is not None else None,
    }
    if json_:
        print_json(doc)
        return
    _print_plan(spec, table, plan, est, base, rng)
    for c in columns:
        out.print(f"{c.device.name}: {c.total * 1e3:.3f} ms, {c.note}", highlight=False)


def _ratio(b: dict[str, Any] | None, best: dict[str, Any] | None) -> float | None:
    """A baseline's throughput as a fraction of the plan's."""
    if not b or not best or not b.get("period_s"):
        return None
    return best["period_s"] / b["period_s"]


def _pairs(values: list[str] | None, option: str, names: list[str]) -> dict[str, str]:
    """``["pi=X", "server=Y"]`` (or comma-joined) -> a dict; BadInput on a missing ``=`` or an unknown device."""
    out: dict[str, str] = {}
    for v in values or []:
        for part in [p.strip() for p in v.split(",") if p.strip()]:
            dev, sep, val = part.partition("=")
            if not sep:
                raise BadInput(f"{option} {part!r} is not DEVICE=VALUE (e.g. {option} {names[0]}=...)")
            if dev.strip() not in names:
                raise BadInput(f"{option} names device {dev.strip()!r}, which is not in --devices {','.join(names)}")
            out[dev.strip()] = val.strip()
    return out


def _links(names: list[str], bandwidth: str | None, latency: str, per_tensor: str, from_probe: bool,
           store: Any, return_output: bool, probe_host: str | None = None, send_cpu: str = "0") -> list[Any]:
    """One Link per hop (and the return), from the options or from the stored link probe."""
    hops = max(len(names) - 1, 0) + (1 if return_output and len(names) > 1 else 0)
    if from_probe:
        if bandwidth is not None:
            raise BadInput("give either --bandwidth or --link-from-probe, not both")
        probed = _probe_links(names, store, probe_host, return_output)
        if send_cpu.strip() not in ("", "0"):
            probed = [dataclasses.replace(lk, cpu_per_byte=send_cpu) for lk in probed]
        return probed
    if bandwidth is None:
        if len(names) == 1:
            return []
        raise BadInput("no link given; give --bandwidth (e.g. 100Mbit/s) and --latency, or --link-from-probe")

    def split(text: str, what: str) -> list[str]:
        parts = [p.strip() for p in text.split(",") if p.strip()] or ["0"]
        if len(parts) not in (1, hops, max(len(names) - 1, 1)):
            raise BadInput(f"{what} {text!r} gives {len(parts)} values for {hops} links; give 1 or {hops}")
        return parts

    bws, lats, pts = split(bandwidth, "--bandwidth"), split(latency, "--latency"), split(per_tensor, "--per-tensor")
    cpus = split(send_cpu, "--send-cpu")
    n = max(len(bws), len(lats), len(pts), len(cpus))
    pick = lambda xs, i: xs[i] if len(xs) > 1 else xs[0]  # noqa: E731
    given = [Link.parse(pick(bws, i), pick(lats, i), pick(pts, i), cpu_per_byte=pick(cpus, i)) for i in range(n)]
    return chain_links(names, given if len(given) > 1 else given[0], return_output)


def _probe_links(names: list[str], store: Any, host: str | None, return_output: bool) -> list[Any]:
    """The chain's links from the newest stored link probe (``gapp link probe``).

    Activations travel device -> server: every forward link takes the probe's
    ``from_device`` direction, the output's return trip its ``to_device`` one.
    """

    def one(direction: str) -> Link:
        found = stored_link(store, host, direction)
        if found is None:
            raise BadInput(
                f"no {direction} link probe{f' of host {host!r}' if host else ''} stored in {str(store.path)!r};"
                " run `gapp link probe --host ...` first, or give --bandwidth and --latency"
            )
        link, row = found
        err.print(f"link from the probe of {row.get('host', '?')} ({direction}, {row.get('measured_at', '?')}): "
                  f"{link.describe()}", highlight=False)
        return link

    forward = one("from_device")
    links = [forward] * max(len(names) - 1, 0)
    if return_output and len(names) > 1:
        links.append(one("to_device"))
    return chain_links(names, links, return_output) if links else []


def range_words(rng: dict[str, Any] | None) -> str:
    """`` (10.8-13.9 items/s at 90 %)``: the throughput range of a plan (empty without one)."""
    if rng is None:
        return ""
    lo, _, hi = rng["throughput_per_s"]
    return f" ({lo:.3g}-{hi:.3g}, {100 * rng['level']:.0f}% interval of {', '.join(rng['devices'])}'s predicted times)"


def _print_plan(spec: Any, table: Any, plan: Any, est: Any, base: dict[str, Any], rng: dict[str, Any] | None = None) -> None:
    sources = ", ".join(f"{d} {table.source_of(d)}" for d in plan.devices)
    t = Table(title=f"{spec.label()}: {table.n} blocks, {plan.objective}, {plan.communication} (times: {sources})")
    for col, just in (("stage", "right"), ("device", "left"), ("blocks", "left"), ("compute ms", "right"),
                      ("then sends", "left"), ("weights", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for st in est.stages:
        names = table.blocks[st.start:st.end]
        span = "(empty)" if not names else (names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}")
        tr = est.transfers[st.stage] if st.stage < len(est.transfers) else None
        sends = "-"
        if tr:
            sends = f"{_ms(tr.seconds)} ms, {format_bytes(tr.bytes)}" + (f" in {tr.tensors}" if tr.tensors > 1 else "")
        t.add_row(str(st.stage), st.device, f"{st.start}-{st.end} {span}", _ms(st.compute_s), sends,
                  format_bytes(st.param_bytes))
    out.print(t)
    out.print(
        f"period {_ms(est.period_s)} ms, {est.throughput:.2f} items/s{range_words(rng)} ({est.samples_per_s:.2f} samples/s), "
        f"latency {_ms(est.latency_s)} ms, {est.items} items in {est.time_for(est.items):.3f} s\n"
        f"bottleneck: {est.bottleneck['name']}",
        highlight=False,
    )
    b = Table(title="baselines (same links, same estimate)")
    for col, just in (("plan", "left"), ("boundaries", "left"), ("period ms", "right"), ("items/s", "right"),
                      ("latency ms", "right"), ("vs optimum", "right")):
        b.add_column(col, justify=just)  # type: ignore[arg-type]
    rows = [("optimum", plan)] + list(base.items())
    for name, p in rows:
        e = p.estimate
        ratio = _ratio(e, plan.estimate)
        b.add_row(name, ",".join(map(str, p.boundaries)), _ms(e["period_s"]), f"{e['throughput_per_s']:.2f}",
                  _ms(e["latency_s"]), "-" if ratio is None else f"{ratio * 100:.1f}%")
    out.print(b)
