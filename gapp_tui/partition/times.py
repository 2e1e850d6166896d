"""The one block-times service: per-block seconds of a chain on every device of a pipeline.

``gapp partition`` and the terminal app's Partition section both call
:func:`cost_table` with the devices of :mod:`.devices`, so the same store,
model and devices give the same numbers everywhere. One rule per source:

``measured``
    The store's rows of this model whose chain signature (block partition,
    cut shapes) is this chain's. The device key is the one asked for
    (``measured:KEY``); else the device's own name when that is a stored
    key; else the only stored device that measured this chain (several: an
    error listing them). Of its settings, the one asked for
    (``measured:KEY/SETTING``), else the newest. Only rows measured under
    the device's runtime count (``@executorch``, ``@onnxruntime-int8``; eager
    by default): another runtime's rows never stand in. In-context rows are
    used, standalone ones when there are none (``mode`` overrides). A block
    not measured yet is filled from its FLOPs at the rate the measured blocks
    achieved, and marked ``flops`` (a plan can be shown while a measurement
    runs). Nothing measured at all is an error naming what would work.
``predicted``
    The chain's features through the predictor the device names, else the
    device's own predictor (``gapp calibrate``), else the one GAPP ships;
    the note names the machine the predictor was made for, so another
    machine's times are never presented as this device's. Which predictor,
    and running it, is the caller's ``predict`` (the predictor area's
    :func:`gapp_tui.predict.registry.service`): this module stays free of torch.
``flops``
    Each block's FLOPs divided by the device's rate.

Every column comes with a one-line note saying what it rests on. A device
whose runtime is int8 (``@executorch-int8``) sends int8 at its outgoing cut:
the table's ``send_dtype`` says so, and the estimate and the solver count a
quarter of the float32 bytes there. Building a
table needs the chain (and torch, for a predicted device); estimating and
solving with it do not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import BadInput, closest
from ..store import parse_setting
from ..units import format_flops_rate
from . import ranges
from .costs import CostTable, flops_times
from .devices import DeviceSpec

#: which stored block times a measured device uses
MODES = ("auto", "in-context", "standalone")

#: (chain, device) -> (seconds per block, what the predictor was made for[, Bounds, (low, high, level) or None])
Predict = Callable[[Any, DeviceSpec], tuple[Any, ...]]


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A predicted column's calibrated interval: per-block low and high seconds at ``level`` (0.9: 90 %)."""

    low: list[float]
    high: list[float]
    level: float


@dataclasses.dataclass(frozen=True)
class DeviceTimes:
    """One device's column: seconds per block, the source of each, and a note on what they rest on."""

    device: DeviceSpec
    times: list[float]
    kinds: list[str]  # per block: measured | predicted | flops
    note: str
    store_key: str | None = None  # measured: the stored device key used
    setting: str | None = None  # measured: the stored setting used
    bounds: Bounds | None = None  # predicted with a calibrated interval: each block's low and high seconds

    @property
    def total(self) -> float:
        return math.fsum(self.times)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.device.text(), "source": self.device.source, "note": self.note,
                "store_key": self.store_key, "setting": self.setting, "total_s": self.total,
                "blocks_s": list(self.times), "kinds": list(self.kinds)} | (
            {"interval": {"level": self.bounds.level, "blocks_low_s": list(self.bounds.low),
                          "blocks_high_s": list(self.bounds.high)}} if self.bounds is not None else {})


def chain_rows(store: Any, chain: Any, mode: str = "auto", device_key: str | None = None,
               runtime: str | None = None) -> list[dict[str, Any]]:
    """The stored block rows of ``chain`` (same model, same block partition), in-context before standalone.

    ``mode="auto"`` gives the in-context rows when there are any, else the standalone ones;
    ``runtime`` (``executorch``, ``onnxruntime-int8``...) keeps only the rows measured under it.
    """
    if mode not in MODES:
        raise BadInput(f"store mode {mode!r} is not known; give one of {', '.join(MODES)}")
    sig = chain.signature()
    for m in (("in-context", "standalone") if mode == "auto" else (mode,)):
        rows = [r for r in store.rows(model=chain.spec.name, device=device_key, mode=m)
                if r["block"] >= 0 and r.get("chain_sig") in (sig, None)
                and r.get("input_shape") == chain.spec.shape_text
                and (runtime is None or row_runtime(r) == runtime)]
        if rows:
            return rows
    return []


def row_runtime(row: dict[str, Any]) -> str:
    """What a stored row was measured under: ``eager``, ``executorch``, ``onnxruntime-int8``..."""
    parts = parse_setting(row["setting"])
    return parts["runtime"] + ("-int8" if parts["dtype"] == "int8" else "")


