"""A stage's process: started on this machine or on another host over SSH, watched the same way.

The launcher (:mod:`.run`) makes one per stage, calls :meth:`prepare` on every
one before it starts any (what a stage needs must be there: an exported
stage's runtime, its files on a remote host), then :meth:`start`, and polls
them: :meth:`poll` (the exit code), :meth:`new_events` (what it reported,
:mod:`gapp_tui.ssh.events`), :meth:`kill` (the whole process group) and
:meth:`reason` (how it ended, in words).

A remote stage built from the model needs Python with torch and GAPP
importable on its host (``remote_python -m gapp_tui.pipeline.stage`` must work
there). A remote *exported* stage needs only Python, torch and its runtime:
:meth:`RemoteStageProcess.prepare` asks the host which runtimes it has (the
stand-alone runner's lookup, :data:`gapp_tui.stage_runner.PACKAGES`, without
importing anything), then uploads the stage loop (as ``gapp_stage.py``), the event
protocol (``events.py``), the stand-alone runner, the manifest and the
stage's artifact into a private ``mktemp -d`` directory, removed when the
stage is killed or the run ends (and by the stage itself when its SSH
connection goes), as the measurement agent's bundle is.

A remote stage announces its pid (the ``pid`` event) and leads a process group
of its own, so :meth:`RemoteStageProcess.kill` ends it and anything it started
with one ``kill -KILL -- -N`` over a fresh channel. Like a local stage it
watches its stdin: when the SSH connection goes (the launcher died, the
network dropped) the channel closes, stdin reaches end of file and the stage
exits at once. Its stdout and stderr lines are written to the same local files
as a local stage's, so the launcher's watchdog treats both alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import stage_runner
from ..errors import BadInput
from ..ssh import RemoteError, SSHOptions, events
from . import stage_loop
from .stage_loop import StageConfig

#: what an exported stage takes to a host, by its name there (the loop last: a partial upload never runs)
LOOP_FILE = "gapp_stage.py"


def export_files(directory: Path, manifest: Mapping[str, Any], rank: int) -> dict[str, Path]:
    """The files a remote exported stage needs, by their name on the host: artifact, manifest, runner, loop."""
    files: dict[str, Path] = {}
    artifact = manifest["stages"][rank].get("artifact")
    if artifact:
        files[artifact] = directory / artifact
    files[stage_runner.MANIFEST] = directory / stage_runner.MANIFEST
    files["gapp_runner.py"] = directory / "gapp_runner.py"
    files["events.py"] = Path(events.__file__)
    files[LOOP_FILE] = Path(stage_loop.__file__)
    return files


class StageProcess:
    """One stage's OS process on this machine (in its own process group), its stdout and stderr files.

    Its stdin is a pipe the launcher holds open and never writes: the stage
    watches it (:func:`gapp_tui.ssh.events.watch_stdin`) and leaves when it
    closes, so a stage never outlives its launcher, however the launcher ends.
    """

    def __init__(self, rank: int, device: str, argv: list[str], env: Mapping[str, str], workdir: Path,
                 runtime: str | None = None) -> None:
        self.rank = rank
        self.device = device
        self.argv = argv
        self.env = dict(env)
        self.runtime = runtime  # an exported stage's runtime (None: a stage built from the model)
        self.stdout_path = workdir / f"stage{rank}.out"
        self.stderr_path = workdir / f"stage{rank}.err"
        self.popen: subprocess.Popen | None = None
        self.started = 0.0
        self._read = 0

    def prepare(self) -> None:
        """Before any stage starts: BadInput (one line naming the host and how to install it) when the runtime is missing."""
        if self.runtime and stage_runner.runtime_version(self.runtime) is None:
            raise BadInput(stage_runner.missing_text(self.runtime))

    def start(self) -> None:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,  # held open, never written: its end of file tells the stage we are gone
                stdout=out,
                stderr=err,
                env=self.env,
                start_new_session=True,  # its own process group: killpg ends it and anything it started
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else -1

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def new_events(self) -> list[dict[str, Any]]:
        """The events (:mod:`gapp_tui.ssh.events`) the stage printed on stdout since the last call."""
        return [ev for ev in map(events.decode, self._new_lines()) if ev is not None]

    def _new_lines(self) -> list[str]:
        try:
            with open(self.stdout_path, "rb") as f:
                f.seek(self._read)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._read += end + 1
        return data[: end + 1].decode(errors="replace").splitlines()

    def kill(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def reason(self) -> str:
        """How it ended, in words: its last error line, or the signal that killed it."""
        rc = self.poll()
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"was killed by {name}"
        last = ""
        with contextlib.suppress(OSError):
            lines = [ln.strip() for ln in self.stderr_path.read_text(errors="replace").splitlines() if ln.strip()]
            ours = [ln for ln in lines if ln.startswith(f"stage {self.rank}:")]
            last = (ours or lines or [""])[-1]
            if last.startswith(f"stage {self.rank}:"):
                last = last[len(f"stage {self.rank}:"):].strip()
        return f"exited with code {rc}" + (f": {last}" if last else "")


class RemoteStageProcess(StageProcess):
    """One stage's process on ``host``; ``poll``/``kill``/``reason`` as for a local stage.

    ``export`` (an exported stage): the files to upload (:func:`export_files`);
    the stage then runs the uploaded loop on them instead of GAPP's module.
    """

    def __init__(self, rank: int, device: str, host: str, config: StageConfig, env: Mapping[str, str],
                 workdir: Path, ssh: SSHOptions, silence_timeout: float, runtime: str | None = None,
                 export: Mapping[str, Path] | None = None) -> None:
        super().__init__(rank, device, [], {}, workdir, runtime)
        self.config = config
        self.remote_env = {**env, **dict(ssh.env)}
        self.export = dict(export) if export else None
        self.host = host
        self.ssh = ssh
        self.silence_timeout = silence_timeout
        self.session: Any = None
        self.stream: Any = None
        self.remote_dir: str | None = None
        self.remote_pid: int | None = None
        self.rc: int | None = None
        self._why = ""
        self._reader: threading.Thread | None = None
        self._tempdir = contextlib.ExitStack()

    def prepare(self) -> None:
        """Log in; for an exported stage check the host's runtime and upload what the stage needs."""
        if self.session is not None:
            return
        self.session = self.ssh.connect(self.host)
        python = self.ssh.remote_python
        env = ["env", *[f"{k}={v}" for k, v in self.remote_env.items()], python]
        if self.export is None:
            self.argv = [*env, "-m", "gapp_tui.pipeline.stage", self.config.to_json()]
            return
        if self.runtime:
            info = self.session.check_python(python, packages=stage_runner.PACKAGES)
            if not info["packages"].get(self.runtime):
                raise BadInput(stage_runner.missing_text(self.runtime, self.host, python))
        rdir = self._tempdir.enter_context(self.session.private_tempdir(self.ssh.remote_tmp))
        self.remote_dir = rdir
        for name, path in self.export.items():  # the loop is last: a partial upload never runs
            self.session.put(path, f"{rdir}/{name}")
        config = dataclasses.replace(self.config, export_dir=rdir)
        self.argv = [*env, "-u", f"{rdir}/{LOOP_FILE}", config.to_json()]

    def start(self) -> None:
        self.prepare()
        self.stream = self.session.stream(self.argv, silence_timeout=self.silence_timeout)
        self.started = time.monotonic()
        self.stdout_path.write_bytes(b"")
        self.stderr_path.write_bytes(b"")
        self._reader = threading.Thread(target=self._read_lines, name=f"ssh-stage{self.rank}", daemon=True)
        self._reader.start()

    def _read_lines(self) -> None:
        try:
            with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
                for kind, line in self.stream:
                    ev = events.decode(line) if kind == "out" else None
                    if ev is not None and ev["event"] == "pid":
                        self.remote_pid = int(ev["pid"])
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
            self._tempdir.close()  # the private directory and everything uploaded into it
        with contextlib.suppress(Exception):
            self.session.close()
        self.session = None

    def reason(self) -> str:
        if self._why:
            return self._why
        return super().reason().replace("exited", f"exited on {self.host}", 1)
