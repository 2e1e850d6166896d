"""Models whose ``forward`` takes several inputs (two frames, an image and an id), as a user gives them:
``--input-shape`` once per input (or ``;`` between shapes), through capture, blocks, predict and measure."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from textual.widgets import Input
from typer.testing import CliRunner

from gapp_tui.blocks import BlockChain
from gapp_tui.capture import capture
from gapp_tui.cli import app
from gapp_tui.errors import BadInput
from gapp_tui.pipeline.config import spec_from_dict
from gapp_tui.store import Store, parse_setting
from gapp_tui.zoo import ModelSpec
from tests.sshd import sshd  # noqa: F401  (a real OpenSSH server on 127.0.0.1)
from tests.test_tui import notifications, run, small_app, sync, tui_env  # noqa: F401  (tui_env is a fixture)

ROOT = Path(__file__).resolve().parents[1]
TWO = "tests.custom_models:two_images"  # forward(image1, image2, scale=1.0)
ID = "tests.custom_models:image_and_id"  # forward(x, pid): float32 and int64
FAST = ("--threads", "1", "--min-runs", "3", "--max-runs", "5", "--target-ci", "0.05", "--max-time", "0.3",
        "--warmup", "1")


def gapp(*args: str, db: Path | None = None):
    env = {"COLUMNS": "150", **({"GAPP_DB": str(db)} if db else {})}
    return CliRunner(env=env).invoke(app, list(args))


def one_line_error(r) -> str:
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert r.stdout == ""
    return lines[0]


# --------------------------------------------------------------------------- the spec


def test_one_input_specs_are_stored_as_before():
    spec = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 8, 8), input_dtype="float32")
    assert spec.to_dict() == {"name": "tests.custom_models:two_branch", "batch_size": 1, "num_classes": 1000,
                              "input_size": None, "input_shape": [1, 3, 8, 8], "input_dtype": "float32"}
    assert spec.shape_text == "1x3x8x8" and spec.n_inputs == 1 and spec.inputs_doc() == {}
    assert torch.equal(spec.example_inputs(seed=3)[0], spec.example_input(seed=3))


def test_several_shapes_split_into_the_first_and_the_others_and_round_trip():
    for given in ("3,16,16;3,16,16", ["3,16,16", "3x16x16"], [(3, 16, 16), (3, 16, 16)]):
        spec = ModelSpec(TWO, input_shape=given, batch_size=2)
        assert spec.input_shape == (3, 16, 16) and spec.more_shapes == ((3, 16, 16),)
    spec = ModelSpec(ID, input_shape=[(2, 3, 8, 8), (2,)], input_dtype="float32,int64")
    assert spec.dtypes == (torch.float32, torch.int64) and spec.shape_text == "2x3x8x8+2"
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # a plan file keeps every input
    x, pid = spec.example_inputs(seed=1)
    assert x.dtype == torch.float32 and pid.dtype == torch.int64 and pid.shape == (2,)
    assert parse_setting(f"{spec.shape_text}/float32/t1/natural/c1000/cpu")["batch_size"] == 2


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": TWO, "input_shape": "3,16,16;;3,16,16"}, "empty shape"),
        ({"name": TWO, "input_shape": "3,16,16;3,16,16", "input_dtype": "float32,int64,int64"}, "3 input dtypes"),
        ({"name": "resnet18", "input_shape": "3,32,32;3,32,32"}, "takes one input"),
        ({"name": TWO, "input_shape": "3,16,16", "input_dtype": "float32,int64"}, "2 input dtypes"),
    ],
)
def test_bad_several_inputs_are_refused(kwargs, fragment):
    with pytest.raises(BadInput, match=fragment):
        ModelSpec(**kwargs)


# --------------------------------------------------------------------------- capture and blocks


@pytest.mark.parametrize("front_end", ["fx", "export"])
def test_both_front_ends_give_one_placeholder_per_input_and_the_chain_composes(front_end):
    spec = ModelSpec(TWO, input_shape="3,16,16;3,16,16", batch_size=2, capture=front_end)
    chain = BlockChain.from_spec(spec)
    assert chain.capture.front_end == front_end
    assert chain.spec.shapes == ((2, 3, 16, 16), (2, 3, 16, 16))
    assert [n.op for n in chain.graph_module.graph.nodes].count("placeholder") == 2
    assert chain.names == ["left", "right", "fuse", "head"]
    # both images enter the first block; the second is passed through it to the branch that reads it
    assert [t.shape for t in chain.cuts[0].tensors] == [(2, 3, 16, 16), (2, 3, 16, 16)]
    assert (2, 3, 16, 16) in [t.shape for t in chain.cuts[1].tensors]
    assert chain.composition_error() <= 1e-5
    x1, x2 = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(chain.run(x1, x2), chain.model(x1, x2), atol=1e-5)
        assert not torch.allclose(chain.run(x1, x2), chain.run(x2, x1))  # the inputs keep their order


def test_an_integer_second_input_takes_its_own_dtype():
    spec = ModelSpec(ID, input_shape=["2,3,8,8", "2"], input_dtype="float32,int64")
    chain = BlockChain.from_spec(spec)
    assert [t.dtype for t in chain.cuts[0].tensors] == ["torch.float32", "torch.int64"]
    assert chain.composition_error() <= 1e-5


def test_a_model_that_needs_two_inputs_given_one_shape_says_how_to_give_two():
    with pytest.raises(BadInput, match=r"takes 2 inputs \(image1, image2\) and 1 input shape was given.*"
                                       r"--input-shape SHAPE --input-shape SHAPE"):
        capture(ModelSpec(TWO).build(), (1, 3, 16, 16))
    with pytest.raises(BadInput, match=r"takes at most 2 inputs"):
        capture(ModelSpec(ID).build(), ((1, 3, 8, 8), (1,), (1,)), (torch.float32, torch.int64, torch.int64))


# --------------------------------------------------------------------------- the command line


def test_blocks_with_repeated_input_shape_composes():
    r = gapp("blocks", TWO, "--input-shape", "3,16,16", "--input-shape", "3,16,16", "-b", "2", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["input_shape"] == [2, 3, 16, 16]
    assert doc["input_shapes"] == [[2, 3, 16, 16], [2, 3, 16, 16]] and doc["input_dtypes"] == ["float32", "float32"]
    assert doc["input_bytes"] == 2 * (2 * 3 * 16 * 16 * 4)
    assert doc["composition_max_abs_diff"] <= 1e-5
    r = gapp("blocks", TWO, "--input-shape", "1,3,16,16;1,3,16,16", "--capture", "export")  # one value, ';'
    assert r.exit_code == 0, r.stderr
    assert "composition check" in r.stderr and "ok" in r.stderr and "captured with torch.export" in r.stderr


def test_predict_gives_finite_positive_times_for_every_block():
    r = gapp("predict", TWO, "--input-shape", "3,32,32", "--input-shape", "3,32,32", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [b["name"] for b in doc["blocks"]] == ["left", "right", "fuse", "head"]
    assert all(math.isfinite(b["predicted_ms"]) and b["predicted_ms"] > 0 for b in doc["blocks"])
    assert doc["input_shapes"] == [[1, 3, 32, 32], [1, 3, 32, 32]]


def test_features_record_every_input(tmp_path):
    r = gapp("features", TWO, "--input-shape", "3,16,16;3,16,16", "-o", str(tmp_path), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["input_shapes"] == [[1, 3, 16, 16], [1, 3, 16, 16]] and len(doc["blocks"]) == 4
    saved = json.loads(Path(doc["files"]["json"]).read_text())
    assert saved["input_shapes"] == doc["input_shapes"]


def test_two_inputs_given_one_shape_is_one_line_exit_2():
    line = one_line_error(gapp("blocks", TWO, "--input-shape", "3,16,16"))
    assert "takes 2 inputs (image1, image2)" in line and "--input-shape SHAPE --input-shape SHAPE" in line
    line = one_line_error(gapp("predict", TWO))  # no shape at all: the default image is one input
    assert "takes 2 inputs" in line
    line = one_line_error(gapp("blocks", TWO, "--input-shape", "3,16,16;3,16,16", "--input-dtype", "float32",
                               "--input-dtype", "int64", "--input-dtype", "int64"))
    assert "3 input dtypes" in line


def test_measure_times_every_block_and_a_rerun_finds_the_rows(tmp_path):
    db = tmp_path / "gapp.sqlite"
    args = ("measure", ID, "--input-shape", "2,3,16,16", "--input-shape", "2", "--input-dtype", "float32",
            "--input-dtype", "int64", *FAST, "--output-dir", str(tmp_path / "out"), "--json")
    r = gapp(*args, db=db)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["setting"].startswith("2x3x16x16+2/float32/") and doc["measured"] > 0
    assert doc["full"]["median_ms"] > 0
    rows = doc["rows"]["standalone"] + doc["rows"]["in-context"]
    assert rows and all(x["median_ms"] > 0 for x in rows)
    with Store(db, readonly=True) as st:
        assert {x["input_shape"] for x in st.rows()} == {"2x3x16x16+2"}
    again = json.loads(gapp(*args, db=db).stdout)  # the store recognises this setting: nothing to measure
    assert again["measured"] == 0 and again["skipped"] == doc["measured"]


def test_a_plan_of_such_a_model_is_made_but_not_run_or_exported(tmp_path):
    plan = tmp_path / "plan.json"
    r = gapp("partition", TWO, "--input-shape", "1,3,16,16;1,3,16,16", "--devices", "pi,server", "--times", "flops",
             "--rate", "pi=1GFLOPs", "--rate", "server=20GFLOPs", "--bandwidth", "100Mbit/s", "-o", str(plan))
    assert r.exit_code == 0, r.stderr
    assert json.loads(plan.read_text())["model"]["more_shapes"] == [[1, 3, 16, 16]]
    for args in (("export", str(plan), "-o", str(tmp_path / "exp")), ("pipeline", "run", str(plan))):
        line = one_line_error(gapp(*args))
        assert "not supported yet for a model with 2 inputs" in line
    assert not (tmp_path / "exp").exists()


def test_help_says_how_to_give_several_inputs():
    env = dict(os.environ, COLUMNS="200")
    r = subprocess.run([sys.executable, "-m", "gapp_tui", "blocks", "--help"], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0
    text = " ".join(r.stdout.replace("│", " ").split())
    assert "--input-shape 3,224,224 --input-shape 3,224,224" in text and "one per input" in text


@pytest.mark.ssh
def test_measure_over_ssh_sends_every_input(sshd, tmp_path):  # noqa: F811  (sshd is a fixture)
    """The agent gets both inputs (and each block's recorded inputs) and lands the rows a local run does."""
    known = sshd.trust(tmp_path / "known_hosts")
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    db = tmp_path / "remote.sqlite"
    r = gapp("measure", ID, "--input-shape", "2,3,16,16;2", "--input-dtype", "float32,int64", *FAST, "--json",
             "--host", f"{sshd.target}:{sshd.port}", "--identity", str(sshd.client_key), "--known-hosts", str(known),
             "--remote-python", sys.executable, "--remote-tmp", str(remote_tmp), db=db)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["setting"].startswith("2x3x16x16+2/") and doc["full"]["median_ms"] > 0
    with Store(db, readonly=True) as st:
        rows = st.rows()
    assert rows and all(x["median_ms"] > 0 and x["input_shape"] == "2x3x16x16+2" for x in rows)
    assert all(x["extra"]["remote"]["host"] == f"{sshd.target}:{sshd.port}" for x in rows)


# --------------------------------------------------------------------------- the zoo's multi-input models

ZOO_MODELS = [  # pytorchcv's models of several inputs (benchmarks/capture_coverage.py INPUTS), at small sizes
    ("raft_small", "1,3,64,64;1,3,64,64", None, 3),  # two frames; 12 iterations of one update block
    ("visemenet20", "34,8,195;34,76", None, 3),  # makes a CPU tensor in forward: predict builds it for real
    ("nvpattexp116bazel76", "1,8,16,29;1", "float32,int64", 2),  # a person id
    ("propainter_ip", "3,3,32,32;3,1,32,32;2,4,32,32", None, 1),  # no weights, no submodules: one block
]


@pytest.mark.parametrize("name, shapes, dtypes, min_blocks", ZOO_MODELS)
def test_zoo_models_of_several_inputs_compose_and_predict(name, shapes, dtypes, min_blocks):
    pytest.importorskip("pytorchcv")
    from gapp_tui.predict.predictor import Predictor, default_predictor_path

    spec = ModelSpec(f"pytorchcv.model_provider:{name}", input_shape=shapes, input_dtype=dtypes)
    torch.manual_seed(0)
    chain = BlockChain.from_spec(spec)
    assert len(chain) >= min_blocks and chain.composition_error() <= 1e-4
    doc = Predictor.load(default_predictor_path()).predict_model(spec)  # on meta tensors, as gapp predict does
    assert len(doc["blocks"]) == len(chain)
    assert all(math.isfinite(b["predicted_ms"]) and b["predicted_ms"] > 0 for b in doc["blocks"])


def test_stored_rows_of_two_inputs_train_the_predictor(tmp_path):
    """`gapp train --db` / few-shot read the rows back: the shapes joined by + rebuild the model's blocks."""
    import warnings

    from gapp_tui.measure.engine import MeasureConfig, measure
    from gapp_tui.measure.timer import Precision
    from gapp_tui.predict.dataset import assemble, rows_from_store

    spec = ModelSpec(TWO, input_shape="1,3,16,16;1,3,16,16")
    with Store(tmp_path / "gapp.sqlite") as st:
        result = measure(spec, MeasureConfig(modes=("standalone",), full=False, threads=1, precision=Precision.quick()),
                         store=st)
        rows = rows_from_store(st, device=result.device["key"], mode="standalone")
    assert [r["input_shape"] for r in rows] == [((1, 3, 16, 16), (1, 3, 16, 16))] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no row skipped
        ds = assemble(rows)
    assert len(ds) == 4 and [g.block_name for g in ds.graphs] == ["left", "right", "fuse", "head"]


@sync
async def test_the_app_refuses_several_shapes_in_one_line(tui_env):  # noqa: F811  (tui_env is a fixture)
    app = small_app(model=TWO)
    async with run(app, (100, 30)) as pilot:
        await pilot.pause()
        app.screen.query_one("#input-shape", Input).value = "3,16,16;3,16,16"
        app.screen.query_one("#model-name", Input).focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        said = [m for m in notifications(app) if "several inputs" in m]
        assert said and "not supported in the app yet" in said[0] and "--input-shape" in said[0]
        assert app.is_running and not app.workspace.ready
