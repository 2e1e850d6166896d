"""The block-time predictor: training, files, predictions from features alone, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gapp_tui.cli import app
from gapp_tui.errors import BadInput
from gapp_tui.predict.dataset import model_graphs
from gapp_tui.predict.adapt import apply_calibration, fit_calibration
from gapp_tui.predict.predictor import Predictor
from gapp_tui.predict.train import ItemBatcher, TrainConfig, fit_gnn, item_times

TINY = TrainConfig(hidden=16, layers=2, steps=80, batch_items=16, eval_every=20, patience=100, lr=1e-2)


class OddNet(nn.Module):
    """A model using an operation outside the feature vocabulary (cumsum)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=1)


@pytest.fixture(scope="module")
def tiny_data():
    """Blocks of two small torchvision models at two batch sizes; targets from a fixed cost model of their totals.

    The targets are synthetic on purpose: these tests check the training
    machinery (does the loss fall, do files round-trip), not accuracy --
    accuracy is measured by the benchmarks on real measurements.
    """
    graphs = []
    for name, b in (("squeezenet1_1", 1), ("squeezenet1_1", 2), ("mnasnet0_5", 1)):
        gs, _ = model_graphs(name, b, 32)
        graphs.extend(gs)
    cols = list(graphs[0].total_columns)
    y = np.array([0.02 + 2e-8 * float(g.data.totals[0, cols.index("flops")])
                  + 1e-7 * float(g.data.totals[0, cols.index("bytes_written")]) for g in graphs])
    items = [[(i, 1)] for i in range(len(graphs))]
    return graphs, items, y


@pytest.fixture(scope="module")
def tiny_predictor(tiny_data):
    graphs, items, y = tiny_data
    model, hist = fit_gnn(graphs, items, y, list(range(len(items))), None, TINY)
    return Predictor(model, "synthetic", training={"blocks": len(items)}, metrics={"note": "test"}), hist


def _log_err(model, graphs, items, y):
    pred = item_times(model, ItemBatcher(graphs, items), list(range(len(items))))[:, 0].numpy()
    return float(np.mean(np.abs(np.log(pred / y))))


def test_training_lowers_the_loss_and_predicts_finite_positive_times(tiny_data, tiny_predictor):
    graphs, items, y = tiny_data
    untrained, _ = fit_gnn(graphs, items, y, list(range(len(items))), None, TrainConfig(**{**TINY.to_dict(), "steps": 1}))
    pred, hist = tiny_predictor
    before = _log_err(untrained, graphs, items, y)
    after = _log_err(pred.model, graphs, items, y)
    assert after < 0.7 * before, (before, after)
    times = pred.block_times(graphs)
    assert np.isfinite(times).all() and (times > 0).all()
    assert hist["train_loss"][-1] < hist["train_loss"][0]


def test_training_is_reproducible_with_a_fixed_seed(tiny_data):
    graphs, items, y = tiny_data
    cfg = TrainConfig(**{**TINY.to_dict(), "steps": 10})
    a, _ = fit_gnn(graphs, items, y, list(range(len(items))), None, cfg)
    b, _ = fit_gnn(graphs, items, y, list(range(len(items))), None, cfg)
    bt = ItemBatcher(graphs, items)
    assert torch.equal(item_times(a, bt, [0, 1, 2]), item_times(b, bt, [0, 1, 2]))


def test_leave_one_family_out_in_worker_processes_gives_the_same_numbers(tiny_data):
    from gapp_tui.predict.dataset import BlockDataset
    from gapp_tui.predict.evaluate import lofo_protocol
    from gapp_tui.zoo import family_of

    graphs, items, y = tiny_data
    models = [g.model for g in graphs]
    fams = [family_of(m) for m in models]
    n = len(graphs)
    ds = BlockDataset(graphs, items, y, models, fams, [1] * n, [32] * n, [g.block_name for g in graphs])
    cfg = TrainConfig(**{**TINY.to_dict(), "steps": 20})
    one = lofo_protocol(ds, cfg)
    progress: list[str] = []
    two = lofo_protocol(ds, cfg, jobs=2, progress=progress.append)
    assert list(two["families"]) == list(one["families"]) == ["mnasnet", "squeezenet"]
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731 (NaN == NaN here)
    assert same(two["families"], one["families"]) and same(two["overall"], one["overall"])
    assert one["families"]["mnasnet"]["GNN"]["n"] == sum(f == "mnasnet" for f in fams)
    assert len(progress) == 2 and all("done" in m for m in progress)
    other = lofo_protocol(ds, TrainConfig(**{**cfg.to_dict(), "seed": 1}))  # what `--seed` changes: the GNN's numbers
    assert other["config"]["seed"] == 1 and other["overall"]["GNN"]["mape"] != one["overall"]["GNN"]["mape"]


