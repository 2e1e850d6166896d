"""The solver is exact: it equals brute force over every cut placement (hypothesis), int8 senders included."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gapp_tui.errors import BadInput
from gapp_tui.partition import CostTable, Link, Plan, baselines, estimate, solve
from gapp_tui.partition.solver import TIE_ATOL, TIE_RTOL


@st.composite
def instances(draw, max_blocks: int = 7, max_devices: int = 4, uncuttable: bool = True):
    n = draw(st.integers(1, max_blocks))
    k = draw(st.integers(1, max_devices))
    devices = [f"d{i}" for i in range(k)]
    # times with exact ties (0 and repeated values) as well as arbitrary floats
    time = st.one_of(st.just(0.0), st.sampled_from([0.001, 0.01, 0.1]), st.floats(0, 1, allow_nan=False))
    times = {d: draw(st.lists(time, min_size=n, max_size=n)) for d in devices}
    cut_bytes = draw(st.lists(st.integers(0, 2_000_000), min_size=n + 1, max_size=n + 1))
    cut_tensors = draw(st.lists(st.integers(0, 4), min_size=n + 1, max_size=n + 1))
    params = draw(st.lists(st.integers(0, 100), min_size=n, max_size=n))
    # now and then a cut that carries a non-tensor value (the solver must never cut there)
    choices = [True, True, True, False] if uncuttable else [True]
    cuttable = draw(st.lists(st.sampled_from(choices), min_size=n + 1, max_size=n + 1))
    # some devices send their cuts as int8 (a quarter of the bytes, or any other count: the solver must follow it)
    cut_bytes_int8 = draw(st.one_of(st.none(), st.lists(st.integers(0, 2_000_000), min_size=n + 1, max_size=n + 1)))
    sends = {d: "int8" for d in devices if draw(st.booleans())}
    table = CostTable([f"b{i}" for i in range(n)], times, cut_bytes, cut_tensors, params, cuttable=cuttable,
                      cut_bytes_int8=cut_bytes_int8, send_dtype=sends)
    links = [
        Link(draw(st.floats(1e4, 1e8)), draw(st.sampled_from([0.0, 1e-3, 0.05])), draw(st.sampled_from([0.0, 1e-4])),
             cpu_per_byte=draw(st.sampled_from([0.0, 0.0, 1e-9, 1e-7])))
        for _ in range(k)
    ]
    memory = None
    if draw(st.booleans()):
        memory = {d: draw(st.integers(0, 400)) for d in devices if draw(st.booleans())}
    options = {
        "objective": draw(st.sampled_from(["throughput", "latency"])),
        "communication": draw(st.sampled_from(["overlapped", "serial"])),
        "return_output": draw(st.booleans()),
        "allow_empty": draw(st.booleans()),
        "memory": memory,
    }
    links = links[: k - 1 + (1 if options["return_output"] and k > 1 else 0)] or links[:1]
    return table, devices, links, options


def brute_force(table, devices, links, objective, communication, return_output, allow_empty, memory):
    """Every placement of k-1 cuts, estimated one by one.

    Throughput: the least period P, then the least latency among the plans of
    period P (up to the solver's float tolerance). Returns (key, boundaries).
    """
    n, k = table.n, len(devices)
    template = Plan.build(table, devices, [0] * k + [n], links, return_output=return_output, communication=communication)
    found = []
    for cuts in itertools.combinations_with_replacement(range(n + 1), k - 1):
        b = [0, *cuts, n]
        if not allow_empty and any(b[s] >= b[s + 1] for s in range(k)):
            continue
        e = estimate(table, template.with_boundaries(b), memory=memory)
        if e.fits and e.runnable:
            found.append((e.period_s, e.latency_s, b))
    if not found:
        return None
    if objective == "latency":
        lat, b = min((x[1], x[2]) for x in found)
        return (lat,), b
    best_period = min(x[0] for x in found)
    limit = best_period * (1 + TIE_RTOL) + TIE_ATOL
    lat, b = min((x[1], x[2]) for x in found if x[0] <= limit)
    return (best_period, lat), b


def _same(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_solver_equals_brute_force(instance):
    table, devices, links, options = instance
    best = brute_force(table, devices, links, **options)
    if best is None:
        with pytest.raises(BadInput):
            solve(table, devices, links, **options)
        return
    plan = solve(table, devices, links, **options)
    e = estimate(table, plan, memory=options["memory"])
    assert e.fits and e.runnable
    if not options["allow_empty"]:
        assert all(b0 < b1 for b0, b1 in zip(plan.boundaries, plan.boundaries[1:]))
    if options["objective"] == "throughput":
        period, latency = best[0]
        assert e.period_s <= period * (1 + TIE_RTOL) + TIE_ATOL, (e.period_s, best, plan.boundaries)
        assert _same(e.latency_s, latency), (e.latency_s, best, plan.boundaries)
    else:
        assert _same(e.latency_s, best[0][0]), (e.latency_s, best, plan.boundaries)
    # the estimate stored in the plan is the estimate of the plan
    assert plan.estimate["period_s"] == e.period_s


@settings(max_examples=100, deadline=None)
@given(instances(max_devices=2, uncuttable=False))  # every cut cuttable: every baseline has a runnable plan
def test_no_baseline_beats_the_optimum(instance):
    table, devices, links, options = instance
    options = {**options, "objective": "throughput", "allow_empty": True, "memory": None}
    plan = solve(table, devices, links, **options)
    base = baselines(table, devices, links, communication=options["communication"], return_output=options["return_output"])
    for name, b in base.items():
        assert b.estimate["period_s"] >= plan.estimate["period_s"] * (1 - 2 * TIE_RTOL) - TIE_ATOL, name
    if "neurosurgeon" in base:
        # Neurosurgeon's search is the latency optimum for two devices
        lat = solve(table, devices, links, **{**options, "objective": "latency"})
        assert base["neurosurgeon"].estimate["latency_s"] == pytest.approx(lat.estimate["latency_s"], rel=1e-12, abs=1e-15)


def test_balanced_baseline_ignores_communication_and_loses_on_a_slow_link():
    # compute balances best at cut 2, but cut 2 carries a huge tensor; cut 3 carries a small one
    t = CostTable(
        ["a", "b", "c", "d"],
        {"pi": [1.0, 1.0, 1.0, 1.0], "server": [1.0, 1.0, 1.0, 1.0]},
        cut_bytes=[100, 100, 10_000_000, 100, 100],
    )
    lk = Link.parse("8Mbit/s")  # 1 MB/s: the big cut takes 10 s
    base = baselines(t, ["pi", "server"], lk)
    assert base["balanced"].boundaries == [0, 2, 4] and base["balanced"].estimate["period_s"] == pytest.approx(10.0)
    best = solve(t, ["pi", "server"], lk)
    assert best.estimate["period_s"] == pytest.approx(3.0) and best.boundaries in ([0, 1, 4], [0, 3, 4])


def test_latency_tie_break_among_equal_periods():
    # block a takes 2 s on pi, so cuts 1, 2 and 3 all have period 2 s; the latency picks cut 3
    t = CostTable(["a", "b", "c"], {"pi": [2.0, 0.0, 0.0], "server": [3.0, 0.2, 0.3]}, [0, 0, 0, 0])
    plan = solve(t, ["pi", "server"], Link(1e9))
    assert plan.boundaries == [0, 3, 3]
    assert plan.estimate["period_s"] == pytest.approx(2.0) and plan.estimate["latency_s"] == pytest.approx(2.0)
    for cut, latency in ((1, 2.5), (2, 2.3)):
        other = estimate(t, plan.with_boundaries([0, cut, 3]))
        assert other.period_s == pytest.approx(2.0) and other.latency_s == pytest.approx(latency)


def test_too_many_devices_without_empty_stages_is_bad_input():
    t = CostTable(["a", "b"], {"x": [1, 1], "y": [1, 1], "z": [1, 1]}, [1, 1, 1])
    with pytest.raises(BadInput, match="3 devices but only 2 blocks"):
        solve(t, ["x", "y", "z"], Link(1e6), allow_empty=False)
    assert solve(t, ["x", "y", "z"], Link(1e6), allow_empty=True).boundaries[-1] == 2


def test_memory_limits_that_nothing_satisfies_are_bad_input():
    t = CostTable(["a", "b"], {"x": [1, 1], "y": [1, 1]}, [1, 1, 1], param_bytes=[100, 100])
    with pytest.raises(BadInput, match="no plan fits the memory limits"):
        solve(t, ["x", "y"], Link(1e6), memory={"x": 50, "y": 50})
    plan = solve(t, ["x", "y"], Link(1e6), memory={"x": 100, "y": 100})
    assert plan.boundaries == [0, 1, 2]


def test_the_solver_never_cuts_where_a_non_tensor_crosses():
    # cut 2 would be best by far, but a Python value (a size) crosses it
    t = CostTable(["a", "b", "c", "d"], {"pi": [1.0, 1.0, 1.0, 1.0], "server": [1.0, 1.0, 1.0, 1.0]},
                  [8, 8, 8, 8, 8], cuttable=[True, True, False, True, True])
    plan = solve(t, ["pi", "server"], Link(1e9))
    assert plan.boundaries in ([0, 1, 4], [0, 3, 4]) and plan.estimate["runnable"]
    manual = estimate(t, plan.with_boundaries([0, 2, 4]))
    assert not manual.runnable and manual.period_s == pytest.approx(2.0, rel=1e-3)
    base = baselines(t, ["pi", "server"], Link(1e9))
    assert all(b.estimate["runnable"] for b in base.values())


def test_from_chain_marks_cuts_that_carry_python_values():
    from gapp_tui.blocks import BlockChain
    from gapp_tui.zoo import ModelSpec

    chain = BlockChain.from_spec(ModelSpec("tests.test_partition_solver:size_across_cut", input_shape=(1, 3, 8, 8)),
                                 "op", device="meta")
    t = CostTable.from_chain(chain, {"pi": [0.001] * len(chain)}, "flops")
    blocked = [c for c, ok in enumerate(t.cuttable) if not ok]
    assert blocked and all(any(not x.is_tensor for x in chain.cuts[c].tensors) for c in blocked)
    assert CostTable.from_dict(t.to_dict()).cuttable == t.cuttable


def size_across_cut():
    """A model where ``x.size(0)``, an int, crosses the cuts after it at op granularity."""
    from torch import nn

    class SizeAcrossCut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 3)

        def forward(self, x):
            n = x.size(0)
            y = self.conv(x).relu()
            return self.fc(y.reshape(n, -1))

    return SizeAcrossCut()


def test_an_int8_device_sends_a_quarter_of_the_bytes_and_the_solver_knows_it():
    # a slow link: cut 2 (4 MB as float32) is the only good balance, and only an int8 sender makes it cheap
    t = CostTable(["a", "b", "c", "d"], {"pi": [1.0, 1.0, 1.0, 1.0], "server": [1.0, 1.0, 1.0, 1.0]},
                  cut_bytes=[100, 4e6, 4e6, 4e6, 100])
    lk = Link.parse("8Mbit/s")  # 1 MB/s: 4 s for float32, 1 s for int8
    fp32 = solve(t, ["pi", "server"], lk)
    q = t.with_send_dtype({"pi": "int8"})
    assert q.bytes_sent("pi")[2] == 1e6 and q.bytes_sent("server") == t.cut_bytes
    int8 = solve(q, ["pi", "server"], lk)
    assert fp32.estimate["period_s"] == pytest.approx(4.0) and int8.boundaries == [0, 2, 4]
    assert int8.estimate["period_s"] == pytest.approx(2.0)
    sent = int8.estimate["transfers"][0]
    assert sent["bytes"] == 1e6 and sent["seconds"] == pytest.approx(1.0)
    # the output returns as it is: never quantized
    back = estimate(q, Plan.build(q, ["pi", "server"], [0, 2, 4], lk, return_output=True))
    assert back.transfers[-1].is_return and back.transfers[-1].bytes == 100
    assert CostTable.from_dict(q.to_dict()).send_dtype == {"pi": "int8", "server": "float32"}
    with pytest.raises(BadInput, match="sends 'int4'"):
        t.with_send_dtype({"pi": "int4"})


def test_the_block_times_service_makes_an_int8_device_send_int8():
    from gapp_tui.blocks import BlockChain
    from gapp_tui.partition.devices import parse_devices
    from gapp_tui.partition.times import cost_table
    from gapp_tui.zoo import ModelSpec

    chain = BlockChain.from_spec(ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16)), device="meta")
    devices = parse_devices("pi=predicted@executorch-int8, server=predicted")
    table, _ = cost_table(chain, devices, predict=lambda ch, d: ([1e-3] * len(ch.blocks), "test"))
    assert table.send_dtype == {"pi": "int8", "server": "float32"}
    # one byte per element of every floating tensor crossing the cut (two tensors at the skip connection)
    for c, cut in enumerate(chain.cuts):
        assert table.cut_bytes_int8[c] * 4 == table.cut_bytes[c] == sum(t.bytes for t in cut.tensors)
