"""What to distrust in a measurement before believing it: the checks a careful person makes.

Standard library only (no torch, no UI), so that the command line and the
terminal app print the same warnings. Each check returns :class:`Flag` s: one
line saying what looks wrong, its likely cause, and what to do.

``gap``
    The in-context sum of block medians should equal the full model's median
    (the blocks *are* the model's operations, timed inside end-to-end runs): on
    a quiet machine they agree within 3% (docs/measure.md). Beyond ±10% the
    rows are suspect. The usual cause is other work on the machine: with
    several threads the blocks and the full model compete for the cores with
    it, and not in the same way. A standalone sum may differ by up to 20%
    for real (warm caches, no neighbours): it is flagged with that reason.
``spread``
    A block whose runs spread widely (interquartile range over 10% of its
    median) was disturbed; when over a quarter of the blocks that matter
    (each at least 1% of the sum) are, the run is flagged.
``setting``
    Rows taken at another thread count, dtype, batch size or device type than
    the predictor beside them was made for cannot be compared with its
    predictions.

Re-measuring replaces the rows (``MeasureConfig(force=True)``, ``gapp measure --force``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: sum of blocks against the full model: beyond this (percent) the rows are flagged
GAP_LIMIT_PCT = 10.0
#: a block's interquartile range over its median beyond this is a disturbed block
SPREAD_LIMIT = 0.10
#: the run is flagged when more than this share of the blocks that matter are disturbed
SPREAD_SHARE = 0.25
#: blocks under this share of the sum are too short to judge by their spread
SPREAD_MIN_SHARE = 0.01


@dataclasses.dataclass(frozen=True)
class Flag:
    """One warning: ``kind`` (``gap``, ``spread`` or ``setting``), ``what`` looks wrong, its likely ``cause``
    and the ``remedy``; :attr:`message` (and ``str()``) is the one line of all three."""

    kind: str
    what: str
    cause: str
    remedy: str
    short: str = ""  # a few words of ``what``, for a crowded line

    @property
    def message(self) -> str:
        return f"{self.what}: {self.cause}; {self.remedy}"

    def __str__(self) -> str:
        return self.message


def _threads_text(threads: Any) -> str:
    if threads in (None, "", "all"):
        return "all threads"
    return f"{threads} thread" + ("" if int(threads) == 1 else "s")


def check_gap(sums: Mapping[str, Mapping[str, Any]], *, threads: Any = None, cores: int | None = None,
              load: float | None = None) -> list[Flag]:
    """Flags for every mode whose sum of blocks is beyond ±:data:`GAP_LIMIT_PCT` of the full model.

    ``sums`` is :attr:`MeasureResult.sums` (per mode: ``sum_ms``, ``full_ms``, ``gap_pct``); ``threads``
    the measurement's threads (None: all cores), ``cores`` the machine's, ``load`` its 1-minute load average.
    """
    out = []
    for mode, s in sums.items():
        gap = s.get("gap_pct")
        if gap is None or abs(gap) <= GAP_LIMIT_PCT:
            continue
        busy = f" (load average {load:.1f} on {cores} cores)" if load is not None and cores else ""
        if mode == "standalone":
            cause, remedy = ("likely standalone blocks running alone with warm caches (up to 20% off is normal)",
                             "trust the in-context rows")
        elif threads in (None, "", "all") or int(threads) > 1:
            cause = (f"likely other work on the machine competing for the cores with {_threads_text(threads)}"
                     f"{busy}")
            remedy = "re-measure with threads 1"
        else:
            cause, remedy = f"likely the machine was busy while it ran{busy}", "re-measure when it is quiet"
        out.append(Flag("gap", f"{mode} sum {s['sum_ms']:.2f} ms vs full model {s['full_ms']:.2f} ms ({gap:+.1f}%,"
                               f" beyond ±{GAP_LIMIT_PCT:.0f}%)", cause, remedy, f"{mode} sum {gap:+.1f}% vs full"))
    return out


def check_spread(rows: Sequence[Mapping[str, Any]], mode: str = "in-context") -> list[Flag]:
    """A flag when over :data:`SPREAD_SHARE` of the blocks that matter spread beyond :data:`SPREAD_LIMIT`."""
    blocks = [r for r in rows if r.get("block", 0) >= 0 and (r.get("median_ms") or 0) > 0]
    total = sum(float(r["median_ms"]) for r in blocks)
    if not blocks or total <= 0:
        return []
    judged = [r for r in blocks if float(r["median_ms"]) >= SPREAD_MIN_SHARE * total]
    wide = [(float(r.get("iqr_ms") or 0.0) / float(r["median_ms"]), r) for r in judged]
    wide = [(rel, r) for rel, r in wide if rel > SPREAD_LIMIT]
    if not judged or len(wide) <= SPREAD_SHARE * len(judged):
        return []
    rel, worst = max(wide, key=lambda w: w[0])
    return [Flag("spread", f"{mode}: {len(wide)} of {len(judged)} blocks varied by over {SPREAD_LIMIT:.0%} between"
                           f" runs (worst {worst.get('block_name', worst.get('block'))}, IQR {rel:.0%} of its median)",
                 "likely other work on the machine", "re-measure when it is quiet, with threads 1",
                 f"{len(wide)}/{len(judged)} {mode} blocks spread over {SPREAD_LIMIT:.0%}")]


def predictor_setting(training: Mapping[str, Any], device: str = "") -> dict[str, Any]:
    """What a predictor was made for, from its training record: ``threads``, ``dtype``, ``batch_sizes`` (None: unknown).

    ``threads`` is the record's own, else read from its device note (``..., 1 thread``) or its device
    name (``corpus-cpu-t1``).
    """
    threads = training.get("threads")
    if not isinstance(threads, int):
        threads = None
        m = re.search(r"(\d+) threads?\b", str(training.get("device_note") or ""))
        m = m or re.search(r"-t(\d+)$", str(training.get("device") or device or ""))
        if m:
            threads = int(m.group(1))
    batches = training.get("batch_sizes")
    return {
        "threads": threads,
        "dtype": training.get("dtype") if isinstance(training.get("dtype"), str) else None,
        "batch_sizes": [int(b) for b in batches] if isinstance(batches, (list, tuple)) else None,
    }


def check_setting(setting: Mapping[str, Any], predictor: Mapping[str, Any] | None, name: str = "the predictor"
                  ) -> list[Flag]:
    """Flags where ``setting`` (``threads``, ``dtype``, ``batch_size``) differs from :func:`predictor_setting`."""
    if not predictor:
        return []
    diffs = []
    made, got = predictor.get("threads"), setting.get("threads")
    if made is not None and got is not None and int(got) != int(made):
        diffs.append((f"{_threads_text(got)}", f"{_threads_text(made)}", f"measure with threads {made}"))
    if predictor.get("dtype") and setting.get("dtype") and setting["dtype"] != predictor["dtype"]:
        diffs.append((setting["dtype"], predictor["dtype"], f"measure in {predictor['dtype']}"))
    sizes = predictor.get("batch_sizes")
    if sizes and setting.get("batch_size") is not None and int(setting["batch_size"]) not in sizes:
        diffs.append((f"batch {setting['batch_size']}", "batch " + "/".join(map(str, sizes)),
                      f"measure at batch {sizes[0]}"))
    return [Flag("setting", f"measured at {a}, but {name} was made at {b}",
                 "its predictions are not comparable with these rows", fix, f"{a}, predictor made at {b}")
            for a, b, fix in diffs]


def check_result(result: Any, *, predictor: Mapping[str, Any] | None = None, predictor_name: str = "the predictor",
                 load: float | None = None) -> list[Flag]:
    """Every flag of a :class:`~gapp_tui.measure.record.MeasureResult` (or its ``to_dict()``).

    ``predictor``: :func:`predictor_setting` of the predictor the rows will be compared with (None: none);
    ``load``: the 1-minute load average of the machine that measured (None: unknown, e.g. a remote device).
    """
    r = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    parts = r.get("setting_parts") or {}
    device = r.get("device") or {}
    flags = check_gap(r.get("sums") or {}, threads=parts.get("threads"), cores=device.get("cores"), load=load)
    for mode, rows in (r.get("rows") or {}).items():
        flags += check_spread(rows, mode)
    flags += check_setting(parts, predictor, predictor_name)
    return flags


def gap_pct(sum_ms: float, full_ms: float | None) -> float | None:
    """The sum against the full model in percent (None without a full model)."""
    if not full_ms or not math.isfinite(full_ms):
        return None
    return (sum_ms - full_ms) / full_ms * 100
