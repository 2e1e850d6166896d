"""What the two network-namespace benchmarks share (pipeline_netns.py, pipeline_netns_export.py).

Both run 2-stage pipelines across a veth pair between two network namespaces
shaped with ``tc tbf`` and compare the measured throughput with the solver's
estimate. The start-up checks, the namespaces, the probes of the shaped link
(TCP goodput, the sender's CPU time per byte), the pinned block timing, the
run itself, the estimates it is compared with and the results files live here
once; each script keeps what is its own (eager blocks or exported artifacts,
its table).

The scripts put the repository root on ``sys.path`` before importing this
module. torch and what needs it are imported where they are used, so that
``--help`` answers without loading them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gapp_tui.partition.estimate import estimate
from gapp_tui.partition.link import Link
from gapp_tui.partition.plan import chain_links
from gapp_tui.units import parse_bandwidth

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: TCP payload per full frame on a 1500-byte MTU with TCP timestamps (1500 - 20 IP - 32 TCP) over what tbf
#: meters (the 1514-byte frame: the 14-byte Ethernet header is part of the skb on a veth)
FRAMED = 1448 / 1514
SUBNET = ("10.213.77.1", "10.213.77.2")
PORT = 29517
#: each stage stands for a device of its own: on a shared machine the pinned stages (and the block timing)
#: run at the highest priority -- process and autogroup nice -20 -- so that other work on their CPU takes
#: little of it (with autogroup scheduling a process's nice value alone does not count between sessions)
NICE = -20


def parse_args(doc: str, result: str, models: str, *, configs: str | None = None, io: bool = False) -> argparse.Namespace:
    """The options both benchmarks take (``--out`` defaults to benchmarks/results/RESULT), with the export's
    ``--configs`` (default ``configs``) and the eager one's ``--io`` where given, in the order ``--help`` lists them."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--models", default=models)
    if configs is not None:
        ap.add_argument("--configs", default=configs, help="runtime[-int8], comma-separated")
    ap.add_argument("--rates", default="50mbit,20mbit")
    ap.add_argument("--input-size", type=int, default=160)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=4)
    if io:
        ap.add_argument("--io", default="async", choices=("async", "threads"), help="how stages overlap communication")
    ap.add_argument("--probe-bytes", type=int, default=2_000_000)
    ap.add_argument("--out", default=str(RESULTS / result))
    return ap.parse_args()


def require_machine() -> None:
    """Re-run under the stages' malloc settings, then exit with the reason unless root, ``ip``/``tc`` and two CPUs."""
    if "GLIBC_TUNABLES" not in os.environ:
        # time the blocks with the malloc settings the stages run with (see gapp_tui.pipeline.run.STAGE_MALLOC)
        from gapp_tui.pipeline.run import STAGE_MALLOC  # slow (torch); only before the re-exec

        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, GLIBC_TUNABLES=STAGE_MALLOC))
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    for tool in ("ip", "tc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing; install iproute2")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two CPUs (one per stage)")


def names(text: str) -> list[str]:
    """A comma-separated option as its items (blanks dropped)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


class NetnsPair:
    """Two namespaces joined by a veth pair; removed on exit whatever happened."""

    def __init__(self, tag: str) -> None:
        self.ns = (f"gapp-bench-{tag}-a", f"gapp-bench-{tag}-b")
        self.dev = (f"gpa{tag}"[:15], f"gpb{tag}"[:15])
        self.addr = SUBNET

    def __enter__(self) -> NetnsPair:
        try:
            for ns in self.ns:
                sh("ip", "netns", "add", ns)
            # created directly inside the namespaces: the pair never exists in the host's namespace
            sh("ip", "link", "add", self.dev[0], "netns", self.ns[0], "type", "veth",
               "peer", "name", self.dev[1], "netns", self.ns[1])
            for ns, dev, addr in zip(self.ns, self.dev, self.addr):
                sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("ip", "-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def shape(self, rate: str, burst: str = "16kb", latency: str = "100ms") -> None:
        """tbf on both ends' egress: both directions shaped to ``rate``."""
        for ns, dev in zip(self.ns, self.dev):
            sh("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", burst,
               "latency", latency)

    def qdisc(self) -> str:
        return sh("tc", "-n", self.ns[0], "qdisc", "show", "dev", self.dev[0]).stdout.strip()

    def exec_prefix(self, side: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns[side]]

    def __exit__(self, *exc: object) -> None:
        for ns in self.ns:
            sh("ip", "netns", "del", ns, check=False)


