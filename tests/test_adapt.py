"""Adapting a predictor to a device: relative costs from a handful of samples, totals CSVs, intervals, files."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gapp_tui.cli import app
from gapp_tui.errors import BadInput
from gapp_tui.predict import adapt as A
from gapp_tui.predict.dataset import model_graphs
from gapp_tui.predict.interval import calibrate, conformal_quantile, coverage, spread
from gapp_tui.predict.predictor import Predictor
from gapp_tui.predict.samples import read_totals, totals_dataset
from gapp_tui.predict.train import TrainConfig, fit_gnn

TINY = TrainConfig(hidden=16, layers=2, steps=150, batch_items=16, eval_every=25, patience=100, lr=1e-2, members=2)


def _cost(g, conv_ms_per_mflop: float, other_ms_per_mb: float) -> float:
    """A device's time of a block from its operations: convolutions by FLOPs, everything else by bytes."""
    cols = list(g.node_columns)
    x = g.data.x.double()
    conv = x[:, cols.index("op_conv2d")] > 0.5
    inputs = x[:, cols.index("op_input")] > 0.5
    mflop = x[:, cols.index("flops")] / 1e6
    mb = (x[:, cols.index("bytes_read")] + x[:, cols.index("bytes_written")]) / 1e6
    return float(0.005 + conv_ms_per_mflop * mflop[conv].sum() + other_ms_per_mb * mb[~conv & ~inputs].sum())


@pytest.fixture(scope="module")
def two_devices():
    """Blocks of three small models; the base device and a second one whose convolutions cost 6x more per FLOP
    relative to memory traffic (what a device with weak arithmetic and fast memory looks like)."""
    graphs = []
    for name, b, s in (("squeezenet1_1", 1, 32), ("mnasnet0_5", 1, 32), ("resnet18", 1, 32), ("mobilenet_v3_small", 1, 48)):
        graphs.extend(model_graphs(name, b, s)[0])
    base_y = np.array([_cost(g, 2e-3, 2e-2) for g in graphs])
    device_y = np.array([_cost(g, 12e-3, 1e-2) for g in graphs])
    items = [[(i, 1)] for i in range(len(graphs))]
    model, _ = fit_gnn(graphs, items, base_y, list(range(len(items))), None, TINY)
    return graphs, items, model, base_y, device_y


def test_adaptation_from_a_handful_of_samples_lowers_the_error_on_held_out_samples_of_that_device(two_devices):
    graphs, items, model, _, device_y = two_devices
    rng = np.random.RandomState(0)
    fit = rng.choice(len(items), 12, replace=False)
    rest = np.setdiff1d(np.arange(len(items)), fit)
    ad = A.adapt(model, graphs, [items[i] for i in fit], device_y[fit], methods=("embedding",), lambdas=(0.001,))
    scale = A.adapt(model, graphs, [items[i] for i in fit], device_y[fit], methods=("log-affine",))
    held = [items[i] for i in rest]
    err = lambda t: float(np.abs(np.log(np.exp(np.log(t).mean(0)) / device_y[rest])).mean())  # noqa: E731
    adapted = err(A.adapted_member_times(model, ad, graphs, held))
    rescaled = err(A.adapted_member_times(model, scale, graphs, held))
    base = err(A.base_member_times(model, graphs, held))
    assert adapted < 0.75 * rescaled and adapted < 0.5 * base, (adapted, rescaled, base)
    assert ad.method == "embedding" and len(ad.shifts) == 2 and ad.interval is not None


def test_the_prior_holds_the_minor_directions_and_leaves_the_intercepts_nearly_free_from_20_samples_on():
    """Precision ``(s_j / geometric mean)^-2``: a direction that spreads 4x more is held 16x less."""
    b = A.Basis(mean=[0.0, 0.0, 0.0], directions=[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], scale=[4.0, 1.0])
    many = b.prior(*A.prior_for(A.MANY_SAMPLES))
    assert many.shape == (3, 3)
    assert np.allclose(many[:, 1] / many[:, 0], 16.0)
    assert np.allclose(many[:, 0] * many[:, 1], 1.0)  # normalised by the geometric mean: lambda keeps its meaning
    assert np.all(many[:, 2] < 0.1 * many[:, :2].min())
    few = b.prior(*A.prior_for(A.MANY_SAMPLES - 1))  # ten samples: every direction alike
    assert np.allclose(few[:, :2], 1.0) and np.all(few[:, 2] < 1.0)


