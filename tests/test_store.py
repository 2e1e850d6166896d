"""The SQLite measurement store: rows, queries, refusals, WAL and a second process reading while one writes."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gapp_tui.errors import BadInput
from gapp_tui.store import ROW_FIELDS, SCHEMA_VERSION, Store, default_path, parse_setting, setting_key

SETTING = setting_key((1, 3, 32, 32), "float32", 1, "natural", 10, "cpu")


def row(block: int, median: float, mode: str = "in-context", model: str = "resnet18", device: str = "dev-a",
        setting: str = SETTING) -> dict:
    return {
        "device_key": device, "model": model, "setting": setting, "mode": mode, "block": block,
        "block_name": f"b{block}" if block >= 0 else "(full model)", "median_ms": median, "mean_ms": median,
        "std_ms": 0.1, "iqr_ms": 0.1, "min_ms": median * 0.9, "max_ms": median * 1.1, "runs": 5, "ci_rel": 0.01,
        "threads": 1, "batch_size": 1, "input_shape": "1x3x32x32", "extra": {"sensors": {"temperature_c": 50.0}},
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_setting_key_round_trips():
    assert SETTING == "1x3x32x32/float32/t1/natural/c10/cpu"
    parts = parse_setting(SETTING)
    assert parts["batch_size"] == 1 and parts["threads"] == 1 and parts["num_classes"] == 10
    with pytest.raises(BadInput, match="does not parse"):
        parse_setting("nonsense")


def test_rows_come_back_in_block_order_with_every_field(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add_device({"key": "dev-a", "cpu_model": "test CPU"})
        rid = s.start_run("dev-a", "resnet18", SETTING, ["in-context"])
        s.add_rows([row(2, 3.0), row(0, 1.0), row(1, 2.0), row(-1, 6.5, mode="full")], rid)
        s.finish_run(rid, "done", {"sums": {"in-context": {"gap_pct": -7.7}}})
        got = s.rows(model="resnet18", mode="in-context")
        assert [r["block"] for r in got] == [0, 1, 2]
        assert set(got[0]) == set(ROW_FIELDS)
        assert got[0]["extra"] == {"sensors": {"temperature_c": 50.0}} and got[0]["run_id"] == rid
        assert s.block_times("resnet18") == [1.0, 2.0, 3.0]
        assert s.block_times("resnet18", "dev-a", SETTING, "in-context", stat="min_ms") == pytest.approx([0.9, 1.8, 2.7])
        assert s.full_time("resnet18") == 6.5
        assert s.devices()[0]["description"]["cpu_model"] == "test CPU" and s.devices()[0]["rows"] == 4
        assert s.models() == ["resnet18"]
        (entry,) = s.settings()
        assert entry["modes"]["in-context"] == {"rows": 3, "sum_ms": 6.0} and entry["threads"] == 1
        assert entry["modes"]["full"] == {"rows": 1, "sum_ms": 6.5}
        assert s.runs()[0]["status"] == "done" and s.runs()[0]["summary"]["sums"]["in-context"]["gap_pct"] == -7.7
        assert s.measured_blocks("dev-a", "resnet18", SETTING, "in-context") == {0, 1, 2}


def test_same_key_replaces_and_other_keys_do_not_mix(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add_rows([row(0, 1.0), row(1, 2.0)])
        s.add_rows([row(0, 5.0)])  # a forced re-measure replaces
        s.add_rows([row(0, 9.0, device="dev-b"), row(0, 7.0, mode="standalone")])
        assert s.block_times("resnet18", device="dev-a") == [5.0, 2.0]
        assert s.count() == 4
        with pytest.raises(BadInput, match="name --device"):
            s.block_times("resnet18")  # two devices hold in-context rows: ambiguous
        with pytest.raises(BadInput, match="no in-context measurements of 'vgg16'"):
            s.block_times("vgg16")


def test_a_missing_block_is_reported_not_silently_skipped(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add_rows([row(0, 1.0), row(2, 3.0)])
        with pytest.raises(BadInput, match=r"blocks \[1\] are not measured"):
            s.block_times("resnet18")


def test_rows_from_another_block_partition_are_not_counted_as_measured(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add_rows([dict(row(0, 1.0), chain_sig="aaa"), dict(row(1, 1.0), chain_sig="bbb")])
        assert s.measured_blocks("dev-a", "resnet18", SETTING, "in-context", chain_sig="aaa") == {0}


def test_export_csv_and_json(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.add_device({"key": "dev-a"})
        s.add_rows([row(0, 1.0), row(1, 2.0), row(0, 4.0, mode="standalone")])
        s.export(tmp_path / "out" / "rows.csv", mode="in-context")
        s.export(tmp_path / "out" / "rows.json")
        with pytest.raises(BadInput, match="give a .csv or .json"):
            s.export(tmp_path / "rows.txt")
    lines = list(csv.DictReader(open(tmp_path / "out" / "rows.csv")))
    assert [float(r["median_ms"]) for r in lines] == [1.0, 2.0] and list(lines[0]) == list(ROW_FIELDS)
    doc = json.loads((tmp_path / "out" / "rows.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and len(doc["rows"]) == 3 and doc["devices"][0]["key"] == "dev-a"


def test_location_env_var_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPP_DB", str(tmp_path / "env.sqlite"))
    assert default_path() == tmp_path / "env.sqlite"
    with Store() as s:
        assert s.path == tmp_path / "env.sqlite"
    monkeypatch.delenv("GAPP_DB")
    from platformdirs import user_data_dir

    assert default_path() == Path(user_data_dir("gapp", appauthor=False)) / "measurements.sqlite"


def test_wal_mode_and_schema_version(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        assert s.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_foreign_sqlite_file_is_refused_and_left_alone(tmp_path):
    p = tmp_path / "other.sqlite"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE accounts (name TEXT)")
    conn.execute("INSERT INTO accounts VALUES ('alice')")
    conn.commit()
    conn.close()
    before = digest(p)
    with pytest.raises(BadInput, match="not a GAPP store"):
        Store(p)
    assert digest(p) == before and not Path(str(p) + "-wal").exists()


def test_non_sqlite_file_is_refused_and_left_alone(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("my notes, not a database\n")
    with pytest.raises(BadInput, match="not an SQLite file"):
        Store(p)
    assert p.read_text() == "my notes, not a database\n"


def test_newer_schema_is_refused_and_left_alone(tmp_path):
    p = tmp_path / "new.sqlite"
    with Store(p) as s:
        s.add_rows([row(0, 1.0)])
    conn = sqlite3.connect(p)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = digest(p)
    with pytest.raises(BadInput, match=f"schema version '{SCHEMA_VERSION + 1}'"):
        Store(p)
    assert digest(p) == before


def test_readonly_store_never_creates_a_file(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        Store(tmp_path / "absent.sqlite", readonly=True)
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_second_process_reads_while_this_one_writes(tmp_path):
    """A real second process polls the store while this process commits block after block."""
    p = tmp_path / "shared.sqlite"
    with Store(p) as s:
        s.add_rows([row(0, 1.0)])
        total = 150
        reader = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import json, sys, time
                from gapp_tui.store import Store
                seen = []
                errors = []
                deadline = time.time() + 60
                with Store({str(p)!r}, readonly=True) as s:
                    print("ready", flush=True)
                    while time.time() < deadline:
                        try:
                            n = s.count(mode="in-context")
                            times = s.block_times("resnet18")  # every block present so far, in order
                            assert len(times) >= n, (len(times), n)  # two reads: rows may arrive between
                        except Exception as exc:
                            errors.append(repr(exc))
                            continue
                        seen.append(n)
                        if n >= {total}:
                            break
                print(json.dumps({{"seen": seen, "errors": errors}}))
            """)],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert reader.stdout.readline().strip() == "ready"
        for b in range(1, total):
            s.add_rows([row(b, 1.0 + b)])  # one committed transaction per block, like the engine
            time.sleep(0.002)
        out, _ = reader.communicate(timeout=120)
    report = json.loads(out)
    assert report["errors"] == []
    assert report["seen"][-1] == total
    assert report["seen"] == sorted(report["seen"])  # never went backwards
    assert len(set(report["seen"])) > 1, "the reader only ever saw one state"
    conn = sqlite3.connect(p)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_cpu_clock_settings_are_their_own_key():
    key = setting_key((1, 3, 32, 32), "float32", 1, "natural", 10, "cpu", clock="cpu")
    assert key == SETTING + "/cputime" and parse_setting(key)["clock"] == "cpu"
    assert parse_setting(SETTING)["clock"] == "wall"