def test_saved_predictor_round_trips_with_weights_only(tiny_data, tiny_predictor, tmp_path):
    graphs, _, _ = tiny_data
    pred, _ = tiny_predictor
    path = pred.save(tmp_path / "p.pt")
    doc = torch.load(path, weights_only=True)  # plain containers only: no pickled code
    assert doc["format"] == "gapp-predictor" and doc["training"] == {"blocks": len(graphs)}
    again = Predictor.load(path)
    assert np.allclose(again.block_times(graphs), pred.block_times(graphs))
    assert again.device == "synthetic"


def test_a_predictor_with_block_context_and_width_alignment_round_trips(tiny_data, tmp_path):
    graphs, items, y = tiny_data
    cfg = TrainConfig(**{**TINY.to_dict(), "steps": 10, "context": True, "align": True})
    model, _ = fit_gnn(graphs, items, y, list(range(len(items))), None, cfg)
    assert model.config["context"] and len(model.config["align_columns"]) == 8
    pred = Predictor(model, "synthetic")
    again = Predictor.load(pred.save(tmp_path / "p.pt"))
    assert again.model.config == model.config
    assert np.allclose(again.block_times(graphs), pred.block_times(graphs))
    # widths 64 and 63 differ only in alignment after log-scaling; the encoder is told which is aligned
    x = torch.zeros(2, model.config["n_node"])
    col = model.config["align_columns"][0]
    x[0, col], x[1, col] = 64, 63
    a = model.alignment_flags(x)
    assert a[0, 0] == 1 and a[0, 8] == 1 and a[1].sum() == 0


def test_an_ensemble_predicts_the_geometric_mean_of_its_members_and_round_trips(tiny_data, tmp_path):
    graphs, items, y = tiny_data
    cfg = TrainConfig(**{**TINY.to_dict(), "steps": 10, "members": 2})
    ens, hist = fit_gnn(graphs, items, y, list(range(len(items))), None, cfg)
    assert ens.config["members"] == 2 and len(hist["best_step"]) == 2
    bt = ItemBatcher(graphs, items)
    each = [item_times(m, bt, [0, 1, 2]) for m in ens.members]
    assert not torch.allclose(each[0], each[1])  # different seeds, different members
    assert torch.allclose(item_times(ens, bt, [0, 1, 2]), torch.sqrt(each[0] * each[1]), rtol=1e-5)
    pred = Predictor(ens, "synthetic")
    again = Predictor.load(pred.save(tmp_path / "e.pt"))
    assert np.allclose(again.block_times(graphs), pred.block_times(graphs))


def test_a_predictor_file_from_before_ensembles_still_loads(tiny_data, tiny_predictor, tmp_path):
    graphs, _, _ = tiny_data
    pred, _ = tiny_predictor
    doc = pred.to_dict()
    for key in ("context", "align_columns", "members"):  # the config an earlier GAPP wrote
        doc["config"].pop(key, None)
    torch.save(doc, tmp_path / "old.pt")
    assert np.allclose(Predictor.load(tmp_path / "old.pt").block_times(graphs), pred.block_times(graphs))


def test_predictor_from_another_feature_schema_is_refused(tiny_predictor, tmp_path):
    pred, _ = tiny_predictor
    doc = pred.to_dict()
    doc["feature_schema_version"] = 999
    torch.save(doc, tmp_path / "old.pt")
    with pytest.raises(BadInput, match="feature schema version 999.*retrain"):
        Predictor.load(tmp_path / "old.pt")


