"""Pipeline runs: real gloo processes on 127.0.0.1 execute a plan and give the unsplit model's output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

import pytest
import torch
from torch import nn

from gapp_tui.blocks import BlockChain
from gapp_tui.errors import BadInput
from gapp_tui.pipeline import PipelineError, check_cuts, plan_dict, read_plan, run_plan
from gapp_tui.zoo import ModelSpec
from tests.sshd import sshd  # noqa: F401  (a real OpenSSH server on 127.0.0.1: the "remote" host)

RESNET = ModelSpec("resnet18", input_size=32, num_classes=10)
TWO_BRANCH = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16))
ROOT = Path(__file__).resolve().parents[1]
FAST = dict(items=4, warmup=1, latency_items=1, timeout=20.0, deadline=120.0)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0): it must at least not be running
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] == "Z"


class _Pids:
    def __init__(self) -> None:
        self.pids: list[int] = []
        self.events: list[str] = []

    def __call__(self, name, info) -> None:
        self.events.append(name)
        if name == "started":
            self.pids = list(info["pids"])


def test_two_stages_give_the_unsplit_models_output():
    n = len(BlockChain.from_spec(RESNET, device="meta"))
    seen = _Pids()
    # one thread per activity here (the other tests use the default: one thread, non-blocking gloo calls)
    result = run_plan(plan_dict(RESNET, ["pi", "server"], [0, 4, n]), on_event=seen, io="threads", **FAST)
    assert result.output_max_abs_diff <= 1e-5
    assert result.weights_match  # both stages (and the launcher) built the same seeded weights
    assert [s["blocks"] for s in result.stages] == [[0, 4], [4, n]]
    assert result.throughput_per_s > 0 and result.latency_isolated_s["n"] == 1
    assert all(s["compute_s"]["n"] == FAST["items"] for s in result.stages)
    assert seen.events[0] == "started" and seen.events[-1] == "done" and "streaming" in seen.events
    assert len({s["pid"] for s in result.stages}) == 2  # one process per stage
    assert all(_gone(p) for p in seen.pids)


def test_a_killed_stage_ends_the_run_within_the_timeout_and_leaves_no_process():
    n = len(BlockChain.from_spec(TWO_BRANCH, device="meta"))
    seen = _Pids()
    killed = {}

    def kill_stage_1(name, info):
        seen(name, info)
        if name == "streaming" and not killed:
            os.kill(seen.pids[1], signal.SIGKILL)
            killed["at"] = time.monotonic()

    # far more items than the test waits for: only the kill can end it early
    with pytest.raises(PipelineError) as exc:
        run_plan(
            plan_dict(TWO_BRANCH, ["pi", "server"], [0, 2, n]),
            items=100_000, warmup=2, latency_items=0, timeout=10.0, deadline=120.0, on_event=kill_stage_1,
        )
    took = time.monotonic() - killed["at"]
    message = str(exc.value)
    assert "\n" not in message
    assert "stage 1" in message and "SIGKILL" in message
    assert took < 5.0, f"the run took {took:.1f} s to notice a dead stage"
    assert all(_gone(p) for p in seen.pids)


def gapp(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "gapp_tui", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=180)


def test_cli_three_stages_cut_through_a_skip_connection(tmp_path):
    chain = BlockChain.from_spec(TWO_BRANCH, device="meta")
    bounds = [0, 2, 3, len(chain)]
    # the skip tensor `a` crosses both inner cuts beside the main path
    assert chain.cuts[2].count == 2 and chain.cuts[3].count == 2
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_dict(TWO_BRANCH, ["a", "b", "c"], bounds)))
    r = gapp("pipeline", "run", str(plan), "--items", "3", "--warmup", "1", "--latency-items", "1",
             "--timeout", "20", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout holds exactly one JSON document
    assert doc["check"]["output_max_abs_diff"] <= 1e-5 and doc["check"]["weights_match"]
    assert doc["measured"]["throughput_per_s"] > 0
    assert doc["boundaries"] == bounds
    assert [s["in_tensors"] for s in doc["stages"]] == [1, 2, 2]
    assert [s["out_tensors"] for s in doc["stages"]] == [2, 2, 1]
    assert len({s["pid"] for s in doc["stages"]}) == 3
    # the plan's links, re-estimated with the compute times this run measured
    assert doc["estimate_with_run_compute"]["throughput_per_s"] > 0 and doc["throughput_ratio_run_compute"] > 0


def test_cli_rejects_boundaries_out_of_order_with_one_line(tmp_path):
    doc = plan_dict(TWO_BRANCH, ["pi", "server"], [0, 3, 2])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(doc))
    proc = gapp("pipeline", "run", str(plan))
    assert proc.returncode == 2
    assert "out of order" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_boundaries_beyond_the_chain_are_bad_input_before_any_process_starts():
    seen = _Pids()
    with pytest.raises(BadInput, match="out of range"):
        run_plan(plan_dict(TWO_BRANCH, ["a", "b"], [0, 2, 99]), on_event=seen, **FAST)
    assert seen.pids == []


def test_a_stage_on_a_remote_host_over_ssh(sshd, tmp_path):  # noqa: F811 (sshd: the fixture of tests.sshd)
    """Stage 1 runs on "another host": a real sshd on 127.0.0.1, reached with the SSH runner."""
    from gapp_tui.ssh import SSHOptions

    n = len(BlockChain.from_spec(TWO_BRANCH, device="meta"))
    doc = plan_dict(TWO_BRANCH, ["pi", "server"], [0, 2, n], hosts={"server": f"{sshd.target}:{sshd.port}"})
    ssh = SSHOptions(identity=str(sshd.client_key), known_hosts=str(sshd.trust(tmp_path / "known_hosts")),
                     remote_python=sys.executable, env={"PYTHONPATH": str(ROOT)})
    seen = _Pids()

    def kill_remote(name, info):
        seen(name, info)
        if name == "streaming":
            seen.pids = list(info["pids"])

    result = run_plan(doc, ssh=ssh, on_event=kill_remote, **FAST)
    assert result.output_max_abs_diff <= 1e-5 and result.weights_match
    remote_pid = result.stages[1]["pid"]
    assert remote_pid == seen.pids[1] and remote_pid != seen.pids[0]
    deadline = time.monotonic() + 5
    while not _gone(remote_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(remote_pid)


def test_a_dropped_ssh_connection_ends_the_run_and_the_remote_stage(sshd, tmp_path):  # noqa: F811
    from gapp_tui.ssh import SSHOptions

    n = len(BlockChain.from_spec(TWO_BRANCH, device="meta"))
    doc = plan_dict(TWO_BRANCH, ["pi", "server"], [0, 2, n], hosts={"server": f"{sshd.target}:{sshd.port}"})
    ssh = SSHOptions(identity=str(sshd.client_key), known_hosts=str(sshd.trust(tmp_path / "known_hosts")),
                     remote_python=sys.executable, env={"PYTHONPATH": str(ROOT)})
    pids: list[int] = []

    def drop(name, info):
        if name == "streaming" and not pids:
            pids.extend(info["pids"])
            assert sshd.kill_sessions() >= 1  # the network "drops"

    t0 = time.monotonic()
    with pytest.raises(PipelineError) as exc:
        run_plan(doc, ssh=ssh, on_event=drop, items=100_000, warmup=2, latency_items=0, timeout=10.0, deadline=120.0)
    assert time.monotonic() - t0 < 60
    assert "stage" in str(exc.value) and "\n" not in str(exc.value)
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [(p, open(f"/proc/{p}/cmdline").read()[:80]) for p in pids if not _gone(p)]
    assert not alive, f"a stage outlived its SSH connection: {alive} {str(exc.value)}"


class _SizeAcrossCut(nn.Module):
    """``x.size(0)`` is an int that crosses a cut at op granularity: not sendable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        n = x.size(0)
        y = torch.relu(self.conv(x))
        return self.fc(y.reshape(n, -1))


