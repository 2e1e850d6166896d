"""Public whole-model latency tables of ARM boards (``shared/data/arm``), as totals rows per device.

Nothing here was measured by this project (see ``shared/data/arm/README.md``):

* ``jetson_nano_ort_timm.csv`` -- 719 timm models and input sizes on a Jetson
  Nano's CPU (4x Cortex-A57) under ONNX Runtime. Several rows are the same
  architecture at the same size with other trained weights: the same graph,
  so they are one sample here, their latency the geometric mean of the rows
  (their spread, 1-2 %, is the table's noise; keeping them apart would let an
  adaptation "predict" a model from its own duplicate).
* ``raspberry_pi_pytorch_timm.csv`` -- 13 models on a Raspberry Pi 4 (4x
  Cortex-A72) and 5 (4x Cortex-A76), under PyTorch eager and ONNX Runtime,
  224 px, batch 1.

:func:`device_tables` gives ``{device: [totals row, ...]}`` with rows in the
form :func:`gapp_tui.predict.samples.read_totals` returns, so the same
featurisation serves a user's CSV and these tables.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import BadInput

ARM_DIR_CANDIDATES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "arm",
    Path(__file__).resolve().parents[3] / "shared" / "data" / "arm",
    Path("/work/shared/data/arm"),
)
JETSON = "jetson_nano_ort"
#: the Pi devices, as ``raspberry_pi_<n>_<runtime>``
PI_RUNTIMES = {"pytorch_eager": "eager", "onnxruntime": "ort"}


def arm_dir(path: str | Path | None = None) -> Path:
    for p in ([Path(path)] if path else list(ARM_DIR_CANDIDATES)):
        if (p / "jetson_nano_ort_timm.csv").is_file():
            return p
    raise BadInput(f"the public ARM tables were not found (looked in {', '.join(str(p) for p in ARM_DIR_CANDIDATES)});"
                   " give their directory")


def import_path(timm_module: str, arch: str) -> str:
    """The model name GAPP builds a table row with (``torchvision`` rows are registry names)."""
    return arch if timm_module == "torchvision" else f"timm.models.{timm_module}:{arch}"


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def device_tables(path: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{device: [{"model", "input_shape", "latency_ms", "duplicates", "model_type"}, ...]}`` for every device."""
    d = arm_dir(path)
    out: dict[str, list[dict[str, Any]]] = {}
    groups: dict[tuple[str, int], list[dict[str, str]]] = defaultdict(list)
    for r in _read(d / "jetson_nano_ort_timm.csv"):
        groups[(import_path(r["timm_module"], r["timm_arch"]), int(r["input_size"]))].append(r)
    out[JETSON] = [{"model": m, "input_shape": (1, 3, s, s),
                    "latency_ms": math.exp(sum(math.log(float(r["latency_ms"])) for r in rs) / len(rs)),
                    "duplicates": len(rs), "model_type": rs[0].get("model_type") or ""}
                   for (m, s), rs in sorted(groups.items())]
    for r in _read(d / "raspberry_pi_pytorch_timm.csv"):
        dev = f"{r['device']}_{PI_RUNTIMES.get(r['runtime'], r['runtime'])}"
        s = int(r["input_size"])
        out.setdefault(dev, []).append({"model": import_path(r["timm_module"], r["timm_arch"]),
                                        "input_shape": (int(r["batch_size"]), 3, s, s),
                                        "latency_ms": float(r["latency_ms"]), "duplicates": 1, "model_type": ""})
    return out