def test_unseen_model_is_predicted_from_features_alone(tiny_predictor, tmp_db):
    from gapp_tui.store import Store
    from gapp_tui.zoo import ModelSpec

    pred, _ = tiny_predictor
    doc = pred.predict_model(ModelSpec("resnet18", input_size=32))
    assert len(doc["blocks"]) > 3
    assert all(np.isfinite(b["predicted_ms"]) and b["predicted_ms"] > 0 for b in doc["blocks"])
    assert doc["sum_ms"] == pytest.approx(sum(b["predicted_ms"] for b in doc["blocks"]))
    with Store(tmp_db) as store:  # nothing was measured or stored to make the prediction
        assert store.count(model="resnet18") == 0


def test_ops_outside_the_vocabulary_become_other_with_a_warning_naming_them(tiny_predictor):
    from gapp_tui.zoo import ModelSpec

    pred, _ = tiny_predictor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = pred.predict_model(ModelSpec("tests.test_predict:OddNet", input_shape=(1, 3, 8, 8)))
    assert "cumsum" in doc["unknown_ops"]
    assert any("cumsum" in w for w in doc["warnings"])
    assert all(b["predicted_ms"] > 0 for b in doc["blocks"])


def test_few_shot_calibration_recovers_a_device_that_is_a_scaled_power_of_the_source():
    rng = np.random.default_rng(0)
    src = np.exp(rng.uniform(-2, 3, size=10))
    target = 3.0 * src ** 0.9
    cal = fit_calibration(src, target)
    assert apply_calibration(src, cal) == pytest.approx(target, rel=0.05)
    assert fit_calibration(src[:2], target[:2])["a"] == 1.0  # two samples: a scale only


def test_dataset_with_no_rows_for_the_device_is_bad_input(tmp_db):
    from gapp_tui.predict.dataset import rows_from_store
    from gapp_tui.store import Store

    with Store(tmp_db) as store:
        with pytest.raises(BadInput, match="device 'pi-nowhere' has no rows"):
            rows_from_store(store, "pi-nowhere")
    res = CliRunner().invoke(app, ["train", "--db", str(tmp_db), "--device", "pi-nowhere"])
    assert res.exit_code == 2
    assert "pi-nowhere" in res.output and len(res.output.strip().splitlines()) == 1


def test_synthetic_blocks_are_refused_for_a_store_device_and_bad_members_are_bad_input(tmp_db):
    res = CliRunner().invoke(app, ["train", "--db", str(tmp_db), "--device", "pi4", "--synthetic"])
    assert res.exit_code == 2 and "--synthetic" in res.output and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(app, ["train", "--members", "0"])
    assert res.exit_code == 2 and "--members 0" in res.output


def test_corrupt_predictor_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a predictor")
    res = CliRunner().invoke(app, ["predict", "resnet18", "--predictor", str(bad), "--input-size", "32"])
    assert res.exit_code == 2
    assert "corrupt" in res.output and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(app, ["predict", "resnet18", "--predictor", str(tmp_path / "missing.pt")])
    assert res.exit_code == 2 and "not found" in res.output


