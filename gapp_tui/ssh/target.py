"""Where to connect: ``[user@]host[:port]``, merged with ``~/.ssh/config`` and explicit options.

Explicit options beat the target text, which beats the config file
(``HostName``, ``User``, ``Port``, ``IdentityFile``, ``IdentitiesOnly``,
``UserKnownHostsFile``, ``ConnectTimeout``, ``ProxyCommand``).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paramiko

from ..errors import BadInput

DEFAULT_CONNECT_TIMEOUT = 10.0

_TARGET = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@:\s\[\]]+)(?::(?P<port>\d+))?$")


def parse_target(text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (IPv6 in brackets) as ``(user, host, port)``; BadInput otherwise."""
    raw = (text or "").strip()
    m = _TARGET.match(raw)
    if not m or raw.startswith("-"):
        raise BadInput(f"host {text!r} is not a valid SSH target; give [user@]host[:port] such as pi@raspberrypi.local")
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise BadInput(f"port {port} in {text!r} is out of range; give 1-65535")
    host = m.group("host").strip("[]")
    return m.group("user"), host, port


@dataclasses.dataclass
class Target:
    """Where and how to connect, after ``~/.ssh/config`` and the options are merged."""

    alias: str
    hostname: str
    user: str
    port: int = 22
    identities: list[str] = dataclasses.field(default_factory=list)
    identities_only: bool = False
    known_hosts: Path = dataclasses.field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    proxy_command: str | None = None

    @property
    def label(self) -> str:
        """``user@host:port`` as a person would write it."""
        return f"{self.user}@{self.hostname}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def host_key_name(self) -> str:
        """The name the host's key is filed under in known_hosts (``[host]:port`` off port 22)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def resolve_target(
    host: str,
    *,
    port: int | None = None,
    user: str | None = None,
    identity: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    ssh_config: str | os.PathLike[str] | None = None,
    connect_timeout: float | None = None,
) -> Target:
    """Merge ``host`` (``[user@]host[:port]``), ``~/.ssh/config`` and explicit options.

    Explicit options beat the target text, which beats the config file.
    ``ssh_config`` defaults to ``~/.ssh/config`` (skipped when absent).
    """
    t_user, t_host, t_port = parse_target(host)
    cfg: dict[str, Any] = {}
    cfg_path = Path(ssh_config).expanduser() if ssh_config else Path("~/.ssh/config").expanduser()
    if cfg_path.is_file():
        try:
            cfg = dict(paramiko.SSHConfig.from_path(str(cfg_path)).lookup(t_host))
        except Exception as exc:  # a malformed config is the user's to fix
            raise BadInput(f"SSH config {str(cfg_path)!r} does not parse ({exc}); fix it or give --ssh-config") from None
    elif ssh_config:
        raise BadInput(f"SSH config {str(cfg_path)!r} does not exist; give an existing file")
    hostname = cfg.get("hostname", t_host) or t_host
    the_user = user or t_user or cfg.get("user") or getpass.getuser()
    the_port = port or t_port or int(cfg.get("port", 22))
    if not 0 < the_port < 65536:
        raise BadInput(f"port {the_port} is out of range; give 1-65535")
    ids: list[str] = []
    if identity:
        given = [identity] if isinstance(identity, (str, os.PathLike)) else list(identity)
        ids = [os.path.expanduser(os.fspath(p)) for p in given]
        for p in ids:
            if not os.path.isfile(p):
                raise BadInput(f"identity file {p!r} does not exist; give a private key file such as ~/.ssh/id_ed25519")
    else:
        ids = [os.path.expanduser(p) for p in cfg.get("identityfile", []) if os.path.isfile(os.path.expanduser(p))]
    kh = known_hosts or (cfg.get("userknownhostsfile", "").split() or [None])[0] or "~/.ssh/known_hosts"
    timeout = connect_timeout if connect_timeout is not None else float(cfg.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT))
    if timeout <= 0:
        raise BadInput(f"connect timeout {timeout} must be positive (seconds)")
    return Target(
        alias=t_host,
        hostname=hostname,
        user=the_user,
        port=the_port,
        identities=ids,
        # an explicit --identity means "this key", as `ssh -i K -o IdentitiesOnly=yes` would
        identities_only=bool(identity) or str(cfg.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=Path(os.path.expanduser(os.fspath(kh))),
        connect_timeout=timeout,
        proxy_command=cfg.get("proxycommand"),
    )
