"""The measurement store: one SQLite file holding every timing row GAPP has measured.

One concept: the store (its tables under one schema version, reading, writing and exporting them).

Where it lives
--------------
:func:`default_path` is ``<user data dir>/gapp/measurements.sqlite``
(``platformdirs.user_data_dir("gapp")``). The environment variable
``GAPP_DB`` overrides it, and an explicit ``path`` (the CLI's ``--db PATH``)
overrides both.

What a row is
-------------
A *measurement row* is a plain dict (the same dict the measurement engine and
the SSH device agent produce), keyed by

    (device_key, model, setting, mode, block)

* ``device_key``: which machine (see ``gapp_tui.measure.device``); the full
  description is in the ``devices`` table (:meth:`Store.devices`).
* ``model``: the model name as given (``resnet18`` or ``package.module:callable``).
* ``setting``: a canonical text naming everything else that changes the time --
  input shape (batch first), dtype, threads, granularity, classes, device type,
  e.g. ``1x3x224x224/float32/t2/natural/c1000/cpu`` (:func:`setting_key`), with
  ``/cputime`` appended for times taken with the CPU-time clock, and then the
  runtime for blocks timed under one other than eager PyTorch
  (``.../cpu/executorch``, ``.../cpu/onnxruntime``; an int8 stage has dtype
  ``int8``). Rows of different runtimes therefore never share a setting, and
  a store written before runtimes existed reads as eager.
* ``mode``: ``standalone`` (each block alone on its recorded inputs),
  ``in-context`` (each block timed inside an end-to-end run of the chain) or
  ``full`` (the unsplit model, ``block = -1``). The per-block timing overhead
  (``--adjust_for_overhead``) is kept in the run's summary, not as a row.
* ``block``: the block's index in the chain (``-1`` for whole-model rows).

Every row also carries ``block_name``, the statistics in milliseconds
(``median_ms``, ``mean_ms``, ``std_ms``, ``iqr_ms``, ``min_ms``, ``max_ms``,
``runs``, ``ci_rel``), the setting's parts as columns (``batch_size``,
``input_shape``, ``dtype``, ``threads``, ``granularity``, ``num_classes``,
``device_type``), ``chain_sig`` (a fingerprint of the block partition, so rows
from a different cutting never mix), ``measured_at`` (ISO time), ``run_id`` and
``extra`` (a dict: temperature/frequency before and after, inner loop count...).
:data:`ROW_FIELDS` lists them all.

Guarantees
----------
* WAL mode: another process may read while one writes; every :meth:`Store.add_rows`
  is one committed transaction, so an interrupted run keeps every block already added.
* The schema is versioned (:data:`SCHEMA_VERSION`). A file that is not a GAPP
  store (another SQLite database, or not SQLite at all) or has a newer schema is
  refused with a one-line :class:`~gapp_tui.errors.BadInput` and never modified.
* Adding a row whose key exists replaces it (that is what ``--force`` does);
  :meth:`Store.measured_blocks` tells a caller what it may skip.

Public API (used by measure, predict, partition, the TUI)
---------------------------------------------------------
``Store(path=None, readonly=False)`` (context manager), ``default_path()``,
``setting_key(...)``, and on a store: ``add_device``, ``add_rows``,
``start_run``/``finish_run``, ``rows``, ``measured_blocks``, ``block_times``,
``block_table``, ``devices``, ``models``, ``settings``, ``runs``, ``count``,
``export_csv``, ``export_json``, ``export``, and the device predictors
``gapp calibrate`` records: ``set_device_predictor``, ``device_predictor``,
``device_predictors``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from .errors import BadInput

#: bump when the tables change; a file with a larger number is refused, a smaller one upgraded
#: (1 -> 2: the link probes and the device predictors became tables of the store)
SCHEMA_VERSION = 2
#: the value of ``meta.app`` that marks a file as ours
APP_ID = "gapp-measurements"
ENV_VAR = "GAPP_DB"
MODES = ("standalone", "in-context", "full")
BLOCK_MODES = ("standalone", "in-context")
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: runtimes that name themselves in a setting (eager PyTorch is the setting without a runtime part);
#: the same names as ``gapp_tui.stage_runner.RUNTIMES``, kept here so the store needs no torch
SETTING_RUNTIMES = ("executorch", "onnxruntime")

#: every column of a measurement row, in table order
ROW_FIELDS: tuple[str, ...] = (
    "device_key",
    "model",
    "setting",
    "mode",
    "block",
    "block_name",
    "model_label",
    "granularity",
    "batch_size",
    "input_shape",
    "num_classes",
    "dtype",
    "threads",
    "device_type",
    "median_ms",
    "mean_ms",
    "std_ms",
    "iqr_ms",
    "min_ms",
    "max_ms",
    "runs",
    "ci_rel",
    "chain_sig",
    "measured_at",
    "run_id",
    "extra",
)
_KEY = ("device_key", "model", "setting", "mode", "block")
_REQUIRED = _KEY + ("median_ms",)
_STATS = ("median_ms", "mean_ms", "std_ms", "iqr_ms", "min_ms", "max_ms")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_key  TEXT PRIMARY KEY,
    description TEXT NOT NULL,          -- JSON of gapp_tui.measure.device.describe()
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    device_key  TEXT NOT NULL,
    model       TEXT NOT NULL,
    setting     TEXT NOT NULL,
    modes       TEXT NOT NULL,
    command     TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,          -- running | done | interrupted | failed
    summary     TEXT                    -- JSON: sums, gaps, device before/after
);
CREATE TABLE IF NOT EXISTS measurements (
    device_key  TEXT NOT NULL,
    model       TEXT NOT NULL,
    setting     TEXT NOT NULL,
    mode        TEXT NOT NULL,
    block       INTEGER NOT NULL,
    block_name  TEXT NOT NULL,
    model_label TEXT,
    granularity TEXT,
    batch_size  INTEGER,
    input_shape TEXT,
    num_classes INTEGER,
    dtype       TEXT,
    threads     INTEGER,
    device_type TEXT,
    median_ms   REAL NOT NULL,
    mean_ms     REAL,
    std_ms      REAL,
    iqr_ms      REAL,
    min_ms      REAL,
    max_ms      REAL,
    runs        INTEGER,
    ci_rel      REAL,
    chain_sig   TEXT,
    measured_at TEXT NOT NULL,
    run_id      INTEGER,
    extra       TEXT,                   -- JSON
    PRIMARY KEY (device_key, model, setting, mode, block)
);
CREATE INDEX IF NOT EXISTS measurements_by_model ON measurements (model, device_key, setting, mode);
CREATE TABLE IF NOT EXISTS link_probes (  -- `gapp link probe`: one row per direction
    probe_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    host          TEXT NOT NULL,
    local         TEXT NOT NULL,
    direction     TEXT NOT NULL,      -- to_device | from_device
    latency_s     REAL NOT NULL,
    bandwidth_Bps REAL NOT NULL,
    per_tensor_s  REAL NOT NULL DEFAULT 0,
    method        TEXT NOT NULL,
    measured_at   TEXT NOT NULL,
    detail        TEXT                -- JSON: every transfer, the fit
);
CREATE TABLE IF NOT EXISTS device_predictors (  -- `gapp calibrate`: the predictor made for a device
    device_key  TEXT NOT NULL,
    runtime     TEXT NOT NULL DEFAULT 'eager',
    threads     INTEGER NOT NULL DEFAULT 0,  -- the thread count it was calibrated at (0: not recorded)
    path        TEXT NOT NULL,               -- the predictor file (gapp calibrate --out)
    made_for    TEXT NOT NULL,               -- JSON: device_key, label, runtime, threads, setting, description
    created_at  TEXT NOT NULL,
    PRIMARY KEY (device_key, runtime, threads)
);
"""