def test_corrupt_file_with_an_sqlite_header_is_refused_and_left_alone(tmp_path):
    p = tmp_path / "corrupt.sqlite"
    p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    before = digest(p)
    with pytest.raises(BadInput, match="unreadable or corrupt|not a GAPP store"):
        Store(p)
    assert digest(p) == before


def _as_version_1(p) -> None:
    """Make ``p`` look as a schema-1 store (before the link probes and device predictors were tables of it)."""
    conn = sqlite3.connect(p)
    conn.execute("DROP TABLE link_probes")
    conn.execute("DROP TABLE device_predictors")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_a_version_1_store_keeps_its_rows_and_is_upgraded_when_opened_for_writing(tmp_path):
    p = tmp_path / "old.sqlite"
    with Store(p) as s:
        s.add_rows([row(0, 1.0), row(1, 2.0)])
    _as_version_1(p)
    with Store(p, readonly=True) as s:  # read-only: nothing changes, and there are no probes yet
        assert s.schema_version == 1 and s.links() == [] and s.device_predictors() == []
    with Store(p) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        assert [r["median_ms"] for r in s.rows()] == [1.0, 2.0]
        s.add_link_probe({"host": "pi@x", "local": "here", "direction": "from_device", "latency_s": 0.002,
                          "bandwidth_Bps": 2.5e6, "per_tensor_s": 0.0, "method": "ssh-channel",
                          "measured_at": "2026-12-01T00:00:00+00:00", "detail": {"rtt_s": [0.004]}})
        s.set_device_predictor("pi", tmp_path / "pi.pt", made_for={"machine": "Raspberry Pi 4"})
        assert s.latest_link()["bandwidth_Bps"] == 2.5e6 and s.links()[0]["detail"] == {"rtt_s": [0.004]}
        assert s.device_predictor("pi")["made_for"] == {"machine": "Raspberry Pi 4"}
        assert s.device_predictor("pi", "executorch") is None
