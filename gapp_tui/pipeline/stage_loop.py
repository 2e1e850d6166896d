"""The loop every pipeline stage runs: join the gloo group, stream items, time everything, report.

One concept: the life of one stage process. It is one file because it travels
alone to a host (next to the event protocol and the stand-alone runner).

A stage is a process that owns some work -- the blocks ``[lo, hi)`` of a chain
built from the model (:mod:`.stage`), or an exported stage's artifact loaded
by the stand-alone runner (``gapp export``; :func:`main` here) -- and runs
this loop:

1. pins itself to ``cpus`` and ``threads`` intra-op threads (and runs at
   priority ``nice`` when given); torch is imported only after that, since the
   OpenMP runtime reads the affinity when it loads;
2. builds its :class:`Work` (what it receives, what it computes, what it sends);
3. joins the gloo process group over TCP (``tcp://master_addr:master_port``);
4. streams ``warmup + items + latency_items`` items so that receiving the
   next item, computing this one and sending the previous one overlap: by
   default in one thread with gloo's non-blocking ``irecv``/``isend``
   (``io="async"``), or with three threads joined by bounded queues --
   receive, compute, send (``io="threads"``). Stage 0 generates the inputs
   and receives the outputs back from the last stage, so the round trip is
   timed at the source; the last ``latency_items`` are sent one at a time
   (the next leaves when the previous has returned): the unloaded latency;
5. gathers every stage's timings on stage 0, which reports them as the
   ``result`` event.

Any failure -- a thread's exception, a peer that went away (gloo raises), a gloo
timeout, the run's deadline -- prints ``stage R: reason`` on stderr and exits
the process at once (``os._exit``), so no thread is left blocked. Progress is
reported with events on stdout (GAPP's one event protocol, ``events.py``:
``pid``, ``built``, ``joined``, ``streaming``, ``result``). The stage watches
its stdin and leaves when it closes: the launcher (locally) or the SSH channel
is gone.

This file needs only the standard library and torch (and, for an exported
stage, the stand-alone runner and the stage's runtime): ``gapp pipeline run
--from-export`` copies it to a host as ``gapp_stage.py`` next to
``events.py``, ``gapp_runner.py``, the manifest and the stage's artifact, and
runs ``python -u gapp_stage.py CONFIG_JSON`` there -- GAPP need not be
installed on the host. Locally it runs as ``python -m gapp_tui.pipeline.stage_loop``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import json
import math
import os
import queue
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if __package__:  # imported as gapp_tui.pipeline.stage_loop
    from ..ssh import events
else:  # run as gapp_stage.py on a host, beside a copy of events.py
    sys.path.insert(0, HERE)
    import events

#: the private directory a remote stage runs in (made by the launcher over SSH; see gapp_tui.ssh.session)
_PRIVATE_PREFIX = "gapp-agent."


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Everything one stage process is told; it travels as a single JSON argument.

    ``export_dir`` (an exported stage): the directory holding the manifest, the
    runner and this stage's artifact; ``model``, ``granularity`` and ``seed``
    then only describe the run (the weights are the artifact's).
    """

    rank: int
    world: int
    model: dict[str, Any]
    granularity: str
    boundaries: tuple[int, ...]
    master_addr: str
    master_port: int
    timeout_s: float
    items: int
    warmup: int
    latency_items: int
    seed: int = 0
    input_seed: int = 0
    distinct_inputs: int = 2
    threads: int = 1
    cpus: tuple[int, ...] | None = None
    deadline_s: float = 600.0
    queue_depth: int = 1
    in_flight: int = 5
    nice: int | None = None
    io: str = "async"  # async: one thread, irecv/isend; threads: receive, compute and send threads
    export_dir: str | None = None

    @property
    def total(self) -> int:
        return self.warmup + self.items + self.latency_items

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StageConfig:
        doc = json.loads(text)
        doc["boundaries"] = tuple(doc["boundaries"])
        if doc.get("cpus") is not None:
            doc["cpus"] = tuple(doc["cpus"])
        return cls(**doc)


