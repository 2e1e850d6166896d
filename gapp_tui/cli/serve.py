"""`gapp serve`: the terminal app in a web browser, through textual-serve (optional extra `serve`)."""

from __future__ import annotations

import shlex
import sys

import typer

from .common import err, fail, handle_errors


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@handle_errors
def serve(
    host: str = typer.Option("localhost", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    public_url: str = typer.Option(None, "--public-url", help="URL browsers use when behind a proxy."),
) -> None:
    """Serve the terminal app to web browsers (each browser tab gets its own app process).

    Anyone who can reach the address can measure and partition as you: keep the
    default (localhost) or put it behind something that authenticates.
    """
    try:
        from textual_serve.server import Server  # an optional extra: `pip install 'gapp-tui[serve]'`
    except ImportError:
        fail("gapp serve needs textual-serve: pip install 'gapp-tui[serve]'", 2)
        return
    if not 0 < port < 65536:
        fail(f"port {port} is not valid; give 1-65535", 2)
    command = f"{shlex.quote(sys.executable)} -m gapp_tui.tui"
    err.print(f"serving the GAPP app on http://{host}:{port} (Ctrl+C stops)")
    Server(command, host=host, port=port, title="GAPP", public_url=public_url).serve()
