"""CostTable, Link, Plan and Estimate: plain data, bad input, and the JSON plan file."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from gapp_tui.errors import BadInput
from gapp_tui.partition import (
    CostTable,
    Link,
    Plan,
    baselines,
    estimate,
    solve,
)
from gapp_tui.units import parse_bandwidth, parse_time


def small_table() -> CostTable:
    return CostTable(
        blocks=["a", "b", "c", "d"],
        times={"pi": [0.010, 0.020, 0.030, 0.040], "server": [0.001, 0.002, 0.003, 0.004]},
        cut_bytes=[1000, 4000, 2000, 500, 40],
        cut_tensors=[1, 2, 1, 1, 1],
        param_bytes=[100, 200, 300, 400],
        sources={"pi": "measured", "server": ["predicted", "predicted", "flops", "measured"]},
        model={"name": "resnet18", "batch_size": 2},
    )


# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "text, bytes_per_s",
    [
        ("100Mbit/s", 12.5e6),
        ("12.5MB/s", 12.5e6),
        ("1Gbps", 125e6),
        ("50mbit", 6.25e6),
        ("10 Mbps", 1.25e6),
        ("1MiB/s", 2**20),
        ("800kB/s", 8e5),
        ("8 bit/s", 1.0),
    ],
)
def test_bandwidth_units_parse_to_bytes_per_second(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text", ["0Mbit/s", "-5MB/s", "100", "12MB", "100Mfoo/s", "fast", "", "inf MB/s", "0"])
def test_bad_bandwidth_is_one_line_bad_input_naming_the_value(text):
    with pytest.raises(BadInput) as exc:
        parse_bandwidth(text)
    msg = str(exc.value)
    assert "\n" not in msg and repr(text) in msg and "Mbit/s" in msg


def test_numeric_zero_and_negative_bandwidth_are_refused():
    for value in (0, 0.0, -1.0, math.inf, math.nan):
        with pytest.raises(BadInput):
            Link(value)


@pytest.mark.parametrize("text, seconds", [("2ms", 2e-3), ("500us", 5e-4), ("500µs", 5e-4), ("0", 0.0), ("0.25 s", 0.25), ("3ns", 3e-9)])
def test_time_units_parse_to_seconds(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["2", "-1ms", "2 parsecs", "soon"])
def test_bad_latency_is_bad_input(text):
    with pytest.raises(BadInput) as exc:
        Link.parse("100Mbit/s", text)
    assert "latency" in str(exc.value) and "\n" not in str(exc.value)


def test_link_time_is_latency_plus_bytes_over_bandwidth_plus_per_tensor():
    lk = Link.parse("8Mbit/s", "2ms", "100us")
    assert lk.seconds(1_000_000, 3) == pytest.approx(2e-3 + 1.0 + 3e-4)
    assert Link.from_dict(lk.to_dict()) == lk


# ----------------------------------------------------------------------------- cost table


def test_cost_table_validates_lengths_values_and_sources():
    with pytest.raises(BadInput, match="entries, expected 5"):
        CostTable(["a", "b", "c", "d"], {"pi": [1, 1, 1, 1]}, [1, 2, 3])
    with pytest.raises(BadInput, match="entry 1"):
        CostTable(["a", "b"], {"pi": [1.0, -2.0]}, [1, 2, 3])
    with pytest.raises(BadInput, match="time source 'guessed'"):
        CostTable(["a", "b"], {"pi": [1.0, 2.0]}, [1, 2, 3], sources="guessed")
    with pytest.raises(BadInput, match="no time for block 'b'"):
        CostTable(["a", "b"], {"pi": {"a": 1.0}}, [1, 2, 3])


def test_cost_table_round_trips_and_reports_mixed_sources():
    t = small_table()
    assert t.source_of("pi") == "measured" and t.source_of("server") == "mixed"
    again = CostTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert again.times == t.times and again.sources == t.sources and again.cut_bytes == t.cut_bytes
    assert again.batch_size == 2


def test_fill_takes_missing_times_from_another_source():
    t = CostTable(["a", "b"], {"pi": [0.5, math.nan]}, [1, 2, 3])
    with pytest.raises(BadInput, match="no time for block 'b'"):
        t.check_devices(["pi"])
    filled = t.fill("pi", [9.0, 0.25], "predicted")
    assert filled.times["pi"] == [0.5, 0.25] and filled.sources["pi"] == ["measured", "predicted"]


def test_from_chain_reads_cut_bytes_tensor_counts_and_weights():
    from gapp_tui.blocks import BlockChain
    from gapp_tui.zoo import ModelSpec

    chain = BlockChain.from_spec(ModelSpec("resnet18", input_size=32), device="meta")
    n = len(chain)
    t = CostTable.from_chain(chain, {"pi": [0.001] * n, "server": {b.name: 0.0001 for b in chain.blocks}}, "flops")
    assert t.blocks == chain.names
    assert t.cut_bytes == [c.bytes for c in chain.cuts] and t.cut_tensors == [c.count for c in chain.cuts]
    # float32 weights plus BatchNorm buffers: at least 4 bytes per parameter
    assert sum(t.param_bytes) >= 4 * sum(b.params for b in chain.blocks) > 0
    assert t.model["name"] == "resnet18" and t.model["input_size"] == 32
    # cutting inside a residual block: the skip tensor crosses the cut too
    ops = BlockChain.from_spec(ModelSpec("resnet18", input_size=32), granularity="op", device="meta")
    t_ops = CostTable.from_chain(ops, {"pi": [0.001] * len(ops)}, "flops")
    assert max(t_ops.cut_tensors) == 2 and t_ops.cut_bytes == [c.bytes for c in ops.cuts]


def test_partition_modules_do_not_import_torch():
    code = (
        "import sys; import gapp_tui.partition as p; "
        "t = p.CostTable(['a','b'], {'x': [1,2], 'y': [1,1]}, [1,2,3]); "
        "pl = p.solve(t, ['x','y'], p.Link.parse('1MB/s')); p.estimate(t, pl); p.baselines(t, ['x','y'], p.Link(1e6)); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- plan


def test_plan_rejects_bad_boundaries_and_devices():
    t = small_table()
    lk = Link.parse("100Mbit/s")
    with pytest.raises(BadInput, match="out of order"):
        Plan.build(t, ["pi", "server"], [0, 3, 2], lk)
    with pytest.raises(BadInput, match="out of range"):
        Plan.build(t, ["pi", "server"], [0, 2, 7], lk)
    with pytest.raises(BadInput, match="must start at 0"):
        Plan.build(t, ["pi", "server"], [1, 2, 4], lk)
    with pytest.raises(BadInput, match="3 entries; 3 devices need 4"):
        Plan(["pi", "server", "x"], [0, 2, 4], [lk, lk])
    with pytest.raises(BadInput, match="'laptop' is not in the cost table"):
        Plan.build(t, ["pi", "laptop"], [0, 2, 4], lk)
    with pytest.raises(BadInput, match="twice"):
        Plan.build(t, ["pi", "pi"], [0, 2, 4], lk)
    with pytest.raises(BadInput, match="host"):
        Plan.build(t, ["pi", "server"], [0, 2, 4], lk, hosts={"pi": "not a host@@"})


def test_plan_file_round_trips_and_bad_files_are_one_line(tmp_path):
    t = small_table()
    plan = solve(t, ["pi", "server"], Link.parse("100Mbit/s", "2ms"), hosts={"pi": "pi@10.0.0.2:22"})
    path = plan.save(tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["devices"] == ["pi", "server"] and doc["hosts"] == {"pi": "pi@10.0.0.2:22", "server": None}
    assert set(doc["model"]) >= {"name", "batch_size"} and doc["boundaries"][0] == 0 and doc["boundaries"][-1] == 4
    back = Plan.load(path)
    assert back.boundaries == plan.boundaries and back.links == plan.links and back.estimate == plan.estimate
    back.check_against(t)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        Plan.load(tmp_path / "bad.json")
    doc["boundaries"] = [0, 3, 1]
    (tmp_path / "order.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="out of order"):
        Plan.load(tmp_path / "order.json")
    with pytest.raises(BadInput, match="does not exist"):
        Plan.load(tmp_path / "missing.json")
    other = CostTable(["a", "b", "c", "d"], {"pi": [1] * 4, "gpu": [1] * 4}, [1] * 5)
    with pytest.raises(BadInput, match="'server' is not in the cost table"):
        back.check_against(other)


def test_a_plan_records_each_devices_runtime_and_an_int8_device_sends_int8(tmp_path):
    t = small_table()
    plan = solve(t, ["pi", "server"], Link.parse("100Mbit/s", "2ms"))
    plan.runtimes = {"pi": "executorch-int8", "server": "eager"}
    back = Plan.load(plan.save(tmp_path / "plan.json"))
    assert back.runtimes == {"pi": "executorch-int8"}  # eager is the default, not written
    assert back.send_dtype() == {"pi": "int8"}
    assert Plan.from_dict({**plan.to_dict(), "runtimes": {}}).runtimes == {}  # plans written before: all eager
    with pytest.raises(BadInput, match="runtime 'tflite' of device 'pi' is not known"):
        Plan.from_dict({**plan.to_dict(), "runtimes": {"pi": "tflite"}})
    with pytest.raises(BadInput, match="device 'gpu', which is not one of its devices"):
        Plan.from_dict({**plan.to_dict(), "runtimes": {"gpu": "onnxruntime"}})


# ----------------------------------------------------------------------------- estimate


def test_estimate_overlapped_by_hand():
    t = small_table()
    lk = Link.parse("8Mbit/s", "1ms", "0")  # 1 MB/s
    plan = Plan.build(t, ["pi", "server"], [0, 2, 4], lk)
    e = estimate(t, plan, items=10)
    assert e.compute_s == pytest.approx([0.030, 0.007])
    assert e.transfer_s == pytest.approx([1e-3 + 2000 / 1e6])
    assert e.period_s == pytest.approx(0.030)
    assert e.bottleneck["kind"] == "stage" and e.bottleneck["device"] == "pi"
    assert e.latency_s == pytest.approx(0.030 + 0.003 + 0.007)
    assert e.throughput == pytest.approx(1 / 0.030) and e.samples_per_s == pytest.approx(2 / 0.030)
    assert e.time_for(10) == pytest.approx(e.latency_s + 9 * 0.030)
    assert e.stages[1].sources == ("flops", "measured")
    assert e.to_dict()["time_for_items_s"] == pytest.approx(e.time_for(10))


def test_estimate_serial_and_return_link():
    t = small_table()
    lk = Link.parse("8Mbit/s", "1ms")  # 1 MB/s
    plan = Plan.build(t, ["pi", "server"], [0, 1, 4], lk, return_output=True, communication="serial")
    e = estimate(t, plan)
    fwd = 1e-3 + 4000 / 1e6
    ret = 1e-3 + 40 / 1e6
    assert [tr.seconds for tr in e.transfers] == pytest.approx([fwd, ret])
    assert e.transfers[1].is_return and (e.transfers[1].src, e.transfers[1].dst) == ("server", "pi")
    assert e.stages[0].busy_s == pytest.approx(ret + 0.010 + fwd)
    assert e.stages[1].busy_s == pytest.approx(fwd + 0.009 + ret)
    assert e.period_s == pytest.approx(max(ret + 0.010 + fwd, fwd + 0.009 + ret))
    assert e.latency_s == pytest.approx(0.010 + 0.009 + fwd + ret)


def test_slow_link_is_named_as_the_bottleneck():
    t = small_table()
    plan = Plan.build(t, ["pi", "server"], [0, 1, 4], Link.parse("8kbit/s"))
    e = estimate(t, plan)
    assert e.bottleneck["kind"] == "link" and "pi->server" in e.bottleneck["name"]


def test_memory_limit_marks_stages_that_do_not_fit():
    t = small_table()
    plan = Plan.build(t, ["pi", "server"], [0, 3, 4], Link.parse("1Gbps"))
    e = estimate(t, plan, memory={"pi": 500})
    assert e.stages[0].fits is False and e.stages[1].fits is None and not e.fits


def test_baselines_are_estimated_with_the_same_links():
    t = small_table()
    lk = Link.parse("100Mbit/s", "2ms")
    base = baselines(t, ["pi", "server"], lk)
    assert set(base) == {"balanced", "neurosurgeon", "first_only", "last_only"}
    best = solve(t, ["pi", "server"], lk)
    for plan in base.values():
        assert plan.estimate["period_s"] >= best.estimate["period_s"] - 1e-15
    assert base["last_only"].boundaries == [0, 0, 4] and base["first_only"].boundaries == [0, 4, 4]


# ----------------------------------------------------------------------------- time sources


def test_device_specs_parse_format_and_refuse_bad_items_in_one_line():
    from gapp_tui.partition.devices import DeviceSpec, format_devices, parse_devices

    devs = parse_devices("pi=2GFLOP/s, server=measured:vm-1/1x3x64x64/float32/t1/natural/c1000/cpu, edge=predicted:p.pt, gpu")
    assert [(d.name, d.source) for d in devs] == [("pi", "flops"), ("server", "measured"), ("edge", "predicted"),
                                                   ("gpu", "measured")]
    assert devs[0].rate == pytest.approx(2e9) and devs[2].ref == "p.pt" and devs[3].ref is None
    assert devs[1].store_key == "vm-1" and devs[1].store_setting == "1x3x64x64/float32/t1/natural/c1000/cpu"
    assert parse_devices(format_devices(devs)) == devs
    assert parse_devices("pi=flops:500M")[0] == DeviceSpec("pi", "flops", rate=5e8)
    for text, words in [("pi=mesured", "did you mean measured"), ("pi=1x, server", "not known"),
                        ("pi=measured, pi=predicted", "appears twice"), ("p i=measured", "not valid"), ("", "no devices")]:
        with pytest.raises(BadInput, match=words) as exc:
            parse_devices(text)
        assert "\n" not in str(exc.value)


def test_a_device_names_the_runtime_its_stages_run_under():
    from gapp_tui import stage_runner
    from gapp_tui.partition.devices import RUNTIMES, DeviceSpec, format_devices, parse_devices

    devs = parse_devices("pi=measured@executorch-int8, edge=predicted:p.pt@onnxruntime, server=measured:KEY")
    assert [(d.runtime, d.quantize) for d in devs] == [("executorch", "int8"), ("onnxruntime", None), ("eager", None)]
    assert devs[1].ref == "p.pt" and devs[2].runtime_text == "eager" and devs[0].runtime_text == "executorch-int8"
    assert parse_devices(format_devices(devs)) == devs
    for bad in ("pi=measured@tflite", "pi=measured@eager-int8", "pi=predicted@executorch-int4"):
        with pytest.raises(BadInput, match="runtime .* is not known") as exc:
            parse_devices(bad)
        assert "executorch-int8" in str(exc.value)
    with pytest.raises(BadInput):
        DeviceSpec("pi", "measured", runtime="tvm")
    assert RUNTIMES == stage_runner.RUNTIMES  # the runner on the device knows the same runtimes


def test_the_clis_older_options_write_the_same_device_specs():
    from gapp_tui.partition.devices import DeviceSpec, parse_devices, with_options

    bare = parse_devices("pi, server")
    got = with_options(bare, times=["pi=flops", "server=predicted"], rates=["pi=2GFLOPs"], predictors=["p.pt"])
    assert got == [DeviceSpec("pi", "flops", rate=2e9), DeviceSpec("server", "predicted", "p.pt")]
    assert with_options(bare, device_times=["pi=KEY/SET"]) == [DeviceSpec("pi", "measured", "KEY/SET"),
                                                               DeviceSpec("server", "measured")]
    assert with_options(bare, times=["flops"], rates=["pi=1G", "server=2G"]) == parse_devices("pi=1G, server=2G")
    with pytest.raises(BadInput, match="not in --devices"):
        with_options(bare, times=["gpu=flops"])
    with pytest.raises(BadInput, match="not DEVICE=VALUE"):
        with_options(bare, rates=["2GFLOPs"])
    with pytest.raises(BadInput, match="--rate pi="):
        with_options(bare, times=["flops"])
    with pytest.raises(BadInput, match="already has its source"):
        with_options(parse_devices("pi=1G, server"), times=["pi=measured"], explicit={"pi": True})


def test_flops_times_divide_each_blocks_flops_by_the_rate():
    from gapp_tui.blocks import BlockChain
    from gapp_tui.partition.devices import parse_devices
    from gapp_tui.partition.times import cost_table
    from gapp_tui.zoo import ModelSpec

    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16)), device="meta")
    t, columns = cost_table(chain, parse_devices("pi=2GFLOP/s"))
    assert t.times["pi"] == pytest.approx([max(1, b.flops) / 2e9 for b in chain.blocks]) and t.source_of("pi") == "flops"
    assert columns[0].note == "FLOPs at 2GFLOP/s"


def test_sender_cpu_time_counts_in_the_stage_with_overlapped_communication():
    t = small_table()
    lk = Link.parse("8Mbit/s", "0", "0", cpu_per_byte="5us")  # 5 us of the sender's CPU per byte
    plan = Plan.build(t, ["pi", "server"], [0, 2, 4], lk)
    e = estimate(t, plan)
    assert e.stages[0].send_cpu_s == pytest.approx(2000 * 5e-6)
    assert e.stages[0].busy_s == pytest.approx(0.030 + 0.010) and e.period_s == pytest.approx(0.040)
    assert "send CPU" in e.bottleneck["name"]
    serial = estimate(t, Plan.from_dict({**plan.to_dict(), "communication": "serial"}))
    assert serial.stages[0].busy_s == pytest.approx(0.030 + 2000 / 1e6)  # serial: the send time already holds it
    assert Link.from_dict(lk.to_dict()).cpu_per_byte == pytest.approx(5e-6)
    # the optimum moves the cut to where less is sent when sending costs CPU
    best = solve(t, ["pi", "server"], lk)
    assert estimate(t, best).period_s <= e.period_s


# ---------------------------------------------------------------------------------------------- where stages run


def test_run_choices_offer_this_machine_then_the_plans_hosts():
    from gapp_tui.partition.hosts import run_choices

    # no host known: only this machine (the TUI's run key then asks nothing)
    assert [p.words() for p in run_choices(["pi", "server"], {}, ["server"], "")] == ["every stage on this machine"]
    # the Measure host takes the first device not measured here
    here, there = run_choices(["pi", "server"], {}, ["server"], "me@pi.local")
    assert not here.remote and dict(there.hosts) == {"pi": "me@pi.local"}
    assert there.words() == "pi on me@pi.local, server here"
    # a device measured over SSH runs on the host it was measured on; the Measure host is then not guessed
    _, there = run_choices(["pi", "server"], {"server": "u@gpu:2222", "pi": None}, [], "me@pi.local")
    assert dict(there.hosts) == {"server": "u@gpu:2222"} and there.words() == "pi here, server on u@gpu:2222"
    # every device measured here: nothing for the Measure host to take
    assert len(run_choices(["pi", "server"], {}, ["pi", "server"], "me@pi.local")) == 1


def test_measured_host_is_the_host_a_device_was_measured_on(tmp_path):
    from gapp_tui.partition.hosts import measured_host
    from gapp_tui.store import Store
    from tests.test_store import SETTING, row

    with Store(tmp_path / "s.sqlite") as s:
        s.add_rows([row(0, 1.0), dict(row(0, 1.0, device="dev-b"), extra={"remote": {"host": "pi@10.0.0.2"}})])
        assert measured_host(s, "dev-a", SETTING) is None  # measured on this machine
        assert measured_host(s, "dev-b", SETTING) == "pi@10.0.0.2"
        assert measured_host(s, "dev-b") == "pi@10.0.0.2" and measured_host(s, None) is None


def test_the_rendezvous_address_is_one_every_stage_reaches():
    from gapp_tui.pipeline.run import master_address

    assert master_address(["pi", "server"], {}) == "127.0.0.1"
    assert master_address(["pi", "server"], {"pi": None, "server": "me@127.0.0.1:2222"}) == "127.0.0.1"
    assert master_address(["pi", "server"], {"pi": "me@10.1.2.3:22"}) == "10.1.2.3"  # stage 0 listens there
    with pytest.raises(BadInput, match="no route from this machine to me@no-such-host.invalid"):
        master_address(["pi", "server"], {"server": "me@no-such-host.invalid"})