@dataclasses.dataclass
class Work:
    """What one stage does with an item, as the loop needs it.

    ``compute(*values) -> tuple of tensors to send``; ``receive`` the shapes
    and torch dtypes of what arrives (``(shape, dtype)`` per tensor; stage 0
    receives nothing from a peer), ``returned`` what stage 0 receives back from
    the last stage; ``inputs`` (stage 0) the distinct model inputs it cycles
    through; ``digest`` proves which weights it holds (a SHA-1 of the blocks'
    weights, or an artifact's SHA-256); ``info`` goes into the stage's report.
    """

    compute: Callable[..., tuple[Any, ...]]
    receive: list[tuple[tuple[int, ...], Any]]
    returned: list[tuple[tuple[int, ...], Any]]
    digest: str
    in_bytes: int
    out_bytes: int
    in_tensors: int
    out_tensors: int
    inputs: list[tuple[Any, ...]] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def one_line(exc: BaseException) -> str:
    """A failure as one line, with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def die(rank: int, message: str, code: int = 1) -> None:
    """Report one line and leave now: blocked gloo calls in other threads cannot hold us.

    Writing may fail (the SSH channel that carried stderr is gone): the process exits anyway.
    """
    try:
        events.say(f"stage {rank}: {message}")
        sys.stdout.flush()
    except BaseException:
        pass
    finally:
        os._exit(code)


def set_priority(nice: int) -> None:
    """Run this process (and the threads it starts) at ``nice``.

    With the kernel's autogroup scheduling a nice value only orders the
    threads of one session; between sessions the session's own nice value
    counts, so it is set too (``/proc/self/autogroup``; the stage leads a
    session of its own). Lowering either needs root.
    """
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass  # no autogroup scheduling (or not allowed): the process nice value is all there is


def summary(values: Sequence[float]) -> dict[str, float]:
    """Count, mean, median, 95th percentile (linear interpolation) and sum of one timing series."""
    if not values:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "sum": 0.0}
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"n": len(values), "mean": statistics.fmean(values), "p50": statistics.median(values), "p95": p95,
            "sum": math.fsum(values)}


class Stage:
    """One stage's loop: its threads and their timings (``build(cfg) -> Work`` says what it computes)."""

    def __init__(self, cfg: StageConfig, build: Callable[[StageConfig], Work]) -> None:
        self.cfg = cfg
        self.rank = cfg.rank
        self.world = cfg.world
        self.build = build

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        cfg = self.cfg
        if cfg.cpus:
            os.sched_setaffinity(0, set(cfg.cpus))
        if cfg.nice is not None:
            set_priority(cfg.nice)
        import torch  # after pinning (see the module docstring)

        torch.set_num_threads(max(1, cfg.threads))
        self.torch = torch
        self.lo, self.hi = cfg.boundaries[self.rank], cfg.boundaries[self.rank + 1]
        t0 = time.perf_counter()
        self.work = self.build(cfg)
        self.build_s = time.perf_counter() - t0

    def join(self) -> None:
        import torch.distributed as dist  # torch, after pinning

        cfg = self.cfg
        host = f"[{cfg.master_addr}]" if ":" in cfg.master_addr else cfg.master_addr
        t0 = time.perf_counter()
        dist.init_process_group(
            backend="gloo",
            init_method=f"tcp://{host}:{cfg.master_port}",
            rank=cfg.rank,
            world_size=cfg.world,
            timeout=datetime.timedelta(seconds=cfg.timeout_s),
        )
        dist.barrier()
        self.rendezvous_s = time.perf_counter() - t0
        self.dist = dist

    # ------------------------------------------------------------------ the threads

    def _buffers(self, specs: list[tuple[tuple[int, ...], Any]]) -> list[Any]:
        return [self.torch.empty(shape, dtype=dtype) for shape, dtype in specs]

    def _measured(self, i: int) -> bool:
        return self.cfg.warmup <= i < self.cfg.warmup + self.cfg.items

    def _guard(self, name: str, fn: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # any failure ends the stage at once
                die(self.rank, f"{name} thread failed: {one_line(exc)}")

        return threading.Thread(target=body, name=f"stage{self.rank}-{name}", daemon=True)

    def _input(self, i: int) -> tuple[Any, ...]:
        inputs = self.work.inputs or []
        return tuple(t.clone() for t in inputs[i % len(inputs)])

    def _source(self) -> None:
        cfg = self.cfg
        streamed = cfg.warmup + cfg.items
        for i in range(cfg.total):
            if i >= streamed and i > 0:
                self.returned[i - 1].wait()  # latency phase: one item in flight
            elif i >= cfg.in_flight:
                self.returned[i - cfg.in_flight].wait()  # a window keeps the streamed latency meaningful
            x = self._input(i)
            self.in_q.put(x)
            self.t_in[i] = time.perf_counter()
            if i == cfg.warmup:
                events.emit("streaming")

    def _receive(self, src: int, specs: list[tuple[tuple[int, ...], Any]], i: int) -> tuple[Any, ...]:
        """Item ``i``'s tensors from rank ``src`` (blocking), its receive time kept."""
        bufs = self._buffers(specs)
        t0 = time.perf_counter()
        for j, b in enumerate(bufs):
            self.dist.recv(b, src, tag=j)
        self.recv_s[i] = time.perf_counter() - t0
        return tuple(bufs)

    def _recv(self) -> None:
        for i in range(self.cfg.total):
            self.in_q.put(self._receive(self.rank - 1, self.work.receive, i))

    def _compute(self) -> None:
        with self.torch.inference_mode():
            for i in range(self.cfg.total):
                t0 = time.perf_counter()
                values = self._apply(i, self.in_q.get(), t0)
                if self.world == 1:
                    self._returned(i, values)
                else:
                    self.out_q.put(values)

    def _send(self) -> None:
        dst = (self.rank + 1) % self.world
        for i in range(self.cfg.total):
            values = self.out_q.get()
            t0 = time.perf_counter()
            for j, v in enumerate(values):
                self.dist.send(v, dst, tag=j)
            self.send_s[i] = time.perf_counter() - t0

    def _collect(self) -> None:
        for i in range(self.cfg.total):
            self._returned(i, self._receive(self.world - 1, self.work.returned, i))

    def _stream(self) -> None:
        """Receive, compute and send in one thread with gloo's non-blocking irecv/isend.

        The receive of item ``i + 1`` is posted before item ``i`` is computed and
        up to ``queue_depth + 1`` sends stay in flight, so communication overlaps
        compute as with one thread per activity -- but no other Python thread
        takes the interpreter lock in the middle of a block (a small-op model
        lost 8-16% of its compute time to that).
        """
        cfg, dist = self.cfg, self.dist
        prev, nxt = self.rank - 1, (self.rank + 1) % self.world
        streamed = cfg.warmup + cfg.items
        sends: collections.deque = collections.deque()

        def post_recv():
            bufs = self._buffers(self.work.receive)
            return bufs, [dist.irecv(b, src=prev, tag=j) for j, b in enumerate(bufs)]

        pending = post_recv() if self.rank > 0 else None
        with self.torch.inference_mode():
            for i in range(cfg.total):
                t0 = time.perf_counter()
                if self.rank == 0:
                    if i >= streamed and i > 0:
                        self.returned[i - 1].wait()  # latency phase: one item in flight
                    elif i >= cfg.in_flight:
                        self.returned[i - cfg.in_flight].wait()  # a window keeps the streamed latency meaningful
                    if i == cfg.warmup:
                        events.emit("streaming")
                    values = self._input(i)
                    self.t_in[i] = time.perf_counter()
                else:
                    bufs, works = pending
                    for w in works:
                        w.wait()
                    values = tuple(bufs)
                    self.recv_s[i] = time.perf_counter() - t0
                    if i + 1 < cfg.total:
                        pending = post_recv()
                values = self._apply(i, values, t0)
                if self.world == 1:
                    self._returned(i, values)
                    continue
                # the tensors stay referenced until their send completes
                sends.append((values, [dist.isend(v, dst=nxt, tag=j) for j, v in enumerate(values)]))
                t3 = time.perf_counter()
                while len(sends) > cfg.queue_depth + 1:
                    for w in sends.popleft()[1]:
                        w.wait()
                self.send_s[i] = time.perf_counter() - t3
            while sends:
                for w in sends.popleft()[1]:
                    w.wait()

    def _apply(self, i: int, values: tuple[Any, ...], waiting_since: float) -> tuple[Any, ...]:
        """Run this stage's work on item ``i`` and record its wait, compute and CPU times."""
        t1 = time.perf_counter()
        c1 = time.thread_time()
        values = tuple(v.contiguous() for v in self.work.compute(*values))
        self.wait_s[i] = t1 - waiting_since
        self.compute_s[i] = time.perf_counter() - t1
        # CPU time of this thread: wall time above it is time spent waiting for the CPU (or the GIL)
        self.compute_cpu_s[i] = time.thread_time() - c1
        return values

    def _returned(self, i: int, values: tuple[Any, ...]) -> None:
        self.t_out[i] = time.perf_counter()
        if i >= self.cfg.total - self.cfg.distinct_inputs:
            self.kept[i] = values
        self.returned[i].set()

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        cfg = self.cfg
        total = cfg.total
        self.in_q: queue.Queue = queue.Queue(maxsize=cfg.queue_depth)
        self.out_q: queue.Queue = queue.Queue(maxsize=cfg.queue_depth)
        self.compute_s = [0.0] * total
        self.wait_s = [0.0] * total
        self.compute_cpu_s = [0.0] * total
        self.send_s = [0.0] * total
        self.recv_s = [0.0] * total
        self.t_in = [0.0] * total
        self.t_out = [0.0] * total
        self.kept: dict[int, tuple[Any, ...]] = {}
        self.returned = [threading.Event() for _ in range(total)]
        threads = []
        if self.rank == 0 and self.world > 1:
            threads.append(self._guard("collect", self._collect))
        if cfg.io == "threads":
            if self.rank == 0:
                threads.append(self._guard("source", self._source))
            else:
                threads.append(self._guard("receive", self._recv))
            threads.append(self._guard("compute", self._compute))
            if self.world > 1:
                threads.append(self._guard("send", self._send))
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        if cfg.io != "threads":
            try:
                self._stream()
            except BaseException as exc:
                die(self.rank, f"stream failed: {one_line(exc)}")
        for t in threads:
            t.join()
        self.wall_s = time.perf_counter() - t0

    def stats(self) -> dict[str, Any]:
        m = [i for i in range(self.cfg.total) if self._measured(i)]
        pick = lambda xs: [xs[i] for i in m]  # noqa: E731
        w = self.work
        return {
            "rank": self.rank,
            "blocks": [self.lo, self.hi],
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "cpus": sorted(os.sched_getaffinity(0)),
            "threads": self.torch.get_num_threads(),
            "weights_digest": w.digest,
            "build_s": self.build_s,
            "rendezvous_s": self.rendezvous_s,
            "in_bytes": w.in_bytes,
            "out_bytes": w.out_bytes,
            "in_tensors": w.in_tensors,
            "out_tensors": w.out_tensors,
            **w.info,
            "compute_s": summary(pick(self.compute_s)),
            "compute_cpu_s": summary(pick(self.compute_cpu_s)),
            "wait_s": summary(pick(self.wait_s)),
            "send_s": summary(pick(self.send_s)),
            "recv_s": summary(pick(self.recv_s)),
            "wall_s": self.wall_s,
        }

    def result(self, gathered: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.cfg
        w, n = cfg.warmup, cfg.items
        # period from the returns of the streamed phase: n gaps in steady state
        start = self.t_out[w - 1] if w > 0 else self.t_in[0]
        span = self.t_out[w + n - 1] - start
        stream_lat = [self.t_out[i] - self.t_in[i] for i in range(w, w + n)]
        iso_lat = [self.t_out[i] - self.t_in[i] for i in range(w + n, cfg.total)]
        outputs = []
        for i in sorted(self.kept):
            outputs.append(
                {
                    "item": i,
                    "input_index": i % cfg.distinct_inputs,
                    "tensors": [
                        {"shape": list(v.shape), "dtype": str(v.dtype), "data": v.flatten().tolist()}
                        for v in self.kept[i]
                    ],
                }
            )
        return {
            "items": n,
            "warmup": w,
            "latency_items": cfg.latency_items,
            "span_s": span,
            "period_s": span / n,
            "throughput_per_s": n / span if span > 0 else float("inf"),
            "latency_stream_s": summary(stream_lat),
            "latency_isolated_s": summary(iso_lat),
            "stages": gathered,
            "outputs": outputs,
        }


def _deadline(rank: int, seconds: float) -> None:
    def fire() -> None:
        die(rank, f"run exceeded its deadline of {seconds:g} s", code=3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def run_stage(cfg: StageConfig, build: Callable[[StageConfig], Work],
              on_input_closed: Callable[[], None] | None = None) -> None:
    """The whole life of a stage process (never returns): report, join, stream, gather, report, exit."""
    _deadline(cfg.rank, cfg.deadline_s)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # lead a process group (a local stage already leads its own session)
    events.emit("pid", pid=os.getpid())

    def gone() -> None:
        if on_input_closed is not None:
            with contextlib.suppress(BaseException):
                on_input_closed()
        die(cfg.rank, "the launcher went away (its end of our stdin closed)", code=4)

    # the launcher (or the SSH channel to it) holds our stdin open: its end means nobody waits for us
    events.watch_stdin(gone)
    stage = Stage(cfg, build)
    try:
        stage.setup()
        events.emit("built")
        stage.join()
        events.emit("joined")
        stage.run()
        gathered: list[Any] | None = [None] * cfg.world if cfg.rank == 0 else None
        stage.dist.gather_object(stage.stats(), gathered, dst=0)
        if cfg.rank == 0:
            events.emit("result", **stage.result(gathered or []))
        stage.dist.destroy_process_group()
    except BaseException as exc:  # one line, then out
        die(cfg.rank, one_line(exc))
    sys.stdout.flush()
    os._exit(0)


# ----------------------------------------------------------------------------- an exported stage


def _runner() -> Any:
    """The stand-alone runner: GAPP's own module, or the copy beside this file on a host."""
    if __package__:
        from .. import stage_runner  # inside GAPP; on a host the copy beside this file (below)

        return stage_runner
    import gapp_runner  # noqa: PLC0415  (beside this file: HERE is on sys.path)

    return gapp_runner


def exported_work(cfg: StageConfig) -> Work:
    """Stage ``cfg.rank`` of the export in ``cfg.export_dir``, loaded by the stand-alone runner.

    The artifact's SHA-256 is checked against the manifest before it loads
    (its digest is what the launcher compares); a runtime that is missing here
    fails with the runner's one line naming this host, the runtime and how to
    install it.
    """
    import torch  # after pinning

    runner = _runner()
    manifest = runner.read_manifest(cfg.export_dir)
    st = runner.load_stage(cfg.export_dir, cfg.rank, threads=cfg.threads, verify=True)
    # what stage 0 receives back: the model's output as the last stage sends it
    out_cut = manifest["cuts"][manifest["stages"][-1]["out_cut"]]
    dtype = lambda name: getattr(torch, name.replace("torch.", ""))  # noqa: E731
    inputs = None
    if cfg.rank == 0:
        inputs = [runner.example_input(manifest, cfg.input_seed + j) for j in range(cfg.distinct_inputs)]
    specs_in, specs_out = st.in_specs, st.out_specs
    return Work(
        compute=st,
        receive=[(tuple(s["shape"]), dtype(s["dtype"])) for s in specs_in],
        returned=[(tuple(s["shape"]), dtype(s["dtype"])) for s in runner.wire_specs(out_cut)],
        digest=st.info.get("sha256") or "",  # verified against the artifact's bytes by load_stage
        in_bytes=sum(int(s["bytes"]) for s in specs_in),
        out_bytes=sum(int(s["bytes"]) for s in specs_out),
        in_tensors=len(specs_in),
        out_tensors=len(specs_out),
        inputs=inputs,
        info={"runtime": st.runtime, "quantize": st.info.get("quantize"), "artifact": st.info.get("artifact"),
              "runtime_version": runner.runtime_version(st.runtime)},
    )


def _remove_private_dir() -> None:
    """A copy running in the launcher's private directory removes it when the launcher is gone."""
    if not __package__ and os.path.basename(HERE).startswith(_PRIVATE_PREFIX):
        shutil.rmtree(HERE, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python gapp_stage.py CONFIG_JSON  (an exported stage; the config names its directory)\n")
        raise SystemExit(2)
    cfg = StageConfig.from_json(args[0])
    if not cfg.export_dir:
        sys.stderr.write(f"stage {cfg.rank}: no export directory in the config; give export_dir\n")
        raise SystemExit(2)
    run_stage(cfg, exported_work, on_input_closed=_remove_private_dir)


if __name__ == "__main__":
    main()
