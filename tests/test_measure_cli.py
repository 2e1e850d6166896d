"""`gapp measure`, `gapp results` and the seed's `python3 -m gapp_tui.time_measurer`, as a user runs them."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.signals import default_sigint
from gapp_tui.store import SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--input_size", "32", "--threads", "1")
FAST = ("--min-runs", "3", "--max-runs", "5", "--target-ci", "0.05", "--max-time", "0.3", "--warmup", "1")
N_RESNET18 = 10  # blocks of resnet18 at natural granularity


def run(*args: str, db: Path, module: str = "gapp_tui", timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="150", GAPP_DB=str(db))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


class Invoked:
    """An in-process run through typer's CliRunner (same exit codes and streams, no new torch import)."""

    def __init__(self, result) -> None:
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def invoke(*args: str, db: Path, module: str = "gapp_tui") -> Invoked:
    import importlib

    from typer.testing import CliRunner

    app = importlib.import_module("gapp_tui.cli" if module == "gapp_tui" else module).app
    return Invoked(CliRunner(env={"GAPP_DB": str(db), "COLUMNS": "150"}).invoke(app, list(args)))


def one_line_error(r: subprocess.CompletedProcess | Invoked) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert r.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """The seed's command line as written, on a small input (and one thread: the machine is shared)."""
    d = tmp_path_factory.mktemp("seed")
    db = d / "gapp.sqlite"
    r = run("--output_dir", str(d / "results"), "--model_family", "resnet18", "--batch_size", "1", "--num_classes", "10",
            "--compare_sum_vs_full", *TINY, db=db, module="gapp_tui.time_measurer")
    return d, db, r


def test_seed_command_line_works_verbatim(seed_run):
    d, db, r = seed_run
    assert r.returncode == 0, r.stderr
    assert "sum of blocks versus the full model" in r.stdout and "in-context" in r.stdout
    files = sorted((d / "results").iterdir())
    assert [f.suffix for f in files] == [".csv", ".json"]
    rows = list(csv.DictReader(open(files[0])))
    assert len(rows) == 2 * N_RESNET18 + 1 and all(float(x["median_ms"]) > 0 for x in rows)
    doc = json.loads(files[1].read_text())
    assert set(doc["sums"]) == {"standalone", "in-context"} and doc["full"]["median_ms"] > 0
    assert doc["setting_parts"]["threads"] == 1 and doc["device"]["cpu_model"]
    with Store(db, readonly=True) as s:
        assert s.count() == 2 * N_RESNET18 + 1


def test_rerun_takes_rows_from_the_store_and_json_is_one_document(seed_run):
    _, db, _ = seed_run
    r = invoke("measure", "resnet18", "--num-classes", "10", *TINY, "--json", db=db)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["measured"] == 0 and doc["skipped"] == 2 * N_RESNET18 + 1
    assert {"device", "setting", "rows", "full", "sums"} <= set(doc)
    assert len(doc["rows"]["standalone"]) == len(doc["rows"]["in-context"]) == N_RESNET18


def test_results_list_show_export(seed_run, tmp_path):
    _, db, _ = seed_run
    r = invoke("results", "list", "--json", db=db)
    assert r.returncode == 0, r.stderr
    (item,) = json.loads(r.stdout)["settings"]
    assert item["model"] == "resnet18" and item["modes"]["in-context"]["rows"] == N_RESNET18
    r = invoke("results", "show", "resnet18", "--mode", "standalone", "--json", db=db)
    doc = json.loads(r.stdout)
    assert [x["block"] for x in doc["rows"]] == list(range(N_RESNET18)) and doc["full_ms"] > 0
    r = invoke("results", "export", str(tmp_path / "all.csv"), "--mode", "in-context", db=db)
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader(open(tmp_path / "all.csv")))) == N_RESNET18
    assert invoke("results", "devices", "--json", db=db).returncode == 0
    runs = json.loads(invoke("results", "runs", "--json", db=db).stdout)["runs"]
    assert [r["status"] for r in runs] == ["done", "done"]


def test_inception_v3_parses_and_measures_on_a_small_input(tmp_path):
    r = invoke("--output_dir", str(tmp_path / "results"), "--model_family", "inception_v3", "--batch_size", "1",
               "--num_classes", "10", "--compare_sum_vs_full", "--input_size", "75", "--threads", "1",
            "--mode", "standalone", "--repeats", "2", "--warmup", "0", "--json",
            db=tmp_path / "g.sqlite", module="gapp_tui.time_measurer")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["model"] == "inception_v3" and len(doc["rows"]["standalone"]) == len(doc["blocks"]) > 10
    assert doc["setting_parts"]["input_shape"] == "1x3x75x75"


