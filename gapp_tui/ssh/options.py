"""How to reach a device over SSH: the one options type the CLI, the TUI, measurement and pipelines share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BadInput
from .connect import connect
from .session import RemoteSession
from .target import parse_target


@dataclasses.dataclass(frozen=True)
class SSHOptions:
    """Where and how to log in, and what to run there.

    ``host`` is ``[user@]host[:port]`` or a ``Host`` alias of ``~/.ssh/config``
    (empty when every stage of a plan names its own host). ``remote_python`` is
    the device's interpreter; ``remote_tmp`` the parent of the private temporary
    directory (default ``$TMPDIR`` or ``/tmp``); ``env`` extra environment
    variables for the processes started there. ``password_prompt`` is called
    for a password only when given (a person at a terminal); nothing is kept.
    """

    host: str = ""
    port: int | None = None
    identity: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    accept_new_host_key: bool = False
    connect_timeout: float | None = None
    remote_python: str = "python3"
    remote_tmp: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    password_prompt: Callable[[str], str] | None = dataclasses.field(default=None, compare=False, repr=False)

    def check(self) -> SSHOptions:
        """BadInput (one line) on a bad target, port or timeout; returns itself."""
        if self.host:
            parse_target(self.host)
        if self.port is not None and not 0 < self.port < 65536:
            raise BadInput(f"--port {self.port} is out of range; give 1-65535")
        if self.connect_timeout is not None and self.connect_timeout <= 0:
            raise BadInput(f"--connect-timeout {self.connect_timeout} must be positive (seconds)")
        if not self.remote_python.strip():
            raise BadInput("--remote-python is empty; give the device's Python, e.g. python3")
        return self

    def for_host(self, host: str) -> SSHOptions:
        """The same options for another host (a plan's stage)."""
        return dataclasses.replace(self, host=host)

    @property
    def label(self) -> str:
        return self.host + (f" (port {self.port})" if self.port else "")

    def connect(self, host: str | None = None, **overrides: Any) -> RemoteSession:
        """An authenticated session to ``host`` (default: :attr:`host`); one-line errors on failure."""
        self.check()
        target = host or self.host
        if not target:
            raise BadInput("no SSH host given; write user@host or user@host:port")
        kwargs: dict[str, Any] = dict(
            port=self.port, identity=self.identity, known_hosts=self.known_hosts, ssh_config=self.ssh_config,
            accept_new_host_key=self.accept_new_host_key, connect_timeout=self.connect_timeout,
            password_prompt=self.password_prompt,
        )
        kwargs.update(overrides)
        return connect(target, **kwargs)
