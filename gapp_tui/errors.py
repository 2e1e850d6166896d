"""The two kinds of error a user is shown as one line: bad input (exit code 2) and a failure (exit code 1)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BadInput(ValueError):
    """A value the user gave cannot be used.

    The message is one line that names the bad value and what would be accepted.
    The CLI turns it into exit code 2 without a traceback.
    """


class Failure(RuntimeError):
    """Something outside the user's input went wrong: a device, the network, a stage process.

    The message is one line saying what happened and what was kept. The CLI
    turns it into exit code 1 without a traceback (``--debug`` shows it).
    """


def closest(value: str, choices: Iterable[str], n: int = 3) -> str:
    """'did you mean a, b, c?' text for an unknown name (empty when nothing is close)."""
    matches = difflib.get_close_matches(value, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def one_line(exc: BaseException) -> str:
    """A failure as one line: bad input and failures as they are, anything else with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (BadInput, Failure)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
