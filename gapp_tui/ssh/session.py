"""One authenticated SSH connection and what GAPP does over it: commands, files, streams.

* **Commands**: every remote command is a list of arguments joined with
  :func:`shlex.quote` (:func:`quote_command`); no model name, path or option
  can reach the shell unquoted.
* **Files**: :meth:`RemoteSession.private_tempdir` makes a ``mktemp -d``
  directory (mode 700) and removes it afterwards; :meth:`RemoteSession.put`
  uploads over SFTP.
* **Streaming** (:meth:`RemoteSession.stream`): a long command's stdout
  arrives line by line while it runs; cancelling (Ctrl-C, or
  :meth:`Stream.cancel` from another thread) kills the remote process group
  through a second channel and closes the channel. Timeouts bound the silence
  of a running command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .errors import Cancelled, ConnectionLost, RemoteError
from .target import Target

#: a running agent says something at least every few seconds (heartbeats); longer silence means a dead link
DEFAULT_SILENCE_TIMEOUT = 60.0
TEMPDIR_PREFIX = "gapp-agent."


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
    def check_python(self, python: str = "python3", need_torch: bool = True,
                     packages: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
        """The remote interpreter's and torch's versions; BadInput saying what is missing.

        ``packages``: ``{name: (module, distribution)}`` to look up the same way
        (found without importing, version from the distribution's metadata);
        the result's ``packages`` maps each name to its version, ``"unknown"``,
        or None when the module is not there.
        """
        # torch is located and its version read without importing it (an import takes seconds on a Pi);
        # a torch that is installed but broken is reported by the agent when it imports it
        probe = (
            "import sys, platform, json\n"
            "import importlib.util as u\n"
            "d = {'python': platform.python_version(), 'machine': platform.machine(), 'executable': sys.executable}\n"
            "def version(module, dist):\n"
            " try:\n  found = u.find_spec(module) is not None\n"
            " except Exception:\n  found = False\n"
            " if not found: return None\n"
            " try:\n  import importlib.metadata as m; return m.version(dist)\n"
            " except Exception:\n  return 'unknown'\n"
            "try:\n"
            " if u.find_spec('torch') is None: raise ImportError('No module named torch')\n"
            " d['torch'] = version('torch', 'torch') or 'unknown version'\n"
            "except Exception as e:\n d['torch_error'] = type(e).__name__ + ': ' + str(e)\n"
            f"d['packages'] = {{k: version(m, p) for k, (m, p) in {json.dumps(dict(packages or {}))}.items()}}\n"
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
        return {k: (v if k == "packages" else str(v)) for k, v in info.items()}

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