def test_cuda_request_without_cuda_is_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "g.sqlite"
    r = invoke("--output_dir", str(tmp_path / "results"), "--model_family", "inception_v3", "--batch_size", "1",
               "--num_classes", "10", "--compare_sum_vs_full", "--device", "cuda", "--adjust_for_overhead",
            db=db, module="gapp_tui.time_measurer")
    assert "CUDA is not available" in one_line_error(r)
    assert not db.exists() and not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory):
    """A store holding real rows, to show a bad command leaves them alone."""
    db = tmp_path_factory.mktemp("filled") / "keep.sqlite"
    r = invoke("measure", "resnet18", "--num-classes", "10", *TINY, *FAST, "--mode", "standalone",
               "--no-compare-sum-vs-full", db=db)
    assert r.returncode == 0, r.stderr
    with Store(db, readonly=True) as s:
        rows = s.rows()
    assert len(rows) == N_RESNET18
    return db, rows


@pytest.mark.parametrize(
    "args, message",
    [
        (("measure", "resnet81"), "unknown model 'resnet81'"),
        (("measure", "resnet18", "--threads", "0"), "--threads 0"),
        (("measure", "resnet18", "--batch_size", "-1"), "batch size -1"),
        (("measure", "resnet18", "--mode", "sideways"), "mode 'sideways'"),
        (("measure", "resnet18", "--max-runs", "2", "--min-runs", "5"), "--max-runs 2"),
        (("measure", "resnet18", "--clock", "cpu", "--threads", "2"), "--clock cpu needs --threads 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_the_store_is_unchanged(filled_db, args, message):
    db, rows = filled_db
    r = invoke(*args[:2], *TINY, *args[2:], db=db)  # the bad value last: it wins over TINY's
    assert message in one_line_error(r)
    with Store(db, readonly=True) as s:
        assert s.rows() == rows


def test_unwritable_output_dir_is_refused_before_measuring(filled_db, tmp_path):
    db, rows = filled_db
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    r = invoke("measure", "resnet18", *TINY, "--output_dir", str(blocker / "results"), db=db)
    assert "not writable" in one_line_error(r)
    with Store(db, readonly=True) as s:
        assert s.rows() == rows and len(s.runs()) == 1


def test_foreign_and_newer_databases_are_refused_and_left_alone(tmp_path):
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    newer = tmp_path / "newer.sqlite"
    Store(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 5),))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00\x01 definitely not sqlite " * 50)
    for path, message in ((foreign, "not a GAPP store"), (newer, "schema version"), (garbage, "not an SQLite file")):
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        r = invoke("measure", "resnet18", *TINY, "--db", str(path), db=tmp_path / "unused.sqlite")
        assert message in one_line_error(r)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        r = invoke("results", "list", "--db", str(path), db=tmp_path / "unused.sqlite")
        assert message in one_line_error(r)


def test_ctrl_c_keeps_measured_blocks_and_the_rerun_resumes(tmp_path):
    """A real process, really interrupted (SIGINT), then the same command again."""
    db = tmp_path / "resume.sqlite"
    slow = ("--min-runs", "150", "--max-runs", "150", "--max-time", "30", "--warmup", "1")
    args = ("measure", "resnet18", "--num-classes", "10", *TINY, "--mode", "standalone", "--no-compare-sum-vs-full")
    env = dict(os.environ, OMP_NUM_THREADS="1", GAPP_DB=str(db))
    proc = subprocess.Popen([sys.executable, "-m", "gapp_tui", *args, *slow], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    kept = 0
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with Store(db, readonly=True) as s:
                    kept = s.count()
            except Exception:
                kept = 0
            if kept >= 2:
                break
        time.sleep(0.1)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    out, errtext = proc.communicate(timeout=60)
    assert proc.returncode == 130, errtext
    assert "interrupted" in errtext and "run the same command again" in errtext
    with Store(db, readonly=True) as s:
        before = s.rows()
        assert s.runs()[0]["status"] == "interrupted"
    assert 2 <= len(before) < N_RESNET18
    assert [r["block"] for r in before] == list(range(len(before)))

    r = invoke(*args, *FAST, "--json", db=db)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["skipped"] == len(before) and doc["measured"] == N_RESNET18 - len(before)
    with Store(db, readonly=True) as s:
        after = s.rows()
    assert len(after) == N_RESNET18 and after[: len(before)] == before  # the kept rows were not measured again