def test_cli_predict_json_is_one_document(tiny_predictor, tmp_path):
    pred, _ = tiny_predictor
    path = pred.save(tmp_path / "p.pt")
    res = CliRunner().invoke(app, ["predict", "mobilenet_v3_small", "--predictor", str(path), "--input-size", "32", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["model"] == "mobilenet_v3_small" and doc["sum_ms"] > 0
    assert len(doc["blocks"]) == len({b["index"] for b in doc["blocks"]})


def test_cli_few_shot_adapts_a_predictor_to_a_few_measured_blocks(tiny_predictor, tmp_path, tmp_db):
    """The path a user with a new Pi takes: measure a few blocks, adapt the shipped predictor to them."""
    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.timer import Precision
    from gapp_tui.store import Store
    from gapp_tui.zoo import ModelSpec

    pred, _ = tiny_predictor
    base = pred.save(tmp_path / "base.pt")
    with Store(tmp_db) as store:
        res = measure(ModelSpec("squeezenet1_1", input_size=32),
                      MeasureConfig(modes=("standalone",), threads=1, precision=Precision.quick(), full=False), store=store)
        dev = res.all_rows()[0]["device_key"]
    out = tmp_path / "adapted.pt"
    cli = CliRunner().invoke(app, ["train", "--few-shot", "--base", str(base), "--db", str(tmp_db), "--device", dev,
                                   "--method", "log-affine", "--out", str(out), "--json"])
    assert cli.exit_code == 0, cli.output
    doc = json.loads(cli.stdout)  # the old correction, kept as a baseline: t' = exp(b) t^a
    assert doc["samples"] > 3 and doc["fit_after"]["rms_log_error"] <= doc["fit_before"]["rms_log_error"] + 1e-9
    assert Predictor.load(out).calibration["samples"] == doc["samples"]
    cli = CliRunner().invoke(app, ["train", "--few-shot", "--base", str(base), "--db", str(tmp_db), "--device", dev,
                                   "--out", str(out), "--json"])  # the default: relative costs, chosen by cross-validation
    assert cli.exit_code == 0, cli.output
    doc = json.loads(cli.stdout)
    assert doc["method"] == "embedding" and doc["samples"] > 3 and doc["made_for"]["device_key"] == dev
    adapted = Predictor.load(out)
    assert adapted.adaptation is not None and adapted.machine == dev and adapted.interval is not None
    # and a predictor trained from scratch on the same store rows
    scratch = tmp_path / "scratch.pt"
    cli = CliRunner().invoke(app, ["train", "--db", str(tmp_db), "--device", dev, "--steps", "30", "--hidden", "16",
                                   "--out", str(scratch), "--json"])
    assert cli.exit_code == 0, cli.output
    doc = json.loads(cli.stdout)
    assert doc["blocks"] == len(res.all_rows()) and Predictor.load(scratch).device == dev
    config = Predictor.load(scratch).model.config
    assert config["dispatch"] and config["positions"] and config["cache_mb"] == 16  # on by default: PyTorch measured these
    cli = CliRunner().invoke(app, ["train", "--db", str(tmp_db), "--device", dev, "--steps", "5", "--hidden", "16",
                                   "--no-dispatch", "--cache-mb", "0", "--out", str(scratch), "--json"])
    assert cli.exit_code == 0, cli.output
    assert not {"dispatch", "positions", "cache_mb"} & set(Predictor.load(scratch).model.config)


def test_cli_evaluate_unknown_protocol_is_bad_input():
    res = CliRunner().invoke(app, ["evaluate", "nb2O1"])
    assert res.exit_code == 2 and "nb201" in res.output


def test_cli_evaluate_negative_seed_is_bad_input():
    res = CliRunner().invoke(app, ["evaluate", "torchvision", "--seed", "-1"])
    assert res.exit_code == 2 and "--seed -1" in res.output and "0 or more" in res.output


@pytest.mark.parametrize("cmd", [["evaluate", "torchvision"], ["train"]])
@pytest.mark.parametrize("value", ["-0.5", "-4"])
def test_cli_cache_mb_must_not_be_negative(cmd, value, tmp_path):
    res = CliRunner().invoke(app, [*cmd, "--cache-mb", value, *(["--out", str(tmp_path / "p.pt")] if cmd == ["train"] else [])])
    assert res.exit_code == 2 and f"--cache-mb {value}" in res.output and "0: off" in res.output
    assert not (tmp_path / "p.pt").exists()


def test_cache_flag_marks_the_layers_of_blocks_whose_weights_exceed_the_knee_and_round_trips(tiny_data, tmp_path):
    """A layer with weights is flagged when its block's weights exceed ``cache_mb``; a weightless op never is."""
    from gapp_tui.blocks import BlockChain
    from gapp_tui.features import extract
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.synthetic import MODEL_NAME
    from gapp_tui.zoo import ModelSpec

    mlp = nn.Sequential(nn.Linear(512, 2048), nn.GELU(), nn.Linear(2048, 512)).eval()  # 8.4 MB of weights
    chain = BlockChain.from_spec(ModelSpec(MODEL_NAME, input_shape=(1, 5, 512)), 1, device="meta", model=mlp)
    g = extract(chain)[0]
    x, totals = g.data.x.float(), g.data.totals.float()
    batch = torch.zeros(x.shape[0], dtype=torch.long)
    has_weights = x[:, list(g.node_columns).index("params")] > 0
    assert int(has_weights.sum()) == 2
    for knee, flagged in ((4.0, True), (16.0, False)):
        model = BlockGNN(x.shape[1], totals.shape[1], hidden=8, layers=1, dispatch=True, cache_mb=knee)
        flag = model.cache_flags(x, totals, batch)[:, 0].bool()
        assert flag.tolist() == (has_weights & flagged).tolist()
    # trained with the flag, a predictor keeps it through a save and load, and predicts as before
    graphs, items, y = tiny_data
    model, _ = fit_gnn(graphs, items, y, list(range(len(items))), None,
                       TrainConfig(**{**TINY.to_dict(), "steps": 10, "cache_mb": 0.5}))
    assert model.config["cache_mb"] == 0.5
    pred = Predictor(model, "synthetic")
    again = Predictor.load(pred.save(tmp_path / "p.pt"))
    assert again.model.config == model.config
    assert np.allclose(again.block_times(graphs), pred.block_times(graphs))
    # the flag changes what the encoder sees: the same weights with the knee elsewhere predict differently
    other = BlockGNN(**{**model.config, "cache_mb": 1e6})
    other.load_state_dict(model.state_dict())
    b = ItemBatcher(graphs, items)
    assert not torch.allclose(item_times(model, b, list(range(len(items)))), item_times(other, b, list(range(len(items)))))


@pytest.mark.parametrize("n,c,hw,k,stride,groups", [
    (1, 384, 3, 3, 1, 1),    # small input, 3x3: PyTorch's own kernel
    (4, 384, 3, 3, 1, 1),    # the same at batch 4: oneDNN
    (1, 64, 32, 3, 1, 1),    # 65,536 input elements: oneDNN
    (1, 64, 8, 1, 1, 1),     # 1x1 unstrided, small input: own kernel at any thread count
    (1, 64, 32, 1, 1, 1),    # 1x1 unstrided, 65,536 input elements: own kernel at 1 thread, oneDNN at 2
    (1, 64, 8, 1, 2, 1),     # 1x1 strided: oneDNN
    (1, 32, 8, 3, 1, 32),    # depthwise: oneDNN
    (1, 32, 8, 3, 1, 4),     # grouped: oneDNN
    (1, 16, 8, 5, 1, 1),     # both kernel sides above 3: oneDNN
])
@pytest.mark.parametrize("threads", [1, 2])
def test_dispatch_flags_match_the_kernel_pytorch_runs(n, c, hw, k, stride, groups, threads):
    """The GNN's dispatch flags are computed from shapes and the thread count; the profiler says which kernel ran."""
    from torch.profiler import profile

    from gapp_tui.blocks import BlockChain
    from gapp_tui.features import extract
    from gapp_tui.predict.gnn import BlockGNN, dispatch_threads
    from gapp_tui.predict.synthetic import MODEL_NAME
    from gapp_tui.zoo import ModelSpec

    conv = nn.Sequential(nn.Conv2d(c, 64 if groups == 1 else c, k, stride=stride, groups=groups, padding=k // 2)).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad(), profile() as prof:
            conv(torch.randn(n, c, hw, hw))
    finally:
        torch.set_num_threads(before)
    ran = {e.key for e in prof.key_averages()}
    own_kernel = "aten::_slow_conv2d_forward" in ran
    assert own_kernel != ("aten::mkldnn_convolution" in ran), ran

    chain = BlockChain.from_spec(ModelSpec(MODEL_NAME, input_shape=(n, c, hw, hw)), 1, device="meta", model=conv)
    g = extract(chain)[0]
    model = BlockGNN(g.data.x.shape[1], g.data.totals.shape[1], hidden=8, layers=1, dispatch=True)
    with dispatch_threads(model, threads):
        flags = model.dispatch_flags(g.data.x.float())
    assert model.threads == 1  # restored
    conv_row = flags[g.data.x[:, 0] < 0.5].amax(0)  # the convolution (the other node is the block's input)
    pointwise, small, depthwise, grouped = (bool(v) for v in conv_row)
    assert own_kernel == (pointwise or small)
    assert depthwise == (groups == c and groups > 1)
    assert grouped == (1 < groups < c)


@pytest.mark.parametrize("n,hw,k,flagged", [
    (1, 3, 1, True),     # squeezenet's class-score layer at 64 px: own kernel, 9 positions
    (1, 4, 1, False),    # the same on a 4x4 map: 16 positions
    (1, 5, 3, True),     # small input, 3x3: own kernel, 25 positions
    (4, 3, 3, False),    # 3x3 at batch 4: oneDNN, whatever the map
])
def test_positions_flag_marks_own_kernel_convolutions_on_maps_that_are_not_a_multiple_of_16(n, hw, k, flagged):
    from gapp_tui.blocks import BlockChain
    from gapp_tui.features import extract
    from gapp_tui.predict.gnn import BlockGNN
    from gapp_tui.predict.synthetic import MODEL_NAME
    from gapp_tui.zoo import ModelSpec

    conv = nn.Sequential(nn.Conv2d(64, 96, k, padding=k // 2)).eval()
    chain = BlockChain.from_spec(ModelSpec(MODEL_NAME, input_shape=(n, 64, hw, hw)), 1, device="meta", model=conv)
    x = extract(chain)[0].data.x.float()
    is_conv = x[:, 0] < 0.5
    assert BlockGNN(x.shape[1], 4, hidden=8, layers=1, dispatch=True).dispatch_flags(x).shape[1] == 4  # off unless asked
    model = BlockGNN(x.shape[1], 4, hidden=8, layers=1, dispatch=True, positions=True)
    flags = model.dispatch_flags(x)
    assert flags.shape[1] == 5 and bool(flags[is_conv, 4].amax()) == flagged and not flags[~is_conv].any()
    assert model.config["positions"] and "positions" not in BlockGNN(x.shape[1], 4, positions=True).config  # needs dispatch


def test_few_shot_uses_only_the_rows_of_its_runtime_and_records_it(tiny_predictor, tmp_path, tmp_db):
    """Rows of another runtime never stand in: --runtime picks the samples, and the predictor says which runtime."""
    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.timer import Precision
    from gapp_tui.store import Store
    from gapp_tui.zoo import ModelSpec

    pred, _ = tiny_predictor
    base = pred.save(tmp_path / "base.pt")
    with Store(tmp_db) as store:
        res = measure(ModelSpec("squeezenet1_1", input_size=32),
                      MeasureConfig(modes=("standalone",), threads=1, precision=Precision.quick(), full=False), store=store)
        eager = res.all_rows()
        dev = eager[0]["device_key"]
        # the same blocks as if timed under ExecuTorch (three times slower, fewer of them): a second runtime's rows
        store.add_rows([{**r, "setting": r["setting"] + "/executorch", "median_ms": 3 * r["median_ms"],
                         "min_ms": 3 * (r.get("min_ms") or r["median_ms"])} for r in eager[:-2]])
    out = {}
    for runtime in ("eager", "executorch"):
        out[runtime] = tmp_path / f"{runtime}.pt"
        cli = CliRunner().invoke(app, ["train", "--few-shot", "--base", str(base), "--db", str(tmp_db), "--device", dev,
                                       "--runtime", runtime, "--out", str(out[runtime]), "--json"])
        assert cli.exit_code == 0, cli.output
        doc = json.loads(cli.stdout)
        assert doc["samples"] == (len(eager) if runtime == "eager" else len(eager) - 2)
        assert doc["made_for"]["runtime"] == runtime and Predictor.load(out[runtime]).made_for["runtime"] == runtime
    eager_pred = Predictor.load(out["eager"])  # the executorch rows are 3x slower: so are its predictions
    from gapp_tui.features import extract
    from gapp_tui.blocks import BlockChain

    g = extract(BlockChain.from_spec(ModelSpec("squeezenet1_1", input_size=32), "natural", device="meta"))
    ratio = Predictor.load(out["executorch"]).block_times(g).sum() / eager_pred.block_times(g).sum()
    assert 2 < ratio < 4.5, ratio
    # the old log-affine path too
    cli = CliRunner().invoke(app, ["train", "--few-shot", "--base", str(base), "--db", str(tmp_db), "--device", dev,
                                   "--runtime", "executorch", "--method", "log-affine", "--out", str(tmp_path / "la.pt"),
                                   "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["samples"] == len(eager) - 2
    assert Predictor.load(tmp_path / "la.pt").made_for["runtime"] == "executorch"
