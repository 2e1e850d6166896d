"""Remote (over SSH) versus local measurement of resnet18's blocks, and the link probe on loopback.

    .venv/bin/python benchmarks/remote_overhead.py [--size 224] [--threads 1] [--max-time 1.0]

The "device" is this machine behind a real OpenSSH server on 127.0.0.1 (the
test suite's, tests/sshd.py), so both measurements run on the same CPU:

* **wall time** of a full measurement (standalone + in-context blocks and the
  full model) locally and remotely, and where the remote extra goes: login and
  the Python/torch check, TorchScript serialisation, the SFTP upload, the
  agent's start (Python + torch import + loading the archive) and the
  measuring itself;
* **per-block medians**, local (eager fx GraphModules) against remote (the
  same blocks as TorchScript, run by the agent): what the serialisation
  changes in the numbers themselves;
* **the link probe** on loopback (latency, bandwidth each way through SSH).

Prints markdown tables and writes benchmarks/results/remote_overhead.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224, help="input size (default 224)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides (default 1)")
    ap.add_argument("--max-time", type=float, default=1.0, help="seconds of timing per block at most")
    ap.add_argument("--target-ci", type=float, default=0.02)
    args = ap.parse_args()

    import torch

    from gapp_tui import link_probe
    from gapp_tui import ssh as R
    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.remote_engine import measure_remote
    from gapp_tui.measure.timer import Precision
    from gapp_tui.store import Store
    from gapp_tui.zoo import ModelSpec
    from tests.sshd import SSHServer

    torch.set_num_threads(args.threads)
    spec = ModelSpec("resnet18", input_size=args.size)
    precision = Precision(max_time_s=args.max_time, target_ci=args.target_ci, max_runs=200)
    cfg = lambda: MeasureConfig(precision=precision, threads=args.threads)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="gapp-bench-remote-"))
    load_before = os.getloadavg()[0]

    def run_local(tag: str):
        t = time.perf_counter()
        with Store(work / f"local-{tag}.sqlite") as st:
            res = measure(spec, cfg(), store=st)
        return res, time.perf_counter() - t

    # local, remote, local again: on a shared machine the load drifts, so the remote run is
    # compared with the two local runs around it
    local, local_s = run_local("a")

    marks: dict[str, float] = {}

    def log(message: str) -> None:
        now = time.perf_counter()
        if message.startswith("serialising"):
            marks.setdefault("checked", now)
        elif message.startswith("uploaded"):
            marks.setdefault("uploaded", now)

    def progress(p) -> None:
        now = time.perf_counter()
        if p.phase == "prepare":
            marks.setdefault("checked", now)
        if p.phase in ("standalone", "in-context") and "agent_ready" not in marks:
            marks["agent_ready"] = now

    with SSHServer(work / "sshd") as server:
        server.trust()
        t0 = time.perf_counter()
        with R.connect(server.target, port=server.port, identity=server.client_key,
                       known_hosts=server.known_hosts) as session:
            marks["connected"] = time.perf_counter()
            with Store(work / "remote.sqlite") as st:
                remote = measure_remote(session, spec, cfg(), store=st, remote_python=sys.executable,
                                        progress=progress, log=log)
            marks["done"] = time.perf_counter()
            probe = link_probe.probe(session, sys.executable)
        remote_s = marks["done"] - t0
    local_b, local_b_s = run_local("b")
    load_after = os.getloadavg()[0]

    # where the remote time goes (marks are taken as the events arrive)
    phases = [
        ("login (TCP, SSH handshake, key auth)", t0, marks["connected"]),
        ("remote Python/torch check", marks["connected"], marks.get("checked", marks["connected"])),
        ("trace + TorchScript serialisation + SFTP upload", marks.get("checked", marks["connected"]), marks["uploaded"]),
        ("agent start (python + import torch + load archive)", marks["uploaded"], marks["agent_ready"]),
        ("measuring + streaming rows + cleanup", marks["agent_ready"], marks["done"]),
    ]
    lines = [
        f"# Remote over SSH versus local measurement: resnet18 ({'x'.join(map(str, spec.shape))})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__},"
        f" {args.threads} thread(s) on both sides; the device is this machine behind OpenSSH on 127.0.0.1."
        f" Load average {load_before:.1f} before, {load_after:.1f} after (the machine was shared with other jobs:"
        " times are noisy).",
        f"Precision: at most {args.max_time:g} s per block, median interval ±{args.target_ci:.0%}.",
        "",
        "## Wall time of one full measurement (10 blocks x 2 modes + the full model)",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| local (before) | {local_s:.1f} |",
        f"| remote | {remote_s:.1f} |",
        f"| local (after) | {local_b_s:.1f} |",
        f"| remote extra (vs the mean of the local runs) | {remote_s - (local_s + local_b_s) / 2:+.1f} |",
        "",
        "Remote, by phase:",
        "",
        "| phase | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {b - a:.2f} |" for name, a, b in phases]
    by = lambda res: {(m, r["block"]): r for m, rows in res.rows.items() for r in rows}  # noqa: E731
    la, lb, rr = by(local), by(local_b), by(remote)
    lines += [
        "",
        "## Per-block medians: local eager blocks versus the same blocks as TorchScript on the agent",
        "",
        "Local is the mean of the two local runs' medians; the ratio is remote / local"
        " (and, in brackets, the same ratio of the fastest runs, less sensitive to the machine's load).",
        "",
        "| block | standalone local ms | remote ms | ratio | in-context local ms | remote ms | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios: dict[str, list[float]] = {"standalone": [], "in-context": []}
    min_ratios: dict[str, list[float]] = {"standalone": [], "in-context": []}
    blocks = []
    n = len(local.blocks)
    for i, name in enumerate(local.blocks):
        cells = [name]
        row = {"block": name}
        for mode in ("standalone", "in-context"):
            a = (la[(mode, i)]["median_ms"] + lb[(mode, i)]["median_ms"]) / 2
            amin = min(la[(mode, i)]["min_ms"], lb[(mode, i)]["min_ms"])
            b, bmin = rr[(mode, i)]["median_ms"], rr[(mode, i)]["min_ms"]
            ratios[mode].append(b / a)
            min_ratios[mode].append(bmin / amin)
            cells += [f"{a:.3f}", f"{b:.3f}", f"{b / a:.2f} ({bmin / amin:.2f})"]
            row[mode] = {"local_ms": [la[(mode, i)]["median_ms"], lb[(mode, i)]["median_ms"]], "remote_ms": b,
                         "local_min_ms": amin, "remote_min_ms": bmin}
        blocks.append(row)
        lines.append("| " + " | ".join(cells) + " |")
    sums = {m: (sum((la[(m, i)]["median_ms"] + lb[(m, i)]["median_ms"]) / 2 for i in range(n)),
                sum(rr[(m, i)]["median_ms"] for i in range(n))) for m in ratios}
    lines.append("| **sum** | " + " | ".join(
        f"**{sums[m][0]:.2f}** | **{sums[m][1]:.2f}** | **{sums[m][1] / sums[m][0]:.2f}**" for m in ratios) + " |")
    full_l = (local.full["median_ms"] + local_b.full["median_ms"]) / 2
    full_r = remote.full["median_ms"]
    lines += [
        "",
        f"Full model: local {local.full['median_ms']:.2f} / {local_b.full['median_ms']:.2f} ms (before / after),"
        f" remote {full_r:.2f} ms (ratio {full_r / full_l:.2f}).",
        "Median per-block ratio remote/local: " + ", ".join(
            f"{m} {statistics.median(r):.2f} (fastest runs {statistics.median(min_ratios[m]):.2f})"
            for m, r in ratios.items()) + ".",
        "",
        "## Link probe on loopback (through the SSH channel)",
        "",
        "| direction | bandwidth | fixed cost per transfer |",
        "|---|---:|---:|",
    ]
    from gapp_tui.units import format_bandwidth, format_time

    for d in link_probe.DIRECTIONS:
        lines.append(f"| {d.replace('_', ' ')} | {format_bandwidth(probe.bandwidth_Bps[d])} |"
                     f" {format_time(max(probe.intercept_s[d], 0.0))} |")
    lines += [
        "",
        f"One-way latency (half the median round trip of {len(probe.rtt_s)} one-byte pings):"
        f" {format_time(probe.latency_s)}. Probe took {probe.seconds:.1f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "remote_overhead.md").write_text(text)
    doc = {
        "model": "resnet18", "input_shape": list(spec.shape), "threads": args.threads,
        "precision": precision.to_dict(), "load_before": load_before, "load_after": load_after,
        "local_s": [local_s, local_b_s], "remote_s": remote_s,
        "phases": {name: b - a for name, a, b in phases},
        "blocks": blocks, "sums": {m: {"local_ms": a, "remote_ms": b} for m, (a, b) in sums.items()},
        "median_ratio": {m: statistics.median(r) for m, r in ratios.items()},
        "median_ratio_fastest": {m: statistics.median(r) for m, r in min_ratios.items()},
        "full": {"local_ms": full_l, "remote_ms": full_r},
        "link": probe.to_dict(),
    }
    (OUT / "remote_overhead.json").write_text(json.dumps(doc, indent=2, default=str))


if __name__ == "__main__":
    main()
