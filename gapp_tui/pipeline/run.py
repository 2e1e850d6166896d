"""Run a partition Plan for real: one process per stage, joined by torch.distributed (gloo).

:func:`run_plan` is the launcher. It

1. checks the plan against the model's real chain (boundaries in range, only
   tensors crossing the cuts it sends) and builds the unsplit model with the
   same seed as the stages, for the reference output;
2. starts one stage process per device (``python -m gapp_tui.pipeline.stage``,
   :mod:`.process`), each in its own process group and watching its stdin, so
   it ends with the launcher however the launcher ends; a ``prefix`` per stage
   runs it under another command (``ip netns exec NS`` in the
   network-namespace benchmark);
3. watches them (every 50 ms): the first stage that exits with an error or a
   signal ends the run -- every other stage's process group is killed at once
   and a :class:`PipelineError` says, on one line, which stage died and how;
   the gloo timeout bounds every rendezvous, send and receive, and a deadline
   bounds the whole run;
4. returns a :class:`PipelineResult`: measured period, throughput, latency and
   per-stage compute/transfer times, the weights check (every stage built the
   same weights as the launcher) and the output check (max |pipeline -
   unsplit model| over the returned outputs).

A device with a host in the plan (``user@host:port``) runs its stage there,
started over SSH (:class:`~gapp_tui.pipeline.process.RemoteStageProcess`);
``ssh`` (:class:`~gapp_tui.ssh.SSHOptions`) says how to log in and which
Python to run. The master address must then be one every host can reach.

``from_export=DIR`` runs the stages ``gapp export`` wrote instead of blocks
built from the model (:mod:`.exported`): each stage loads its artifact with
the stand-alone runner and runs it under its runtime, in the same loop, with
the same watchdog and report; a remote stage gets the loop, the runner and
its artifact copied to its host and needs no GAPP there. Before any stage
starts, every stage's runtime must be installed where it runs (BadInput, one
line naming the host, the runtime and the pip command). The artifacts'
SHA-256 replace the weights digest, the output is checked as the export was,
and the estimate compared with is the manifest's (the bytes the exported cuts
send).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import BadInput, Failure
from ..ssh import SSHOptions, parse_target
from .compare import plan_stage_compute, stage_estimate
from .config import PlanView, StageConfig, read_plan, spec_to_dict
from .exported import ExportedRun, read_export
from .process import RemoteStageProcess, StageProcess
from .result import PipelineResult, cosine, max_abs_diff, normalise_estimate, tensor_from
from .stage import build_stage_blocks, weights_digest

#: how often the watchdog looks at the stage processes
POLL_S = 0.05
#: after the first failure, how long to wait for the other stages' own reports
GRACE_S = 0.3


class PipelineError(Failure):
    """The run failed (a stage died, timed out or could not start); the message is one line."""


# ----------------------------------------------------------------------------- plan checks


def check_cuts(chain: Any, boundaries: Sequence[int], granularity: str = "") -> None:
    """BadInput unless the plan fits the chain and only tensors cross the cuts it uses."""
    n = len(chain)
    b = list(boundaries)
    if b[-1] != n or any(x < 0 or x > n for x in b):
        raise BadInput(
            f"plan boundaries {b} are out of range for {chain.spec.name} at granularity {granularity or chain.granularity}"
            f" ({n} blocks); the last must be {n}"
        )
    for k in sorted(set(b)):
        for t in chain.cuts[k].tensors:
            if not t.is_tensor:
                raise BadInput(
                    f"cut {k} ({'input' if k == 0 else 'output' if k == n else 'before block ' + chain.blocks[k].name})"
                    f" carries {t.name!r} of type {t.dtype}, not a tensor; a pipeline can only send tensors,"
                    " so cut elsewhere or use another granularity"
                )


def free_port(addr: str = "127.0.0.1") -> int:
    """A TCP port free on ``addr`` now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, 0))
        except OSError:  # not an address of this machine (stage 0 elsewhere): any port free here
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- stage processes


