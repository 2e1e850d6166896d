"""Connecting: one authenticated paramiko client to a resolved target, with one-line errors.

Keys come from ``--identity``, the SSH agent and the usual ``~/.ssh/id_*``
files. A password is asked only through the ``password_prompt`` callback (the
CLI passes one only when a person is at the terminal) and never stored.
Timeouts bound the TCP connect, the banner and authentication; keepalives are
sent every ``keepalive`` seconds.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import socket
import time
from collections.abc import Callable
from typing import Any

import paramiko

from ..errors import BadInput
from .errors import ChangedHostKey, RemoteError, UnknownHostKey
from .hostkeys import HostKeyPolicy, fingerprint
from .session import RemoteSession
from .target import Target, resolve_target

DEFAULT_KEEPALIVE = 10


def _open_socket(target: Target) -> Any:
    """A connected socket (or ProxyCommand), with one-line errors for every way it fails."""
    where = f"{target.hostname}:{target.port}"
    if target.proxy_command:
        cmd = target.proxy_command.replace("%h", target.hostname).replace("%p", str(target.port)).replace("%r", target.user)
        try:
            return paramiko.ProxyCommand(cmd)
        except Exception as exc:
            raise BadInput(f"ProxyCommand {cmd!r} for {target.alias} failed to start ({exc}); fix ~/.ssh/config") from None
    try:
        infos = socket.getaddrinfo(target.hostname, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BadInput(
            f"host name {target.hostname!r} does not resolve ({exc.strerror}); check the spelling, or give an IP address"
        ) from None
    last: OSError | None = None
    deadline = time.monotonic() + target.connect_timeout
    for family, kind, proto, _, addr in infos:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(left)
        try:
            sock.connect(addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if isinstance(last, socket.timeout) or last is None:
        raise RemoteError(
            f"timed out after {target.connect_timeout:g} s connecting to {where}; is the device on and reachable?"
            " (--connect-timeout to wait longer)"
        )
    if isinstance(last, ConnectionRefusedError):
        raise BadInput(f"connection to {where} refused: no SSH server listens on port {target.port}; check --port and that sshd runs")
    if last.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        raise RemoteError(f"{where} is unreachable ({last.strerror}); check the network and the address")
    raise RemoteError(f"cannot connect to {where}: {last.strerror or last}")


def connect(
    host: str,
    *,
    port: int | None = None,
    user: str | None = None,
    identity: str | os.PathLike[str] | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    ssh_config: str | os.PathLike[str] | None = None,
    accept_new_host_key: bool = False,
    password_prompt: Callable[[str], str] | None = None,
    connect_timeout: float | None = None,
    keepalive: int = DEFAULT_KEEPALIVE,
    allow_agent: bool = True,
) -> "RemoteSession":
    """An authenticated :class:`RemoteSession` to ``host`` (see the module docstring)."""
    target = resolve_target(
        host, port=port, user=user, identity=identity, known_hosts=known_hosts, ssh_config=ssh_config,
        connect_timeout=connect_timeout,
    )
    client, policy = _connect_client(target, accept_new_host_key, allow_agent, password=None)
    if client is None:
        if password_prompt is None:
            raise policy  # type: ignore[misc]  # the AuthenticationFailed built below
        password = password_prompt(f"{target.label}'s password: ")
        client, policy = _connect_client(target, accept_new_host_key, allow_agent, password=password)
        del password
        if client is None:
            raise policy  # type: ignore[misc]
    transport = client.get_transport()
    if keepalive:
        transport.set_keepalive(int(keepalive))
    session = RemoteSession(client, target)
    session.recorded_host_key = policy.recorded
    return session


def _auth_hint(target: Target) -> str:
    tried = [f"key {p}" for p in target.identities]
    if not target.identities_only:
        tried.append("the SSH agent and ~/.ssh/id_*")
    return ", ".join(tried) or "no key"


def _connect_client(target: Target, accept_new: bool, allow_agent: bool, password: str | None) -> tuple[Any, Any]:
    """(client, policy) on success; (None, exception) when authentication failed."""
    # paramiko's transport thread logs its own copy of every failure; we report each once, as one line
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    sock = _open_socket(target)
    client = paramiko.SSHClient()
    # only the files named here count: the system-wide file (read-only) and the chosen known_hosts
    for system_file in ("/etc/ssh/ssh_known_hosts",):
        if os.path.isfile(system_file):
            try:
                client._system_host_keys.load(system_file)
            except Exception:
                pass
    if target.known_hosts.is_file():
        try:
            client.load_host_keys(str(target.known_hosts))
        except Exception as exc:
            sock.close()
            raise BadInput(f"known_hosts file {str(target.known_hosts)!r} does not parse ({exc}); fix it or give --known-hosts") from None
    policy = HostKeyPolicy(target, accept_new)
    client.set_missing_host_key_policy(policy)
    use_agent = allow_agent and not target.identities_only and password is None
    try:
        client.connect(
            target.hostname,
            port=target.port,
            username=target.user,
            password=password,
            key_filename=target.identities or None,
            allow_agent=use_agent,
            look_for_keys=not target.identities_only and password is None,
            timeout=target.connect_timeout,
            banner_timeout=target.connect_timeout,
            auth_timeout=target.connect_timeout,
            sock=sock,
        )
    except (UnknownHostKey, ChangedHostKey, BadInput):
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise ChangedHostKey(
            f"host key of {target.host_key_name} CHANGED: it offers {exc.key.get_name()} {fingerprint(exc.key)} but"
            f" {target.known_hosts} has {fingerprint(exc.expected_key)}; refusing to connect (possible"
            f" man-in-the-middle; if the device was reinstalled, remove the old entry with"
            f" `ssh-keygen -R {shlex.quote(target.host_key_name)} -f {shlex.quote(str(target.known_hosts))}`)"
        ) from None
    except paramiko.PasswordRequiredException:
        client.close()
        return None, BadInput(
            f"the private key for {target.label} is encrypted; load it into ssh-agent (ssh-add) and retry"
        )
    except paramiko.AuthenticationException:
        client.close()
        how = "password" if password is not None else _auth_hint(target)
        return None, BadInput(
            f"authentication as {target.user} on {target.hostname}:{target.port} failed (tried {how});"
            " give the right --identity (or user@), or add your public key to the device's ~/.ssh/authorized_keys"
        )
    except (socket.timeout, TimeoutError):
        client.close()
        raise RemoteError(
            f"{target.hostname}:{target.port} accepted the connection but did not complete the SSH handshake"
            f" within {target.connect_timeout:g} s"
        ) from None
    except paramiko.SSHException as exc:
        client.close()
        text = str(exc)
        if "No authentication methods" in text:
            return None, BadInput(
                f"no key to log in to {target.hostname}:{target.port} as {target.user} (no --identity, no ssh-agent,"
                " no ~/.ssh/id_*); give --identity or load a key with ssh-add"
            )
        if "banner" in text or "No existing session" in text or "Negotiation" in text:
            raise RemoteError(
                f"{target.hostname}:{target.port} accepted the connection but did not complete the SSH handshake"
                f" within {target.connect_timeout:g} s (is it an SSH server?)"
            ) from None
        raise RemoteError(f"SSH to {target.hostname}:{target.port} failed: {text}") from None
    except OSError as exc:
        client.close()
        raise RemoteError(f"SSH to {target.hostname}:{target.port} failed: {exc.strerror or exc}") from None
    return client, policy
