"""Export of a plan: per-stage artifacts under each runtime reproduce the unsplit model; the stand-alone
runner needs no GAPP; int8 stays close to float32; a missing runtime is refused before any work."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gapp_tui import runtime as runtime_mod
from gapp_tui import stage_runner
from gapp_tui.blocks import BlockChain
from gapp_tui.cli import app
from gapp_tui.errors import BadInput
from gapp_tui.pipeline import plan_dict, read_plan
from gapp_tui.pipeline.export import build_chain, export_plan
from gapp_tui.zoo import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
#: conv1 -> block1 -> block2 -> (conv1 + block2) -> head: the skip from conv1 crosses cuts 2 and 3
TWO_BRANCH = ModelSpec("tests.custom_models:two_branch", input_shape=(1, 3, 16, 16))
PLANS = {"2 stages": [0, 2, 4], "3 stages, a cut through the skip": [0, 1, 3, 4]}


def _installed(rt: str) -> bool:
    return runtime_mod.available(rt)


RUNTIMES = [pytest.param(rt, marks=pytest.mark.skipif(not _installed(rt), reason=f"{rt} is not installed"))
            for rt in stage_runner.RUNTIMES]


def _plan(boundaries):
    return plan_dict(TWO_BRANCH, [f"dev{i}" for i in range(len(boundaries) - 1)], boundaries)


@pytest.fixture(scope="module")
def chain():
    return BlockChain.from_spec(TWO_BRANCH)


def test_the_three_stage_plan_cuts_through_the_skip_connection(chain):
    # the test below is only about a skip connection if a cut it uses carries two tensors
    assert len(chain) == 4
    assert len(chain.cuts[3].tensors) == 2 and len(chain.cuts[1].tensors) == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("plan", list(PLANS))
def test_exported_stages_reproduce_the_unsplit_model(runtime, plan, tmp_path):
    b = PLANS[plan]
    result = export_plan(_plan(b), tmp_path / "out", runtime=runtime)
    m = result.manifest
    assert result.ok and result.check["max_abs_diff"] <= 1e-4 and not result.check["int8"]
    assert [s["blocks"] for s in m["stages"]] == [[b[i], b[i + 1]] for i in range(len(b) - 1)]
    for s in m["stages"]:
        path = tmp_path / "out" / s["artifact"]
        assert path.suffix == stage_runner.SUFFIX[runtime] and path.stat().st_size == s["bytes"] > 0
        assert s["sha256"] == stage_runner.sha256(path) and s["runtime"] == runtime
        assert result.check["stages"][s["index"]]["max_abs_diff"] <= 1e-4
    # every cut the plan uses is described as the model computes it, and sent as float32
    for pos, c in enumerate(m["cuts"]):
        assert c["index"] == b[pos] and len(c["tensors"]) == len(c["wire"])
        assert all(w["dtype"] == "float32" and w["bytes"] == t["bytes"] for t, w in zip(c["tensors"], c["wire"]))
    # what is written is what was checked: the manifest on disk, the runner beside it
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["check"]["ok"]
    assert (tmp_path / "out" / "gapp_runner.py").read_text() == Path(stage_runner.__file__).read_text()


def test_the_runner_imports_nothing_from_gapp():
    tree = ast.parse(Path(stage_runner.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.split(".")[0] == "gapp_tui" for m in imported)
    assert not any(n.level for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))  # no relative imports


@pytest.mark.skipif(not _installed("onnxruntime"), reason="onnxruntime is not installed")
def test_the_copied_runner_runs_the_export_where_gapp_cannot_be_imported(tmp_path):
    out = tmp_path / "deploy"
    export_plan(_plan([0, 1, 3, 4]), out, runtime=["dev0=onnxruntime", "dev1=eager", "dev2=onnxruntime"])
    x = TWO_BRANCH.example_input(seed=5)
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch\n"
        "sys.modules['gapp_tui'] = None  # any import of GAPP fails\n"
        f"sys.path.insert(0, {str(out)!r})\n"
        "import gapp_runner as r\n"
        f"y = r.run_chain({str(out)!r}, torch.load({str(tmp_path / 'x.pt')!r}))\n"
        f"torch.save(y, {str(tmp_path / 'y.pt')!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('gapp')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['gapp_runner', 'gapp_tui']"  # the blocked entry, never loaded
    y = torch.load(tmp_path / "y.pt")
    with torch.no_grad():  # the weights every stage got: the model built with the plan's seed
        want = build_chain(read_plan(_plan([0, 1, 3, 4])), seed=0).model(x)
    assert float((y[0] - want).abs().max()) <= 1e-4
    # its command line loads every stage and times the chain
    cli = subprocess.run([sys.executable, str(out / "gapp_runner.py"), str(out), "--items", "2", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-2000:]
    doc = json.loads(cli.stdout)
    assert doc["chain"]["stages"] == 3 and doc["chain"]["output"][0]["shape"] == [1, 5]


@pytest.mark.parametrize("runtime", [r for r in RUNTIMES if r.values[0] != "eager"])
def test_an_int8_stage_stays_close_to_float32_and_sends_int8(runtime, tmp_path):
    result = export_plan(_plan([0, 2, 4]), tmp_path / "q", runtime=runtime, quantize="dev0=int8")
    chk = result.check
    assert chk["int8"] and chk["ok"] and chk["cosine"] >= 0.99
    assert 0 < chk["max_abs_diff"] < 0.5  # quantized: not bit-exact, but close
    stage0, stage1 = result.manifest["stages"]
    assert stage0["quantize"] == "int8" and stage1["quantize"] is None
    cut = result.manifest["cuts"][1]  # what stage 0 sends: int8, a quarter of the float32 bytes
    assert [w["dtype"] for w in cut["wire"]] == ["int8"] * len(cut["tensors"])
    assert sum(w["bytes"] for w in cut["wire"]) * 4 == sum(t["bytes"] for t in cut["tensors"])
    # the stand-alone runner receives int8 into its buffers
    st = stage_runner.load_stage(tmp_path / "q", 1, verify=True)
    assert {b.dtype for b in st.receive_buffers()} == {torch.int8}
    # and refuses an artifact that is not the one exported
    art = tmp_path / "q" / stage0["artifact"]
    data = art.read_bytes()
    art.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(stage_runner.BadManifest, match="SHA-256 differs"):
        stage_runner.load_stage(tmp_path / "q", 0, verify=True)


def test_the_estimate_is_remade_with_the_bytes_the_cut_sends(tmp_path):
    from gapp_tui.partition import CostTable, Link, solve

    chain = BlockChain.from_spec(TWO_BRANCH, device="meta")
    # a slow link: the plan is link-bound, so sending int8 instead of float32 must raise the throughput
    table = CostTable.from_chain(chain, {"pi": [1e-3] * 4, "server": [1e-3] * 4})
    plan = solve(table, ["pi", "server"], Link.parse("1Mbit/s", "0ms")).with_boundaries([0, 2, 4])
    from gapp_tui.partition import estimate

    plan.estimate = estimate(table, plan).to_dict()
    doc = plan.to_dict()
    doc["model"]["input_shape"] = [1, 3, 16, 16]
    kind = "onnxruntime" if _installed("onnxruntime") else "executorch" if _installed("executorch") else None
    if kind is None:
        pytest.skip("no runtime with int8 installed")
    est = export_plan(doc, tmp_path / "e", runtime=kind, quantize="pi=int8").manifest["estimate"]
    fp32 = export_plan(doc, tmp_path / "f", runtime=kind).manifest["estimate"]
    assert est["plan"]["throughput_per_s"] == pytest.approx(fp32["wire"]["throughput_per_s"])
    sent = [t for t in est["wire"]["transfers"] if not t["is_return"]][0]["bytes"]
    assert sent * 4 == [t for t in fp32["wire"]["transfers"] if not t["is_return"]][0]["bytes"]
    assert est["wire"]["throughput_per_s"] > 2 * fp32["wire"]["throughput_per_s"]


def test_a_missing_runtime_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    real = runtime_mod.importlib.util.find_spec
    monkeypatch.setattr(runtime_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "executorch" else real(name, *a))
    with pytest.raises(BadInput, match=r"runtime 'executorch' is not installed here .*pip install 'gapp-tui\[executorch\]'"):
        export_plan(_plan([0, 2, 4]), tmp_path / "never", runtime="dev1=executorch")
    assert not (tmp_path / "never").exists()
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan([0, 2, 4])))
    got = CliRunner().invoke(app, ["export", str(plan), "-o", str(tmp_path / "never"), "--runtime", "executorch"])
    assert got.exit_code == 2
    lines = [ln for ln in got.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'gapp-tui[executorch]'" in lines[0]
    assert not (tmp_path / "never").exists()


def test_the_runner_names_the_host_runtime_and_install_on_a_device_without_it(monkeypatch):
    monkeypatch.setattr(stage_runner.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(stage_runner.RuntimeMissing) as exc:
        stage_runner.require("onnxruntime")
    msg = str(exc.value)
    assert os.uname().nodename in msg and "'onnxruntime'" in msg and "pip install onnxruntime" in msg


@pytest.mark.parametrize("bad, match", [
    (dict(runtime="tflite"), "runtime 'tflite' is not known"),
    (dict(runtime="eager", quantize="int8"), "needs --runtime executorch or onnxruntime"),
    (dict(runtime="nowhere=eager"), "names device 'nowhere'"),
    (dict(cut_dtype="int4"), "cut dtype 'int4'"),
])
def test_bad_options_are_one_line_errors(bad, match, tmp_path):
    with pytest.raises(BadInput, match=match):
        export_plan(_plan([0, 2, 4]), tmp_path / "x", **bad)


def test_pipelining_split_matches_the_plan(tmp_path):
    from gapp_tui.pipeline.pipelining import export_pipelining

    doc = export_pipelining(_plan([0, 1, 3, 4]), tmp_path / "pp")
    # block1 starts at cut 1; the head starts with the skip's addition (no module), so cut 3 is block2's end
    assert doc["split_spec"] == {"block1": "BEGINNING", "block2": "END"}
    chk = doc["check"]
    assert chk["ok"] and chk["stages"] == 3 and chk["params_per_stage"] == chk["plan_params_per_stage"]
    assert (tmp_path / "pp" / "pipelining_example.py").is_file()
    compile(Path(tmp_path / "pp" / "pipelining_example.py").read_text(), "example", "exec")
    with pytest.raises(BadInput, match="empty stage"):
        export_pipelining(_plan([0, 2, 2, 4]), tmp_path / "pp2")


@pytest.mark.skipif(not _installed("onnxruntime"), reason="onnxruntime is not installed")
def test_export_deploys_the_runtimes_the_plan_names(tmp_path):
    doc = _plan([0, 1, 3, 4])
    doc["runtimes"] = {"dev0": "onnxruntime-int8", "dev1": "onnxruntime"}  # as `gapp partition` writes them
    m = export_plan(doc, tmp_path / "a").manifest
    assert [(s["runtime"], s["quantize"]) for s in m["stages"]] == [("onnxruntime", "int8"), ("onnxruntime", None),
                                                                     ("eager", None)]
    assert m["plan"]["runtimes"] == {"dev0": "onnxruntime-int8", "dev1": "onnxruntime"}
    assert [w["dtype"] for w in m["cuts"][1]["wire"]] == ["int8"]  # what the int8 device sends
    # an option given for a device overrides the plan for it; --runtime alone drops the plan's int8
    m = export_plan(doc, tmp_path / "b", runtime="dev0=eager").manifest
    assert [(s["runtime"], s["quantize"]) for s in m["stages"]][0] == ("eager", None)


@pytest.mark.skipif(not _installed("onnxruntime"), reason="onnxruntime is not installed")
def test_an_empty_int8_stage_sends_int8_as_the_estimate_counts(tmp_path):
    # dev1 holds no block: it forwards cut 2, re-quantized with the same scale as dev0 sent it
    result = export_plan(_plan([0, 2, 2, 4]), tmp_path / "e", runtime=["dev0=onnxruntime", "dev1=onnxruntime"],
                         quantize=["dev0=int8", "dev1=int8"])
    cuts = result.manifest["cuts"]
    assert cuts[1]["index"] == cuts[2]["index"] == 2
    assert [w["dtype"] for w in cuts[2]["wire"]] == ["int8"] * len(cuts[2]["tensors"])
    assert cuts[1]["wire"] == cuts[2]["wire"] and result.check["ok"]
