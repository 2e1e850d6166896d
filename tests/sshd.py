"""A real OpenSSH server on 127.0.0.1 for the remote-measurement tests.

The server runs in the foreground (``sshd -D -e``) with its own config file,
host key, client key and ``authorized_keys`` in a private directory, listening
on a free port of 127.0.0.1 only. It logs in as the user running the tests (root
here), so the "device" is this machine with the project's own Python.

Use it through the ``sshd`` session fixture (import it into a test module with
``from tests.sshd import sshd  # noqa: F401``), or as a context manager.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A passphrase-less key pair at ``path`` (and ``path.pub``)."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "gapp-test", "-f", str(path)], check=True)
    return path


class SSHServer:
    """One sshd process; ``known_hosts`` starts empty, ``client_key`` is authorised."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.user = getpass.getuser()
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.host_key = self.root / "ssh_host_ed25519_key"
        self.client_key = self.root / "id_client"
        self.known_hosts = self.root / "known_hosts"
        self.config = self.root / "sshd_config"
        self.log = self.root / "sshd.log"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "SSHServer":
        if not os.path.exists(SSHD):
            pytest.skip("sshd not installed (make test-deps installs openssh-server)")
        if not self.host_key.exists():
            keygen(self.host_key)
        if not self.client_key.exists():
            keygen(self.client_key)
            (self.root / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        self.known_hosts.touch()
        if os.geteuid() == 0:  # sshd insists on its privilege-separation directory
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        last = ""
        for _ in range(5):  # a free port can be taken between the probe and the bind
            self.port = _free_port()
            self._write_config()
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(self.log, "ab"),
            )
            if self._wait_ready(10.0):
                return self
            last = self.log.read_text(errors="replace")[-500:]
            self.stop()
        raise RuntimeError(f"sshd did not start: {last}")

    def _write_config(self) -> None:
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "Subsystem sftp internal-sftp",
                    "MaxStartups 50",
                    "MaxSessions 50",
                    "ClientAliveInterval 0",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as s:
                    s.settimeout(2.0)
                    if s.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        for pid in self.session_pids():
            _kill(pid, signal.SIGKILL)
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "SSHServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests
    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}"

    @property
    def known_hosts_line(self) -> str:
        """The line ``ssh -o StrictHostKeyChecking=accept-new`` would record for this server."""
        kind, blob = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {kind} {blob}\n"

    def trust(self, known_hosts: Path | None = None) -> Path:
        """Write this server's key into a known_hosts file (default: its own)."""
        path = known_hosts or self.known_hosts
        path.write_text(self.known_hosts_line)
        return path

    def session_pids(self) -> list[int]:
        """The per-connection sshd children (what dies when a connection drops)."""
        if self.proc is None:
            return []
        return [pid for pid in _descendants(self.proc.pid) if _comm(pid).startswith("sshd")]

    def kill_sessions(self) -> int:
        """SIGKILL every connection's sshd process: the network "drops" for every client."""
        pids = self.session_pids()
        for pid in pids:
            _kill(pid, signal.SIGKILL)
        return len(pids)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the comm field may hold spaces and parentheses: parse after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _descendants(pid: int) -> list[int]:
    kids = _children()
    out, todo = [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def python_without(directory: Path, modules: list[str]) -> str:
    """A "device's" Python (this one, behind a wrapper script) on which ``modules`` cannot be imported.

    A ``sitecustomize`` puts None in ``sys.modules`` for each: ``import m``
    raises ImportError and ``importlib.util.find_spec(m)`` is None, as on a host
    where it is not installed.
    """
    import sys

    block = directory / f"block-{'-'.join(modules)}"
    block.mkdir(parents=True, exist_ok=True)
    (block / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    wrapper = directory / f"python-without-{'-'.join(modules)}"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={block} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def processes_matching(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (the tests' orphan check)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(int(entry))
    return found


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    """A running :class:`SSHServer` shared by the session; torn down at the end."""
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()
