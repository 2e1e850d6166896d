"""A stage started on another host over SSH (the measure area's SSH runner).

The remote host needs Python with torch and GAPP importable (``remote_python
-m gapp_tui.pipeline.stage`` must work there). The stage process

* announces its pid (``GAPP-EVENT pid N``) and leads a process group of its
  own, so :meth:`RemoteStageProcess.kill` ends it and anything it started with
  one ``kill -KILL -- -N`` over a fresh channel;
* watches its stdin: when the SSH connection goes (the launcher died, the
  network dropped) the channel closes, stdin reaches end of file and the stage
  exits at once -- no stage outlives the run.

Its stdout and stderr lines are written to the same local files as a local
stage's, so the launcher's watchdog treats both alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .run import StageProcess


@dataclasses.dataclass(frozen=True)
class SSHOptions:
    """How to reach the hosts of remote stages (see ``gapp_tui.measure.remote.connect``)."""

    identity: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    accept_new_host_key: bool = False
    connect_timeout: float | None = None
    remote_python: str = "python3"
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # extra variables for the remote stage


class RemoteStageProcess(StageProcess):
    """One stage's process on ``host``; ``poll``/``kill``/``reason`` as for a local stage."""

    def __init__(self, rank: int, device: str, host: str, config_json: str, env: Mapping[str, str],
                 workdir: Path, ssh: SSHOptions, silence_timeout: float) -> None:
        argv = ["env", *[f"{k}={v}" for k, v in env.items()], ssh.remote_python, "-m", "gapp_tui.pipeline.stage",
                config_json]
        super().__init__(rank, device, argv, {}, workdir)
        self.host = host
        self.ssh = ssh
        self.silence_timeout = silence_timeout
        self.session: Any = None
        self.stream: Any = None
        self.remote_pid: int | None = None
        self.rc: int | None = None
        self._why = ""
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        from ..measure.remote import connect

        s = self.ssh
        self.session = connect(
            self.host, identity=s.identity, known_hosts=s.known_hosts, ssh_config=s.ssh_config,
            accept_new_host_key=s.accept_new_host_key, connect_timeout=s.connect_timeout,
        )
        self.stream = self.session.stream(self.argv, silence_timeout=self.silence_timeout)
        self.started = time.monotonic()
        self.stdout_path.write_bytes(b"")
        self.stderr_path.write_bytes(b"")
        self._reader = threading.Thread(target=self._read_lines, name=f"ssh-stage{self.rank}", daemon=True)
        self._reader.start()

    def _read_lines(self) -> None:
        from ..measure.remote import RemoteError

        from .stage import EVENT

        try:
            with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
                for kind, line in self.stream:
                    if kind == "out" and line.startswith(f"{EVENT} pid "):
                        with contextlib.suppress(ValueError):
                            self.remote_pid = int(line.split()[-1])
                            self.stream.pid = self.remote_pid
                    f = out if kind == "out" else err
                    f.write(line.encode() + b"\n")
                    f.flush()
            status = self.stream.exit_status
            if status is None or status < 0:
                self._why = f"was killed by a signal on {self.host}"
                self.rc = -1
            else:
                self.rc = status
        except RemoteError as exc:
            self._why = f"lost its SSH connection to {self.host} ({exc})"
            self.rc = 255
        except Exception as exc:  # the reader must always settle the exit code
            self._why = f"SSH reader failed: {type(exc).__name__}: {exc}"
            self.rc = 255

    @property
    def pid(self) -> int:
        return self.remote_pid if self.remote_pid is not None else -1

    def poll(self) -> int | None:
        return self.rc

    def kill(self) -> None:
        if self.session is None:
            return
        if self.rc is None and self.remote_pid is not None:
            self.session.kill(self.remote_pid, group=True, sig="KILL")
        if self.stream is not None and self.rc is None:
            self.stream.cancel()
        if self._reader is not None:
            self._reader.join(timeout=5)
        with contextlib.suppress(Exception):
            self.session.close()
        self.session = None

    def reason(self) -> str:
        if self._why:
            return self._why
        return super().reason().replace("exited", f"exited on {self.host}", 1)