def default_path() -> Path:
    """``$GAPP_DB`` if set, else ``<platformdirs user data dir>/gapp/measurements.sqlite``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(user_data_dir("gapp", appauthor=False)) / "measurements.sqlite"


def setting_key(
    input_shape: Sequence[int] | str,
    dtype: str = "float32",
    threads: int = 1,
    granularity: str | int = "natural",
    num_classes: int = 1000,
    device_type: str = "cpu",
    clock: str = "wall",
    runtime: str = "eager",
) -> str:
    """The canonical setting text, e.g. ``1x3x224x224/float32/t2/natural/c1000/cpu``.

    Everything that changes a block's time apart from the device and the model.
    Times taken with the CPU-time clock (``clock="cpu"``) get a part ``/cputime``;
    times taken under a runtime other than eager PyTorch end with its name
    (``/executorch``, ``/onnxruntime``), so they never mix with eager rows.
    """
    shape = input_shape if isinstance(input_shape, str) else "x".join(str(int(d)) for d in input_shape)
    dtype = str(dtype).replace("torch.", "")
    key = f"{shape}/{dtype}/t{int(threads)}/{granularity}/c{int(num_classes)}/{device_type}"
    if clock == "cpu":
        key += "/cputime"
    if runtime not in ("eager", "", None):
        if runtime not in SETTING_RUNTIMES:
            raise BadInput(f"runtime {runtime!r} is not known; give one of eager, {', '.join(SETTING_RUNTIMES)}")
        key += f"/{runtime}"
    return key


def parse_setting(key: str) -> dict[str, Any]:
    """Inverse of :func:`setting_key` (BadInput when it does not parse)."""
    parts = key.split("/")
    try:
        clock, runtime = "wall", "eager"
        if len(parts) > 6 and parts[-1] in SETTING_RUNTIMES:
            parts, runtime = parts[:-1], parts[-1]
        if len(parts) == 7 and parts[-1] == "cputime":
            parts, clock = parts[:6], "cpu"
        shape, dtype, threads, gran, classes, device_type = parts
        dims = [int(d) for d in shape.split("+")[0].split("x")]  # several inputs: + between their shapes
        return {
            "input_shape": shape,
            "batch_size": dims[0],
            "dtype": dtype,
            "threads": int(threads.lstrip("t")),
            "granularity": gran,
            "num_classes": int(classes.lstrip("c")),
            "device_type": device_type,
            "clock": clock,
            "runtime": runtime,
        }
    except (ValueError, IndexError):
        raise BadInput(
            f"setting {key!r} does not parse; expected SHAPE/DTYPE/tTHREADS/GRANULARITY/cCLASSES/DEVICE[/cputime][/RUNTIME]"
            " such as 1x3x224x224/float32/t2/natural/c1000/cpu"
        ) from None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Store:
    """One SQLite file of measurement rows (see the module docstring for the row format).

    ``Store(path)`` opens (creating when absent) the store at ``path`` (default:
    :func:`default_path`). ``readonly=True`` never creates or writes anything.
    A file that is not ours or has a newer schema raises BadInput before
    anything is written to it. Safe to share between threads (one lock).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._check_file()
        self._conn = self._connect()

    @classmethod
    def if_exists(cls, path: str | os.PathLike[str] | None = None) -> Store | None:
        """The store at ``path`` (default: :func:`default_path`) opened read-only, or None when there is none yet."""
        p = Path(path).expanduser() if path is not None else default_path()
        return cls(p, readonly=True) if p.is_file() else None

    # ------------------------------------------------------------------ opening

    def _check_file(self) -> None:
        """Refuse a foreign, corrupt or newer file without touching it."""
        p = self.path
        if p.is_dir():
            raise BadInput(f"database path {str(p)!r} is a directory; give a file path such as {str(p / 'gapp.sqlite')!r}")
        if not p.exists():
            if self.readonly:
                raise BadInput(f"database {str(p)!r} does not exist; measure something first (`gapp measure`) or give --db")
            _writable_dir(p.parent, "database directory", "--db path")
            return
        try:
            with open(p, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise BadInput(f"database {str(p)!r} cannot be read ({exc.strerror}); give a readable GAPP database or a new --db path") from None
        if not head:
            return  # an empty file: a fresh store
        if head != _SQLITE_MAGIC:
            raise BadInput(f"database {str(p)!r} is not an SQLite file; give a GAPP database or a new --db path")
        # read-only look at the meta table: nothing is written to a file we may refuse
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not tables:
                    return  # SQLite header but no tables: treat as a fresh store
                if "meta" not in tables or "measurements" not in tables:
                    raise BadInput(f"database {str(p)!r} is an SQLite file but not a GAPP store; give a GAPP database or a new --db path")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"database {str(p)!r} is unreadable or corrupt ({exc}); give a GAPP database or a new --db path") from None
        if meta.get("app") != APP_ID:
            raise BadInput(f"database {str(p)!r} is an SQLite file but not a GAPP store; give a GAPP database or a new --db path")
        try:
            version = int(meta.get("schema_version", "0"))
        except ValueError:
            version = -1
        if version > SCHEMA_VERSION or version < 1:  # older versions are upgraded in _connect
            raise BadInput(
                f"database {str(p)!r} has schema version {meta.get('schema_version')!r} but this GAPP reads"
                f" version {SCHEMA_VERSION}; upgrade GAPP or give another --db path"
            )
        if not self.readonly and not os.access(p, os.W_OK):
            raise BadInput(f"database {str(p)!r} is not writable; give a writable --db path")

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                with conn:
                    # every table is CREATE ... IF NOT EXISTS: a new file gets them all, and an older
                    # schema gets the tables it lacks (1 -> 2 adds link_probes, device_predictors)
                    conn.executescript(_SCHEMA)
                    conn.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP_ID,))
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (now_iso(),))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise BadInput(f"database {str(self.path)!r} cannot be opened ({exc}); give a GAPP database or a new --db path") from None
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def schema_version(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ writing

    def add_device(self, description: Mapping[str, Any]) -> str:
        """Record (or refresh) a device description; returns its ``key``."""
        key = str(description["key"])
        stamp = now_iso()
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO devices (device_key, description, first_seen, last_seen) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(device_key) DO UPDATE SET description=excluded.description, last_seen=excluded.last_seen",
                (key, json.dumps(dict(description), default=str), stamp, stamp),
            )
        return key

    def add_rows(self, rows: Iterable[Mapping[str, Any]], run_id: int | None = None) -> int:
        """Insert rows (replacing rows with the same key) in one transaction; returns how many."""
        values = []
        for row in rows:
            values.append(self._row_values(row, run_id))
        if not values:
            return 0
        cols = ", ".join(ROW_FIELDS)
        marks = ", ".join("?" for _ in ROW_FIELDS)
        with self._lock, self._conn:
            self._conn.executemany(f"INSERT OR REPLACE INTO measurements ({cols}) VALUES ({marks})", values)
        return len(values)

    def add_row(self, row: Mapping[str, Any], run_id: int | None = None) -> None:
        self.add_rows([row], run_id)

    @staticmethod
    def _row_values(row: Mapping[str, Any], run_id: int | None) -> tuple[Any, ...]:
        missing = [k for k in _REQUIRED if row.get(k) is None]
        if missing:
            raise ValueError(f"measurement row lacks {', '.join(missing)}: {dict(row)!r}")
        if row["mode"] not in MODES:
            raise ValueError(f"measurement row has mode {row['mode']!r}; expected one of {', '.join(MODES)}")
        out = []
        for k in ROW_FIELDS:
            v = row.get(k)
            if k == "run_id" and v is None:
                v = run_id
            elif k == "measured_at" and v is None:
                v = now_iso()
            elif k == "block_name" and v is None:
                v = "(model)" if int(row["block"]) < 0 else f"block{row['block']}"
            elif k == "extra":
                v = json.dumps(v or {}, default=str)
            elif k == "input_shape" and isinstance(v, (list, tuple)):
                v = "x".join(map(str, v))
            out.append(v)
        return tuple(out)

    def start_run(
        self, device_key: str, model: str, setting: str, modes: Sequence[str], command: str | None = None
    ) -> int:
        """Open a run record (status ``running``); returns its id."""
        with self._lock, self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs (device_key, model, setting, modes, command, started_at, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running')",
                (device_key, model, setting, ",".join(modes), command, now_iso()),
            )
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str = "done", summary: Mapping[str, Any] | None = None) -> None:
        """Close a run record: ``done``, ``interrupted`` or ``failed``, with its summary dict."""
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE runs SET finished_at=?, status=?, summary=? WHERE run_id=?",
                (now_iso(), status, json.dumps(dict(summary or {}), default=str), run_id),
            )

    def delete(self, *, device: str | None = None, model: str | None = None, setting: str | None = None,
               mode: str | None = None) -> int:
        """Delete matching rows (at least one filter is required); returns how many."""
        where, args = _where(device=device, model=model, setting=setting, mode=mode)
        if not args:
            raise BadInput("refusing to delete every row; name a --device, --model, --setting or --mode")
        with self._lock, self._conn:
            cur = self._conn.execute(f"DELETE FROM measurements{where}", args)
            return cur.rowcount

    # ------------------------------------------------------------------ reading

    def rows(
        self,
        *,
        model: str | None = None,
        device: str | None = None,
        setting: str | None = None,
        mode: str | Sequence[str] | None = None,
        block: int | None = None,
        run_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching every given filter, ordered by device, model, setting, mode, block.

        ``extra`` comes back as a dict; every other field as stored.
        """
        where, args = _where(model=model, device=device, setting=setting, mode=mode, block=block, run_id=run_id)
        sql = (f"SELECT {', '.join(ROW_FIELDS)} FROM measurements{where}"
               " ORDER BY device_key, model, setting, mode, block")
        with self._lock:
            fetched = self._conn.execute(sql, args).fetchall()
        return [_row_dict(r) for r in fetched]

    def count(self, **filters: Any) -> int:
        where, args = _where(**filters)
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM measurements{where}", args).fetchone()[0])

    def measured_blocks(
        self, device: str, model: str, setting: str, mode: str, chain_sig: str | None = None
    ) -> set[int]:
        """Block indices already stored for this key (``-1`` for whole-model rows).

        With ``chain_sig``, rows measured on a different block partition do not count.
        """
        where, args = _where(device=device, model=model, setting=setting, mode=mode)
        with self._lock:
            got = self._conn.execute(f"SELECT block, chain_sig FROM measurements{where}", args).fetchall()
        return {int(b) for b, sig in got if chain_sig is None or sig is None or sig == chain_sig}

    def resolve(
        self, model: str, device: str | None = None, setting: str | None = None, mode: str = "in-context"
    ) -> tuple[str, str]:
        """Fill in ``device`` and ``setting`` when the store holds exactly one choice.

        BadInput, listing the choices, when nothing matches or the choice is ambiguous.
        """
        where, args = _where(model=model, device=device, setting=setting, mode=mode)
        with self._lock:
            found = self._conn.execute(
                f"SELECT DISTINCT device_key, setting FROM measurements{where} ORDER BY device_key, setting", args
            ).fetchall()
        if not found:
            have = self.models()
            raise BadInput(
                f"no {mode} measurements of {model!r}"
                + (f" on device {device!r}" if device else "")
                + (f" with setting {setting!r}" if setting else "")
                + f" in {str(self.path)!r} (models stored: {', '.join(have) or 'none'}); run `gapp measure {model}` first"
            )
        if len(found) > 1:
            choices = "; ".join(f"{d} {s}" for d, s in found[:6])
            raise BadInput(f"{model!r} has {len(found)} measured device/setting pairs ({choices}); name --device and --setting")
        return str(found[0][0]), str(found[0][1])

    def block_table(
        self, model: str, device: str | None = None, setting: str | None = None, mode: str = "in-context"
    ) -> list[dict[str, Any]]:
        """The block rows of one model/device/setting/mode in block order (no whole-model rows).

        Raises BadInput when a block in the middle is missing (an interrupted run:
        measure again to complete it) or nothing matches.
        """
        if mode not in BLOCK_MODES:
            raise BadInput(f"mode {mode!r} is not a block mode; give standalone or in-context")
        device, setting = self.resolve(model, device, setting, mode)
        rows = [r for r in self.rows(model=model, device=device, setting=setting, mode=mode) if r["block"] >= 0]
        indices = [r["block"] for r in rows]
        if indices != list(range(len(rows))):
            missing = sorted(set(range(max(indices) + 1)) - set(indices)) if indices else [0]
            raise BadInput(
                f"{model!r} on {device} ({setting}, {mode}) is incomplete: blocks {missing[:10]} are not measured;"
                " run `gapp measure` again to complete it"
            )
        return rows

    def block_times(
        self,
        model: str,
        device: str | None = None,
        setting: str | None = None,
        mode: str = "in-context",
        stat: str = "median_ms",
    ) -> list[float]:
        """Per-block times in milliseconds (the ``stat`` column, median by default) in block order.

        ``device``/``setting`` may be left out when the store holds one choice
        for the model. BadInput when nothing matches, the choice is ambiguous,
        or a block is missing.
        """
        if stat not in _STATS:
            raise BadInput(f"statistic {stat!r} is not stored; give one of {', '.join(_STATS)}")
        return [float(r[stat]) for r in self.block_table(model, device, setting, mode)]

    def full_time(self, model: str, device: str | None = None, setting: str | None = None) -> float | None:
        """Median time of the unsplit model in ms (``None`` when it was not measured)."""
        try:
            device, setting = self.resolve(model, device, setting, "full")
        except BadInput:
            return None
        rows = self.rows(model=model, device=device, setting=setting, mode="full")
        return float(rows[0]["median_ms"]) if rows else None

    def devices(self) -> list[dict[str, Any]]:
        """Every device seen: ``key``, ``first_seen``, ``last_seen``, ``rows`` and its description dict."""
        with self._lock:
            got = self._conn.execute(
                "SELECT d.device_key, d.description, d.first_seen, d.last_seen,"
                " (SELECT COUNT(*) FROM measurements m WHERE m.device_key = d.device_key)"
                " FROM devices d ORDER BY d.device_key"
            ).fetchall()
            orphans = self._conn.execute(
                "SELECT DISTINCT device_key FROM measurements WHERE device_key NOT IN (SELECT device_key FROM devices)"
            ).fetchall()
        out = [
            {"key": k, "first_seen": f, "last_seen": ls, "rows": int(n), "description": json.loads(d)}
            for k, d, f, ls, n in got
        ]
        out += [{"key": o[0], "first_seen": None, "last_seen": None, "rows": self.count(device=o[0]), "description": {}}
                for o in orphans]
        return out

    def models(self, device: str | None = None) -> list[str]:
        where, args = _where(device=device)
        with self._lock:
            return [r[0] for r in self._conn.execute(f"SELECT DISTINCT model FROM measurements{where} ORDER BY model", args)]

    def settings(self, model: str | None = None, device: str | None = None) -> list[dict[str, Any]]:
        """One dict per stored (device, model, setting): the setting's parts and, per mode, rows and sum of medians.

        ``modes`` maps ``standalone``/``in-context`` to ``{"rows", "sum_ms"}`` (the sum over blocks) and
        ``full`` to ``{"rows": 1, "sum_ms": <the full model's median>}``.
        """
        where, args = _where(model=model, device=device)
        with self._lock:
            got = self._conn.execute(
                "SELECT device_key, model, setting, mode, COUNT(*), MAX(measured_at), SUM(median_ms)"
                f" FROM measurements{where}"
                " GROUP BY device_key, model, setting, mode ORDER BY device_key, model, setting, mode",
                args,
            ).fetchall()
        merged: dict[tuple[str, str, str], dict[str, Any]] = {}
        for dev, mod, sett, mode, n, last, total in got:
            entry = merged.setdefault(
                (dev, mod, sett),
                {"device_key": dev, "model": mod, "setting": sett, **_safe_parse(sett), "modes": {}, "last_measured": last},
            )
            entry["modes"][mode] = {"rows": int(n), "sum_ms": float(total or 0.0)}
            entry["last_measured"] = max(entry["last_measured"] or "", last or "")
        return list(merged.values())

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Run records, newest first (``summary`` as a dict)."""
        sql = "SELECT run_id, device_key, model, setting, modes, command, started_at, finished_at, status, summary FROM runs ORDER BY run_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            got = self._conn.execute(sql).fetchall()
        out = []
        for r in got:
            d = dict(r)
            d["modes"] = d["modes"].split(",") if d["modes"] else []
            d["summary"] = json.loads(d["summary"]) if d["summary"] else {}
            out.append(d)
        return out

    # ------------------------------------------------------------------ device predictors
    # (`gapp calibrate` records the predictor it made for a device; a table of its own, created with the
    # schema: stores written before it get it the next time they are opened for writing)

    def set_device_predictor(self, device_key: str, path: str | os.PathLike[str], made_for: Mapping[str, Any],
                             runtime: str = "eager", threads: int | None = None) -> None:
        """Record ``path`` as the predictor of ``device_key`` under ``runtime`` (and thread count), replacing any."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO device_predictors (device_key, runtime, threads, path, made_for, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (device_key, runtime, int(threads or 0), str(Path(path).resolve()), json.dumps(dict(made_for), default=str),
                 now_iso()),
            )

    def device_predictor(self, device_key: str, runtime: str = "eager", threads: int | None = None) -> dict[str, Any] | None:
        """The newest predictor recorded for a device and runtime (``threads``: that thread count only), or None.

        ``{"device_key", "runtime", "threads", "path", "made_for": dict, "created_at"}``.
        """
        found = self.device_predictors(device_key, runtime)
        if threads is not None:
            found = [r for r in found if r["threads"] == int(threads)]
        return found[0] if found else None

    def device_predictors(self, device_key: str | None = None, runtime: str | None = None) -> list[dict[str, Any]]:
        """Every recorded device predictor, newest first (optionally of one device and runtime)."""
        clauses, args = [], []
        for col, v in (("device_key", device_key), ("runtime", runtime)):
            if v is not None:
                clauses.append(f"{col} = ?")
                args.append(v)
        sql = ("SELECT device_key, runtime, threads, path, made_for, created_at FROM device_predictors"
               + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY created_at DESC, rowid DESC")
        with self._lock:
            try:
                got = self._conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:  # a read-only store written before the table existed
                return []
        return [{"device_key": k, "runtime": r, "threads": int(t), "path": p, "made_for": json.loads(m or "{}"),
                 "created_at": c} for k, r, t, p, m, c in got]

    # ------------------------------------------------------------------ link probes

    def add_link_probe(self, probe: Mapping[str, Any]) -> int:
        """Store one direction of a link probe (the keys of the ``link_probes`` table); returns its id."""
        cols = ("host", "local", "direction", "latency_s", "bandwidth_Bps", "per_tensor_s", "method", "measured_at",
                "detail")
        values = [json.dumps(probe.get("detail") or {}, default=str) if c == "detail" else probe.get(c) for c in cols]
        with self._lock, self._conn:
            cur = self._conn.execute(
                f"INSERT INTO link_probes ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", values)
            return int(cur.lastrowid)

    def links(self, host: str | None = None, direction: str | None = None) -> list[dict[str, Any]]:
        """Stored link probes, newest first: ``host``, ``direction``, ``latency_s``, ``bandwidth_Bps``, ..."""
        if not self._has_table("link_probes"):  # a version-1 file opened read-only
            return []
        clauses = [(c, v) for c, v in (("host", host), ("direction", direction)) if v]
        where = (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in clauses)) if clauses else ""
        with self._lock:
            got = self._conn.execute(f"SELECT * FROM link_probes{where} ORDER BY probe_id DESC",
                                     [v for _, v in clauses]).fetchall()
        out = []
        for r in got:
            d = dict(r)
            d["detail"] = json.loads(d["detail"]) if d.get("detail") else {}
            d["source"] = "probe"
            out.append(d)
        return out

    def latest_link(self, host: str | None = None, direction: str = "from_device") -> dict[str, Any] | None:
        """The newest probe of one direction (device to server by default), or None."""
        found = self.links(host, direction)
        return found[0] if found else None

    def _has_table(self, table: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                                      (table,)).fetchone() is not None

    # ------------------------------------------------------------------ export

    def export_csv(self, path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]] | None = None, **filters: Any) -> Path:
        """Write rows (default: every row matching ``filters``) as CSV; ``extra`` as JSON text."""
        rows = self.rows(**filters) if rows is None else rows
        return write_csv(path, rows)

    def export_json(self, path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]] | None = None, **filters: Any) -> Path:
        """Write ``{"schema_version", "devices", "rows"}`` as JSON."""
        rows = self.rows(**filters) if rows is None else rows
        keys = {r["device_key"] for r in rows}
        doc = {
            "schema_version": SCHEMA_VERSION,
            "devices": [d for d in self.devices() if d["key"] in keys],
            "rows": list(rows),
        }
        return write_json(path, doc)

    def export(self, path: str | os.PathLike[str], **filters: Any) -> Path:
        """CSV or JSON by the file's suffix (``.csv`` / ``.json``)."""
        p = Path(path)
        if p.suffix.lower() == ".csv":
            return self.export_csv(p, **filters)
        if p.suffix.lower() == ".json":
            return self.export_json(p, **filters)
        raise BadInput(f"export file {str(p)!r} has suffix {p.suffix!r}; give a .csv or .json path")


# ---------------------------------------------------------------------- helpers


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Measurement rows as CSV (columns: :data:`ROW_FIELDS`)."""
    p = Path(path)
    _writable_dir(p.parent)
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ROW_FIELDS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            d = dict(r)
            if isinstance(d.get("extra"), (dict, list)):
                d["extra"] = json.dumps(d["extra"], default=str)
            w.writerow(d)
    return p


def write_json(path: str | os.PathLike[str], doc: Any) -> Path:
    p = Path(path)
    _writable_dir(p.parent)
    with open(p, "w") as fh:
        json.dump(doc, fh, indent=2, default=str)
        fh.write("\n")
    return p


def _writable_dir(d: Path, what: str = "output directory", option: str = "--output_dir") -> None:
    """Create ``d`` if needed; BadInput (one line naming ``option``) unless it can be written."""
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{what} {str(d)!r} cannot be created ({exc.strerror}); give a writable {option}") from None
    if not os.access(d, os.W_OK):
        raise BadInput(f"{what} {str(d)!r} is not writable; give a writable {option}")


def _where(**filters: Any) -> tuple[str, list[Any]]:
    column = {"device": "device_key", "model": "model", "setting": "setting", "mode": "mode", "block": "block",
              "run_id": "run_id"}
    clauses: list[str] = []
    args: list[Any] = []
    for k, v in filters.items():
        if v is None:
            continue
        col = column[k]
        if isinstance(v, (list, tuple, set)):
            clauses.append(f"{col} IN ({', '.join('?' for _ in v)})")
            args.extend(v)
        else:
            clauses.append(f"{col} = ?")
            args.append(v)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _row_dict(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    try:
        d["extra"] = json.loads(d["extra"]) if d.get("extra") else {}
    except json.JSONDecodeError:
        d["extra"] = {}
    return d


def _safe_parse(setting: str) -> dict[str, Any]:
    try:
        return parse_setting(setting)
    except BadInput:
        return {}
