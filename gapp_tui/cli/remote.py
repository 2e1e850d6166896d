"""Commands that reach a device over SSH: `gapp link probe`, `gapp remote check`, and `gapp measure --host`.

The SSH options themselves are declared once in :mod:`gapp_tui.cli.options`.
``gapp measure`` (cli/measure.py) calls :func:`measure_on_host` instead of the
local engine when ``--host`` is given: the rows, the progress bar, the table
and the ``--json`` document are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from ..errors import BadInput
from ..store import Store
from ..units import format_bandwidth, format_time
from .common import err, handle_errors, out, print_json, print_table
from .options import SSH_TO, option_groups

if TYPE_CHECKING:
    from ..ssh import RemoteSession, SSHOptions

link_app = typer.Typer(name="link", help="Measure and show the link between this machine and a device.", no_args_is_help=True)
remote_app = typer.Typer(name="remote", help="Check a device reached over SSH.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(link_app, name="link")
    app.add_typer(remote_app, name="remote")


# ----------------------------------------------------------------------------- the session


def connect(ssh: SSHOptions) -> RemoteSession:
    """An authenticated session; says so on stderr when a new host key was recorded."""
    session = ssh.connect()
    if session.recorded_host_key:
        err.print(
            f"recorded the host key of {session.target.host_key_name} ({session.recorded_host_key})"
            f" in {session.target.known_hosts}", highlight=False,
        )
    return session


# ----------------------------------------------------------------------------- gapp measure --host


def measure_on_host(ssh: SSHOptions, spec: Any, config: Any, store: Any, granularity: Any, leaves: Any,
                    progress: Any, command: str) -> Any:
    """What ``gapp measure --host`` runs in place of the local engine; returns the MeasureResult.

    A RemoteError (connection lost, timeout, the device's disk) ends the command
    with one line and exit code 1; every row that arrived is already stored.
    """
    from ..measure.remote_engine import measure_remote  # slow (torch)

    with connect(ssh) as session:
        return measure_remote(
            session, spec, config, store=store, remote_python=ssh.remote_python, remote_tmp=ssh.remote_tmp,
            granularity=granularity, leaves=leaves, progress=progress, command=command,
            log=lambda m: err.print(m, highlight=False),
        )


# ----------------------------------------------------------------------------- gapp link probe


@link_app.command("probe")
@handle_errors
@option_groups
def link_probe(
    ssh: SSHOptions = SSH_TO.without("remote_tmp"),
    max_bytes: int = typer.Option(16 << 20, "--max-bytes", help="Largest tensor sent, in bytes."),
    repeats: int = typer.Option(3, "--repeats", help="Transfers per size and direction."),
    pings: int = typer.Option(20, "--pings", help="One-byte round trips for the latency."),
    max_seconds: float = typer.Option(1.0, "--max-seconds", help="No larger size once one transfer takes this long."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store the link is saved in (default: $GAPP_DB, else the user data directory).", show_default=False),
    save: bool = typer.Option(True, "--save/--no-save", help="Store the link for `gapp partition --link-from-probe`."),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Measure latency and bandwidth to a device by sending tensors of several sizes over SSH; store the link."""
    from .. import link_probe as lp  # slow (paramiko)

    if max_bytes < 8192:
        raise BadInput(f"--max-bytes {max_bytes} is too small; give at least 8192 so that two sizes are sent")
    if max_seconds <= 0:
        raise BadInput(f"--max-seconds {max_seconds} must be positive")
    store = Store(db) if save else None  # refuse a bad --db before any network work
    with connect(ssh) as session:
        session.check_python(ssh.remote_python, need_torch=False)
        with err.status(f"probing the link to {session.target.label}"):
            result = lp.probe(session, ssh.remote_python, max_bytes=max_bytes, pings=pings, repeats=repeats,
                              max_seconds=max_seconds, progress=lambda m: err.print(f"  {m}", highlight=False) if not err.is_terminal else None)
    doc = result.to_dict()
    if store is not None:
        with store:
            lp.save(store, result)
        doc["db"] = str(store.path)
    if json_:
        print_json(doc)
        return
    table = Table(title=f"link {result.local} <-> {result.host} (over SSH, {result.seconds:.1f} s)")
    for col in ("direction", "bandwidth", "latency (one way)", "fixed cost per transfer"):
        table.add_column(col)
    for direction in lp.DIRECTIONS:
        table.add_row(direction.replace("_", " "), format_bandwidth(result.bandwidth_Bps[direction]),
                      format_time(result.latency_s), format_time(max(result.intercept_s[direction], 0.0)))
    out.print(table)
    if store is not None:
        err.print(f"stored in {store.path}; `gapp partition ... --link-from-probe` uses the from-device link",
                  highlight=False)


@link_app.command("show")
@handle_errors
def link_show(
    host: Optional[str] = typer.Option(None, "--host", "-H", help="Only probes of this host (as stored: user@host[:port]).", show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help="The store (default: $GAPP_DB, else the user data directory).", show_default=False),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """The stored link probes, newest first."""
    with Store(db, readonly=True) as store:
        found = store.links(host)
        path = str(store.path)
    if json_:
        print_json({"db": path, "links": found})
        return
    print_table(f"{len(found)} stored link probes in {path}",
                ("id", "host", "direction", "bandwidth", "latency", "measured"),
                ([str(r["probe_id"]), r["host"], r["direction"], format_bandwidth(r["bandwidth_Bps"]),
                  format_time(r["latency_s"]), r["measured_at"]] for r in found))


# ----------------------------------------------------------------------------- gapp remote check


@remote_app.command("check")
@handle_errors
@option_groups
def remote_check(
    ssh: SSHOptions = SSH_TO,
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Log in, check the device's Python and torch and that a private temporary directory can be made; list the
    runtimes it can run exported stages and measurements under."""
    from .. import stage_runner  # slow (torch): the runner's own table of runtimes

    with connect(ssh) as session:
        info = session.check_python(ssh.remote_python, packages=stage_runner.PACKAGES)
        with session.private_tempdir(ssh.remote_tmp) as tmp:
            info["tempdir"] = tmp
        info["host"] = session.target.label
        info["host_key"] = session.transport.get_remote_server_key().get_name()
    # what `gapp measure --runtime` and `gapp pipeline run --from-export` can use there (None: not installed)
    info["runtimes"] = info.pop("packages")
    if json_:
        print_json(info)
        return
    have = [f"{r} {v}" for r, v in info["runtimes"].items() if v]
    missing = [r for r, v in info["runtimes"].items() if not v]
    out.print(
        f"{info['host']}: Python {info['python']} ({info['machine']}), torch {info['torch']},"
        f" temporary directory ok ({info['tempdir']}, removed)", highlight=False,
    )
    out.print(f"runtimes: {', '.join(have) or 'none'}"
              + (f"; not installed: {', '.join(missing)} (`{ssh.remote_python} -m pip install"
                 f" {' '.join(stage_runner.PIP[r] for r in missing)}` there)" if missing else ""), highlight=False)
