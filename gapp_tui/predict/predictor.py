"""A trained predictor: the GNN, what it was trained on, how well it did, and its feature schema.

File format (``torch.save`` of plain containers, so ``torch.load(weights_only=True)``
reads it and nothing in the file can execute code)::

    {"format": "gapp-predictor", "format_version": 1,
     "feature_schema_version": int, "node_columns": [...], "total_columns": [...],
     "config": {...BlockGNN kwargs, "members": k for an ensemble}, "state_dict": {...tensors},
     "device": str,                     # the device profile the times come from
     "calibration": {"a": float, "b": float, "samples": int},   # few-shot: t' = exp(b) * t**a
     "training": {...data description}, "metrics": {...}, "created": ISO time,
     # optional (format version 2 when "adaptation" is present):
     "adaptation": {...},               # gapp_tui.predict.adapt.Adaptation: per-member relative-cost corrections
     "interval": {...},                 # gapp_tui.predict.interval.IntervalModel (calibrated interval)
     "made_for": {"device_key", "label", "runtime", "description": {...}}}   # the machine its times are for

A file written with another feature schema version is refused (its node
columns would not mean what the extractor produces now). A file with an
adaptation is written as format version 2, so that a GAPP that cannot apply
the adaptation refuses it instead of predicting the base machine's times.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..blocks import BlockChain
from ..errors import BadInput
from ..features import FEATURE_SCHEMA_VERSION, NODE_COLUMNS, TOTAL_COLUMNS, extract
from .adapt import Adaptation, adapted_member_times, members_of
from .device_predictors import SHIPPED, shipped_machine
from .gnn import BlockGNN, GNNEnsemble, build_model
from .interval import IntervalModel, spread
from .train import ItemBatcher, item_times

FORMAT = "gapp-predictor"
FORMAT_VERSION = 1
#: the version written when the file holds an adaptation (both are read)
FORMAT_VERSION_ADAPTED = 2
DEFAULT_PREDICTOR = SHIPPED


class Predictor:
    """Block times from BlockGraphs alone (no measurement of the model needed)."""

    def __init__(self, model: BlockGNN | GNNEnsemble, device: str = "", training: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, calibration: dict[str, float] | None = None,
                 node_columns: Sequence[str] | None = None, total_columns: Sequence[str] | None = None,
                 created: str | None = None, adaptation: Any = None, interval: Any = None,
                 made_for: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.device = device
        self.training = dict(training or {})
        self.metrics = dict(metrics or {})
        self.calibration = dict(calibration or {"a": 1.0, "b": 0.0, "samples": 0})
        self.node_columns = list(node_columns or NODE_COLUMNS)
        self.total_columns = list(total_columns or TOTAL_COLUMNS)
        self.created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.adaptation = adaptation  # gapp_tui.predict.adapt.Adaptation or None
        self._interval = interval  # gapp_tui.predict.interval.IntervalModel or None (an adaptation carries its own)
        self.made_for = dict(made_for or {})

    @property
    def interval(self) -> Any:
        """The calibrated interval model (the adaptation's when adapted), or None."""
        if self.adaptation is not None and self.adaptation.interval is not None:
            return self.adaptation.interval
        return self._interval

    @property
    def machine(self) -> str:
        """The machine this predictor's times are for, in words (what the CLI and the TUI show beside them)."""
        if not self.made_for and self.device == "corpus-cpu-t1":
            return shipped_machine()
        return str(self.made_for.get("label") or self.made_for.get("device_key") or self.device or "unknown machine")

    # ------------------------------------------------------------------ predicting

    def raw_times(self, graphs: Sequence[Any]) -> np.ndarray:
        """Uncalibrated ms of each graph (first output)."""
        if not graphs:
            return np.zeros(0)
        b = ItemBatcher(graphs, [[(i, 1)] for i in range(len(graphs))])
        return item_times(self.model, b, list(range(len(graphs))))[:, 0].double().numpy()

    @property
    def dtype(self) -> str:
        """What the blocks it was trained on computed in: ``int8`` for a predictor of quantized blocks."""
        return "int8" if self.training.get("quantize") == "int8" else "float32"

    def _own_dtype(self, graphs: Sequence[Any]) -> list[Any]:
        """Graphs extracted as float32 read as this predictor's dtype (an int8 predictor predicts them quantized)."""
        if self.dtype == "float32":
            return list(graphs)
        return [g.with_dtype(self.dtype) if getattr(g, "dtype", "float32") == "float32" else g for g in graphs]

    def member_times(self, graphs: Sequence[Any]) -> np.ndarray:
        """``[members, graphs]`` ms: every ensemble member's prediction (one row for a single GNN)."""
        self._check_columns(graphs)
        graphs = self._own_dtype(graphs)
        if not graphs:
            return np.zeros((len(getattr(self.model, "members", [self.model])), 0))
        if self.adaptation is not None:
            return adapted_member_times(self.model, self.adaptation, graphs)
        b = ItemBatcher(graphs, [[(i, 1)] for i in range(len(graphs))])
        idx = list(range(len(graphs)))
        t = np.stack([item_times(m, b, idx)[:, 0].double().numpy() for m in members_of(self.model)])
        a, c = self.calibration.get("a", 1.0), self.calibration.get("b", 0.0)
        return np.exp(c) * np.power(t, a)

    def block_times(self, graphs: Sequence[Any]) -> np.ndarray:
        """Predicted ms of each BlockGraph, calibration or adaptation applied (float32 graphs read as its dtype)."""
        self._check_columns(graphs)
        graphs = self._own_dtype(graphs)
        if self.adaptation is not None:
            return np.exp(np.log(self.member_times(graphs)).mean(0))
        t = self.raw_times(graphs)
        a, b = self.calibration.get("a", 1.0), self.calibration.get("b", 0.0)
        return np.exp(b) * np.power(t, a)

    def block_intervals(self, graphs: Sequence[Any]) -> dict[str, Any] | None:
        """Per block and for their sum: prediction and the calibrated interval, or None without an interval model.

        ``{"level", "grain", "ms": [G], "low": [G], "high": [G], "sum_ms", "sum_low", "sum_high"}``. The
        sum's interval comes from the spread of the members' sums with the same calibration (a calibration on
        blocks assumes the blocks' errors add up like the members' do).
        """
        iv = self.interval
        if iv is None or not graphs:
            return None

        mt = self.member_times(graphs)
        lt = np.log(np.maximum(mt, 1e-12))
        mu, sigma = spread(lt)
        lo, hi = iv.bounds(mu, sigma)
        sums = mt.sum(1)
        _, ssig = spread(np.log(np.maximum(sums, 1e-12))[:, None])
        total = float(np.exp(mu).sum())
        slo, shi = iv.bounds(np.array([np.log(total)]), ssig)
        return {"level": iv.level, "grain": iv.grain, "ms": np.exp(mu), "low": lo, "high": hi,
                "sum_ms": total, "sum_low": float(slo[0]), "sum_high": float(shi[0])}

    def predict_model(self, spec: Any, granularity: str | int = "natural", leaves: Sequence[str] = ()) -> dict[str, Any]:
        """Per-block predicted times of a model and their sum, from features alone (meta tensors)."""
        chain = BlockChain.from_spec(spec, granularity, device="meta", leaves=tuple(leaves))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graphs = extract(chain, warn=True)
        unknown = sorted({u for g in graphs for u in g.unknown_ops})
        times = self.block_times(graphs)
        spec = chain.spec  # the input made explicit
        doc = {
            "model": spec.name, "input_shape": list(spec.shape), **spec.inputs_doc(), "granularity": chain.granularity,
            "capture": chain.capture.to_dict() if chain.capture else None,
            "device": self.device, "made_for": self.machine,
            "blocks": [{"index": g.block_index, "name": g.block_name, "predicted_ms": float(t),
                        "flops": float(g.totals_dict()["flops"])} for g, t in zip(graphs, times)],
            "sum_ms": float(times.sum()), "unknown_ops": unknown,
            "warnings": [str(w.message) for w in caught],
        }
        iv = self.block_intervals(graphs)
        if iv is not None:
            for b, lo, hi in zip(doc["blocks"], iv["low"], iv["high"]):
                b["low_ms"], b["high_ms"] = float(lo), float(hi)
            doc["sum_low_ms"], doc["sum_high_ms"] = iv["sum_low"], iv["sum_high"]
            doc["interval"] = {"level": iv["level"], "calibrated_on": self.interval.samples,
                               "grain": iv["grain"]}
        else:
            doc["interval"] = None
        return doc

    def _check_columns(self, graphs: Sequence[Any]) -> None:
        for g in graphs[:1]:
            if list(g.node_columns) != self.node_columns or list(g.total_columns) != self.total_columns:
                raise BadInput("the predictor's feature columns differ from the extractor's; retrain with `gapp train`")

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "format": FORMAT, "format_version": FORMAT_VERSION if self.adaptation is None else FORMAT_VERSION_ADAPTED,
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "node_columns": self.node_columns, "total_columns": self.total_columns,
            "config": dict(self.model.config), "state_dict": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "device": self.device, "calibration": dict(self.calibration), "training": _plain(self.training),
            "metrics": _plain(self.metrics), "created": self.created,
        }
        if self.adaptation is not None:
            doc["adaptation"] = _plain(self.adaptation.to_dict())
        if self._interval is not None:
            doc["interval"] = _plain(self._interval.to_dict())
        if self.made_for:
            doc["made_for"] = _plain(self.made_for)
        return doc

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.to_dict(), p)
        except OSError as exc:
            raise BadInput(f"cannot write the predictor to {str(p)!r} ({exc.strerror}); give a writable path") from None
        return p

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Read a predictor file (``weights_only=True``); BadInput with one line on anything wrong."""
        p = Path(path)
        if not p.is_file():
            raise BadInput(f"predictor file {str(p)!r} not found; train one with `gapp train --out {p}`")
        try:
            doc = torch.load(p, weights_only=True, map_location="cpu")
        except Exception as exc:
            why = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"predictor file {str(p)!r} is corrupt or not a GAPP predictor ({why});"
                           " retrain it with `gapp train`") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BadInput(f"{str(p)!r} is not a GAPP predictor file; train one with `gapp train`")
        if doc.get("format_version") not in (FORMAT_VERSION, FORMAT_VERSION_ADAPTED):
            raise BadInput(f"predictor file {str(p)!r} has format version {doc.get('format_version')!r};"
                           f" this GAPP reads versions {FORMAT_VERSION} and {FORMAT_VERSION_ADAPTED}"
                           " (retrain with `gapp train`)")
        if doc.get("feature_schema_version") != FEATURE_SCHEMA_VERSION:
            raise BadInput(f"predictor file {str(p)!r} was trained on feature schema version"
                           f" {doc.get('feature_schema_version')!r} but this GAPP extracts version"
                           f" {FEATURE_SCHEMA_VERSION}; retrain it with `gapp train`")
        try:
            model = build_model(doc["config"])
            model.load_state_dict(doc["state_dict"])

            adaptation = Adaptation.from_dict(doc["adaptation"]) if doc.get("adaptation") else None
            interval = IntervalModel.from_dict(doc["interval"]) if doc.get("interval") else None
        except Exception as exc:
            raise BadInput(f"predictor file {str(p)!r} does not hold a usable model ({type(exc).__name__});"
                           " retrain it with `gapp train`") from None
        return cls(model, doc.get("device", ""), doc.get("training"), doc.get("metrics"), doc.get("calibration"),
                   doc.get("node_columns"), doc.get("total_columns"), doc.get("created"), adaptation, interval,
                   doc.get("made_for"))

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "made_for": self.machine, "created": self.created, "config": self.model.config,
                "calibration": self.calibration, "training": self.training, "metrics": self.metrics,
                "adaptation": self.adaptation.to_dict() if self.adaptation is not None else None,
                "interval": self.interval.to_dict() if self.interval is not None else None}


def _plain(obj: Any) -> Any:
    """Only str/int/float/bool/None/list/dict survive (weights_only loading accepts exactly these and tensors)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, str):
        return str(obj)  # a str subclass (torch's TorchVersion) is not a plain str to weights_only loading
    if isinstance(obj, (np.integer, int, bool)) or obj is None:
        return obj.item() if isinstance(obj, np.generic) else obj
    return str(obj)


def default_predictor_path() -> Path:
    return DEFAULT_PREDICTOR
