"""SSH options shared by every command that reaches a device, `gapp link probe`, `gapp remote check`.

``gapp measure`` (cli/measure.py) takes the options below and, when ``--host``
is given, calls :func:`measure_on_host` instead of the local engine: the rows,
the progress bar, the table and the ``--json`` document are the same.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from ..errors import BadInput
from ..store import Store
from ..units import format_bandwidth, format_time
from .common import err, handle_errors, out, print_json

if TYPE_CHECKING:
    from ..ssh import RemoteSession, SSHOptions

link_app = typer.Typer(name="link", help="Measure and show the link between this machine and a device.", no_args_is_help=True)
remote_app = typer.Typer(name="remote", help="Check a device reached over SSH.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(link_app, name="link")
    app.add_typer(remote_app, name="remote")


# ----------------------------------------------------------------------------- options


def opt_host(required: bool = False) -> Any:
    return typer.Option(
        ... if required else None, "--host", "-H",
        help="Measure on this device over SSH: [user@]host[:port] (or a Host alias of ~/.ssh/config).",
        show_default=False,
    )


def opt_port() -> Any:
    return typer.Option(None, "--port", "-p", help="SSH port (default: from the target, ~/.ssh/config, else 22).", show_default=False)


def opt_identity() -> Any:
    return typer.Option(None, "--identity", "-i", help="Private key file to log in with (only this key is tried).", show_default=False)


def opt_remote_python() -> Any:
    return typer.Option("python3", "--remote-python", help="Python on the device (it needs torch; nothing else).")


def opt_remote_tmp() -> Any:
    return typer.Option(None, "--remote-tmp", help="Directory on the device for the private temporary directory (default: $TMPDIR or /tmp).", show_default=False)


def opt_known_hosts() -> Any:
    return typer.Option(None, "--known-hosts", help="known_hosts file (default: ~/.ssh/known_hosts or UserKnownHostsFile).", show_default=False)


def opt_ssh_config() -> Any:
    return typer.Option(None, "--ssh-config", help="OpenSSH client config (default: ~/.ssh/config).", show_default=False)


def opt_accept_new_host_key() -> Any:
    return typer.Option(
        False, "--accept-new-host-key",
        help="Record the key of a host seen for the first time (like ssh's accept-new); a changed key is still refused.",
    )


def opt_connect_timeout() -> Any:
    return typer.Option(10.0, "--connect-timeout", help="Seconds to wait for the TCP connection, the SSH handshake and authentication.")


def ssh_options(host: str, port: int | None = None, identity: Path | None = None, remote_python: str = "python3",
                remote_tmp: str | None = None, known_hosts: Path | None = None, ssh_config: Path | None = None,
                accept_new_host_key: bool = False, connect_timeout: float | None = 10.0) -> SSHOptions:
    """The SSH options of one command line (checked: BadInput on a bad port, timeout or target)."""
    from ..ssh import SSHOptions  # slow (paramiko): only commands that reach a device pay for it

    return SSHOptions(
        host=host or "", port=port, identity=str(identity) if identity else None,
        known_hosts=str(known_hosts) if known_hosts else None, ssh_config=str(ssh_config) if ssh_config else None,
        accept_new_host_key=accept_new_host_key, connect_timeout=connect_timeout, remote_python=remote_python,
        remote_tmp=remote_tmp, password_prompt=_password_prompt(),
    ).check()


def connect(ssh: SSHOptions) -> RemoteSession:
    """An authenticated session; says so on stderr when a new host key was recorded."""
    session = ssh.connect()
    if session.recorded_host_key:
        err.print(
            f"recorded the host key of {session.target.host_key_name} ({session.recorded_host_key})"
            f" in {session.target.known_hosts}", highlight=False,
        )
    return session


def _password_prompt() -> Callable[[str], str] | None:
    """A password is asked only of a person at a terminal, and never kept."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    return getpass.getpass


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
def link_probe(
    host: str = opt_host(required=True),
    port: Optional[int] = opt_port(),
    identity: Optional[Path] = opt_identity(),
    remote_python: str = opt_remote_python(),
    known_hosts: Optional[Path] = opt_known_hosts(),
    ssh_config: Optional[Path] = opt_ssh_config(),
    accept_new_host_key: bool = opt_accept_new_host_key(),
    connect_timeout: float = opt_connect_timeout(),
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
    ssh = ssh_options(host, port, identity, remote_python, None, known_hosts, ssh_config, accept_new_host_key,
                      connect_timeout)
    with connect(ssh) as session:
        session.check_python(remote_python, need_torch=False)
        with err.status(f"probing the link to {session.target.label}"):
            result = lp.probe(session, remote_python, max_bytes=max_bytes, pings=pings, repeats=repeats,
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
    table = Table(title=f"{len(found)} stored link probes in {path}")
    for col in ("id", "host", "direction", "bandwidth", "latency", "measured"):
        table.add_column(col)
    for r in found:
        table.add_row(str(r["probe_id"]), r["host"], r["direction"], format_bandwidth(r["bandwidth_Bps"]),
                      format_time(r["latency_s"]), r["measured_at"])
    out.print(table)


# ----------------------------------------------------------------------------- gapp remote check


@remote_app.command("check")
@handle_errors
def remote_check(
    host: str = opt_host(required=True),
    port: Optional[int] = opt_port(),
    identity: Optional[Path] = opt_identity(),
    remote_python: str = opt_remote_python(),
    remote_tmp: Optional[str] = opt_remote_tmp(),
    known_hosts: Optional[Path] = opt_known_hosts(),
    ssh_config: Optional[Path] = opt_ssh_config(),
    accept_new_host_key: bool = opt_accept_new_host_key(),
    connect_timeout: float = opt_connect_timeout(),
    json_: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Log in, check the device's Python and torch and that a private temporary directory can be made; list the
    runtimes it can run exported stages and measurements under."""
    from .. import stage_runner  # slow (torch): the runner's own table of runtimes

    ssh = ssh_options(host, port, identity, remote_python, remote_tmp, known_hosts, ssh_config, accept_new_host_key,
                      connect_timeout)
    with connect(ssh) as session:
        info = session.check_python(remote_python, packages=stage_runner.PACKAGES)
        with session.private_tempdir(remote_tmp) as tmp:
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
              + (f"; not installed: {', '.join(missing)} (`{remote_python} -m pip install"
                 f" {' '.join(stage_runner.PIP[r] for r in missing)}` there)" if missing else ""), highlight=False)
