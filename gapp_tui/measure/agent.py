"""The device agent: what runs on the Raspberry Pi during a remote measurement.

It needs only Python 3 and torch on the device. GAPP uploads, into a private
temporary directory, this file, ``timer.py`` and ``device.py`` (the same timing
core and device description local measurement uses), every block as a
TorchScript file, the recorded inputs of every block, and a ``job.json``; then
it runs ``python -u agent.py run job.json`` and reads its stdout. Under a
runtime (``job["runtime"]``: ExecuTorch, ONNX Runtime, int8) the blocks come as
that runtime's artifacts, compiled by GAPP, with the stand-alone runner
(``gapp_runner.py``) that loads them: the device then also needs the runtime
(``runtime`` event: its name and version there; a missing one is an ``error``
naming the host and the pip command).

Protocol: GAPP's event lines on stdout (:mod:`gapp_tui.ssh.events`, copied
next to the agent as ``events.py``), flushed as they happen (``python -u``):

* ``start``: ``pid``, ``pgid`` (what the runner kills on cancel), ``python``,
  ``torch``, ``agent_version``, ``timer_version``.
* ``device``: ``description`` -- ``device.describe()`` plus ``pi`` (board model,
  ``get_throttled`` bits) where readable.
* ``result``: ``mode``, ``block`` (``-1`` for whole-model rows), ``block_name``,
  ``stats`` (``timer.Stats.to_dict()``), ``extra`` (sensors before/after...).
  Sent the moment each block is timed.
* ``progress``: the fields of the engine's ``Progress`` (``phase``, ``index``,
  ``total``, ``name``, ``estimate_ms``, ``sum_ms``, ``skipped``, ``runs``).
* ``chain``: ``mode``, ``stats`` of a whole in-context run; ``overhead``:
  ``mode``, ``stats`` of an empty block; ``device_after``: the description at the end.
* ``alive``: a heartbeat every few seconds, so silence means a dead link.
* ``log``: ``message`` for a person.
* ``done``: ``results`` (how many were sent), ``seconds``.
* ``error``: ``message`` (one line), ``kind`` (the exception's class).

Control: after the ``device`` event the agent reads one JSON line from stdin,
``{"skip": {mode: [blocks]}}`` (what the store already holds for this device
key) or ``{"stop": true}``.

Orphans: the agent runs in its own process group and watches its stdin
(:func:`gapp_tui.ssh.events.watch_stdin`): the runner never closes it, so
end-of-file means the SSH channel is gone (cancelled, connection dropped, the
server's session killed) and the agent removes its private directory and exits
at once instead of measuring for nobody.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if __package__:  # imported as gapp_tui.measure.agent (tests, GAPP itself)
    from ..ssh import events
else:  # run as a script on the device, beside copies of events.py, timer.py and device.py
    sys.path.insert(0, HERE)
    import events

#: 2: events are marked lines (gapp_tui.ssh.events) instead of bare JSON lines; 3: runtimes' artifacts
AGENT_VERSION = 3
emit = events.emit


def _input_closed() -> None:
    """End of stdin: the SSH channel closed. Nobody is left to remove our private directory, so we do."""
    if os.path.basename(HERE).startswith("gapp-agent."):  # only a directory the runner made
        shutil.rmtree(HERE, ignore_errors=True)
    events.say("gapp agent: input closed, exiting")


def _heartbeat(period: float) -> None:
    while True:
        time.sleep(period)
        emit("alive", t=round(time.time(), 3))


# ----------------------------------------------------------------------------- Raspberry Pi status

#: bits of the firmware's get_throttled word (Raspberry Pi documentation, vcgencmd)
THROTTLE_BITS = {
    0: "under_voltage",
    1: "arm_frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
    16: "under_voltage_occurred",
    17: "arm_frequency_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temperature_limit_occurred",
}


def decode_throttled(value: int) -> dict[str, bool]:
    return {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}


def pi_status(root: str = "/", use_vcgencmd: bool = True) -> dict[str, Any] | None:
    """The board model and throttling state of a Raspberry Pi; ``None`` elsewhere.

    Reads ``/proc/device-tree/model`` and the firmware's
    ``/sys/devices/platform/soc/soc:firmware/get_throttled``, else runs
    ``vcgencmd get_throttled`` when it is installed. ``root`` is for tests.
    """
    def read(path: str) -> str | None:
        try:
            with open(os.path.join(root, path), "rb") as fh:
                return fh.read().decode(errors="replace").strip("\x00 \n")
        except OSError:
            return None

    model = read("proc/device-tree/model") or read("sys/firmware/devicetree/base/model")
    raw = read("sys/devices/platform/soc/soc:firmware/get_throttled")
    source = "sysfs" if raw is not None else None
    if raw is None and use_vcgencmd and shutil.which("vcgencmd"):
        try:
            text = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5).stdout
            m = re.search(r"throttled=(0x[0-9a-fA-F]+)", text)
            if m:
                raw, source = m.group(1), "vcgencmd"
        except (OSError, subprocess.SubprocessError):
            pass
    if model is None and raw is None:
        return None
    out: dict[str, Any] = {"model": model}
    if raw is not None:
        try:
            value = int(raw, 16) if raw.lower().startswith("0x") else int(raw, 16)
        except ValueError:
            value = None
        out["get_throttled"] = hex(value) if value is not None else raw
        out["get_throttled_source"] = source
        if value is not None:
            out.update(decode_throttled(value))
    return out


# ----------------------------------------------------------------------------- measuring


def _sensors() -> dict[str, Any]:
    import device  # the device's copy (see run_job)

    s = dict(device.read_sensors())
    pi = pi_status()
    if pi and "get_throttled" in pi:
        s["get_throttled"] = pi["get_throttled"]
    return s


def _read_control() -> dict[str, Any]:
    """The runner's one-line answer to the ``device`` event (what to skip); EOF means stop."""
    line = sys.stdin.buffer.readline()
    if not line:
        os._exit(75)
    return json.loads(line.decode())


