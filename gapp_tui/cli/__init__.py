"""The ``gapp`` command line: one command per step of the data flow.

Each command lives in the module of its area and only calls the plain modules
(zoo, blocks, features, measure, store, predict, partition, pipeline).
"""

from __future__ import annotations

import warnings

import typer

from .. import __version__
from .common import set_debug
from .tui import open_app

# torch.jit's deprecation notice fires on import of some torchvision models; it is noise to a user
warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")

app = typer.Typer(
    name="gapp",
    help="GAPP: predict block times on a small device and cut networks into pipelines.\n\n"
    "Run `gapp` alone to open the terminal app.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gapp {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    set_debug(debug)
    if ctx.invoked_subcommand is None:
        open_app()


# ---- command registration: one line per area (keep this block sorted by data flow)
from . import models as _models  # noqa: E402  models, blocks, features

_models.register(app)
from . import measure as _measure  # noqa: E402  measure, results

_measure.register(app)
from . import remote as _remote  # noqa: E402  link probe, remote check (measure --host lives in measure)

_remote.register(app)
from . import partition as _partition  # noqa: E402  partition

_partition.register(app)
from . import pipeline as _pipeline  # noqa: E402  pipeline run

_pipeline.register(app)
from . import export as _export  # noqa: E402  export (deployable stages, pipelining split)

_export.register(app)
from . import predict as _predict  # noqa: E402  train, predict, evaluate

_predict.register(app)
from . import calibrate as _calibrate  # noqa: E402  calibrate (probe suite -> a device's predictor)

_calibrate.register(app)
from . import serve as _serve  # noqa: E402  serve (the terminal app in a browser)

_serve.register(app)
# ---- end of command registration


def main() -> None:
    app()
