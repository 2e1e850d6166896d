"""The SSH runner: one authenticated connection to a device, and what GAPP does over it.

Everything GAPP does on a Raspberry Pi goes through :class:`RemoteSession`:

* **Connecting** (:func:`connect`): the target ``[user@]host[:port]`` is
  resolved through ``~/.ssh/config`` (``HostName``, ``User``, ``Port``,
  ``IdentityFile``, ``IdentitiesOnly``, ``UserKnownHostsFile``,
  ``ConnectTimeout``, ``ProxyCommand``), then explicit options win. Keys come
  from ``--identity``, the SSH agent and the usual ``~/.ssh/id_*`` files. A
  password is asked only through the ``password_prompt`` callback (the CLI
  passes one only when a person is at the terminal) and never stored.
  Timeouts bound the TCP connect, the banner, authentication, and the silence
  of a running command; keepalives are sent every ``keepalive`` seconds.
* **Host keys, done safely**: the host's key must be in ``known_hosts`` (the
  user's file, or ``--known-hosts``; ``/etc/ssh/ssh_known_hosts`` is read
  too). An unknown host is refused with its SHA256 fingerprint and the exact
  way to accept it; ``accept_new_host_key=True`` records it (OpenSSH's
  ``accept-new``). A changed key is always refused. There is no auto-accept:
  the policy given to paramiko raises.
* **Commands**: every remote command is a list of arguments joined with
  :func:`shlex.quote` (:func:`quote_command`); no model name, path or option
  can reach the shell unquoted.
* **Files**: :meth:`RemoteSession.private_tempdir` makes a ``mktemp -d``
  directory (mode 700) and removes it afterwards; :meth:`RemoteSession.put`
  uploads over SFTP.
* **Streaming** (:meth:`RemoteSession.stream`): a long command's stdout
  arrives line by line while it runs; cancelling (Ctrl-C, or
  :meth:`Stream.cancel` from another thread) kills the remote process group
  through a second channel and closes the channel.

Errors are one line: :class:`~gapp_tui.errors.BadInput` for what the user can
fix with an option (unknown host name, refused port, unknown host key,
authentication, missing remote Python or torch), :class:`RemoteError`
otherwise (timeouts, a changed host key, a dropped connection, the remote
disk).
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import getpass
import hashlib
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import BadInput

DEFAULT_CONNECT_TIMEOUT = 10.0
#: a running agent says something at least every few seconds (heartbeats); longer silence means a dead link
DEFAULT_SILENCE_TIMEOUT = 60.0
DEFAULT_KEEPALIVE = 10
TEMPDIR_PREFIX = "gapp-agent."


class RemoteError(RuntimeError):
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


# ---------------------------------------------------------------------------- quoting


def quote_command(argv: Sequence[str | os.PathLike[str] | int]) -> str:
    """One shell command line from arguments, each quoted with :func:`shlex.quote`.

    An argument starting with ``~/`` means the remote user's home: it becomes
    ``"$HOME"/'rest'`` (the rest still quoted), since a quoted ``~`` is not expanded.
    """
    if not argv:
        raise ValueError("empty command")
    return " ".join(_quote_arg(a) for a in argv)


def _quote_arg(arg: str | os.PathLike[str] | int) -> str:
    text = str(arg) if isinstance(arg, int) else os.fspath(arg)
    if text.startswith("~/") and len(text) > 2:
        return '"$HOME"/' + shlex.quote(text[2:])
    return shlex.quote(text)


# ---------------------------------------------------------------------------- target


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
    import paramiko

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


# ---------------------------------------------------------------------------- host keys


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(host_key_name: str, key: Any) -> str:
    return f"{host_key_name} {key.get_name()} {key.get_base64()}\n"


class _HostKeyPolicy:
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
        _append_known_host(self.target.known_hosts, known_hosts_line(hostname, key))
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.recorded = fp


def _append_known_host(path: Path, line: str) -> None:
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


# ---------------------------------------------------------------------------- connecting


def _open_socket(target: Target) -> Any:
    """A connected socket (or ProxyCommand), with one-line errors for every way it fails."""
    import paramiko

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
    import logging

    import paramiko

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
    policy = _HostKeyPolicy(target, accept_new)
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


# ---------------------------------------------------------------------------- session


@dataclasses.dataclass
class Result:
    """What a finished remote command returned."""

    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    def last_line(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1].strip() if text else f"exit status {self.status}"


class RemoteSession:
    """One authenticated SSH connection (a context manager that closes it)."""

    def __init__(self, client: Any, target: Target) -> None:
        self.client = client
        self.target = target
        self.recorded_host_key: str | None = None
        self._sftp: Any = None

    # ------------------------------------------------------------------ basics
    @property
    def transport(self) -> Any:
        return self.client.get_transport()

    @property
    def alive(self) -> bool:
        t = self.transport
        return t is not None and t.is_active()

    def close(self) -> None:
        try:
            if self._sftp is not None:
                self._sftp.close()
        except Exception:
            pass
        self._sftp = None
        self.client.close()

    def __enter__(self) -> "RemoteSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_channel(self) -> Any:
        try:
            return self.transport.open_session(timeout=self.target.connect_timeout)
        except Exception as exc:
            raise ConnectionLost(f"lost the connection to {self.target.label} ({exc or type(exc).__name__})") from None

    # ------------------------------------------------------------------ short commands
    def run(self, argv: Sequence[str | os.PathLike[str] | int], timeout: float = 60.0, stdin: bytes | None = None) -> Result:
        """Run a short command (arguments quoted) and wait for it; ``timeout`` bounds the whole call."""
        return self.run_shell(quote_command(argv), timeout=timeout, stdin=stdin)

    def run_shell(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> Result:
        """Run a command line built by GAPP itself (callers quote every argument)."""
        chan = self._open_channel()
        out, errb = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        try:
            chan.settimeout(0.2)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            while True:
                got = False
                while chan.recv_ready():
                    out += chan.recv(65536)
                    got = True
                while chan.recv_stderr_ready():
                    errb += chan.recv_stderr(65536)
                    got = True
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if chan.closed and not chan.recv_ready():
                    break
                if time.monotonic() > deadline:
                    raise RemoteError(f"command on {self.target.label} did not finish within {timeout:g} s: {command[:80]}")
                if not self.alive:
                    raise ConnectionLost(f"lost the connection to {self.target.label}")
                if not got:
                    time.sleep(0.01)
            status = chan.recv_exit_status()
        finally:
            chan.close()
        return Result(status, out.decode(errors="replace"), errb.decode(errors="replace"))

    # ------------------------------------------------------------------ files
    @property
    def sftp(self) -> Any:
        if self._sftp is None:
            try:
                self._sftp = self.client.open_sftp()
                self._sftp.get_channel().settimeout(max(30.0, self.target.connect_timeout))
            except Exception as exc:
                raise RemoteError(f"cannot open SFTP on {self.target.label} ({exc}); is the sftp subsystem enabled in sshd?") from None
        return self._sftp

    def put(self, local: str | os.PathLike[str], remote: str) -> None:
        """Upload one file; a full disk or a permission problem is one line naming the remote path."""
        try:
            self.sftp.put(os.fspath(local), remote)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise RemoteError(
                f"upload of {Path(local).name} to {self.target.label}:{remote} failed: {reason.strip().rstrip('!')}"
                f"{self._space_hint(os.path.dirname(remote), os.path.getsize(local))}"
            ) from None

    def _space_hint(self, directory: str, need: int) -> str:
        """'; the device's disk is full ...' when ``df`` says so (empty when it cannot tell)."""
        try:
            res = self.run(["df", "-Pk", directory], timeout=15)
            free_kb = int(res.stdout.strip().splitlines()[-1].split()[3])
        except (RemoteError, ValueError, IndexError):
            return " (is the device's disk full?)"
        if free_kb * 1024 < need:
            return (f"; the device's disk is full ({free_kb} KiB free under {directory}, {need // 1024} KiB needed):"
                    " free space there or give another --remote-tmp")
        return ""

    def put_bytes(self, data: bytes, remote: str) -> None:
        try:
            with self.sftp.open(remote, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise RemoteError(f"writing {self.target.label}:{remote} failed: {reason} (remote disk full?)") from None

    @contextmanager
    def private_tempdir(self, parent: str | None = None) -> Iterator[str]:
        """A fresh ``mktemp -d`` directory (mode 700) on the device, removed when the block ends."""
        if parent:
            argv = ["mktemp", "-d", f"{parent.rstrip('/')}/{TEMPDIR_PREFIX}XXXXXXXX"]
        else:
            argv = ["mktemp", "-d", "-t", f"{TEMPDIR_PREFIX}XXXXXXXX"]  # $TMPDIR or /tmp
        res = self.run(argv, timeout=30)
        path = res.stdout.strip()
        if not res.ok or not path.startswith("/"):
            where = parent or "$TMPDIR (or /tmp)"
            raise RemoteError(
                f"cannot create a private temporary directory on {self.target.label} under {where}:"
                f" {res.last_line()}; give a writable directory with --remote-tmp"
            )
        try:
            self.run(["chmod", "700", path], timeout=30)
            yield path
        finally:
            self.remove_tempdir(path)

    def remove_tempdir(self, path: str) -> bool:
        """``rm -rf`` a directory this module created (refuses anything else)."""
        if TEMPDIR_PREFIX not in os.path.basename(path.rstrip("/")) or not path.startswith("/"):
            raise ValueError(f"refusing to remove {path!r}: not a GAPP temporary directory")
        if not self.alive:
            return False
        try:
            return self.run(["rm", "-rf", "--", path], timeout=30).ok
        except RemoteError:
            return False

    # ------------------------------------------------------------------ checks
    def check_python(self, python: str = "python3", need_torch: bool = True) -> dict[str, str]:
        """The remote interpreter's and torch's versions; BadInput saying what is missing."""
        # torch is located and its version read without importing it (an import takes seconds on a Pi);
        # a torch that is installed but broken is reported by the agent when it imports it
        probe = (
            "import sys, platform, json\n"
            "d = {'python': platform.python_version(), 'machine': platform.machine(), 'executable': sys.executable}\n"
            "try:\n"
            " import importlib.util as u\n"
            " if u.find_spec('torch') is None: raise ImportError('No module named torch')\n"
            " try:\n  import importlib.metadata as m; d['torch'] = m.version('torch')\n"
            " except Exception:\n  d['torch'] = 'unknown version'\n"
            "except Exception as e:\n d['torch_error'] = type(e).__name__ + ': ' + str(e)\n"
            "print(json.dumps(d))\n"
        )
        res = self.run([python, "-c", probe], timeout=120)
        if not res.ok:
            line = res.last_line()
            if res.status == 127 or "not found" in line or "No such file" in line:
                raise BadInput(
                    f"remote Python {python!r} was not found on {self.target.label}; install Python 3 there"
                    " or give its path with --remote-python"
                )
            raise BadInput(f"remote Python {python!r} on {self.target.label} failed: {line}; give a working --remote-python")
        import json

        try:
            info = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BadInput(f"{python!r} on {self.target.label} is not a Python 3 interpreter; give one with --remote-python") from None
        major = int(str(info.get("python", "0")).split(".")[0])
        if major < 3 or tuple(int(x) for x in info["python"].split(".")[:2]) < (3, 8):
            raise BadInput(f"remote Python {python!r} is {info['python']}; GAPP's agent needs Python 3.8 or newer")
        if need_torch and "torch" not in info:
            raise BadInput(
                f"torch is not installed for {python!r} ({info.get('python')}, {info.get('machine')}) on"
                f" {self.target.label} ({info.get('torch_error', 'import failed')}); install it there with"
                f" `{python} -m pip install torch` or point --remote-python at an environment that has it"
            )
        return {k: str(v) for k, v in info.items()}

    # ------------------------------------------------------------------ streaming
    def stream(
        self,
        argv: Sequence[str | os.PathLike[str] | int],
        silence_timeout: float = DEFAULT_SILENCE_TIMEOUT,
        cancel: threading.Event | None = None,
    ) -> "Stream":
        """Start a long command (arguments quoted); iterate the returned :class:`Stream` for its lines.

        ``cancel`` (set from any thread) stops it like :meth:`Stream.cancel`.
        """
        chan = self._open_channel()
        chan.settimeout(0.2)
        chan.exec_command(quote_command(argv))
        return Stream(self, chan, silence_timeout, cancel)

    def kill(self, pid: int, group: bool = True, sig: str = "TERM") -> bool:
        """Send a signal to a remote process (its whole process group by default) over a fresh channel."""
        if not self.alive:
            return False
        target = f"-{int(pid)}" if group else str(int(pid))
        try:
            return self.run(["kill", f"-{sig}", "--", target], timeout=10).ok
        except RemoteError:
            return False


class Stream:
    """The lines of a running remote command, as they arrive.

    Iterating yields ``(kind, text)`` pairs: ``("out", line)`` for each stdout
    line and ``("err", line)`` for stderr. :attr:`pid` may be set by the caller
    (the agent announces it) so that :meth:`cancel` and an interrupted
    iteration kill the remote process group. Raises :class:`ConnectionLost`
    when the connection drops or stays silent for ``silence_timeout`` seconds,
    and :class:`Cancelled` after :meth:`cancel`.
    """

    def __init__(self, session: RemoteSession, chan: Any, silence_timeout: float,
                 cancel: threading.Event | None = None) -> None:
        self.session = session
        self.chan = chan
        self.silence_timeout = silence_timeout
        self.pid: int | None = None
        self.exit_status: int | None = None
        self._cancel = cancel if cancel is not None else threading.Event()
        self._killed = False

    def cancel(self) -> None:
        """Ask the iteration to stop (thread-safe); the remote process is killed."""
        self._cancel.set()

    def send(self, data: bytes) -> None:
        self.chan.sendall(data)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        buffers = {"out": bytearray(), "err": bytearray()}
        last = time.monotonic()
        try:
            while True:
                if self._cancel.is_set():
                    self.stop()
                    raise Cancelled(f"cancelled; the remote process on {self.session.target.label} was stopped")
                got = False
                if self.chan.recv_ready():
                    data = self.chan.recv(65536)
                    buffers["out"] += data
                    got = bool(data)
                if self.chan.recv_stderr_ready():
                    data = self.chan.recv_stderr(65536)
                    buffers["err"] += data
                    got = got or bool(data)
                for kind, buf in buffers.items():
                    while b"\n" in buf:
                        line, _, rest = bytes(buf).partition(b"\n")
                        buf[:] = rest
                        yield kind, line.decode(errors="replace").rstrip("\r")
                if got:
                    last = time.monotonic()
                    continue
                if self.chan.exit_status_ready() and not self.chan.recv_ready() and not self.chan.recv_stderr_ready():
                    for kind, buf in buffers.items():
                        if buf:
                            yield kind, bytes(buf).decode(errors="replace")
                            buf.clear()
                    status = self.chan.recv_exit_status()
                    if status == -1 and self._connection_dropped():
                        raise ConnectionLost(f"lost the connection to {self.session.target.label} while the agent ran")
                    self.exit_status = status  # -1 with a live connection: killed by a signal on the device
                    return
                if not self.session.alive or self.chan.closed:
                    raise ConnectionLost(f"lost the connection to {self.session.target.label} while the agent ran")
                if time.monotonic() - last > self.silence_timeout:
                    self.stop()
                    raise ConnectionLost(
                        f"{self.session.target.label} sent nothing for {self.silence_timeout:g} s; gave up on the agent"
                    )
                time.sleep(0.02)
        except GeneratorExit:
            self.stop()
            raise
        except KeyboardInterrupt:
            self.stop()
            raise
        finally:
            if self.exit_status is None and not self._killed:
                self.stop()

    def _connection_dropped(self, grace: float = 1.0) -> bool:
        """True when the transport died (paramiko closes the channels first, then marks it inactive)."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.session.alive:
                return True
            time.sleep(0.02)
        return not self.session.alive

    def stop(self) -> None:
        """Kill the remote process group (when its pid is known) and close the channel.

        Closing the channel also closes the agent's stdin, which the agent
        watches: it exits on its own even when the kill cannot be delivered.
        """
        if self._killed:
            return
        self._killed = True
        if self.pid is not None and self.exit_status is None:
            self.session.kill(self.pid, group=True)
        try:
            self.chan.close()
        except Exception:
            pass
