"""Pre-training one GNN on every device table there is: a shared encoder, one output per device.

What varies between devices is what a new device's adaptation has to learn;
a GNN trained on many devices at once learns node embeddings in which those
differences are visible, and gives every known device a head of its own --
starting points an adaptation can choose between (:mod:`.adapt`). The tables:

* ``corpus-cpu-t1`` (output 0, so that the file predicts this project's CPU
  by default): the torchvision corpus and the synthetic blocks, measured here
  at 1 thread (``gapp_tui/data``). There is no 2-thread corpus.
* ``nb201:<device>``: NAS-Bench-201's 27 device columns (whole networks, as
  sums of their blocks; ``shared/data/nb201_latency.csv``), on
  ``nb201_networks`` networks drawn at random.
* the public ARM tables (:mod:`.tables`: a Jetson Nano under ONNX Runtime,
  Raspberry Pi 4 and 5 under PyTorch and ONNX Runtime; whole models).

``hold_out`` removes tables by device name: a benchmark never pre-trains on
the device it evaluates. An item is measured on one device (NaN elsewhere),
except the NAS-Bench-201 networks (27 at once); the loss averages over an
item's labels first, so that a network does not count 27 times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput, closest
from .dataset import training_dataset
from .evaluate import metrics
from .nb201 import NB201Latency, cached_features
from .predictor import Predictor
from .samples import totals_dataset
from .tables import device_tables as arm_tables
from .train import ItemBatcher, TrainConfig, fit_gnn, item_times

BASE_DEVICE = "corpus-cpu-t1"


@dataclasses.dataclass
class DeviceTables:
    """Graphs, items and a ``[items, devices]`` label matrix (NaN where a device has no label)."""

    graphs: list[Any]
    items: list[list[tuple[int, int]]]
    y: np.ndarray
    devices: list[str]
    source: list[str]  # per item: the table it came from
    left_out: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        counts = {d: int(np.isfinite(self.y[:, j]).sum()) for j, d in enumerate(self.devices)}
        return {"devices": self.devices, "items_per_device": counts, "items": len(self.items),
                "graphs": len(self.graphs), "left_out": self.left_out}


def check_hold_out(hold_out: Sequence[str], nb201_networks: int = 0) -> None:
    """BadInput unless every name is a table (``corpus-cpu-t1``, an ARM table, ``nb201:<device>``)."""
    if nb201_networks < 0:
        raise BadInput(f"--nb201-networks {nb201_networks} is not valid; give 0 or more")
    known = set(arm_tables()) | {BASE_DEVICE}
    for h in hold_out:
        if h not in known and not h.startswith("nb201:"):
            raise BadInput(f"--hold-out {h!r} is not a device table{closest(h, sorted(known))}"
                           f" (tables: {', '.join(sorted(known))}, nb201:<device>)")


def device_tables(hold_out: Sequence[str] = (), nb201_networks: int = 2000, arm: bool = True,
                  arm_cache: str | Path | None = None, seed: int = 1234,
                  progress: Callable[[str], None] | None = None) -> DeviceTables:
    """Every table (less ``hold_out``) as one multi-device training set (see the module docstring)."""
    held = set(hold_out)
    graphs: list[Any] = []
    items: list[list[tuple[int, int]]] = []
    labels: list[dict[str, float]] = []
    source: list[str] = []

    def add(gs: Sequence[Any], its: Sequence[Sequence[tuple[int, int]]], ys: list[dict[str, float]], name: str) -> None:
        off = len(graphs)
        graphs.extend(gs)
        items.extend([[(g + off, c) for g, c in it] for it in its])
        labels.extend(ys)
        source.extend([name] * len(its))

    if BASE_DEVICE not in held:
        ds = training_dataset(progress=progress)
        add(ds.graphs, ds.items, [{BASE_DEVICE: float(v)} for v in ds.y], BASE_DEVICE)
    if nb201_networks:
        data = NB201Latency()
        devs = [d for d in data.devices if f"nb201:{d}" not in held]
        if devs:
            pick = np.random.RandomState(seed).permutation(len(data))[:nb201_networks]
            feats = cached_features([data.archs[i] for i in pick], progress=progress)
            add(feats.graphs, [feats.blocks(data.archs[i]) for i in pick],
                [{f"nb201:{d}": float(data.ms(d)[i]) for d in devs} for i in pick], "nb201")
    left_out: list[dict[str, Any]] = []
    if arm:
        for dev, rows in arm_tables().items():
            if dev in held:
                continue
            ds = totals_dataset(rows, cache=arm_cache, progress=progress)
            left_out += [{**r, "device": dev} for r in ds.description["left_out"]]
            add(ds.graphs, ds.items, [{dev: float(v)} for v in ds.y], dev)
    devices = list(dict.fromkeys(k for lab in labels for k in lab))
    if BASE_DEVICE in devices:  # output 0 is this project's CPU, so the file predicts it by default
        devices.remove(BASE_DEVICE)
        devices.insert(0, BASE_DEVICE)
    y = np.full((len(items), len(devices)), np.nan)
    col = {d: j for j, d in enumerate(devices)}
    for i, lab in enumerate(labels):
        for d, v in lab.items():
            y[i, col[d]] = v
    return DeviceTables(graphs, items, y, devices, source, left_out)


def pretrain(tables: DeviceTables, config: Any = None, val: float = 0.1, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> Any:
    """A :class:`~gapp_tui.predict.predictor.Predictor` with one output per device of ``tables``."""
    cfg = config or TrainConfig()
    perm = np.random.RandomState(seed).permutation(len(tables.items))
    n_val = int(round(val * len(perm)))
    va, tr = sorted(perm[:n_val].tolist()), sorted(perm[n_val:].tolist())
    model, hist = fit_gnn(tables.graphs, tables.items, tables.y, tr, va or None, cfg, progress=progress)
    scores: dict[str, Any] = {}
    if va:
        p = item_times(model, ItemBatcher(tables.graphs, tables.items), va).double().numpy()
        for j, d in enumerate(tables.devices):
            ok = np.isfinite(tables.y[va, j])
            if ok.sum() > 2:
                scores[d] = metrics(p[ok, j], tables.y[va, j][ok])
    return Predictor(model, tables.devices[0], training={**tables.describe(), "config": cfg.to_dict(),
                     "outputs": tables.devices, "history": {"best_step": hist["best_step"], "seconds": hist["seconds"]}},
                     metrics={"validation": scores})
