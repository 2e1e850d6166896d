"""For tests that interrupt a real child process with SIGINT, as Ctrl-C does."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` of such a child: Ctrl-C's default handling, even when the tests themselves run as a
    background job (a shell starts those with SIGINT ignored, which a child inherits and Python keeps)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
