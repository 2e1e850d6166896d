"""Host keys, done safely: known hosts only, new ones recorded when the user says so, changed ones refused.

The host's key must be in ``known_hosts`` (the user's file, or
``--known-hosts``; ``/etc/ssh/ssh_known_hosts`` is read too). An unknown host
is refused with its SHA256 fingerprint and the exact way to accept it;
``accept_new=True`` records it (OpenSSH's ``accept-new``). A changed key is
always refused. There is no auto-accept: the policy given to paramiko raises.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .errors import ChangedHostKey, UnknownHostKey
from .target import Target


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(host_key_name: str, key: Any) -> str:
    return f"{host_key_name} {key.get_name()} {key.get_base64()}\n"


class HostKeyPolicy:
    """paramiko MissingHostKeyPolicy: refuse unknown hosts, or record them when told to (accept-new).

    paramiko calls it only for a host with no key of the offered type; a host
    that is known under another key type is treated as a changed key.
    """

    def __init__(self, target: Target, accept_new: bool) -> None:
        self.target = target
        self.accept_new = accept_new
        self.recorded: str | None = None

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        fp = fingerprint(key)
        known = client.get_host_keys().lookup(hostname) or client._system_host_keys.lookup(hostname)
        if known:
            have = ", ".join(f"{k} {fingerprint(v)}" for k, v in known.items())
            raise ChangedHostKey(
                f"host key of {hostname} changed: it offers {key.get_name()} {fp} but known_hosts has {have};"
                f" refusing to connect (if the device was reinstalled, remove the old entry with"
                f" `ssh-keygen -R {shlex.quote(hostname)} -f {shlex.quote(str(self.target.known_hosts))}`)"
            )
        if not self.accept_new:
            raise UnknownHostKey(
                f"host {hostname} is not in {self.target.known_hosts}: its {key.get_name()} key is {fp};"
                " if that is the device's fingerprint, rerun with --accept-new-host-key to record it",
                hostname,
                key.get_name(),
                fp,
            )
        append_known_host(self.target.known_hosts, known_hosts_line(hostname, key))
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.recorded = fp


def append_known_host(path: Path, line: str) -> None:
    """Append one line, as OpenSSH does (never rewrite the user's file)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        existed = path.exists()
        if existed and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = "\n" + line  # never glue our entry onto an unterminated last line
        with open(path, "a") as fh:
            fh.write(line)
        if not existed:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise BadInput(f"cannot record the host key in {str(path)!r} ({exc.strerror}); give a writable --known-hosts") from None
