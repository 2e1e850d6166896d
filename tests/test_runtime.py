"""Blocks measured under a runtime (ONNX Runtime, ExecuTorch): rows name their runtime and never stand in for
another runtime's; int8 features and predictors know their dtype."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from gapp_tui import runtime as runtime_mod
from gapp_tui.blocks import BlockChain
from gapp_tui.cli import app
from gapp_tui.errors import BadInput
from gapp_tui.features import extract
from gapp_tui.measure.engine import MeasureConfig, measure
from gapp_tui.measure.timer import Precision
from gapp_tui.store import Store, parse_setting, setting_key
from gapp_tui.zoo import ModelSpec

SPEC = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16))
QUICK = Precision.quick()
needs_ort = pytest.mark.skipif(not runtime_mod.available("onnxruntime"), reason="onnxruntime is not installed")


def test_the_setting_key_names_a_runtime_and_old_keys_read_as_eager():
    old = "1x3x224x224/float32/t1/natural/c1000/cpu"
    assert parse_setting(old)["runtime"] == "eager" and setting_key((1, 3, 224, 224)) == old
    key = setting_key((1, 3, 224, 224), "int8", 2, "natural", 1000, "cpu", "cpu", "executorch")
    assert key == "1x3x224x224/int8/t2/natural/c1000/cpu/cputime/executorch"
    parts = parse_setting(key)
    assert parts["runtime"] == "executorch" and parts["clock"] == "cpu" and parts["dtype"] == "int8"
    assert parse_setting(setting_key((1, 3, 8, 8), runtime="onnxruntime"))["runtime"] == "onnxruntime"
    with pytest.raises(BadInput, match="runtime 'tflite'"):
        setting_key((1, 3, 8, 8), runtime="tflite")


@pytest.fixture(scope="module")
def store_with_two_runtimes(tmp_path_factory):
    if not runtime_mod.available("onnxruntime"):
        pytest.skip("onnxruntime is not installed")
    chain = BlockChain.from_spec(SPEC)
    store = Store(tmp_path_factory.mktemp("rt") / "m.sqlite")
    eager = measure(chain, MeasureConfig(threads=1, precision=QUICK), store=store)
    ort = measure(chain, MeasureConfig(threads=1, precision=QUICK, runtime="ort", quantize="int8"), store=store)
    yield store, chain, eager, ort
    store.close()


def test_rows_measured_under_a_runtime_say_so(store_with_two_runtimes):
    _, chain, eager, ort = store_with_two_runtimes
    assert ort.setting == eager.setting.replace("float32", "int8") + "/onnxruntime"
    assert ort.setting_parts["runtime"] == "onnxruntime" and ort.setting_parts["quantize"] == "int8"
    for mode in ("standalone", "in-context"):
        assert [r["block"] for r in ort.rows[mode]] == list(range(len(chain)))
        for r in ort.rows[mode]:
            info = r["extra"]["runtime"]
            assert info["name"] == "onnxruntime" and info["quantize"] == "int8" and info["version"]
            assert r["dtype"] == "int8" and r["median_ms"] > 0
        assert all("runtime" not in r["extra"] for r in eager.rows[mode])
    # the unsplit model was compiled and timed under the runtime too, in the same loop as the blocks
    assert ort.full["extra"]["runtime"]["full_artifact_bytes"] > 0 and ort.sums["in-context"]["full_ms"] > 0


def test_a_row_of_one_runtime_is_never_used_for_another(store_with_two_runtimes):
    from gapp_tui.partition.devices import parse_device
    from gapp_tui.partition.times import measured_times
    from gapp_tui.predict.dataset import rows_from_store

    store, chain, eager, ort = store_with_two_runtimes
    device = eager.device["key"]
    # asked without a setting, the store refuses to choose between runtimes
    with pytest.raises(BadInput, match="device/setting pairs"):
        store.block_times(SPEC.name, device)
    # a device names its runtime (eager by default) and gets exactly that runtime's rows, newest or not
    for text, res in ((f"pi=measured:{device}", eager), (f"pi=measured:{device}@onnxruntime-int8", ort),
                      (f"pi=measured:{device}/{ort.setting}@onnxruntime-int8", ort)):
        want = [r["median_ms"] for r in res.rows["in-context"]]
        assert store.block_times(SPEC.name, device, res.setting) == want
        col = measured_times(chain, parse_device(text), store)
        assert col.times == pytest.approx([w / 1e3 for w in want]) and col.setting == res.setting
    with pytest.raises(BadInput, match="under executorch"):
        measured_times(chain, parse_device(f"pi=measured:{device}@executorch"), store)
    # a predictor is trained on one runtime's rows
    eager_rows = rows_from_store(store, device)
    int8_rows = rows_from_store(store, device, runtime="onnxruntime", quantize="int8")
    assert {r["median_ms"] for r in eager_rows} == {r["median_ms"] for r in eager.rows["standalone"]}
    assert {r["median_ms"] for r in int8_rows} == {r["median_ms"] for r in ort.rows["standalone"]}
    assert {r["dtype"] for r in int8_rows} == {"int8"}
    with pytest.raises(BadInput, match="under runtime executorch"):
        rows_from_store(store, device, runtime="executorch")


def test_results_list_shows_the_runtime(store_with_two_runtimes):
    store, *_ = store_with_two_runtimes
    got = CliRunner().invoke(app, ["results", "list", "--db", str(store.path), "--json"])
    assert got.exit_code == 0, got.output
    import json

    runtimes = {s["runtime"] for s in json.loads(got.stdout)["settings"]}
    assert runtimes == {"eager", "onnxruntime"}


def test_a_missing_runtime_is_refused_before_anything_is_measured(tmp_path, monkeypatch):
    real = runtime_mod.importlib.util.find_spec
    monkeypatch.setattr(runtime_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    db = tmp_path / "m.sqlite"
    got = CliRunner().invoke(app, ["measure", SPEC.name, "--input-shape", "1,3,16,16", "--runtime", "onnxruntime",
                                   "--db", str(db)])
    assert got.exit_code == 2
    assert "pip install 'gapp-tui[onnxruntime]'" in got.output and not db.exists()


@pytest.mark.parametrize("args, match", [
    (["--runtime", "tflite"], "runtime 'tflite' is not known"),
    (["--quantize", "int8"], "needs --runtime executorch or onnxruntime"),
    (["--runtime", "onnxruntime", "--dtype", "float16"], "--dtype float32"),
])
def test_bad_runtime_options_exit_2(args, match, tmp_path):
    got = CliRunner().invoke(app, ["measure", SPEC.name, "--input-shape", "1,3,16,16", "--db", str(tmp_path / "m.db"),
                                   *args])
    assert got.exit_code == 2 and match in got.output


def test_int8_features_count_a_quarter_of_the_bytes_and_survive_a_round_trip():
    from gapp_tui.features import TOTAL_COLUMNS, BlockGraph

    chain = BlockChain.from_spec(SPEC, device="meta")
    fp32, int8 = extract(chain, warn=False), extract(chain, warn=False, dtype="int8")
    for a, b in zip(fp32, int8):
        assert a.dtype == "float32" and b.dtype == "int8"
        ta, tb = a.totals_dict(), b.totals_dict()
        for c in ("param_bytes", "bytes_read", "bytes_written"):
            assert tb[c] == pytest.approx(ta[c] / 4)
        for c in set(TOTAL_COLUMNS) - {"param_bytes", "bytes_read", "bytes_written"}:
            assert tb[c] == ta[c]  # FLOPs, counts and the float32 block boundary are unchanged
        assert torch.allclose(b.data.edge_attr * 4, a.data.edge_attr)
        back = BlockGraph.from_dict(b.to_dict())
        assert back.dtype == "int8" and torch.equal(back.data.x, b.data.x)
        assert b.with_dtype("float32").totals_dict() == pytest.approx(ta)


def test_an_int8_predictor_reads_float32_features_as_int8():
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.predictor import Predictor

    graphs = extract(BlockChain.from_spec(SPEC, device="meta"), warn=False)
    torch.manual_seed(0)
    from gapp_tui.features import NODE_COLUMNS, TOTAL_COLUMNS

    model = BlockGNN(len(NODE_COLUMNS), len(TOTAL_COLUMNS), hidden=8, layers=1)
    fp32 = Predictor(model, "dev")
    int8 = Predictor(model, "dev/executorch/int8", training={"quantize": "int8"})
    assert int8.dtype == "int8" and fp32.dtype == "float32"
    as_int8 = [g.with_dtype("int8") for g in graphs]
    assert int8.block_times(graphs) == pytest.approx(fp32.block_times(as_int8))
    assert list(int8.block_times(graphs)) != pytest.approx(list(fp32.block_times(graphs)))