_PROBE = r"""
import socket, sys, time
role, addr, port, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if role == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, port)); s.listen(1)
    s.settimeout(20); c, _ = s.accept(); c.settimeout(20)
    got, t0 = 0, None
    while got < nbytes:
        b = c.recv(1 << 16)
        if not b: break
        if t0 is None: t0 = time.perf_counter()
        got += len(b)
    t1 = time.perf_counter(); c.sendall(b"k"); print(got, t1 - t0)
else:
    for _ in range(100):
        try:
            c = socket.create_connection((addr, port), timeout=5); break
        except OSError: time.sleep(0.05)
    c.sendall(b"x" * nbytes); c.settimeout(30); c.recv(1)
"""


def _end(*procs: subprocess.Popen) -> None:
    """Kill the probe processes still running; reap them all."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def probe(pair: NetnsPair, nbytes: int) -> float:
    """Goodput (bytes/s) of one TCP transfer from namespace a to b, timed at the receiver."""
    recv = subprocess.Popen(pair.exec_prefix(1) + [sys.executable, "-c", _PROBE, "recv", pair.addr[1], str(PORT + 1), str(nbytes)],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    send = subprocess.Popen(pair.exec_prefix(0) + [sys.executable, "-c", _PROBE, "send", pair.addr[1], str(PORT + 1), str(nbytes)])
    try:
        out, _ = recv.communicate(timeout=60)
        send.wait(timeout=10)
    finally:
        _end(recv, send)
    got, secs = out.split()
    # the first segment's arrival starts the clock: it is not counted in the bytes that the time covers
    return (int(got) - 1448) / float(secs)


def _autogroup_nice() -> int | None:
    try:
        return int(Path("/proc/self/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """This process on ``cpu`` alone at the stages' priority (``NICE``) with one torch thread, as a stage runs;
    the affinity, the process and autogroup nice values and the thread count are restored after."""
    import torch  # slow (torch)

    from gapp_tui.pipeline.stage import set_priority  # slow (torch)

    before, nice, group_nice = os.sched_getaffinity(0), os.getpriority(os.PRIO_PROCESS, 0), _autogroup_nice()
    threads = torch.get_num_threads()
    os.sched_setaffinity(0, {cpu})
    set_priority(NICE)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        if group_nice is not None:
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
                f.write(str(group_nice))
        torch.set_num_threads(threads)


def link_cpu_cost(pair: NetnsPair, nbytes: int, cpu: int = 0) -> float:
    """Seconds of ``cpu`` that each byte sent over the shaped link takes from a compute thread pinned there.

    A fixed chunk of work (a small matmul loop, one thread) is timed on ``cpu``
    alone, then while a TCP sender pinned to the same CPU pushes ``nbytes``
    through the link: the sender's system calls and the packet processing
    (tbf's timer, the veth, the peer's TCP receive path, which a veth runs in
    the sender's softirq) all take time from the chunk. Measured independently
    of any pipeline run.
    """
    import torch  # slow (torch)

    with pinned(cpu):
        a = torch.randn(96, 96)

        def chunk() -> float:
            t = time.perf_counter()
            for _ in range(20):
                a @ a
            return time.perf_counter() - t

        for _ in range(50):
            chunk()
        base = [chunk() for _ in range(400)]
        recv = subprocess.Popen(pair.exec_prefix(1) + ["taskset", "-c", str(1 - cpu), sys.executable, "-c", _PROBE,
                                "recv", pair.addr[1], str(PORT + 2), str(nbytes)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        send = subprocess.Popen(pair.exec_prefix(0) + ["taskset", "-c", str(cpu), "nice", "-n", str(NICE), sys.executable,
                                "-c", _PROBE, "send", pair.addr[1], str(PORT + 2), str(nbytes)])
        loaded: list[float] = []
        t_end = time.monotonic() + 60
        try:
            while send.poll() is None and time.monotonic() < t_end:
                loaded.append(chunk())
            recv.communicate(timeout=30)
        finally:
            _end(recv, send)
        after = [chunk() for _ in range(400)]
    idle = statistics.median(base + after)
    # the sender's start-up (a Python interpreter) also takes the CPU: leave its first chunks out
    extra = sum(max(0.0, c - idle) for c in loaded[len(loaded) // 10:])
    return max(0.0, extra / (nbytes * 0.9))


@dataclasses.dataclass
class ShapedLink:
    """One rate the namespaces are shaped to, what its probes measured, and the two link models."""

    rate: str
    rate_Bps: float
    goodput_Bps: float  # the TCP probe
    cpu_per_byte: float  # the sender's CPU seconds per byte sent
    naive: Link  # bandwidth = the tbf rate
    framed: Link  # the rate times the TCP payload share of a frame (FRAMED)


class Sweep:
    """One run of a benchmark: the shaped links it probed, a row per pipeline run, the load before and after."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.probes: dict[str, float] = {}
        self.cpu_costs: dict[str, float] = {}
        self.started = time.time()
        self.load_before = os.getloadavg()
        self.load_after = self.load_before
        self.tag = str(os.getpid() % 100000)

    @contextlib.contextmanager
    def shaped(self, rate: str, probe_bytes: int) -> Iterator[tuple[NetnsPair, ShapedLink]]:
        """Namespaces shaped to ``rate`` and probed (goodput, sender CPU per byte: recorded); removed after."""
        with NetnsPair(self.tag) as pair:
            pair.shape(rate)
            rate_Bps = parse_bandwidth(rate)
            self.probes[rate] = probe(pair, probe_bytes)
            self.cpu_costs[rate] = link_cpu_cost(pair, int(rate_Bps * 1.5))  # 1.5 s of traffic
            yield pair, ShapedLink(rate, rate_Bps, self.probes[rate], self.cpu_costs[rate],
                                   naive=Link(rate_Bps, source="tbf rate"),
                                   framed=Link(rate_Bps * FRAMED, source="tbf rate x 1448/1514"))

    def run(self, pair: NetnsPair, expected, items: int, warmup: int, **what):
        """``run_plan`` across the pair: stage 0 in namespace a pinned to CPU 0, stage 1 in b on CPU 1, one thread
        each at ``NICE``, rendezvous on a's address (a port of its own per run). ``what``: the plan or the export."""
        from gapp_tui.pipeline import run_plan  # slow (torch)

        return run_plan(
            **what, items=items, warmup=warmup, latency_items=3,
            master_addr=pair.addr[0], master_port=PORT + 2 + len(self.rows), timeout=60, deadline=600,
            threads=1, cpus=[[0], [1]], prefixes=[pair.exec_prefix(0), pair.exec_prefix(1)], nice=NICE,
            ifnames=list(pair.dev), estimate=expected.to_dict(),
        )

    def finish(self) -> None:
        self.load_after = os.getloadavg()

    def where(self, script: str) -> str:
        """The results' first words: the script, the machine and when the run started."""
        return (f"`benchmarks/{script}` on {platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}),"
                f" {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.started))}")

    def goodputs(self) -> str:
        """The TCP probe per rate, as ``50mbit: 48.17 Mbit/s, ...``."""
        return ", ".join(f"{r}: {v * 8 / 1e6:.2f} Mbit/s" for r, v in self.probes.items())

    def sender_costs(self) -> str:
        """The sender's CPU time per byte per rate, as ``50mbit: 10.1 ns/B, ...``."""
        return ", ".join(f"{r}: {v * 1e9:.1f} ns/B" for r, v in self.cpu_costs.items())

    def save(self, out: str, title: str, script: str, about: str, paragraphs: list[str]) -> None:
        """The results: ``out``.md (``title``; where and when, then ``about``; the ``paragraphs``), printed too,
        and ``out``.json (the rows, the probes, the load before and after)."""
        text = "\n\n".join([f"# {title}", f"{self.where(script)}. {about}", *paragraphs]) + "\n"
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".md").write_text(text)
        path.with_suffix(".json").write_text(json.dumps({"rows": self.rows, "probes_Bps": self.probes, "framed": FRAMED,
                                                         "cpu_per_byte_s": self.cpu_costs,
                                                         "load": [self.load_before, self.load_after]}, indent=2) + "\n")
        print(text)


