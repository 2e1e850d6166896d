"""The event protocol of every process GAPP starts and watches: the device agent and the pipeline stages.

Standard library only: this file is copied next to the agent on a Raspberry Pi
and imported by pipeline stages alike.

* **Events** are lines on stdout, ``@gapp {"event": NAME, ...fields}`` (one JSON
  object after a fixed marker, flushed whole): :func:`emit` writes one,
  :func:`decode` reads one back and returns None for any other line, so a
  print from a user's model or a library never breaks the protocol.
* **Orphans**: a watched process reads its stdin until end of file
  (:func:`watch_stdin`). The watcher never closes that pipe, so end of file
  means the watcher is gone (the SSH channel closed, the launcher died) and
  the process leaves at once instead of computing for nobody.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

MARKER = "@gapp "
_lock = threading.Lock()


def encode(event: str, **fields: Any) -> str:
    """The line for one event (without the newline)."""
    return MARKER + json.dumps({"event": event, **fields}, default=str, separators=(",", ":"))


def decode(line: str) -> dict[str, Any] | None:
    """The event of one line, or None when the line is not an event."""
    if not line.startswith(MARKER):
        return None
    try:
        doc = json.loads(line[len(MARKER):])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "event" in doc else None


def emit(event: str, **fields: Any) -> None:
    """Write one event on stdout, whole and flushed (threads share a lock).

    Nobody listening any more (a broken pipe) ends the process with status 74.
    """
    line = encode(event, **fields) + "\n"
    with _lock:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            os._exit(74)


def say(text: str) -> None:
    """One line on stderr for a person (flushed; a closed stderr is ignored)."""
    with _lock:
        try:
            sys.stderr.write(text.rstrip("\n") + "\n")
            sys.stderr.flush()
        except (BrokenPipeError, OSError):
            pass


def watch_stdin(on_close: Callable[[], None] | None = None) -> threading.Thread:
    """Read stdin to its end in a daemon thread; then call ``on_close`` (default: exit with status 75).

    ``on_close`` must end the process (it runs while other threads may be blocked in C code).
    """

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        try:
            if on_close is not None:
                on_close()
        finally:
            os._exit(75)

    thread = threading.Thread(target=watch, name="gapp-stdin-watch", daemon=True)
    thread.start()
    return thread
