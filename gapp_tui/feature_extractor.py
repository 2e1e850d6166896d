"""``python3 -m gapp_tui.feature_extractor``: the seed's entry point for ``gapp features``.

Accepts the same options as ``gapp features`` plus the seed's spelling
``--model_family NAME`` for the model argument.
"""

from __future__ import annotations

import sys


def translate(argv: list[str]) -> list[str]:
    """Turn the seed's ``--model_family X`` / ``--model_family=X`` into the positional model."""
    args: list[str] = []
    model: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--model_family", "--model-family") and i + 1 < len(argv):
            model.append(argv[i + 1])
            i += 2
            continue
        if a.startswith(("--model_family=", "--model-family=")):
            model.append(a.split("=", 1)[1])
        else:
            args.append(a)
        i += 1
    return ["features", *model, *args]


def main(argv: list[str] | None = None) -> None:
    from .cli import app  # the whole CLI: only when run as a command

    app(translate(sys.argv[1:] if argv is None else argv), prog_name="python3 -m gapp_tui.feature_extractor")


if __name__ == "__main__":
    main()
