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


# ----------------------------------------------------------------------------- model options
# Shared by every command that takes a model; the underscore spellings keep the
# seed's command lines working (--batch_size, --num_classes, ...).

def opt_batch_size() -> Any:
    return typer.Option(1, "--batch-size", "--batch_size", "-b", help="Batch size (positive).")


def opt_num_classes() -> Any:
    return typer.Option(1000, "--num-classes", "--num_classes", help="Number of output classes.")


def opt_input_size() -> Any:
    return typer.Option(
        None, "--input-size", "--input_size", help="Square image size (default: 299 for inception_v3, else 224)."
    )


def opt_input_shape() -> Any:
    return typer.Option(
        None, "--input-shape", "--input_shape",
        help="Input shape, e.g. 1,3,32,32; one item's shape (3,32,32) takes the batch from --batch-size.",
    )


def opt_input_dtype() -> Any:
    return typer.Option(
        None, "--input-dtype", help="Input dtype: float32 (default), int64 for token ids, float16, ...",
    )


def opt_hf_config() -> Any:
    return typer.Option(
        None, "--hf-config",
        help="Hugging Face configuration for transformers:AutoModel and the like: a shipped name"
        " (bert-base-uncased, ...), type:field=value,... or a config.json. Random weights, no download.",
    )


def opt_capture() -> Any:
    return typer.Option(
        "auto", "--capture",
        help="Front end: auto (torch.fx with automatic leaves, torch.export when fx cannot trace), fx or export.",
    )


def opt_granularity() -> Any:
    return typer.Option(
        "natural",
        "--granularity",
        "-g",
        help="natural (network's own blocks), stage, op (one op per block), or N blocks of balanced FLOPs.",
    )


def opt_leaf() -> Any:
    return typer.Option(
        None, "--leaf", help="Module class name or path torch.fx must not trace into (repeatable)."
    )


def make_spec(
    model: str,
    batch_size: int = 1,
    num_classes: int = 1000,
    input_size: int | None = None,
    input_shape: str | None = None,
    input_dtype: str | None = None,
    hf_config: str | None = None,
    capture: str = "auto",
):
    """A ModelSpec from CLI options (BadInput on anything invalid)."""
    from ..zoo import ModelSpec, parse_shape  # slow (torch): only commands that take a model pay for it

    shape = parse_shape(input_shape) if input_shape else None
    return ModelSpec(model, batch_size=batch_size, num_classes=num_classes, input_size=input_size, input_shape=shape,
                     input_dtype=input_dtype, hf_config=hf_config, capture=capture)


def capture_line(chain: Any) -> str:
    """What a person reads about how the chain was captured (stderr)."""
    report = chain.capture
    if report is None:
        return ""
    text = f"captured with {report.summary()}"
    if report.fallback:
        text += f"\n  torch.fx: {report.fallback}"
    return text
