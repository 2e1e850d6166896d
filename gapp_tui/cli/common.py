"""What every CLI command shares: error handling, JSON output, progress on stderr.

Contract (DESIGN.md): ``--json`` prints one JSON document on stdout and nothing
else; progress and logs go to stderr. Exit codes: 0 success, 2 bad input (one
line naming the bad value and what would be accepted), 1 anything else.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import BadInput, Failure, one_line
from ..units import format_bytes, format_count  # noqa: F401  (re-exported for the commands)

#: everything a person reads goes to stderr, so stdout stays clean for --json
err = Console(stderr=True)
#: tables meant for stdout
out = Console()

F = TypeVar("F", bound=Callable[..., Any])

_debug = {"on": False}


def set_debug(on: bool) -> None:
    _debug["on"] = on


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error on stderr and exit."""
    # the message is plain text: brackets in it (pip install 'gapp-tui[executorch]') are not markup
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """BadInput -> exit 2, a Failure (device, network, stage) -> exit 1 as it is, anything else -> exit 1 with
    its type; one line each (the traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BadInput as exc:
            if _debug["on"]:
                raise
            fail(str(exc), 2)
        except Failure as exc:
            if _debug["on"]:
                raise
            fail(str(exc), 1)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as exc:  # the last line of defence: one line, no traceback
            if _debug["on"]:
                raise
            fail(f"{one_line(exc)} (run with --debug for the traceback)", 1)

    return wrapper  # type: ignore[return-value]


def require_positive(option: str, value: int, hint: str = "") -> None:
    """BadInput naming ``option`` unless ``value`` is 1 or more."""
    if value < 1:
        raise BadInput(f"{option} {value} is not valid; give a positive number" + (f" ({hint})" if hint else ""))


def print_table(title: str, columns: Any, rows: Any) -> None:
    """A table on stdout: ``columns`` names (or (name, justify) pairs), ``rows`` lists of cells."""
    table = Table(title=title)
    for col in columns:
        name, justify = col if isinstance(col, tuple) else (col, "left")
        table.add_column(name, justify=justify)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def print_json(doc: Any) -> None:
    """The one JSON document a --json command prints on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return str(obj)


def capture_line(chain: Any) -> str:
    """What a person reads about how the chain was captured (stderr)."""
    report = chain.capture
    if report is None:
        return ""
    text = f"captured with {report.summary()}"
    if report.fallback:
        text += f"\n  torch.fx: {report.fallback}"
    return text
