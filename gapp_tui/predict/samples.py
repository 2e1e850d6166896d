"""A device's samples of any grain: measured blocks, and whole-model latencies from a CSV.

Adapting a predictor to a device (:mod:`gapp_tui.predict.adapt`) fits items,
and an item is a list of ``(block graph, count)`` whose time is the sum of its
blocks' times -- the trainer's unit since NAS-Bench-201. Two sources give
items:

* block rows of the store (``gapp measure`` / ``gapp calibrate``): one block,
  one item (:func:`gapp_tui.predict.dataset.rows_from_store` and
  :func:`~gapp_tui.predict.dataset.assemble`);
* a **totals CSV** of whole-model latencies, which is what most published
  device benchmarks give::

      model,input_shape,latency_ms
      resnet18,1x3x224x224,263.5
      timm.models.efficientnet:efficientnet_b0,1x3x224x224,517.6

  ``model`` is a registry name or ``package.module:callable``,
  ``input_shape`` the full input shape (batch first; ``224`` alone means
  ``1x3x224x224``), ``latency_ms`` a positive number. One item per row: every
  block of the model's natural chain once.

:func:`read_totals` refuses a file with a missing column, a non-positive or
non-numeric latency, a malformed shape or a model GAPP does not know, with one
line naming the row and the value (the CLI turns that into exit code 2).
:func:`totals_dataset` traces and featurises every model on meta tensors; a
model that can be named but not captured (torch.fx cannot trace it, the
extractor fails) is *left out and listed* in ``description["left_out"]`` with
the reason, never silently dropped: which models those are is a property of
the capture code, so it comes from a run, not from a list kept by hand.
"""

from __future__ import annotations

import csv
import math
import signal
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from .. import import_paths
from ..errors import BadInput
from ..zoo import ModelSpec, family_of, is_import_path, parse_shape
from .dataset import BlockDataset, _load_cache, _save_cache, model_graphs

TOTALS_FIELDS = ("model", "input_shape", "latency_ms")


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``1x3x224x224`` (or ``224``: a square RGB image at batch 1) -> a shape tuple; BadInput otherwise."""
    shape = parse_shape(str(text))
    if len(shape) == 1:
        shape = (1, 3, shape[0], shape[0])
    return shape


def check_model_name(name: str) -> None:
    """BadInput unless ``name`` is a registry model or an import path that resolves to a callable."""
    if is_import_path(name):
        import_paths.resolve(name)
    else:
        ModelSpec(name)


def read_totals(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{"model", "input_shape": tuple, "latency_ms": float, "line": int}`` of a totals CSV.

    Every row is checked before anything is traced: a missing column, a
    latency that is not a positive number, a shape that does not parse or a
    model that is neither a registry name nor an importable callable raises
    :class:`BadInput` naming the file, the line and the value.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"totals file {str(p)!r} not found; give a CSV with columns {','.join(TOTALS_FIELDS)}")
    try:
        with open(p, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            missing = [f for f in TOTALS_FIELDS if f not in fields]
            if missing:
                raise BadInput(f"totals file {str(p)!r} has no column {', '.join(missing)}; "
                               f"give a CSV with columns {','.join(TOTALS_FIELDS)} (has: {','.join(fields) or 'none'})")
            raw = [({(k or "").strip(): (v or "").strip() for k, v in r.items()}, n) for n, r in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"totals file {str(p)!r} is not a readable CSV ({exc})") from None
    if not raw:
        raise BadInput(f"totals file {str(p)!r} has no rows; give at least one model,input_shape,latency_ms line")
    rows: list[dict[str, Any]] = []
    known: set[str] = set()
    for r, line in raw:
        where = f"{p.name} line {line}"
        try:
            ms = float(r["latency_ms"])
        except ValueError:
            raise BadInput(f"{where}: latency_ms {r['latency_ms']!r} is not a number; give milliseconds > 0") from None
        if not (math.isfinite(ms) and ms > 0):
            raise BadInput(f"{where}: latency_ms {r['latency_ms']} is not positive; give milliseconds > 0")
        try:
            shape = parse_input_shape(r["input_shape"])
        except BadInput:
            raise BadInput(f"{where}: input_shape {r['input_shape']!r} does not parse; give e.g. 1x3x224x224") from None
        if r["model"] not in known:
            try:
                check_model_name(r["model"])
            except BadInput as exc:
                raise BadInput(f"{where}: {exc}") from None
            known.add(r["model"])
        rows.append({"model": r["model"], "input_shape": shape, "latency_ms": ms, "line": line})
    return rows


def totals_dataset(rows: Sequence[dict[str, Any]], cache: str | Path | None = None,
                   progress: Callable[[str], None] | None = None,
                   description: dict[str, Any] | None = None,
                   item_timeout_s: float | None = None) -> BlockDataset:
    """One item per row: every block of the model's natural chain once, its time the row's latency.

    Models are traced on meta tensors (cached in ``cache`` by model and
    shape). A model that cannot be captured is left out and listed in
    ``description["left_out"]`` as ``{"model", "input_shape", "reason"}``.
    ``item_timeout_s`` bounds one model's capture (SIGALRM, main thread only).
    """
    cached = _load_cache(cache)
    n_cached = len(cached)
    ds = BlockDataset([], [], np.zeros(0), [], [], [], [], [], dict(description or {}))
    left_out: list[dict[str, Any]] = []
    ys: list[float] = []
    for n, r in enumerate(rows):
        shape = tuple(r["input_shape"])
        key = f"{r['model']}|{shape[0]}|{shape[-1]}|{shape}|1000"
        if progress and (n % 25 == 0 or key not in cached):
            progress(f"features {n + 1}/{len(rows)}: {r['model']} {'x'.join(map(str, shape))}")
        if key not in cached:
            try:
                with _deadline(item_timeout_s):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        cached[key] = model_graphs(r["model"], shape[0], None, shape, 1000)
            except Exception as exc:  # noqa: BLE001  any capture failure leaves the model out, with its reason
                left_out.append({"model": r["model"], "input_shape": "x".join(map(str, shape)),
                                 "reason": _reason(exc)})
                continue
        gs = cached[key][0]
        off = len(ds.graphs)
        ds.graphs.extend(gs)
        ds.items.append([(off + i, 1) for i in range(len(gs))])
        ys.append(float(r["latency_ms"]))
        ds.model.append(r["model"])
        ds.family.append(family_of(r["model"]))
        ds.batch_size.append(int(shape[0]))
        ds.input_size.append(int(shape[-1]))
        ds.block_name.append("(model)")
    if len(cached) > n_cached:
        _save_cache(cache, cached)
    ds.y = np.array(ys, dtype=float)
    ds.description["left_out"] = left_out
    return ds


def totals_features_cache() -> Path:
    """Where the features of totals models are cached (keyed by model and shape; dropped on a schema change)."""
    return Path(platformdirs.user_cache_dir("gapp")) / "totals_features.pt"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


class _Timeout(Exception):
    pass


class _deadline:
    """``with _deadline(s):`` raises _Timeout after ``s`` seconds (SIGALRM; a no-op for None or off the main thread)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.armed = False

    def __enter__(self) -> None:
        if not self.seconds or threading.current_thread() is not threading.main_thread():
            return

        def fire(*_: Any) -> None:
            raise _Timeout(f"capture took longer than {self.seconds:g} s")

        self.old = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, float(self.seconds))
        self.armed = True

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
