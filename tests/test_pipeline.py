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
from tests.sshd import python_without, sshd  # noqa: F401  (a real OpenSSH server on 127.0.0.1: the "remote" host)

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


# --------------------------------------------------------------------------- exported stages (--from-export)


needs_ort = pytest.mark.skipif(not __import__("gapp_tui.runtime", fromlist=["available"]).available("onnxruntime"),
                               reason="onnxruntime is not installed")


def _estimated_plan(hosts=None) -> dict:
    """A 2-stage plan of TWO_BRANCH with an estimate (what `gapp partition -o` writes)."""
    from gapp_tui.partition import CostTable, Link, Plan, estimate

    chain = BlockChain.from_spec(TWO_BRANCH, device="meta")
    table = CostTable.from_chain(chain, {"pi": [1e-3] * 4, "server": [2e-3] * 4})
    plan = Plan.build(table, ["pi", "server"], [0, 2, 4], Link.parse("100Mbit/s", "1ms"), return_output=True,
                      hosts=hosts)
    plan.estimate = estimate(table, plan).to_dict()
    return plan.to_dict()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The plan exported twice: pi under ONNX Runtime (float32, and int8), the server eager."""
    from gapp_tui.pipeline.export import export_plan

    if not __import__("gapp_tui.runtime", fromlist=["available"]).available("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    root = tmp_path_factory.mktemp("exports")
    export_plan(_estimated_plan(), root / "fp32", runtime="pi=onnxruntime")
    export_plan(_estimated_plan(), root / "int8", runtime="pi=onnxruntime", quantize="pi=int8")
    return {"fp32": root / "fp32", "int8": root / "int8"}


@needs_ort
def test_exported_stages_run_locally_and_give_the_unsplit_models_output(exports):
    d = exports["fp32"]
    r = gapp("pipeline", "run", "--from-export", str(d), "--items", "3", "--warmup", "1", "--latency-items", "1",
             "--timeout", "20", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    chk = doc["check"]
    assert chk["output_ok"] and chk["output_max_abs_diff"] <= 1e-4 and chk["weights_match"]
    assert doc["export"] == str(d) and doc["boundaries"] == [0, 2, 4]
    manifest = json.loads((d / "manifest.json").read_text())
    # each stage ran its artifact under its runtime, and proved it was the exported one
    assert [s["runtime"] for s in doc["stages"]] == ["onnxruntime", "eager"]
    assert [s["weights_digest"] for s in doc["stages"]] == [s["sha256"] for s in manifest["stages"]]
    # compared with the export's estimate: the plan's compute times with the bytes the exported cuts send
    assert doc["estimate_source"] == "export (wire bytes)"
    assert doc["estimate"]["throughput_per_s"] == pytest.approx(manifest["estimate"]["wire"]["throughput_per_s"])


@needs_ort
def test_an_int8_export_sends_int8_and_is_checked_by_its_cosine(exports):
    d = exports["int8"]
    result = run_plan(from_export=d, **FAST)
    manifest = json.loads((d / "manifest.json").read_text())
    cut = manifest["cuts"][1]
    assert [w["dtype"] for w in cut["wire"]] == ["int8"] * len(cut["tensors"])
    # stage 1 received int8: a quarter of the float32 bytes the cut carries
    assert result.stages[1]["in_bytes"] * 4 == sum(t["bytes"] for t in cut["tensors"])
    assert result.stages[0]["out_bytes"] == result.stages[1]["in_bytes"] and result.stages[0]["quantize"] == "int8"
    assert result.min_cosine == 0.99 and result.output_cosine >= 0.99 and result.output_ok
    assert 0 < result.output_max_abs_diff < 0.5 and result.weights_match


@needs_ort
def test_an_exported_stage_runs_over_ssh_without_gapp_on_the_host(exports, sshd, tmp_path):  # noqa: F811
    """Stage 0 (ONNX Runtime) on "another host" whose Python cannot import gapp_tui: the loop, the runner and the
    artifact are copied there, into a private directory that is gone afterwards."""
    from gapp_tui.ssh import SSHOptions

    python = python_without(tmp_path, ["gapp_tui"])
    assert subprocess.run([python, "-c", "import gapp_tui"], capture_output=True).returncode != 0
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    plan = _estimated_plan(hosts={"pi": f"{sshd.target}:{sshd.port}"})  # the exported plan, run with its hosts
    ssh = SSHOptions(identity=str(sshd.client_key), known_hosts=str(sshd.trust(tmp_path / "known_hosts")),
                     remote_python=python, remote_tmp=str(remote_tmp))
    seen = _Pids()

    def pids_when_streaming(name, info):  # a remote stage's pid is known once it has announced it
        seen(name, info)
        if name == "streaming":
            seen.pids = list(info["pids"])

    result = run_plan(plan, from_export=exports["fp32"], ssh=ssh, on_event=pids_when_streaming, **FAST)
    assert result.output_ok and result.output_max_abs_diff <= 1e-4 and result.weights_match
    assert result.stages[0]["runtime"] == "onnxruntime" and result.stages[0]["pid"] == seen.pids[0]
    assert list(remote_tmp.iterdir()) == []  # the private directory and the copied artifact are gone
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in seen.pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in seen.pids)


@needs_ort
def test_a_host_without_the_stages_runtime_fails_before_any_stage_starts(exports, sshd, tmp_path):  # noqa: F811
    from gapp_tui.ssh import SSHOptions

    python = python_without(tmp_path, ["onnxruntime"])
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    host = f"{sshd.target}:{sshd.port}"
    plan = _estimated_plan(hosts={"pi": host})
    known = sshd.trust(tmp_path / "known_hosts")
    seen = _Pids()
    ssh = SSHOptions(identity=str(sshd.client_key), known_hosts=str(known), remote_python=python,
                     remote_tmp=str(remote_tmp))
    with pytest.raises(BadInput) as exc:
        run_plan(plan, from_export=exports["fp32"], ssh=ssh, on_event=seen, **FAST)
    assert seen.events == [] and list(remote_tmp.iterdir()) == []  # nothing started, nothing uploaded
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    r = gapp("pipeline", "run", str(tmp_path / "plan.json"), "--from-export", str(exports["fp32"]),
             "--identity", str(sshd.client_key), "--known-hosts", str(known), "--remote-python", python)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and r.stdout == ""
    for words in (host, "'onnxruntime'", f"{python} -m pip install onnxruntime"):
        assert words in lines[0] and words in str(exc.value), (words, lines[0])


def test_a_plan_that_is_not_the_exported_one_is_refused(exports):
    other = plan_dict(TWO_BRANCH, ["pi", "server"], [0, 3, 4])
    with pytest.raises(BadInput, match="differ in their boundaries"):
        run_plan(other, from_export=exports["fp32"], **FAST)
    with pytest.raises(BadInput, match="not a GAPP export|does not exist"):
        run_plan(from_export=exports["fp32"].parent / "nothing-here", **FAST)
