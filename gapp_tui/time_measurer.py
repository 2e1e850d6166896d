"""The seed's entry point: ``python3 -m gapp_tui.time_measurer --output_dir ./results --model_family inception_v3 ...``.

The same command as ``gapp measure`` (every flag of it, underscore and dash
spellings), so the seed's command lines work as written, e.g.::

    python3 -m gapp_tui.time_measurer --output_dir ./results --model_family inception_v3 \\
        --batch_size 1 --num_classes 10 --compare_sum_vs_full
    python3 -m gapp_tui.time_measurer --output_dir ./results --model_family inception_v3 \\
        --batch_size 1 --num_classes 10 --compare_sum_vs_full --device cuda --adjust_for_overhead
"""

from __future__ import annotations

import typer

from .cli.common import set_debug
from .cli.measure import measure

app = typer.Typer(
    name="time_measurer",
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(help=measure.__doc__)(measure)


def main() -> None:
    set_debug(False)
    app(prog_name="python3 -m gapp_tui.time_measurer")


if __name__ == "__main__":
    main()
