"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BadInput(ValueError):
    """A value the user gave cannot be used.

    The message is one line that names the bad value and what would be accepted.
    The CLI turns it into exit code 2 without a traceback.
    """


def closest(value: str, choices: Iterable[str], n: int = 3) -> str:
    """'did you mean a, b, c?' text for an unknown name (empty when nothing is close)."""
    matches = difflib.get_close_matches(value, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""