#: glibc malloc settings for a stage: keep freed memory instead of handing it back to the OS. With the
#: defaults, the activations of one item are returned (trimmed or unmapped) when it leaves and page-faulted
#: back for the next: ~1,600 minor faults per item in a mobilenet_v2 stage, +70% compute time, which block
#: timings (whose allocation pattern happens to avoid it) do not show. Ignored where the C library is not glibc.
STAGE_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def _stage_env(threads: int, ifname: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", STAGE_MALLOC)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    if ifname:
        env["GLOO_SOCKET_IFNAME"] = ifname
    # whatever the launcher can import (an import-path model, an editable checkout) the stages can too
    paths = [os.getcwd()] + [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _remote_env(threads: int, ifname: str | None) -> dict[str, str]:
    """What a remote stage is started with (its host's own environment otherwise)."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
           "GLIBC_TUNABLES": STAGE_MALLOC}
    if ifname:
        env["GLOO_SOCKET_IFNAME"] = ifname
    return env


def _is_loopback(addr: str) -> bool:
    return addr in ("localhost", "::1") or addr.startswith("127.")


def master_address(devices: Sequence[str], hosts: Mapping[str, str | None]) -> str:
    """An address for the rendezvous every stage can reach: stage 0's host, else this machine's towards a host.

    No hosts (or only loopback ones): ``127.0.0.1``. Stage 0 on a host: that
    host's name. Stage 0 here: the address this machine reaches the first
    host from (BadInput, one line, when there is no route to it).
    """
    first = hosts.get(devices[0]) if devices else None
    if first:
        name = parse_target(first)[1]
        return "127.0.0.1" if _is_loopback(name) else name
    remote = [h for h in (hosts.get(d) for d in devices) if h]
    if not remote:
        return "127.0.0.1"
    name = parse_target(remote[0])[1]
    if _is_loopback(name):
        return "127.0.0.1"
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((name, 9))  # no packet is sent: the kernel picks the route and its source address
            return str(s.getsockname()[0])
    except OSError as exc:
        raise BadInput(f"no route from this machine to {remote[0]} ({exc.strerror or exc}); check the host name"
                       " or run the stages with `gapp pipeline run --master-addr ADDRESS`") from None


# ----------------------------------------------------------------------------- the launcher


def run_plan(
    plan: str | Path | Mapping[str, Any] | Any = None,
    *,
    from_export: str | Path | None = None,
    items: int = 50,
    warmup: int = 5,
    latency_items: int = 5,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout: float = 30.0,
    deadline: float = 600.0,
    threads: int = 1,
    cpus: Sequence[Sequence[int] | None] | None = None,
    prefixes: Sequence[Sequence[str]] | None = None,
    ifnames: Sequence[str | None] | None = None,
    seed: int = 0,
    input_seed: int = 0,
    in_flight: int | None = None,
    nice: int | None = None,
    pin: bool = False,
    io: str = "async",
    ssh: SSHOptions | None = None,
    estimate: Mapping[str, Any] | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Execute ``plan`` with one gloo process per stage and measure it.

    ``items`` inputs are streamed after ``warmup`` (at most ``in_flight`` on their
    way, default ``2k + 2``); then ``latency_items`` go one at a time (unloaded
    latency). ``timeout`` (s) bounds every rendezvous and
    every send/receive; ``deadline`` (s) the whole run. ``cpus[s]`` pins stage
    ``s`` (``pin=True``: stage ``s`` on CPU ``s`` modulo this machine's CPUs); ``nice`` sets every stage's priority (negative needs root: a stage
    standing for a device of its own on a shared machine); ``prefixes[s]`` is a command stage ``s`` runs under (e.g. ``["ip",
    "netns", "exec", "ns0"]``); ``ifnames[s]`` its gloo network interface
    (default ``lo`` for a loopback master). ``on_event(name, info)`` is called
    from this thread with ``started`` (info: ``pids``), ``built``, ``joined``,
    ``streaming`` and ``done``.

    Stages of devices with a host in the plan start there over SSH (``ssh``:
    :class:`~gapp_tui.ssh.SSHOptions`; its ``env`` is added to a remote stage's environment).

    ``from_export``: run the exported stages in that directory (``plan``, if
    given too, must be the exported plan; its hosts are used). ``seed`` is then
    the export's.

    Raises :class:`BadInput` for a plan that cannot run and
    :class:`PipelineError` when a stage fails; no stage process outlives the call.
    """
    exported: ExportedRun | None = None
    if from_export is not None:
        exported = read_export(from_export, plan)
        view, seed = exported.view, exported.seed
    elif plan is None:
        raise BadInput("no plan given; give a plan file (`gapp partition ... -o PLAN`) or an export directory")
    else:
        view = read_plan(plan)
    for name, value, low in (("items", items, 1), ("warm-up", warmup, 0), ("latency items", latency_items, 0)):
        if not isinstance(value, int) or value < low:
            raise BadInput(f"{name} {value!r} is not valid; give an integer >= {low}")
    if not timeout or timeout <= 0 or not math.isfinite(timeout):
        raise BadInput(f"timeout {timeout!r} is not valid; give a positive number of seconds")
    if io not in ("async", "threads"):
        raise BadInput(f"io {io!r} is not known; give async or threads")
    if threads < 1:
        raise BadInput(f"threads {threads!r} is not valid; give a positive integer")
    k = view.stages
    if pin and cpus is None:
        ncpu = len(os.sched_getaffinity(0))
        cpus = [[sorted(os.sched_getaffinity(0))[s % ncpu]] for s in range(k)]
    for what, seq in (("cpus", cpus), ("prefixes", prefixes), ("ifnames", ifnames)):
        if seq is not None and len(seq) != k:
            raise BadInput(f"{what} has {len(seq)} entries for {k} stages; give one per stage")

    emit = on_event or (lambda name, info: None)
    # the reference: the same seeded build the stages do, so weights must agree
    spec, chain, _ = build_stage_blocks(spec_to_dict(view.spec), view.granularity, 0, 0, seed)
    check_cuts(chain, view.boundaries, view.granularity)
    if exported is not None:  # every stage proves it loaded the exported artifact
        digests = [d or "" for d in exported.digests]
    else:
        digests = [weights_digest([b.module for b in chain.blocks[lo:hi]])
                   for lo, hi in zip(view.boundaries, view.boundaries[1:])]
    distinct = 2
    inputs = [spec.example_input("cpu", seed=input_seed + j) for j in range(distinct)]
    with torch.inference_mode():
        references = [chain.model(x) for x in inputs]

    # a stage and a link per hop (and the return) plus a queued item each: enough to keep all busy
    window = in_flight or 2 * k + 2
    if window < 1:
        raise BadInput(f"in-flight window {in_flight!r} is not valid; give a positive integer")
    port = master_port or free_port(master_addr)
    workdir = Path(tempfile.mkdtemp(prefix="gapp-pipeline-"))
    procs: list[StageProcess] = []
    t_start = time.monotonic()
    try:
        for s in range(k):
            host = view.hosts.get(view.devices[s])
            cfg = StageConfig(
                rank=s,
                world=k,
                model=spec_to_dict(view.spec),
                granularity=view.granularity,
                boundaries=tuple(view.boundaries),
                master_addr=master_addr,
                master_port=port,
                timeout_s=float(timeout),
                items=items,
                warmup=warmup,
                latency_items=latency_items,
                seed=seed,
                input_seed=input_seed,
                distinct_inputs=distinct,
                threads=threads,
                cpus=tuple(cpus[s]) if cpus is not None and cpus[s] is not None else None,
                deadline_s=float(deadline),
                in_flight=window,
                nice=nice,
                io=io,
                export_dir=str(exported.directory.resolve()) if exported is not None else None,
            )
            ifname = ifnames[s] if ifnames is not None else ("lo" if _is_loopback(master_addr) else None)
            runtime = exported.runtimes[s] if exported is not None else None
            if host:
                procs.append(RemoteStageProcess(
                    s, view.devices[s], host, cfg, _remote_env(threads, ifname), workdir, ssh or SSHOptions(),
                    silence_timeout=deadline + 30, runtime=runtime,
                    export=exported.files(s) if exported is not None else None))
                continue
            prefix = list(prefixes[s]) if prefixes is not None else []
            module = "gapp_tui.pipeline.stage_loop" if exported is not None else "gapp_tui.pipeline.stage"
            argv = prefix + [sys.executable, "-m", module, cfg.to_json()]
            procs.append(StageProcess(s, view.devices[s], argv, _stage_env(threads, ifname), workdir, runtime))
        # nothing starts before every stage has what it needs (its runtime, its files on its host)
        for p in procs:
            p.prepare()
        for p in procs:
            p.start()
        emit("started", {"pids": [p.pid for p in procs], "master": f"{master_addr}:{port}"})
        doc = _watch(procs, deadline, emit)
    finally:
        for p in procs:
            p.kill()
        for f in workdir.iterdir():
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()
    wall = time.monotonic() - t_start

    diff, cos = 0.0, 1.0
    for out in doc["outputs"]:
        got = [tensor_from(t) for t in out["tensors"]]
        want = chain.rebuild_output(tuple(got))
        diff = max(diff, max_abs_diff(references[out["input_index"]], want))
        cos = min(cos, cosine(references[out["input_index"]], want))
    stages = doc["stages"]
    for s, st in enumerate(stages):
        st["device"] = view.devices[s]
        st["weights_match"] = st["weights_digest"] == digests[s]
    wire = dict(exported.wire_bytes) if exported is not None else None
    if exported is not None and estimate is None:
        est = normalise_estimate(exported.estimate)
        source = "export (wire bytes)" if est else "none"
    else:
        est, source = _the_estimate(view, chain, estimate)
    run_est = stage_estimate(view, chain, [st["compute_s"]["mean"] for st in stages], wire) or {}
    return PipelineResult(
        plan=view,
        items=items,
        warmup=warmup,
        latency_items=latency_items,
        period_s=doc["period_s"],
        throughput_per_s=doc["throughput_per_s"],
        latency_stream_s=doc["latency_stream_s"],
        latency_isolated_s=doc["latency_isolated_s"],
        stages=stages,
        output_max_abs_diff=diff,
        weights_match=all(st["weights_match"] for st in stages),
        estimate=est,
        estimate_source=source,
        estimate_with_run_compute=run_est,
        wall_s=wall,
        master=f"{master_addr}:{port}",
        tolerance=exported.tolerance if exported is not None and exported.tolerance else 1e-4,
        min_cosine=exported.min_cosine if exported is not None else None,
        output_cosine=cos,
        export=str(exported.directory) if exported is not None else None,
    )


def _watch(procs: list[StageProcess], deadline: float, emit: Callable[[str, dict[str, Any]], None]) -> dict[str, Any]:
    """Poll the stages until stage 0 reports its result and all exit 0, or one fails."""
    t0 = time.monotonic()
    seen: dict[str, set[int]] = {}
    result: dict[str, Any] | None = None
    while True:
        for p in procs:
            for ev in p.new_events():
                name = ev.pop("event")
                if name == "result":
                    result = ev
                elif name != "pid":
                    ranks = seen.setdefault(name, set())
                    ranks.add(p.rank)
                    # an event counts once every stage that emits it has (streaming: stage 0 only)
                    if name == "streaming" or len(ranks) == len(procs):
                        emit(name, {"elapsed_s": time.monotonic() - t0, "pids": [q.pid for q in procs]})
        codes = [p.poll() for p in procs]
        failed = [p for p, rc in zip(procs, codes) if rc not in (None, 0)]
        if failed:
            time.sleep(GRACE_S)  # let the others report how the failure reached them
            _fail(procs, failed[0], t0)
        if all(rc == 0 for rc in codes):
            if result is None:
                for p in procs:
                    for ev in p.new_events():
                        if ev.pop("event") == "result":
                            result = ev
            if result is None:
                raise PipelineError("every stage exited but stage 0 reported no result")
            emit("done", {"elapsed_s": time.monotonic() - t0})
            return result
        if time.monotonic() - t0 > deadline:
            for p in procs:
                p.kill()
            raise PipelineError(f"the run exceeded its deadline of {deadline:g} s; every stage was stopped")
        time.sleep(POLL_S)


def _fail(procs: list[StageProcess], first: StageProcess, t0: float) -> None:
    """Kill everything and raise one line naming the stage that failed first (signals first)."""
    ended = [p for p in procs if p.poll() not in (None, 0)]
    by_signal = [p for p in ended if (p.poll() or 0) < 0]
    culprit = by_signal[0] if by_signal else first
    elapsed = time.monotonic() - t0
    reason = culprit.reason()
    for p in procs:
        p.kill()
    others = [p for p in ended if p is not culprit]
    tail = ""
    if others:
        o = others[0]
        tail = f"; then stage {o.rank} {o.reason()}"
    raise PipelineError(
        f"stage {culprit.rank} ({culprit.device}, pid {culprit.pid}) {reason} {elapsed:.1f} s into the run"
        f"{tail}; every stage was stopped"
    )


# ----------------------------------------------------------------------------- the estimate


def _the_estimate(view: PlanView, chain: Any, given: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The estimate to compare with: the caller's, else the plan's re-made by the estimator, else the plan's."""
    if given is not None:
        return normalise_estimate(given), "given"
    from_file = normalise_estimate(view.estimate)
    compute = plan_stage_compute(from_file)
    remade = stage_estimate(view, chain, compute) if compute else None
    if remade:
        return remade, "recomputed"
    return from_file, "plan file" if from_file else "none"