def run_job(job_path: str, watchdog: bool = True) -> int:
    # torch and the timing core are imported only to measure (seconds on a Pi); as a script the
    # agent finds the copies of device.py and timer.py that travel next to it
    import device  # noqa: I001  (the copies beside this script on the device)
    import timer  # (as device.py)
    import torch  # slow: only to measure

    t_start = time.time()
    with open(job_path) as fh:
        job = json.load(fh)
    base = os.path.dirname(os.path.abspath(job_path))
    emit(
        "start",
        pid=os.getpid(),
        pgid=os.getpgid(0),
        python=sys.version.split()[0],
        torch=torch.__version__,
        agent_version=AGENT_VERSION,
        timer_version=getattr(timer, "TIMER_VERSION", None),
    )
    dev = job.get("device", "cpu")
    threads = timer.set_threads(job.get("threads"))
    desc = device.describe(dev, name=job.get("device_name"))
    pi = pi_status()
    if pi is not None:
        desc["pi"] = pi
    emit("device", description=desc)

    # the runner answers with what the store already holds for this device key
    control = _read_control() if job.get("control", True) else {}
    if watchdog:
        events.watch_stdin(_input_closed)
    if control.get("stop"):
        emit("done", results=0, seconds=round(time.time() - t_start, 3))
        return 0
    skip = {m: {int(b) for b in v} for m, v in (control.get("skip") or {}).items()}

    precision = timer.Precision.from_dict(job.get("precision") or {})
    names = job["block_names"]
    n = len(names)
    jit_warmup = int(job.get("jit_warmup", 2))

    rt = job.get("runtime")
    if rt:  # a runtime's artifacts, loaded by the stand-alone runner that travelled with them
        import gapp_runner  # the runner copied beside this script, only with a runtime

        try:
            gapp_runner.require(rt["name"])
        except gapp_runner.RuntimeMissing as exc:
            emit("error", message=str(exc), kind="RuntimeMissing")
            return 2
        blocks = [gapp_runner.load_artifact(os.path.join(base, f), rt["name"], threads) for f in rt["blocks"]]
        full_fn = gapp_runner.load_artifact(os.path.join(base, rt["full"]), rt["name"], threads) if rt.get("full") else None
        emit("runtime", name=rt["name"], version=gapp_runner.runtime_version(rt["name"]))
    else:
        archive = torch.jit.load(os.path.join(base, job["archive"]), map_location=dev)
        archive.eval()
        blocks = [getattr(archive.blocks, str(i)) for i in range(n)]
        full_fn = archive.full if job.get("full") else None
    try:
        recorded = torch.load(os.path.join(base, job["inputs"]), map_location=dev, weights_only=True)
    except TypeError:  # a torch older than weights_only
        recorded = torch.load(os.path.join(base, job["inputs"]), map_location=dev)
    block_inputs = [tuple(v) for v in recorded["block_inputs"]]
    model_input = tuple(recorded["model_input"])

    # TorchScript's profiling executor specialises a graph on its first calls (and a runtime's first calls
    # allocate): make them here so that no timing (even with few warm-up runs) includes them
    with torch.inference_mode():
        for i, b in enumerate(blocks):
            for _ in range(jit_warmup):
                b(*block_inputs[i])

    sent = 0

    def result(mode: str, block: int, stats: Any, before: dict[str, Any]) -> None:
        nonlocal sent
        extra = {"sensors": _sensors(), "sensors_before": before,
                 "timer_version": getattr(timer, "TIMER_VERSION", None), "serialised": job.get("serialised")}
        emit("result", mode=mode, block=block, block_name=names[block] if block >= 0 else "(full model)",
             stats=stats.to_dict(), extra=extra)
        sent += 1

    for mode in job["modes"]:
        todo = [i for i in range(n) if i not in skip.get(mode, set())]
        if mode == "standalone":
            running = 0.0
            for i in range(n):
                if i not in todo:
                    emit("progress", phase=mode, index=i + 1, total=n, name=names[i], sum_ms=running, skipped=True)
                    continue
                emit("progress", phase=mode, index=i, total=n, name=names[i], sum_ms=running)
                before = _sensors()
                stats = timer.time_callable(blocks[i], block_inputs[i], dev, precision)
                result(mode, i, stats, before)
                running += stats.median_ms
                emit("progress", phase=mode, index=i + 1, total=n, name=names[i], estimate_ms=stats.median_ms,
                     sum_ms=running)
        elif mode == "in-context":
            if not todo:
                emit("progress", phase=mode, index=n, total=n, skipped=True)
                continue
            emit("progress", phase=mode, index=0, total=n, name=names[0])
            before = _sensors()
            stored: set[int] = set()

            def converged(i: int, stats: Any) -> None:
                # a block whose interval is narrow enough is sent at once: a drop later loses nothing of it
                if i in todo and i not in stored:
                    stored.add(i)
                    result(mode, i, stats, before)

            def iteration(k: int, conv: list[Any], medians: list[float]) -> None:
                finished = sum(1 for c in conv if c is not None)
                nxt = next((names[i] for i, c in enumerate(conv) if c is None), "")
                emit("progress", phase=mode, index=finished, total=n, name=nxt, estimate_ms=sum(medians),
                     sum_ms=sum(medians), runs=k)

            per, total, _ = timer.time_sequence(blocks, model_input, dev, precision, on_iteration=iteration,
                                                on_converged=converged)
            # the final statistics of every block (those sent early are replaced by the full sample)
            for i in todo:
                result(mode, i, per[i], before)
            emit("chain", mode=mode, stats=total.to_dict())
            emit("progress", phase=mode, index=n, total=n, name=names[-1], estimate_ms=total.median_ms,
                 sum_ms=sum(s.median_ms for s in per))
    if job.get("full") and -1 not in skip.get("full", set()):
        emit("progress", phase="full", index=0, total=1, name="full model")
        full = full_fn
        with torch.inference_mode():
            for _ in range(jit_warmup):
                full(*model_input)
        before = _sensors()
        stats = timer.time_callable(full, model_input, dev, precision)
        result("full", -1, stats, before)
        emit("progress", phase="full", index=1, total=1, name="full model", estimate_ms=stats.median_ms,
             sum_ms=stats.median_ms)
    for j, mode in enumerate(job.get("overhead_modes") or []):
        emit("progress", phase="overhead", index=j, total=len(job["overhead_modes"]), name=f"empty block ({mode})")
        stats = timer.time_overhead(dev, mode, precision, model_input)
        emit("overhead", mode=mode, stats=stats.to_dict())
    after = device.describe(dev, name=job.get("device_name"))
    if pi is not None:
        after["pi"] = pi_status()
    emit("device_after", description=after)
    emit("done", results=sent, seconds=round(time.time() - t_start, 3))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "run":
        events.say("usage: agent.py run JOB.json [--no-watchdog]")
        return 2
    try:
        os.setpgid(0, 0)  # our own process group: a cancel kills it whole
    except OSError:
        pass  # already a group leader (sshd starts each session's command with setsid)
    heartbeat = 5.0
    try:
        with open(argv[1]) as fh:
            heartbeat = float(json.load(fh).get("heartbeat_s", 5.0))
    except Exception:
        pass
    threading.Thread(target=_heartbeat, args=(heartbeat,), name="heartbeat", daemon=True).start()
    try:
        return run_job(argv[1], watchdog="--no-watchdog" not in argv)
    except KeyboardInterrupt:
        emit("error", message="interrupted on the device", kind="KeyboardInterrupt")
        return 130
    except BaseException as exc:  # everything reaches the runner as one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.stderr.write(traceback.format_exc())
        sys.stderr.flush()
        emit("error", message=f"{type(exc).__name__}: {text}", kind=type(exc).__name__)
        return 1


if __name__ == "__main__":
    sys.exit(main())