def test_a_few_blocks_on_a_kernel_of_their_own_pull_a_block_calibration_less_than_they_would_with_squared_errors(
        two_devices):
    """Block samples (a calibration's probes), from 20 on, are fitted with Huber's loss: four of 30 blocks that run
    3x slower than the device's costs say (a kernel of their own) barely move the other blocks' predictions."""
    graphs, items, model, _, device_y = two_devices
    rng = np.random.RandomState(1)
    fit = rng.choice(len(items), 30, replace=False)
    rest = np.setdiff1d(np.arange(len(items)), fit)
    y = device_y[fit].copy()
    y[:4] *= 3.0
    held = [items[i] for i in rest]
    err = lambda ad: float(np.abs(np.log(A.adapted_member_times(model, ad, graphs, held)).mean(0)  # noqa: E731
                                  - np.log(device_y[rest])).mean())
    robust = A.adapt(model, graphs, [items[i] for i in fit], y, grain="block")  # the prior's strength by cross-validation
    squared = A.adapt(model, graphs, [items[i] for i in fit], y, grain="item")
    assert robust.cv["huber"] == A.ROBUST_HUBER and squared.cv["huber"] == 0.0
    assert A.huber_for(A.MANY_SAMPLES - 1, "block") == 0.0 and A.huber_for(500, "model") == 0.0
    assert err(robust) < 0.5 * err(squared), (err(robust), err(squared))


def test_a_device_that_is_a_scaled_copy_of_the_base_gets_the_scale_and_no_relative_change(two_devices):
    """The base machine 3x slower has nothing relative to learn: the free scale takes it all."""
    graphs, items, model, _, _ = two_devices
    members = A.base_member_times(model, graphs)
    y = 3.0 * np.exp(np.log(members).mean(0))  # exactly a scale of the base prediction
    ad = A.adapt(model, graphs, items[:10], y[:10])
    got = np.exp(np.log(A.adapted_member_times(model, ad, graphs)).mean(0))
    assert np.allclose(got, y, rtol=0.02), np.abs(got / y - 1).max()
    assert ad.cv["candidates"][ad.cv["chosen"]]["mape"] < 2.0


