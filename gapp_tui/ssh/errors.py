"""What can go wrong over SSH, as exceptions with one-line messages.

:class:`~gapp_tui.errors.BadInput` (exit code 2) is for what the user fixes
with an option (an unknown host key); :class:`RemoteError` (exit code 1) for
the device and the network.
"""

from __future__ import annotations

from ..errors import BadInput, Failure


class RemoteError(Failure):
    """Something went wrong on the device or the network (exit code 1, one line)."""


class UnknownHostKey(BadInput):
    """The host is not in known_hosts; the message says how to accept it."""

    def __init__(self, message: str, host_label: str, key_type: str, fingerprint: str) -> None:
        super().__init__(message)
        self.host_label = host_label
        self.key_type = key_type
        self.fingerprint = fingerprint


class ChangedHostKey(RemoteError):
    """The host's key differs from the one recorded: always refused."""


class ConnectionLost(RemoteError):
    """The connection dropped (or fell silent) while a command ran."""


class Cancelled(RemoteError):
    """The user cancelled; the remote process was stopped."""
