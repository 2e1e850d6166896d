"""`gapp partition` as a user runs it: times from a real store, from FLOPs; the plan file; bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gapp_tui.cli import app
from gapp_tui.partition import Plan
from gapp_tui.store import Store
from tests.sshd import sshd  # noqa: F401  (a real OpenSSH server on 127.0.0.1, for the link probe)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["tests.custom_models:two_branch", "--input-shape", "1,3,16,16"]
FLOPS = ["--times", "flops", "--rate", "pi=1GFLOPs", "--rate", "server=20GFLOPs"]


def gapp(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def measured_db(tmp_path_factory):
    """A store holding real in-context measurements of the tiny model under two device names."""
    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.timer import Precision
    from gapp_tui.zoo import ModelSpec

    path = tmp_path_factory.mktemp("store") / "gapp.sqlite"
    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16))
    keys = {}
    with Store(path) as store:
        for name in ("pi", "server"):
            cfg = MeasureConfig(modes=("in-context",), full=False, threads=1, precision=Precision.quick(), device_name=name)
            result = measure(spec, cfg, store=store)
            keys[name] = result.device["key"]
    return path, keys


def test_flops_plan_json_and_plan_file(tmp_path):
    out = tmp_path / "plan.json"
    r = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--bandwidth", "100Mbit/s",
             "--latency", "2ms", "--host", "pi=pi@10.0.0.2:22", "--json", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["devices"] == ["pi", "server"] and doc["times"]["pi"]["source"] == "flops"
    plan = Plan.load(out)
    assert plan.to_dict() == doc["plan"] and plan.hosts == {"pi": "pi@10.0.0.2:22", "server": None}
    assert plan.boundaries[0] == 0 and plan.boundaries[-1] == doc["blocks"]
    assert plan.model["name"] == "tests.custom_models:two_branch" and plan.model["input_shape"] == [1, 3, 16, 16]
    assert doc["links"][0]["bandwidth_Bps"] == 12.5e6 and doc["links"][0]["latency_s"] == 0.002
    assert set(doc["baselines"]) == {"balanced", "neurosurgeon", "first_only", "last_only"}
    for b in doc["baselines"].values():
        assert b["estimate"]["period_s"] >= doc["estimate"]["period_s"]
    # the server is 20x faster per FLOP: the pi's stage is the bottleneck or empty
    assert doc["estimate"]["bottleneck"]["name"]


def test_measured_times_come_from_the_store(measured_db):
    path, keys = measured_db
    r = gapp("partition", *MODEL, "--devices", "pi,server", "--times", "measured", "--db", str(path),
             "--device-times", f"pi={keys['pi']}", "--device-times", f"server={keys['server']}",
             "--bandwidth", "1Gbps", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    with Store(path, readonly=True) as store:
        pi_ms = store.block_times("tests.custom_models:two_branch", keys["pi"], mode="in-context")
    assert doc["times"]["pi"]["total_s"] == pytest.approx(sum(pi_ms) / 1e3)
    stages = doc["estimate"]["stages"]
    lo, hi = stages[0]["start"], stages[0]["end"]
    assert stages[0]["compute_s"] == pytest.approx(sum(pi_ms[lo:hi]) / 1e3)
    assert all(s["sources"] in ([], ["measured"]) for s in stages)


def test_mixed_sources_per_device(measured_db):
    path, keys = measured_db
    r = gapp("partition", *MODEL, "--devices", "pi,server", "--times", "pi=measured", "--times", "server=flops",
             "--rate", "server=20GFLOPs", "--db", str(path), "--device-times", f"pi={keys['pi']}",
             "--bandwidth", "1Gbps", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["times"]["pi"]["source"] == "measured" and doc["times"]["server"]["source"] == "flops"


def test_a_device_not_in_the_store_is_one_line_bad_input(measured_db):
    path, _ = measured_db
    r = gapp("partition", *MODEL, "--devices", "pi,server", "--times", "measured", "--db", str(path),
             "--bandwidth", "1Gbps")
    assert r.exit_code == 2
    # two stored devices measured the model and neither is called pi: which one is not guessed
    assert "device 'pi': 2 stored devices measured" in r.stderr and r.stderr.count("\n") == 1
    r = gapp("partition", *MODEL, "--devices", "pi=measured:nosuchkey,server", "--db", str(path),
             "--bandwidth", "1Gbps")
    assert r.exit_code == 2
    assert "device key 'nosuchkey' of 'pi' has no measurements" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args, words",
    [
        (["--bandwidth", "0Mbit/s"], "bandwidth '0Mbit/s' must be positive"),
        (["--bandwidth", "100Mfurlongs/s"], "unit 'Mfurlongs/s' is not known"),
        (["--bandwidth", "100Mbit/s", "--latency", "2 fortnights"], "latency '2 fortnights'"),
        (["--bandwidth", "100Mbit/s", "--rate", "gpu=1GFLOPs"], "not in --devices"),
        (["--bandwidth", "100Mbit/s", "--objective", "speed"], "--objective 'speed'"),
        (["--bandwidth", "100Mbit/s", "--memory", "pi=1", "--memory", "server=1"], "no plan fits the memory limits"),
        ([], "no link given"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, words):
    r = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, *args)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert words in r.stderr and r.stderr.strip().count("\n") == 0


def test_three_devices_with_a_link_each_and_return(tmp_path):
    r = gapp("partition", *MODEL, "--devices", "pi,edge,server", "--times", "flops", "--rate", "pi=1GFLOPs",
             "--rate", "edge=5GFLOPs", "--rate", "server=20GFLOPs", "--bandwidth", "50Mbit/s,1Gbps",
             "--latency", "1ms", "--return-output", "--no-empty", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    b = doc["plan"]["boundaries"]
    assert len(b) == 4 and all(x < y for x, y in zip(b, b[1:]))
    links = doc["plan"]["links"]
    assert [(lk["src"], lk["dst"]) for lk in links] == [("pi", "edge"), ("edge", "server"), ("server", "pi")]
    assert links[1]["bandwidth_Bps"] == 125e6 and links[2]["bandwidth_Bps"] == 50e6 / 8
    assert "neurosurgeon" not in doc["baselines"]


def test_stdout_is_one_json_document_and_the_table_is_readable():
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="120")
    cmd = [sys.executable, "-m", "gapp_tui", "partition", *MODEL, "--devices", "pi,server", *FLOPS,
           "--bandwidth", "100Mbit/s", "--latency", "2ms"]
    r = subprocess.run([*cmd, "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # nothing but the document on stdout
    assert Plan.from_dict(doc["plan"]).boundaries == doc["plan"]["boundaries"]
    human = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert human.returncode == 0, human.stderr
    assert "bottleneck:" in human.stdout and "neurosurgeon" in human.stdout and "optimum" in human.stdout


# ----------------------------------------------------------------------------- links from a real probe


@pytest.mark.ssh
def test_links_from_a_real_link_probe(sshd, tmp_path):  # noqa: F811 (sshd is the fixture of tests.sshd)
    db = tmp_path / "probe.sqlite"
    known = sshd.trust(tmp_path / "known_hosts")
    env = dict(os.environ, OMP_NUM_THREADS="1", GAPP_DB=str(db))
    probe = subprocess.run(
        [sys.executable, "-m", "gapp_tui", "link", "probe", "--host", f"{sshd.target}:{sshd.port}", "--identity",
         str(sshd.client_key), "--known-hosts", str(known), "--remote-python", sys.executable,
         "--max-bytes", str(1 << 20), "--repeats", "2", "--pings", "5", "--json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    measured = json.loads(probe.stdout)
    r = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--link-from-probe", "--return-output",
             "--db", str(db), "--json")
    assert r.exit_code == 0, r.stderr
    links = json.loads(r.stdout)["plan"]["links"]
    assert [lk["source"] for lk in links] == ["probe", "probe"]
    assert links[0]["bandwidth_Bps"] == pytest.approx(measured["bandwidth_Bps"]["from_device"])
    assert links[1]["bandwidth_Bps"] == pytest.approx(measured["bandwidth_Bps"]["to_device"])
    assert links[0]["latency_s"] == pytest.approx(measured["latency_s"])
    both = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--link-from-probe", "--bandwidth", "1Gbps",
                "--db", str(db))
    assert both.exit_code == 2 and "not both" in both.stderr


def test_link_from_probe_without_a_probe_is_one_line(tmp_path):
    db = tmp_path / "empty.sqlite"
    Store(db).close()
    r = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--link-from-probe", "--db", str(db))
    assert r.exit_code == 2 and "no from_device link probe" in r.stderr and r.stderr.strip().count("\n") == 0


# ----------------------------------------------------------------------------- predicted times


def test_predicted_times_come_from_a_predictor_file(tmp_path):
    """The plumbing: a predictor file's block times (ms) become the device's column (s)."""
    from gapp_tui.blocks import BlockChain
    from gapp_tui.features import NODE_COLUMNS, TOTAL_COLUMNS, extract
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.predictor import Predictor
    from gapp_tui.zoo import ModelSpec

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = Predictor(BlockGNN(len(NODE_COLUMNS), len(TOTAL_COLUMNS), hidden=8, layers=1), device="pi").save(tmp_path / "p.pt")
    r = gapp("partition", *MODEL, "--devices", "pi,server", "--times", "pi=predicted", "--times", "server=flops",
             "--rate", "server=20GFLOPs", "--predictor", f"pi={path}", "--bandwidth", "100Mbit/s", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16)), device="meta")
    want_ms = Predictor.load(path).block_times(extract(chain, warn=False))
    assert doc["times"]["pi"]["source"] == "predicted"
    assert doc["times"]["pi"]["total_s"] == pytest.approx(float(want_ms.sum()) / 1e3)
    bad = gapp("partition", *MODEL, "--devices", "pi,server", "--times", "predicted", "--predictor",
               str(tmp_path / "missing.pt"), "--bandwidth", "100Mbit/s")
    assert bad.exit_code == 2 and "not found" in bad.stderr


def test_a_predicted_plan_has_a_throughput_range_that_brackets_its_estimate(tmp_path):
    """A predictor with a calibrated interval: every block's bounds in the times, the plan's range in `range`."""
    from gapp_tui.blocks import BlockChain
    from gapp_tui.features import NODE_COLUMNS, TOTAL_COLUMNS, extract
    from gapp_tui.partition import estimate
    from gapp_tui.partition.costs import CostTable
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.interval import IntervalModel
    from gapp_tui.predict.predictor import Predictor
    from gapp_tui.zoo import ModelSpec

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    iv = IntervalModel(0.9, q=10.0, tau=0.01, samples=40, grain="block", spread=False)  # ±10.5 % on every block
    path = Predictor(BlockGNN(len(NODE_COLUMNS), len(TOTAL_COLUMNS), hidden=8, layers=1), device="pi",
                     interval=iv).save(tmp_path / "p.pt")
    r = gapp("partition", *MODEL, "--devices", f"pi=predicted:{path}", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16)), device="meta")
    ms = Predictor.load(path).block_times(extract(chain, warn=False))
    got = doc["times"]["pi"]["interval"]
    assert got["level"] == 0.9
    assert got["blocks_low_s"] == pytest.approx([t / 1e3 * float(np.exp(-0.1)) for t in ms])
    assert got["blocks_high_s"] == pytest.approx([t / 1e3 * float(np.exp(0.1)) for t in ms])
    rng = doc["range"]
    lo, mid, hi = rng["throughput_per_s"]
    assert lo < mid < hi and mid == doc["estimate"]["throughput_per_s"]
    assert rng["period_s"][0] < doc["estimate"]["period_s"] < rng["period_s"][2] and rng["devices"] == ["pi"]
    # the worst end is the plan estimated on the high times
    table = CostTable.from_chain(chain, {"pi": got["blocks_high_s"]})
    worst = estimate(table, Plan.from_dict(doc["plan"]))
    assert worst.throughput == pytest.approx(lo)
    text = gapp("partition", *MODEL, "--devices", f"pi=predicted:{path}")
    assert f"({lo:.3g}-{hi:.3g}, 90% interval of pi's predicted times)" in " ".join(text.stdout.split())
    # measured or FLOPs devices only: no range
    flops = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--bandwidth", "100Mbit/s", "--json")
    assert json.loads(flops.stdout)["range"] is None


def test_help_renders_every_option():
    r = gapp("partition", "--help")
    assert r.exit_code == 0, r.stdout + r.stderr
    for option in ("--devices", "--times", "--device-times", "--rate", "--bandwidth", "--link-from-probe",
                   "--objective", "--communication", "--memory", "--host", "--json"):
        assert option in r.stdout


def test_send_cpu_reaches_the_links_and_the_estimate():
    r = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--bandwidth", "100Mbit/s",
             "--send-cpu", "3ns", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["plan"]["links"][0]["cpu_per_byte_s"] == pytest.approx(3e-9)
    st0 = doc["estimate"]["stages"][0]
    sent = doc["estimate"]["transfers"][0]["bytes"]
    assert st0["send_cpu_s"] == pytest.approx(3e-9 * sent)
    assert st0["busy_s"] == pytest.approx(st0["compute_s"] + st0["send_cpu_s"])
    bad = gapp("partition", *MODEL, "--devices", "pi,server", *FLOPS, "--bandwidth", "100Mbit/s", "--send-cpu", "-1ns")
    assert bad.exit_code == 2 and "sender CPU time per byte" in bad.stderr