def test_an_adapted_predictor_round_trips_and_predicts_with_intervals(two_devices, tmp_path):
    graphs, items, model, _, device_y = two_devices
    ad = A.adapt(model, graphs, items[:15], device_y[:15], lambdas=(0.003,))
    pred = Predictor(model, "dev-1", adaptation=ad, made_for={"device_key": "dev-1", "label": "the test device"})
    path = pred.save(tmp_path / "dev.pt")
    assert torch.load(path, weights_only=True)["format_version"] == 2  # an older GAPP refuses it: it cannot adapt
    again = Predictor.load(path)
    assert np.allclose(again.block_times(graphs), pred.block_times(graphs))
    assert again.machine == "the test device"
    iv = again.block_intervals(graphs)
    assert (iv["low"] <= iv["ms"]).all() and (iv["ms"] <= iv["high"]).all()
    assert iv["sum_low"] <= iv["sum_ms"] <= iv["sum_high"]
    res = CliRunner().invoke(app, ["predict", "resnet18", "--input-size", "32", "--predictor", str(path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["made_for"] == "the test device" and doc["interval"]["level"] == 0.9
    assert all(b["low_ms"] <= b["predicted_ms"] <= b["high_ms"] for b in doc["blocks"])
    assert doc["sum_low_ms"] <= doc["sum_ms"] <= doc["sum_high_ms"]


def test_whole_model_samples_and_block_samples_are_fitted_alike(two_devices):
    """An item of several blocks (a whole model) is fitted on the sum of its blocks' predictions."""
    graphs, _, model, _, device_y = two_devices
    models = {}
    for i, g in enumerate(graphs):
        models.setdefault(g.model, []).append(i)
    items = [[(i, 1) for i in idx] for idx in models.values()]
    y = np.array([device_y[idx].sum() for idx in models.values()])
    ad = A.adapt(model, graphs, items, y, methods=("embedding",), lambdas=(0.001,))
    t = np.exp(np.log(A.adapted_member_times(model, ad, graphs, items)).mean(0))
    raw = np.exp(np.log(A.base_member_times(model, graphs, items)).mean(0))
    scale = math.exp(np.log(y / raw).mean())
    assert np.abs(np.log(t / y)).mean() < np.abs(np.log(scale * raw / y)).mean()


def test_the_arm_benchmarks_log_affine_baseline_predicts_whole_models_as_it_was_fitted(two_devices):
    """benchmarks/predict_arm.py: the log-affine baseline, fitted on whole-model sums, predicts those sums.

    Least squares with an intercept leaves no mean log error on the items it was fitted on; a slope fitted
    on the sums but applied to every block and summed (what the benchmark once did) inflates every model.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import predict_arm  # a script, not a package: importable only once its folder is on the path

    graphs, _, model, _, device_y = two_devices
    models: dict[str, list[int]] = {}
    for i, g in enumerate(graphs):
        models.setdefault(g.model, []).append(i)
    items = [[(i, 1) for i in idx] for idx in models.values()]
    y = np.array([device_y[idx].sum() for idx in models.values()]) ** 0.6  # a device whose slope is far from 1
    ds = types.SimpleNamespace(graphs=graphs, items=items, y=y)
    every = np.arange(len(items))
    p, lo, hi, ad = predict_arm._adapt_predict(types.SimpleNamespace(model=model), ds, every, every,
                                               ("log-affine",), [0])
    assert ad.method == "log-affine" and len(items) > 3
    assert abs(float(np.log(p / y).mean())) < 0.05


# ----------------------------------------------------------------------------- intervals


def test_conformal_quantile_and_calibrated_coverage():
    assert conformal_quantile(range(1, 21), 0.9, conservative=True) == 19  # ceil(21 * 0.9) = 19th of 20
    assert conformal_quantile([1.0, 2.0], 0.9, conservative=True) == 2.0  # too few: the largest
    assert conformal_quantile(range(1, 21), 0.9) == pytest.approx(18.1)  # the default: the 0.9 quantile
    rng = np.random.RandomState(0)
    sigma = rng.uniform(0.02, 0.2, 4000)
    r = rng.normal(0, 1, 4000) * sigma * 1.5  # errors proportional to the spread, 1.5x wider than it says
    model = calibrate(r[:2000], sigma[:2000], 0.9)
    lo, hi = model.bounds(np.zeros(2000), sigma[2000:])
    cov = coverage(np.exp(r[2000:]), lo, hi)
    assert 87 <= cov <= 93, cov
    mu, s = spread(np.log([[1.0, 2.0], [4.0, 2.0]]))
    assert np.allclose(np.exp(mu), [2.0, 2.0]) and s[1] == 0.0


# ----------------------------------------------------------------------------- totals CSVs


def _csv(tmp_path, text: str):
    p = tmp_path / "totals.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,needle", [
    ("model,input_shape,latency_ms\nresnet18,1x3x32x32,4.5\nresnet1800,1x3x32x32,2\n", "resnet1800"),
    ("model,input_shape,latency_ms\nresnet18,1x3x32x32,0\n", "latency_ms 0 is not positive"),
    ("model,input_shape,latency_ms\nresnet18,1x3x32x32,-3\n", "latency_ms -3 is not positive"),
    ("model,input_shape,latency_ms\nresnet18,1x3x32x32,fast\n", "'fast' is not a number"),
    ("model,latency_ms\nresnet18,4.5\n", "no column input_shape"),
    ("model,input_shape,latency_ms\nnot.a.module:build,1x3x32x32,2\n", "not.a.module"),
])
def test_a_bad_totals_csv_is_refused_with_one_line_and_exit_code_2(tmp_path, text, needle):
    path = _csv(tmp_path, text)
    with pytest.raises(BadInput, match=needle.replace("(", r"\(")):
        read_totals(path)
    res = CliRunner().invoke(app, ["train", "--few-shot", "--totals", str(path), "--out", str(tmp_path / "p.pt")])
    assert res.exit_code == 2, res.output
    assert needle in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "p.pt").exists()


class Untraceable(nn.Module):
    """Control flow on a tensor value: torch.fx cannot trace it, so GAPP cannot capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_a_model_that_cannot_be_captured_is_left_out_with_its_reason_and_the_rest_are_used(tmp_path):
    rows = read_totals(_csv(tmp_path, "model,input_shape,latency_ms\nresnet18,32,4.5\n"
                                      "tests.test_adapt:Untraceable,1x3x16x16,1.0\n"))
    assert rows[0]["input_shape"] == (1, 3, 32, 32)  # a size alone is a square RGB image at batch 1
    ds = totals_dataset(rows)
    assert ds.model == ["resnet18"] and len(ds.items[0]) > 3 and ds.y.tolist() == [4.5]
    (left,) = ds.description["left_out"]
    assert left["model"] == "tests.test_adapt:Untraceable" and "trace" in left["reason"]


def test_cli_few_shot_adapts_to_a_totals_csv_and_names_the_device(two_devices, tmp_path):
    graphs, items, model, _, device_y = two_devices
    base = Predictor(model, "base").save(tmp_path / "base.pt")
    per_model: dict[str, float] = {}
    for g, y in zip(graphs, device_y):
        per_model[g.model] = per_model.get(g.model, 0.0) + y
    shapes = {"squeezenet1_1": 32, "mnasnet0_5": 32, "resnet18": 32, "mobilenet_v3_small": 48}
    lines = ["model,input_shape,latency_ms"] + [f"{m},1x3x{shapes[m]}x{shapes[m]},{v:.6f}" for m, v in per_model.items()]
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    out = tmp_path / "dev.pt"
    res = CliRunner().invoke(app, ["train", "--few-shot", "--base", str(base), "--totals", str(path), "--machine",
                                   "board X", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["samples"] == 4 and doc["left_out"] == [] and doc["method"] in ("embedding", "log-affine")
    assert doc["fit_after"]["mape"] <= doc["fit_before"]["mape"] + 1e-6
    assert Predictor.load(out).machine == "board X"


def test_cli_few_shot_log_affine_on_totals_predicts_the_whole_models_it_was_fitted_on(two_devices, tmp_path):
    """``gapp train --few-shot --method log-affine --totals``: the correction is applied to each block, so it is
    fitted so that each model's sum of corrected blocks matches its total (not fitted on the sums alone: a slope
    below 1 applied to n blocks and summed inflates a model by about n^(1-a))."""
    graphs, items, model, _, device_y = two_devices
    base = Predictor(model, "base").save(tmp_path / "base.pt")
    shapes = {"squeezenet1_1": 32, "mnasnet0_5": 32, "resnet18": 32, "mobilenet_v3_small": 48}
    per_model: dict[str, float] = {}
    for g, y in zip(graphs, device_y):
        per_model[g.model] = per_model.get(g.model, 0.0) + y
    totals = {m: 0.5 * (v * 1e3) ** 0.5 for m, v in per_model.items()}  # a device whose slope is far from 1
    lines = ["model,input_shape,latency_ms"] + [f"{m},1x3x{shapes[m]}x{shapes[m]},{v:.6f}" for m, v in totals.items()]
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    out = tmp_path / "dev.pt"
    res = CliRunner().invoke(app, ["train", "--few-shot", "--method", "log-affine", "--base", str(base), "--totals",
                                   str(path), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["method"] == "log-affine"
    pred = Predictor.load(out)
    assert abs(pred.adaptation.log_affine[0]["a"] - 1.0) > 0.1  # the test means something: a slope, not a scale
    ds = totals_dataset(read_totals(path))
    sums = np.array([float(pred.block_times([ds.graphs[g] for g, _ in it]) @ np.array([c for _, c in it], float))
                     for it in ds.items])
    err = np.log(sums / ds.y)
    assert abs(float(err.mean())) < 0.05, err


def test_an_adaptation_to_a_device_at_two_threads_sees_its_large_1x1_convolutions_on_onednn(tmp_path):
    """PyTorch picks a 1x1 convolution's kernel by the thread count: the adaptation keeps the device's, in its file."""
    from gapp_tui.predict.gnn import BlockGNN, dispatch_threads

    graphs, _ = model_graphs("mobilenet_v2", 1, 64)
    torch.manual_seed(0)
    model = BlockGNN(graphs[0].data.x.shape[1], graphs[0].data.totals.shape[1], hidden=16, layers=1, dispatch=True)
    items = [[(i, 1)] for i in range(len(graphs))]
    y = A.base_member_times(model, graphs, items)[0] * np.random.RandomState(0).uniform(1.5, 3.0, len(graphs))
    ad = A.adapt(model, graphs, items, y, lambdas=(0.003,), threads=2)
    assert ad.threads == 2 and model.threads == 1  # the model is left as it was
    pred = Predictor(model, "dev-2t", adaptation=ad)
    again = Predictor.load(pred.save(tmp_path / "dev.pt"))
    two = again.block_times(graphs)
    assert np.allclose(two, pred.block_times(graphs))
    one = np.exp(np.log(A.adapted_member_times(model, dataclasses.replace(ad, threads=1), graphs)).mean(0))

    def flags(threads):
        with dispatch_threads(model, threads):
            return [model.dispatch_flags(g.data.x.float()) for g in graphs]

    moved = np.array([not torch.equal(a, b) for a, b in zip(flags(1), flags(2))])
    assert moved.any() and not moved.all()  # mobilenet_v2 at 64 px: some 1x1 inputs above 20,480 elements, some not
    assert not np.isclose(one, two)[moved].any() and np.allclose(one[~moved], two[~moved])
