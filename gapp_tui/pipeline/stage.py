"""One stage of a pipeline run: a process that owns blocks ``[lo, hi)`` of the chain.

Run as ``python -m gapp_tui.pipeline.stage CONFIG_JSON`` (the launcher does
this, locally, inside a network namespace or over SSH). The process

1. pins itself to ``cpus`` and ``threads`` intra-op threads (and runs at
   priority ``nice`` when given),
2. seeds torch with ``seed`` and builds the model from the ModelSpec, so every
   stage (and the launcher's reference model) gets identical random weights,
   and keeps only its own blocks,
3. joins the gloo process group over TCP (``tcp://master_addr:master_port``),
4. streams ``warmup + items + latency_items`` items so that receiving the
   next item, computing this one and sending the previous one overlap: by
   default in one thread with gloo's non-blocking ``irecv``/``isend``
   (``io="async"``), or with three threads joined by bounded queues --
   receive, compute, send (``io="threads"``). Stage 0
   generates the inputs and receives the outputs back from the last stage, so
   the round trip is timed at the source; the last ``latency_items`` are sent
   one at a time (the next leaves when the previous has returned): the
   unloaded latency.
5. gathers every stage's timings on stage 0, which reports them as the
   ``result`` event.

Any failure -- a thread's exception, a peer that went away (gloo raises), a gloo
timeout, the run's deadline -- prints ``stage R: reason`` on stderr and exits
the process at once (``os._exit``), so no thread is left blocked.
Progress is reported with events on stdout (:mod:`gapp_tui.ssh.events`: ``pid``,
``built``, ``joined``, ``streaming``, ``result``). The stage watches its stdin
and leaves when it closes: the launcher (locally) or the SSH channel is gone.

torch (and the chain, which needs it) is imported only after the stage has
pinned itself to its CPUs: the OpenMP runtime reads the affinity when it loads.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import hashlib
import math
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import one_line
from ..ssh import events
from .config import StageConfig, spec_from_dict


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


def weights_digest(modules: Sequence[Any]) -> str:
    """SHA-1 of every parameter and buffer of ``modules``, in state-dict order."""
    h = hashlib.sha1()
    for m in modules:
        for name, t in m.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def build_stage_blocks(model: dict[str, Any], granularity: str, lo: int, hi: int, seed: int):
    """Seed, build the chain and return (blocks[lo:hi], cuts, n); identical in every process."""
    import torch  # after pinning (see the module docstring)

    from ..blocks import BlockChain  # torch, after pinning

    spec = spec_from_dict(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        chain = BlockChain.from_spec(spec, granularity, device="cpu")
    return spec, chain, [b.module for b in chain.blocks[lo:hi]]


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


def _summary(values: Sequence[float]) -> dict[str, float]:
    """Count, mean, median, 95th percentile (linear interpolation) and sum of one timing series."""
    if not values:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "sum": 0.0}
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"n": len(values), "mean": statistics.fmean(values), "p50": statistics.median(values), "p95": p95,
            "sum": math.fsum(values)}


class Stage:
    """The threads of one stage and their timings."""

    def __init__(self, cfg: StageConfig) -> None:
        self.cfg = cfg
        self.rank = cfg.rank
        self.world = cfg.world

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
        lo, hi = cfg.boundaries[self.rank], cfg.boundaries[self.rank + 1]
        self.lo, self.hi = lo, hi
        t0 = time.perf_counter()
        spec, chain, modules = build_stage_blocks(cfg.model, cfg.granularity, lo, hi, cfg.seed)
        self.build_s = time.perf_counter() - t0
        self.spec = spec
        self.modules = modules
        self.digest = weights_digest(modules)
        n = len(chain)
        self.in_infos = chain.cuts[lo].tensors
        self.out_infos = chain.cuts[hi].tensors
        self.final_infos = chain.cuts[n].tensors
        if self.rank == 0:
            self.inputs = [spec.example_input("cpu", seed=cfg.input_seed + j) for j in range(cfg.distinct_inputs)]
        del chain  # keep only this stage's blocks

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

    def _buffers(self, infos) -> list[Any]:
        torch = self.torch
        return [torch.empty(t.shape, dtype=getattr(torch, t.dtype.split(".", 1)[1])) for t in infos]

    def _measured(self, i: int) -> bool:
        return self.cfg.warmup <= i < self.cfg.warmup + self.cfg.items

    def _guard(self, name: str, fn) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # any failure ends the stage at once
                die(self.rank, f"{name} thread failed: {one_line(exc)}")

        t = threading.Thread(target=body, name=f"stage{self.rank}-{name}", daemon=True)
        return t

    def _source(self) -> None:
        cfg = self.cfg
        streamed = cfg.warmup + cfg.items
        for i in range(cfg.total):
            if i >= streamed and i > 0:
                self.returned[i - 1].wait()  # latency phase: one item in flight
            elif i >= cfg.in_flight:
                self.returned[i - cfg.in_flight].wait()  # a window keeps the streamed latency meaningful
            x = self.inputs[i % cfg.distinct_inputs].clone()
            self.in_q.put((x,))
            self.t_in[i] = time.perf_counter()
            if i == cfg.warmup:
                events.emit("streaming")

    def _receive(self, src: int, infos: Any, i: int) -> tuple[Any, ...]:
        """Item ``i``'s tensors from rank ``src`` (blocking), its receive time kept."""
        bufs = self._buffers(infos)
        t0 = time.perf_counter()
        for j, b in enumerate(bufs):
            self.dist.recv(b, src, tag=j)
        self.recv_s[i] = time.perf_counter() - t0
        return tuple(bufs)

    def _recv(self) -> None:
        for i in range(self.cfg.total):
            self.in_q.put(self._receive(self.rank - 1, self.in_infos, i))

    def _compute(self) -> None:
        torch = self.torch
        with torch.inference_mode():
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
            self._returned(i, self._receive(self.world - 1, self.final_infos, i))

    def _stream(self) -> None:
        """Receive, compute and send in one thread with gloo's non-blocking irecv/isend.

        The receive of item ``i + 1`` is posted before item ``i`` is computed and
        up to ``queue_depth + 1`` sends stay in flight, so communication overlaps
        compute as with one thread per activity -- but no other Python thread
        takes the interpreter lock in the middle of a block (a small-op model
        lost 8-16% of its compute time to that).
        """
        cfg, torch, dist = self.cfg, self.torch, self.dist
        prev, nxt = self.rank - 1, (self.rank + 1) % self.world
        streamed = cfg.warmup + cfg.items
        sends: collections.deque = collections.deque()

        def post_recv():
            bufs = self._buffers(self.in_infos)
            return bufs, [dist.irecv(b, src=prev, tag=j) for j, b in enumerate(bufs)]

        pending = post_recv() if self.rank > 0 else None
        with torch.inference_mode():
            for i in range(cfg.total):
                t0 = time.perf_counter()
                if self.rank == 0:
                    if i >= streamed and i > 0:
                        self.returned[i - 1].wait()  # latency phase: one item in flight
                    elif i >= cfg.in_flight:
                        self.returned[i - cfg.in_flight].wait()  # a window keeps the streamed latency meaningful
                    if i == cfg.warmup:
                        events.emit("streaming")
                    values = (self.inputs[i % cfg.distinct_inputs].clone(),)
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
        """Run this stage's blocks on item ``i`` and record its wait, compute and CPU times."""
        t1 = time.perf_counter()
        c1 = time.thread_time()
        for m in self.modules:
            values = m(*values)
        values = tuple(v.contiguous() for v in values)
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
        return {
            "rank": self.rank,
            "blocks": [self.lo, self.hi],
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "cpus": sorted(os.sched_getaffinity(0)),
            "threads": self.torch.get_num_threads(),
            "weights_digest": self.digest,
            "build_s": self.build_s,
            "rendezvous_s": self.rendezvous_s,
            "in_bytes": sum(t.bytes for t in self.in_infos),
            "out_bytes": sum(t.bytes for t in self.out_infos),
            "in_tensors": len(self.in_infos),
            "out_tensors": len(self.out_infos),
            "compute_s": _summary(pick(self.compute_s)),
            "compute_cpu_s": _summary(pick(self.compute_cpu_s)),
            "wait_s": _summary(pick(self.wait_s)),
            "send_s": _summary(pick(self.send_s)),
            "recv_s": _summary(pick(self.recv_s)),
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
            "latency_stream_s": _summary(stream_lat),
            "latency_isolated_s": _summary(iso_lat),
            "stages": gathered,
            "outputs": outputs,
        }


def _deadline(rank: int, seconds: float) -> None:
    def fire() -> None:
        die(rank, f"run exceeded its deadline of {seconds:g} s", code=3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m gapp_tui.pipeline.stage CONFIG_JSON\n")
        raise SystemExit(2)
    cfg = StageConfig.from_json(args[0])
    _deadline(cfg.rank, cfg.deadline_s)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # lead a process group (a local stage already leads its own session)
    events.emit("pid", pid=os.getpid())
    # the launcher (or the SSH channel to it) holds our stdin open: its end means nobody waits for us
    events.watch_stdin(lambda: die(cfg.rank, "the launcher went away (its end of our stdin closed)", code=4))
    stage = Stage(cfg)
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


if __name__ == "__main__":
    main()
