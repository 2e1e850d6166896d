"""Measuring a BlockChain on a remote device over SSH, with the local engine's rows and semantics.

:func:`measure_remote` is what ``gapp measure --host`` and the TUI call. It

1. checks the remote Python and torch (one line saying what is missing), and
   under a runtime (``config.runtime``) that the device has it: the same
   lookup as the stand-alone runner's, before anything is compiled;
2. writes the bundle (:mod:`.bundle`: TorchScript blocks -- or, under a
   runtime, its artifacts with the stand-alone runner --, recorded inputs, the
   agent with ``timer.py`` and ``device.py``) and uploads it over SFTP into a
   private ``mktemp -d`` directory, removed afterwards. The rows' setting ends
   with the runtime and ``extra.runtime`` describes it, as for local rows;
3. starts ``python -u agent.py run job.json`` and reads its events
   (:mod:`gapp_tui.ssh.events`): on the ``device`` event it answers with the blocks the store already holds for
   that device key (resume: nothing is measured twice), then every ``result``
   becomes a row (:func:`gapp_tui.measure.record.make_row`) written to the
   store the moment it arrives, tagged with the remote device's description;
4. returns the same :class:`~gapp_tui.measure.record.MeasureResult` as local
   measurement: both keep their rows in a :class:`~gapp_tui.measure.record.RunRecord`.

A dropped connection raises :class:`~gapp_tui.ssh.ConnectionLost`
after the run record is closed as ``interrupted``; every row that arrived is
in the store, and the same call again resumes. Ctrl-C or ``cancel.set()``
stops the remote agent (its process group is killed and its stdin closes)
and returns the partial result with ``interrupted`` set, like the local engine
(a cancel before the agent has started raises
:class:`~gapp_tui.ssh.Cancelled`: nothing was measured).
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import stage_runner
from ..errors import BadInput
from ..ssh import Cancelled as RemoteCancelled
from ..ssh import ConnectionLost, RemoteError, RemoteSession, events
from ..store import Store, setting_key
from .bundle import write_bundle
from .engine import MeasureConfig, parse_dtype, prepare_chain
from .record import MeasureResult, Progress, RowContext, RunRecord, make_row
from .timer import Stats

#: files uploaded before the agent starts; the agent is last so a partial upload never runs
_UPLOAD_ORDER_LAST = ("job.json", "agent.py")


def measure_remote(
    session: RemoteSession,
    target: Any,
    config: MeasureConfig | None = None,
    *,
    store: Store | None = None,
    remote_python: str = "python3",
    remote_tmp: str | None = None,
    granularity: str | int = "natural", leaves: Iterable[str] = (),
    progress: Callable[[Progress], None] | None = None, cancel: threading.Event | None = None,
    command: str | None = None, log: Callable[[str], None] | None = None,
    silence_timeout: float = 60.0,
    heartbeat_s: float = 5.0,
) -> MeasureResult:
    """Measure ``target`` (a BlockChain or ModelSpec) on the device behind ``session`` (see the module docstring)."""
    cfg = config or MeasureConfig()
    cfg.check()
    report = progress or (lambda p: None)
    say = log or (lambda s: None)
    versions = session.check_python(remote_python, packages=stage_runner.PACKAGES)
    say(f"{session.target.label}: Python {versions['python']}, torch {versions['torch']} ({versions.get('machine')})")
    if cfg.runtime != "eager" and not versions["packages"].get(cfg.runtime):
        # before anything is compiled: the device cannot run the artifacts
        raise BadInput(stage_runner.missing_text(cfg.runtime, session.target.label, remote_python))

    report(Progress("prepare", 0, 1, "tracing"))
    if hasattr(target, "blocks") and hasattr(target, "cuts"):
        chain = target
    else:
        chain = prepare_chain(target, granularity, "cpu", cfg.dtype, leaves)
    with tempfile.TemporaryDirectory(prefix="gapp-bundle-") as local_dir:
        what = "TorchScript" if cfg.runtime == "eager" else f"{cfg.runtime}{' int8' if cfg.quantize else ''} artifacts"
        say(f"serialising {len(chain.blocks)} blocks and the model ({what})")
        bundle = write_bundle(
            chain, local_dir, modes=cfg.modes, precision=cfg.precision.to_dict(), device=cfg.device, dtype=cfg.dtype,
            threads=cfg.threads, device_name=cfg.device_name, seed=cfg.seed, full=cfg.full,
            overhead_modes=cfg.modes if cfg.adjust_for_overhead else (), heartbeat_s=heartbeat_s,
            runtime=cfg.runtime, quantize=cfg.quantize, calibration=cfg.calibration, progress=report,
        )
        with session.private_tempdir(remote_tmp) as rdir:
            files = [f for f in bundle.files if f not in _UPLOAD_ORDER_LAST] + list(_UPLOAD_ORDER_LAST)
            sent = 0
            for name in files:
                if cancel is not None and cancel.is_set():
                    raise RemoteCancelled("cancelled before the agent started; nothing was measured")
                session.put(Path(local_dir) / name, f"{rdir}/{name}")
                sent += (Path(local_dir) / name).stat().st_size
            say(f"uploaded {len(files)} files ({sent / 1e6:.1f} MB) to {session.target.label}:{rdir}")
            run = _RemoteRun(chain, cfg, store, report, cancel, session, command)
            run.bundle_runtime = bundle.job.get("runtime")
            run.execute([remote_python, "-u", f"{rdir}/agent.py", "run", f"{rdir}/job.json"], silence_timeout, say)
    if run.lost is not None:
        raise run.lost
    return run.record.result()


class _RemoteRun:
    """The agent's events, kept in a RunRecord as the local engine keeps its timings."""

    def __init__(self, chain: Any, cfg: MeasureConfig, store: Store | None, report: Callable[[Progress], None],
                 cancel: threading.Event | None, session: RemoteSession, command: str | None) -> None:
        self.chain, self.cfg, self.report = chain, cfg, report
        self.session = session
        self.cancel = cancel
        self.command = command
        self.lost: RemoteError | None = None
        # the device key, threads and run record are known only once the agent has described the device
        ctx = RowContext(device_key="", model=chain.spec.name, model_label=chain.spec.label(), setting="",
                         granularity=chain.granularity, batch_size=chain.spec.shape[0],
                         input_shape=chain.spec.shape_text, num_classes=chain.spec.num_classes,
                         dtype=cfg.quantize or str(parse_dtype(cfg.dtype)).replace("torch.", ""), threads=0,
                         device_type=cfg.device.split(":")[0], chain_sig=chain.signature())
        self.record = RunRecord(chain.names, cfg, ctx, store)
        self.remote: dict[str, Any] = {"host": session.target.label}
        self.early: set[int] = set()
        # under a runtime, what the rows record of it (as local rows do), with the device's own version
        self.runtime: dict[str, Any] | None = None
        self.bundle_runtime: dict[str, Any] | None = None  # the bundle's job["runtime"]

    # -------------------------------------------------------------- events
    def _on_device(self, desc: dict[str, Any]) -> dict[str, Any]:
        """Fix the row context from the device's description; the control answer (what to skip)."""
        rec = self.record
        rec.desc = desc
        c = rec.ctx
        c.device_key = desc["key"]
        c.threads = int(desc.get("threads") or 1)
        c.setting = setting_key(self.chain.spec.shape_text, c.dtype, c.threads, self.chain.granularity,
                                self.chain.spec.num_classes, c.device_type, runtime=self.cfg.runtime)
        excluded = rec.excluded()
        skip = {mode: sorted(rec.done(mode) | (excluded if mode != "full" else set())) for mode in rec.all_modes}
        n = len(rec.names)
        for mode in self.cfg.modes:  # as the engine counts: every stored block of either mode
            rec.skipped += len(set(skip[mode]) & set(range(n)) - excluded)
        if self.cfg.full and -1 in skip.get("full", []):
            rec.skipped += 1
        rec.open(self.command)
        return {"skip": skip}

    def _on_result(self, ev: dict[str, Any]) -> None:
        mode, block = ev["mode"], int(ev["block"])
        name = "(full model)" if block < 0 else self.record.names[block]
        extra = dict(ev.get("extra") or {})
        extra["remote"] = self.remote
        if self.runtime is not None:
            extra["runtime"] = self.runtime
        row = make_row(self.record.ctx, mode, block, name, Stats.from_dict(ev["stats"]), extra)
        # an in-context block is sent early and again with its final statistics: counted once
        self.record.keep(row, counted=not (mode == "in-context" and block in self.early))
        if mode == "in-context":
            self.early.add(block)

    # -------------------------------------------------------------- the run
    def execute(self, argv: list[str], silence_timeout: float, say: Callable[[str], None]) -> None:
        rec = self.record
        stream = self.session.stream(argv, silence_timeout=silence_timeout, cancel=self.cancel)
        errors: list[str] = []
        failure: str | None = None
        finished = False
        try:
            for kind, line in stream:
                if kind == "err":
                    errors.append(line)
                    continue
                ev = events.decode(line)
                if ev is None:
                    say(f"device: {line}")
                    continue
                what = ev.get("event")
                if what == "start":
                    stream.pid = int(ev.get("pgid") or ev["pid"])
                    self.remote.update(python=ev.get("python"), torch=ev.get("torch"), agent_pid=ev.get("pid"))
                elif what == "device":
                    answer = self._on_device(ev["description"])
                    try:
                        stream.send((json.dumps(answer) + "\n").encode())
                    except (OSError, EOFError) as exc:
                        raise ConnectionLost(f"lost the connection to {self.session.target.label} ({exc})") from None
                elif what == "runtime":  # the artifacts loaded on the device: its runtime's version
                    info = {k: v for k, v in (self.bundle_runtime or {}).items() if k not in ("blocks", "full", "runner")}
                    self.runtime = {**info, "compiled_with": info.get("version"), "version": ev.get("version")}
                elif what == "result":
                    self._on_result(ev)
                elif what == "progress":
                    fields = {k: ev[k] for k in ("phase", "index", "total", "name", "estimate_ms", "sum_ms", "skipped",
                                                 "runs") if k in ev and ev[k] is not None}
                    self.report(Progress(**fields))
                elif what == "chain":
                    rec.chain_ms[ev["mode"]] = float(ev["stats"]["median_ms"])
                elif what == "overhead":
                    rec.overhead[ev["mode"]] = ev["stats"]
                elif what == "device_after":
                    rec.desc_after = ev["description"]
                elif what == "log":
                    say(f"device: {ev.get('message')}")
                elif what == "error":
                    failure = ev.get("message") or "the agent failed"
                elif what == "done":
                    finished = True
            if not finished and failure is None:
                tail = next((e for e in reversed(errors) if e.strip()), "")
                failure = f"the agent exited with status {stream.exit_status}" + (f": {tail.strip()}" if tail else "")
        except RemoteCancelled:
            rec.interrupted = "cancel"
        except KeyboardInterrupt:
            stream.stop()
            rec.interrupted = "keyboard"
        except ConnectionLost as exc:
            rec.interrupted = "connection"
            kept = rec.measured
            self.lost = ConnectionLost(
                f"{exc}; {kept} new row{'s' if kept != 1 else ''} are stored - run the same command again to resume"
            )
        finally:
            stream.stop()
            rec.close("failed" if failure else ("interrupted" if rec.interrupted else "done"))
        if failure is not None:
            if "MemoryError" in failure or "No space left" in failure:
                failure += " (the device ran out of memory or disk)"
            raise RemoteError(f"the agent on {self.session.target.label} failed: {failure}")
        if not rec.desc:
            raise RemoteError(f"the agent on {self.session.target.label} stopped before describing the device")
