"""`gapp calibrate`: a predictor for this machine or an SSH host, from a probe suite measured within a time budget."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from ..errors import BadInput
from ..store import Store
from . import remote as _remote
from .common import err, handle_errors, out, print_json
from .options import SSH, option_groups

if TYPE_CHECKING:
    from ..ssh import SSHOptions


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)


def _say(event: dict[str, Any]) -> None:
    """Progress lines on stderr (stdout stays for --json)."""
    e = event["event"]
    if e == "round" and event["phase"] == "start":
        err.print(f"[bold cyan]{event['kind']}[/]: measuring {event['probes']} probe block(s)", highlight=False)
    elif e == "round":
        err.print(f"  {event['kind']} done in {event['seconds']:.1f} s; device time {event['spent_s']:.0f} s of"
                  f" {event['budget_s']:.0f} s", highlight=False)
    elif e == "block":
        err.print(f"  [dim]{event['index']}/{event['total']} {event['name'][:60]} {event['ms']:.3f} ms"
                  f" ({event['spent_s']:.0f}/{event['budget_s']:.0f} s)[/]", highlight=False)
    elif e == "estimate":
        err.print(f"this device runs the probes {event['speed_vs_base']:.2f}x the base predictor's times;"
                  f" estimated device time: core {event['core_probes']} probes ~{event['core_s']:.0f} s,"
                  f" all {event['pool_probes']} ~{event['pool_s']:.0f} s; budget {event['budget_s']:.0f} s"
                  f" (the ensemble chooses what to measure after the core)", highlight=False)
    elif e == "steadiness":
        if event["moved"]:
            err.print(f"[yellow]warning[/]: {event['warning']}", highlight=False, soft_wrap=True)
        else:
            err.print(f"  steady: the reference probes ran {event['ratio']:.2f}x their first time", highlight=False)
    elif e == "adapted":
        cv = event.get("cv") or {}
        if cv:
            err.print(f"  adapted to {event['probes']} probes ({event['method']}): held-out probes"
                      f" {cv.get('within10', float('nan')):.0f}% within ±10%, MAPE {cv.get('mape', float('nan')):.1f}%",
                      highlight=False)


@handle_errors
@option_groups
def calibrate(
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the device's predictor "
                                            "(default: <user data dir>/gapp/predictors/<device key>.pt).", show_default=False),
    budget: str = typer.Option("10m", "--budget", help="Device time to spend measuring probes, e.g. 10m, 90s "
                               "(the default fits a Raspberry Pi 4-class CPU)."),
    base: Optional[Path] = typer.Option(None, "--base", help="The predictor to adapt (default: the shipped one).",
                                        show_default=False),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="torch threads on the device (default: all cores).",
                                          show_default=False),
    level: float = typer.Option(0.9, "--level", help="Level of the prediction intervals (0.9: 90 %)."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store the probe rows and the device's predictor are "
                                      "recorded in (default: $GAPP_DB, else the user data directory).", show_default=False),
    device_name: Optional[str] = typer.Option(None, "--device-name", help="Name the device in its key instead of its hostname."),
    remeasure: bool = typer.Option(False, "--remeasure", help="Measure again the probes the store already holds "
                                   "for this device (and replace their rows), e.g. after a warning that its speed moved."),
    ssh: Optional[SSHOptions] = SSH,
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Measure a probe suite on this machine (or --host) within --budget, adapt the predictor, record it.

    Probe rows go to the store as they are measured: Ctrl-C keeps them, and the same command resumes.
    The predictor is recorded as this device's, so `gapp predict --device KEY` uses it.
    """
    from ..predict import calibrate as cal  # slow (torch), as the predictor below
    from ..predict.predictor import Predictor, default_predictor_path  # slow (torch)

    budget_s = cal.parse_budget(budget)
    if threads is not None and threads < 1:
        raise BadInput(f"--threads {threads} is not valid; give a positive integer (default: all cores)")
    if not 0.5 <= level < 1:
        raise BadInput(f"--level {level} is not valid; give a level between 0.5 and 0.99 (0.9: 90 %)")
    base_path = base or default_predictor_path()
    base_pred = Predictor.load(base_path)
    if out_path is not None:
        _writable(out_path)
    command = "gapp calibrate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    say = _say
    with Store(db) as store:
        try:
            if ssh is not None:
                with _remote.connect(ssh) as session:
                    session.check_python(ssh.remote_python)
                    runner = cal.RemoteRunner(session, store, threads, ssh.remote_python, ssh.remote_tmp,
                                              device_name=device_name, remeasure=remeasure,
                                              log=lambda m: err.print(f"[dim]{m}[/]", highlight=False))
                    pred, report = cal.calibrate(runner, base_pred, budget_s, level=level, on_event=say, command=command)
            else:
                runner = cal.LocalRunner(store, threads, device_name=device_name, remeasure=remeasure)
                pred, report = cal.calibrate(runner, base_pred, budget_s, level=level, on_event=say, command=command)
        except cal.Interrupted as exc:
            err.print(f"[yellow]interrupted[/]: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        cal.record(pred, report, store, out_path, base_path)
    if json_:
        print_json(report)
        return
    table = Table(title=f"calibrated {report['machine']}")
    table.add_column("")
    table.add_column("", justify="right")
    held = report["held_out"]
    la = report.get("log_affine_held_out") or {}
    iv = report.get("interval") or {}
    for k, v in (("device key", report["device_key"]), ("probes measured", str(report["probes_measured"])),
                 ("device time", f"{report['device_seconds']:.0f} s of {report['budget_s']:.0f} s"),
                 ("adaptation", f"{report['method']}" + (f" (lambda {report['lambda']:g})" if report["lambda"] else "")),
                 ("held-out probes within ±10 %", f"{held.get('within10') or float('nan'):.0f} %"),
                 ("held-out probes MAPE", f"{held.get('mape') or float('nan'):.1f} %"),
                 ("log-affine only (held out)", f"{la['within10']:.0f} % / {la['mape']:.1f} %" if la else
                  "not fitted"),
                 ("interval", f"{100 * iv['level']:.0f} %, calibrated on {iv['samples']} held-out probes" if iv else "none"),
                 ("speed during the calibration", _steadiness(report.get("steadiness"))),
                 ("predictor", report["predictor"])):
        table.add_row(k, v)
    out.print(table)
    err.print(f"recorded as the predictor of {report['device_key']} in {report['db']}:"
              f" `gapp predict MODEL --device {report['device_key']}` uses it", highlight=False, soft_wrap=True)


def _steadiness(steady: dict[str, Any] | None) -> str:
    if not steady:
        return "not checked (no probe measured by this run)"
    word = "[yellow]moved[/]" if steady["moved"] else "steady"
    fixed = steady.get("corrected")
    return (f"{word}: reference probes {steady['ratio']:.2f}x their first time"
            + (f"; labels corrected to the speed most probes saw ({fixed['end']:.2f}x at the end)" if fixed else ""))


def _writable(path: Path) -> None:
    if path.is_dir():
        raise BadInput(f"--out {str(path)!r} is a directory; give a file path such as {str(path / 'device.pt')!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {str(path)!r}: cannot create its directory ({exc.strerror}); give a writable path") from None