def measured_times(chain: Any, device: DeviceSpec, store: Any, mode: str = "auto") -> DeviceTimes:
    """The ``measured`` rule (see the module docstring); BadInput when nothing is stored for this chain."""
    if store is None:
        raise BadInput(f"device {device.name!r} wants measured times but there is no store; measure first"
                       f" (`gapp measure {chain.spec.name}`) or give --db PATH")
    keys = {d["key"] for d in store.devices()}
    key = device.store_key
    if key is not None and key not in keys:
        raise BadInput(f"device key {key!r} of {device.name!r} has no measurements in {str(store.path)!r}"
                       f"{closest(key, keys)} (stored: {', '.join(sorted(keys)) or 'none'}); see `gapp results devices`")
    if key is None and device.name in keys:
        key = device.name
    rows = chain_rows(store, chain, mode, key, device.runtime_text)
    if device.store_setting is not None:
        rows = [r for r in rows if r["setting"] == device.store_setting]
    if not rows:
        shape = chain.spec.shape_text
        where = f" on {key}" + (f" with setting {device.store_setting}" if device.store_setting else "") if key else ""
        if device.runtime != "eager":
            where += f" under {device.runtime_text}"
        raise BadInput(
            f"device {device.name!r}: no measurements of {chain.spec.name} {shape} ({chain.granularity} blocks){where};"
            f" measure it (`gapp measure {chain.spec.name}`, or m in the app), or write {device.name}=predicted"
            f" or {device.name}=2GFLOP/s"
        )
    found_keys = sorted({r["device_key"] for r in rows})
    if len(found_keys) > 1:
        raise BadInput(f"device {device.name!r}: {len(found_keys)} stored devices measured {chain.spec.name}"
                       f" ({', '.join(found_keys)}); pick one with {device.name}=measured:KEY")
    newest: dict[tuple[str, str], str] = {}
    for r in rows:
        k = (r["device_key"], r["setting"])
        newest[k] = max(newest.get(k, ""), r.get("measured_at") or "")
    store_key, setting = max(newest, key=lambda k: (newest[k], k))
    flops = [max(1, b.flops) for b in chain.blocks]
    times = [math.nan] * len(chain.blocks)
    for r in rows:
        if (r["device_key"], r["setting"]) == (store_key, setting) and r["block"] < len(times):
            times[r["block"]] = float(r["median_ms"]) / 1e3
    have = [i for i, t in enumerate(times) if not math.isnan(t)]
    rate = sum(flops[i] for i in have) / max(sum(times[i] for i in have), 1e-12)
    estimated = flops_times(flops, rate)
    kinds = ["measured" if not math.isnan(t) else "flops" for t in times]
    filled = [t if not math.isnan(t) else estimated[i] for i, t in enumerate(times)]
    missing = len(times) - len(have)
    mode_used = rows[0]["mode"]
    note = f"measured on {store_key} ({mode_used}, {setting})"
    others = len(newest) - 1
    if others:
        note += f"; {others} other stored setting{'s' if others > 1 else ''}: pick one with measured:KEY/SETTING"
    if missing:
        note += f"; {missing} of {len(times)} blocks from FLOPs at {format_flops_rate(rate)}"
    return DeviceTimes(device, filled, kinds, note, store_key, setting)


def predicted_times(chain: Any, device: DeviceSpec, predict: Predict | None) -> DeviceTimes:
    """The ``predicted`` rule (see the module docstring)."""
    if predict is None:
        raise ValueError(f"device {device.name!r} is predicted but no predict service was given")
    got = predict(chain, device)
    times, note = got[0], got[1]
    bounds = got[2] if len(got) > 2 else None
    if bounds is not None and not isinstance(bounds, Bounds):
        low, high, level = bounds
        bounds = Bounds([float(v) for v in low], [float(v) for v in high], float(level))
    if bounds is not None and not (len(bounds.low) == len(bounds.high) == len(chain.blocks)):
        raise BadInput(f"device {device.name!r}: the predictor's interval has {len(bounds.low)} blocks, the chain"
                       f" {len(chain.blocks)}")
    if len(times) != len(chain.blocks):
        raise BadInput(f"device {device.name!r}: the predictor gave {len(times)} times for {len(chain.blocks)} blocks")
    return DeviceTimes(device, [float(t) for t in times], ["predicted"] * len(times), note, bounds=bounds)


def device_times(chain: Any, device: DeviceSpec, *, store: Any = None, mode: str = "auto",
                 predict: Predict | None = None) -> DeviceTimes:
    """One device's column of block times by its source's rule (BadInput, one line, when it has none)."""
    if device.source == "measured":
        return measured_times(chain, device, store, mode)
    if device.source == "predicted":
        return predicted_times(chain, device, predict)
    rate = float(device.rate or 0.0)
    times = flops_times([max(1, b.flops) for b in chain.blocks], rate)
    return DeviceTimes(device, times, ["flops"] * len(times), f"FLOPs at {format_flops_rate(rate)}")


def cost_table(chain: Any, devices: Sequence[DeviceSpec], *, store: Any = None, mode: str = "auto",
               predict: Predict | None = None) -> tuple[CostTable, list[DeviceTimes]]:
    """The CostTable of ``chain`` with one column per device, and each column's :class:`DeviceTimes`."""
    columns = [device_times(chain, d, store=store, mode=mode, predict=predict) for d in devices]
    # an int8 device (pi=measured@executorch-int8) sends its cut as int8, as its exported stage will
    table = CostTable.from_chain(chain, {c.device.name: c.times for c in columns},
                                 sources={c.device.name: c.kinds for c in columns},
                                 send_dtype={d.name: "int8" for d in devices if d.quantize == "int8"})
    return table, columns


def plan_range(table: CostTable, plan: Any, columns: Sequence[DeviceTimes], *, items: int = 1000,
               memory: Any = None) -> dict[str, Any] | None:
    """The plan's estimate with every predicted block at its interval's low and high end
    (:func:`gapp_tui.partition.ranges.plan_range`); None when no column of the plan has an interval."""
    with_bounds = [c for c in columns if c.bounds is not None and c.device.name in plan.devices]
    if not with_bounds:
        return None
    got = ranges.plan_range(table, plan, {c.device.name: c.bounds.low for c in with_bounds},
                            {c.device.name: c.bounds.high for c in with_bounds}, items=items, memory=memory)
    got["level"] = min(c.bounds.level for c in with_bounds)
    got["devices"] = [c.device.name for c in with_bounds]
    return got
