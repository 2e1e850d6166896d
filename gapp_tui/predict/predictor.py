"""A trained predictor: the GNN, what it was trained on, how well it did, and its feature schema.

File format (``torch.save`` of plain containers, so ``torch.load(weights_only=True)``
reads it and nothing in the file can execute code)::

    {"format": "gapp-predictor", "format_version": 1,
     "feature_schema_version": int, "node_columns": [...], "total_columns": [...],
     "config": {...BlockGNN kwargs, "members": k for an ensemble}, "state_dict": {...tensors},
     "device": str,                     # the device profile the times come from
     "calibration": {"a": float, "b": float, "samples": int},   # few-shot: t' = exp(b) * t**a
     "training": {...data description}, "metrics": {...}, "created": ISO time}

A file written with another feature schema version is refused (its node
columns would not mean what the extractor produces now).
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

from ..errors import BadInput
from .gnn import BlockGNN, GNNEnsemble, build_model
from .train import ItemBatcher, item_times

FORMAT = "gapp-predictor"
FORMAT_VERSION = 1
DEFAULT_PREDICTOR = Path(__file__).resolve().parents[1] / "data" / "predictor_cpu.pt"


class Predictor:
    """Block times from BlockGraphs alone (no measurement of the model needed)."""

    def __init__(self, model: BlockGNN | GNNEnsemble, device: str = "", training: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, calibration: dict[str, float] | None = None,
                 node_columns: Sequence[str] | None = None, total_columns: Sequence[str] | None = None,
                 created: str | None = None) -> None:
        from ..features import NODE_COLUMNS, TOTAL_COLUMNS

        self.model = model.eval()
        self.device = device
        self.training = dict(training or {})
        self.metrics = dict(metrics or {})
        self.calibration = dict(calibration or {"a": 1.0, "b": 0.0, "samples": 0})
        self.node_columns = list(node_columns or NODE_COLUMNS)
        self.total_columns = list(total_columns or TOTAL_COLUMNS)
        self.created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

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

    def block_times(self, graphs: Sequence[Any]) -> np.ndarray:
        """Predicted ms of each BlockGraph, calibration applied.

        Graphs extracted as float32 are read as this predictor's dtype (an
        int8 predictor predicts the blocks quantized).
        """
        self._check_columns(graphs)
        if self.dtype != "float32":
            graphs = [g.with_dtype(self.dtype) if getattr(g, "dtype", "float32") == "float32" else g for g in graphs]
        t = self.raw_times(graphs)
        a, b = self.calibration.get("a", 1.0), self.calibration.get("b", 0.0)
        return np.exp(b) * np.power(t, a)

    def predict_model(self, spec: Any, granularity: str | int = "natural", leaves: Sequence[str] = ()) -> dict[str, Any]:
        """Per-block predicted times of a model and their sum, from features alone (meta tensors)."""
        from ..blocks import BlockChain
        from ..features import extract

        chain = BlockChain.from_spec(spec, granularity, device="meta", leaves=tuple(leaves))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graphs = extract(chain, warn=True)
        unknown = sorted({u for g in graphs for u in g.unknown_ops})
        times = self.block_times(graphs)
        spec = chain.spec  # the input made explicit
        return {
            "model": spec.name, "input_shape": list(spec.shape), "granularity": chain.granularity,
            "capture": chain.capture.to_dict() if chain.capture else None,
            "device": self.device,
            "blocks": [{"index": g.block_index, "name": g.block_name, "predicted_ms": float(t),
                        "flops": float(g.totals_dict()["flops"])} for g, t in zip(graphs, times)],
            "sum_ms": float(times.sum()), "unknown_ops": unknown,
            "warnings": [str(w.message) for w in caught],
        }

    def _check_columns(self, graphs: Sequence[Any]) -> None:
        for g in graphs[:1]:
            if list(g.node_columns) != self.node_columns or list(g.total_columns) != self.total_columns:
                raise BadInput("the predictor's feature columns differ from the extractor's; retrain with `gapp train`")

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        from ..features import FEATURE_SCHEMA_VERSION

        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "node_columns": self.node_columns, "total_columns": self.total_columns,
            "config": dict(self.model.config), "state_dict": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "device": self.device, "calibration": dict(self.calibration), "training": _plain(self.training),
            "metrics": _plain(self.metrics), "created": self.created,
        }

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
        from ..features import FEATURE_SCHEMA_VERSION

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
        if doc.get("format_version") != FORMAT_VERSION:
            raise BadInput(f"predictor file {str(p)!r} has format version {doc.get('format_version')!r};"
                           f" this GAPP reads version {FORMAT_VERSION} (retrain with `gapp train`)")
        if doc.get("feature_schema_version") != FEATURE_SCHEMA_VERSION:
            raise BadInput(f"predictor file {str(p)!r} was trained on feature schema version"
                           f" {doc.get('feature_schema_version')!r} but this GAPP extracts version"
                           f" {FEATURE_SCHEMA_VERSION}; retrain it with `gapp train`")
        try:
            model = build_model(doc["config"])
            model.load_state_dict(doc["state_dict"])
        except Exception as exc:
            raise BadInput(f"predictor file {str(p)!r} does not hold a usable model ({type(exc).__name__});"
                           " retrain it with `gapp train`") from None
        return cls(model, doc.get("device", ""), doc.get("training"), doc.get("metrics"), doc.get("calibration"),
                   doc.get("node_columns"), doc.get("total_columns"), doc.get("created"))

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "created": self.created, "config": self.model.config,
                "calibration": self.calibration, "training": self.training, "metrics": self.metrics}


def _plain(obj: Any) -> Any:
    """Only str/int/float/bool/None/list/dict survive (weights_only loading accepts exactly these and tensors)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, (np.integer, int, bool)) or obj is None or isinstance(obj, str):
        return obj.item() if isinstance(obj, np.generic) else obj
    return str(obj)


def default_predictor_path() -> Path:
    return DEFAULT_PREDICTOR
