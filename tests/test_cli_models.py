"""`gapp models / blocks / features` as a user runs them: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def gapp(*args: str, module: str = "gapp_tui", cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_models_json_lists_families():
    r = gapp("models", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["count"] >= 80 and "resnet18" in doc["families"]["resnet"]


def test_blocks_json_document():
    r = gapp("blocks", "resnet18", "--input-size", "32", "--num-classes", "10", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout holds exactly one JSON document
    assert doc["model"] == "resnet18" and doc["input_shape"] == [1, 3, 32, 32]
    assert len(doc["blocks"]) == 10
    assert {"name", "params", "flops", "out_bytes", "out_tensors"} <= set(doc["blocks"][0])
    assert doc["composition_max_abs_diff"] <= 1e-4
    assert doc["blocks"][-1]["out_bytes"] == 10 * 4


def test_blocks_table_for_a_model_defined_in_a_test_file():
    r = gapp("blocks", "tests.custom_models:two_branch", "--input-shape", "1,3,8,8")
    assert r.returncode == 0, r.stderr
    assert "block1" in r.stdout and "composition check" in r.stderr


def test_blocks_reports_automatic_leaves_and_the_front_end():
    r = gapp("blocks", "tests.custom_models:gated", "--input-shape", "3,16,16", "--batch-size", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["input_shape"] == [2, 3, 16, 16]  # one item's shape: the batch dimension is added
    assert doc["capture"]["front_end"] == "fx"
    assert [(lf["path"], lf["cls"], lf["automatic"]) for lf in doc["capture"]["leaves"]] == [("gate", "GatedUnit", True)]
    assert doc["composition_max_abs_diff"] <= 1e-4
    r = gapp("blocks", "tests.custom_models:size_loop", "--input-shape", "1,3,32,32")
    assert r.returncode == 0, r.stderr
    assert "captured with torch.export" in r.stderr and "own forward" in r.stderr


def test_features_writes_graphs_and_summary(tmp_path):
    r = gapp("features", "mobilenet_v3_small", "--output-dir", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert Path(doc["files"]["graphs"]).exists() and Path(doc["files"]["csv"]).exists()
    assert len(doc["blocks"]) > 5


def test_seed_style_feature_extractor(tmp_path):
    r = gapp("--model_family", "squeezenet1_1", "--output_dir", str(tmp_path), "--num_classes", "10",
             module="gapp_tui.feature_extractor")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "squeezenet1_1.blocks.csv").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["blocks", "resnet19"], "resnet18"),
        (["blocks", "nosuch.module:f"], "cannot be imported"),
        (["blocks", "tests.custom_models:not_a_module"], "not a torch.nn.Module"),
        (["blocks", "tests.custom_models:size_loop", "--input-shape", "1,3,32,32", "--capture", "fx"],
         "--capture export"),
        (["blocks", "resnet18", "--capture", "jit"], "capture front end 'jit'"),
        (["blocks", "tests.custom_models:NOT_CALLABLE"], "not a callable"),
        (["blocks", "tests.custom_models:two_branch", "--input-dtype", "int8"], "input dtype 'int8'"),
        (["blocks", "resnet18", "--hf-config", "bert-base-uncased"], "Hugging Face import paths"),
        (["blocks", "resnet18", "--batch-size", "0"], "batch size 0"),
        (["blocks", "resnet18", "--batch_size", "-1"], "batch size -1"),
        (["blocks", "tests.custom_models:two_branch", "--input-shape", "1,3,x"], "does not parse"),
        (["blocks", "resnet18", "--granularity", "fine"], "granularity"),
        (["models", "resnot"], "resnet"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    r = gapp(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_debug_shows_the_traceback():
    r = gapp("--debug", "blocks", "resnet19")
    assert r.returncode != 0 and "Traceback" in r.stderr