def seeded_chain(name: str, input_size: int):
    """The model's block chain with the weights of seed 0 (those `gapp export --seed 0` builds)."""
    import torch  # slow (torch)

    from gapp_tui.blocks import BlockChain  # slow (torch)
    from gapp_tui.zoo import ModelSpec  # slow (torch)

    spec = ModelSpec(name, input_size=input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BlockChain.from_spec(spec)


def block_times(chain, cpu: int, fns=None) -> list[float]:
    """Seconds per block with one thread pinned to ``cpu`` (each block timed inside whole-chain runs).

    ``fns``: what runs each block (default: the chain's own modules; a runtime's loaded artifacts in
    ``pipeline_netns_export.py``)."""
    import torch  # slow (torch)

    from gapp_tui.measure.timer import Precision, time_sequence  # slow (torch)

    with pinned(cpu):  # as the stages will run
        x = chain.spec.example_input()
        with torch.inference_mode():
            stats, _, _ = time_sequence(fns or [b.module for b in chain.blocks], (x,),
                                        precision=Precision(min_runs=8, max_runs=40, max_time_s=1.0, target_ci=0.02))
    return [s.median_ms / 1e3 for s in stats]


def _with_block_times(table, times: dict[str, list[float]]):
    """``table`` with ``times`` (seconds per block per device, labelled measured) in place of its own."""
    return type(table)(table.blocks, times, table.cut_bytes, table.cut_tensors, table.param_bytes,
                       "measured", table.model, table.granularity, table.batch_size,
                       cut_bytes_int8=table.cut_bytes_int8, send_dtype=table.send_dtype)


def estimate_with(table, plan, link, compute: list[float] | None = None, cpu_per_byte: float = 0.0):
    """The partition estimate of ``plan`` with ``link`` (and stage compute times replaced when given).

    ``cpu_per_byte`` charges each stage ``cpu_per_byte * bytes`` of compute for the cut it sends
    (added to its last block's time).
    """
    p = dataclasses.replace(plan, links=chain_links(plan.devices, link, plan.return_output), estimate=None)
    if compute is not None:
        # the first block of each stage carries the stage's measured compute time, the others nothing
        times = {d: [0.0] * table.n for d in plan.devices}
        for s, d in enumerate(plan.devices):
            lo, hi = plan.boundaries[s], plan.boundaries[s + 1]
            if hi > lo:
                times[d][lo] = compute[s]
        table = _with_block_times(table, times)
    if cpu_per_byte:
        times = {d: list(table.times[d]) for d in table.times}
        k = len(plan.devices)
        for s, d in enumerate(plan.devices):
            lo, hi = plan.boundaries[s], plan.boundaries[s + 1]
            sent = plan.boundaries[s + 1] if s < k - 1 else table.n
            if s == k - 1 and not plan.return_output:
                continue
            if hi > lo:  # what the stage really sends there (int8 after an int8 device; the output as it is)
                times[d][hi - 1] += cpu_per_byte * (table.bytes_sent(d)[sent] if s < k - 1 else table.cut_bytes[sent])
        table = _with_block_times(table, times)
    return estimate(table, p)


@dataclasses.dataclass
class Compared:
    """A run against its estimates, made from the mean of the block times before and after it."""

    est: object  # the estimate for the framed link
    fields: dict  # the measured throughput, each estimate and its ratio, the stage times: a row's common columns


def compare(chain, table, plan, times: list[float], link: ShapedLink, result, est_before, fns=None) -> Compared:
    """Time the blocks again after the run (a drift of the shared machine's load during the run then moves both
    sides alike), and estimate from the mean of both timings: the framed link, the naive one, the framed one with
    the sender's CPU per byte, and the framed one with each stage's compute time as measured during the run."""
    after = block_times(chain, cpu=0, fns=fns)
    drift = sum(after) / sum(times)
    mean = [(a + b) / 2 for a, b in zip(times, after)]
    table = table.with_times("stage0", mean, "measured").with_times("stage1", mean, "measured")
    est = estimate_with(table, plan, link.framed)
    est_naive = estimate_with(table, plan, link.naive)
    est_cpu = estimate_with(table, plan, link.framed, cpu_per_byte=link.cpu_per_byte)
    measured_compute = [st["compute_s"]["mean"] for st in result.stages]
    est_run = estimate_with(table, plan, link.framed, compute=measured_compute)
    measured = result.throughput_per_s
    fields = {
        "measured_per_s": measured,
        "est_framed_per_s": est.throughput, "ratio_framed": measured / est.throughput,
        "est_naive_per_s": est_naive.throughput, "ratio_naive": measured / est_naive.throughput,
        "est_framed_cpu_per_s": est_cpu.throughput, "ratio_framed_cpu": measured / est_cpu.throughput,
        "est_framed_before_per_s": est_before.throughput, "ratio_framed_before": measured / est_before.throughput,
        "est_run_compute_per_s": est_run.throughput, "ratio_run_compute": measured / est_run.throughput,
        "block_time_drift": drift,
        "compute_est_ms": [s.compute_s * 1e3 for s in est.stages],
        "compute_run_ms": [c * 1e3 for c in measured_compute],
        "compute_run_cpu_ms": [st["compute_cpu_s"]["mean"] * 1e3 for st in result.stages],
        "link_est_ms": est.transfers[0].seconds * 1e3,
        "latency_est_ms": est.latency_s * 1e3,
        "latency_run_ms": result.latency_isolated_s["p50"] * 1e3,
    }
    return Compared(est, fields)


def stage_times(row: dict) -> str:
    """A row's stage compute times, estimated / measured during the run (ms), as ``4.2 + 4.1 / 4.4 + 4.1``."""
    return (f"{' + '.join(f'{a:.1f}' for a in row['compute_est_ms'])} /"
            f" {' + '.join(f'{a:.1f}' for a in row['compute_run_ms'])}")


def within(rows: list[dict], key: str, tolerance: float = 0.10) -> int:
    """How many rows have the ratio ``key`` within ``tolerance`` of 1."""
    return sum(1 for r in rows if abs(r[key] - 1) <= tolerance)


def _terminate(signum, frame):  # a SIGTERM unwinds like Ctrl-C, so the namespaces are removed
    raise KeyboardInterrupt


def main_unwinding(main) -> None:
    """Run ``main`` so that a SIGTERM or Ctrl-C unwinds it (the namespaces are removed) and ends quietly."""
    signal.signal(signal.SIGTERM, _terminate)
    with contextlib.suppress(KeyboardInterrupt):
        main()
