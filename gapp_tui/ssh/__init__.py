"""Everything GAPP does over SSH: targets, host keys, sessions, options, and the event protocol.

Used by remote measurement (``gapp measure --host``), calibration, the link
probe and remote pipeline stages, from the CLI and the TUI alike::

    from gapp_tui.ssh import SSHOptions

    with SSHOptions("pi@raspberrypi.local").connect() as session:
        print(session.run(["uname", "-m"]).stdout)

Errors are one line: :class:`~gapp_tui.errors.BadInput` for what the user can
fix with an option (unknown host name, refused port, unknown host key,
authentication, missing remote Python or torch), :class:`RemoteError`
otherwise (timeouts, a changed host key, a dropped connection, the remote
disk). :mod:`.events` is standard library only: it also runs on the device.
"""

from .connect import connect
from .errors import Cancelled, ChangedHostKey, ConnectionLost, RemoteError, UnknownHostKey
from .hostkeys import fingerprint, known_hosts_line
from .options import SSHOptions
from .session import TEMPDIR_PREFIX, RemoteSession, Result, Stream, quote_command
from .target import Target, parse_target, resolve_target

__all__ = [
    "TEMPDIR_PREFIX",
    "Cancelled",
    "ChangedHostKey",
    "ConnectionLost",
    "RemoteError",
    "RemoteSession",
    "Result",
    "SSHOptions",
    "Stream",
    "Target",
    "UnknownHostKey",
    "connect",
    "fingerprint",
    "known_hosts_line",
    "parse_target",
    "quote_command",
    "resolve_target",
]