def size_across_cut() -> nn.Module:
    return _SizeAcrossCut()


def test_a_non_tensor_crossing_a_cut_is_rejected_at_plan_time():
    spec = ModelSpec("tests.test_pipeline:size_across_cut", input_shape=(1, 3, 8, 8))
    chain = BlockChain.from_spec(spec, "op", device="meta")
    bad = next(k for k, c in enumerate(chain.cuts) if any(not t.is_tensor for t in c.tensors))
    with pytest.raises(BadInput, match="not a tensor"):
        check_cuts(chain, [0, bad, len(chain)])
    with pytest.raises(BadInput, match="not a tensor"):
        run_plan(plan_dict(spec, ["a", "b"], [0, bad, len(chain)], granularity="op"), **FAST)


def test_read_plan_uses_the_partition_plan_and_names_stages():
    doc = plan_dict(TWO_BRANCH, ["pi", "server"], [0, 2, 4])
    view = read_plan(doc)
    assert view.stages == 2 and view.stage_blocks(1) == (2, 4) and view.host_of(0) is None
    assert view.spec == TWO_BRANCH


def test_the_estimate_is_remade_with_the_chains_cuts_and_given_stage_times():
    from gapp_tui.pipeline.compare import stage_estimate

    chain = BlockChain.from_spec(TWO_BRANCH, device="meta")
    n = len(chain)
    doc = plan_dict(TWO_BRANCH, ["pi", "server"], [0, 2, n], bandwidth_Bps=1e6)
    est = stage_estimate(read_plan(doc), chain, [0.010, 0.004])
    link_s = chain.cuts[2].bytes / 1e6  # the two tensors crossing cut 2, at 1 MB/s
    assert est["transfers"][0]["bytes"] == chain.cuts[2].bytes and est["transfers"][0]["tensors"] == 2
    assert est["period_s"] == pytest.approx(max(0.010, 0.004, link_s))
    assert est["latency_s"] == pytest.approx(0.010 + 0.004 + link_s)
