"""Where the Partition section's block times come from, one device at a time.

The user writes the devices of the pipeline in order, each with its source::

    pi=2GFLOP/s, server=measured

* ``measured`` (or ``measured:<device key>``): this model's in-context block
  medians from the store (standalone when no in-context rows exist); blocks not
  measured yet are filled from FLOPs at the rate the measured blocks achieved;
  with no rows at all, the chosen predictor's times stand in (labelled so);
* ``predicted``: the chosen predictor's times;
* a FLOPs rate (``2GFLOP/s``, ``500M``): every block's FLOPs divided by it --
  what a plan can rest on before anything is measured.

This module only reads the store, the chain and the predictor and hands the
numbers to :class:`~gapp_tui.partition.costs.CostTable` (FLOPs rates and
FLOPs times through ``gapp_tui.partition.costs``); the arithmetic of a plan
lives in ``gapp_tui.partition``. Unlike ``gapp partition --times measured``
(``partition.times.measured_times``, which wants every block), a column may
be partly measured: the app shows a plan while a measurement is still running.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

from ..errors import BadInput

RATE_EXAMPLES = "2GFLOP/s, 500MFLOP/s, 20G"


def parse_rate(text: str) -> float:
    """FLOP/s from ``2GFLOP/s`` / ``500M`` / ``2e9`` (the partition area's parser; BadInput on errors)."""
    from ..partition.costs import parse_flops_rate

    return parse_flops_rate(text)


def format_rate(rate: float) -> str:
    for unit, div in (("TFLOP/s", 1e12), ("GFLOP/s", 1e9), ("MFLOP/s", 1e6), ("kFLOP/s", 1e3)):
        if rate >= div:
            return f"{rate / div:.3g}{unit}"
    return f"{rate:.3g}FLOP/s"


@dataclasses.dataclass(frozen=True)
class DeviceSource:
    """One pipeline device and where its block times come from."""

    name: str
    kind: str  # measured | predicted | flops
    ref: str | None = None  # measured: a store device key (None: the only/latest one)
    rate: float | None = None  # flops: FLOP/s

    def text(self) -> str:
        if self.kind == "flops":
            return f"{self.name}={format_rate(self.rate or 0)}"
        return f"{self.name}={self.kind}" + (f":{self.ref}" if self.ref else "")


def parse_devices(text: str) -> list[DeviceSource]:
    """``pi=2GFLOP/s, server=measured`` -> DeviceSources in pipeline order (BadInput, one line, on errors)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise BadInput("no devices given; write them in pipeline order, e.g. pi=2GFLOP/s, server=measured")
    out: list[DeviceSource] = []
    for item in items:
        name, _, src = item.partition("=")
        name, src = name.strip(), src.strip()
        if not re.fullmatch(r"[A-Za-z0-9_.#-]+", name):
            raise BadInput(f"device name {name!r} is not valid; use letters, digits, '.', '_', '-' (e.g. pi)")
        if any(d.name == name for d in out):
            raise BadInput(f"device {name!r} appears twice; a pipeline uses each device once (name copies pi, pi2)")
        low = src.lower()
        if not src or low == "measured":
            out.append(DeviceSource(name, "measured"))
        elif low.startswith("measured:"):
            out.append(DeviceSource(name, "measured", src.split(":", 1)[1].strip() or None))
        elif low == "predicted":
            out.append(DeviceSource(name, "predicted"))
        else:
            try:
                rate = parse_rate(src)
            except BadInput:
                raise BadInput(
                    f"time source {src!r} of device {name!r} is not known; give measured, measured:<device key>,"
                    f" predicted or a FLOPs rate such as {RATE_EXAMPLES}"
                ) from None
            out.append(DeviceSource(name, "flops", rate=rate))
    return out


def format_devices(sources: Sequence[DeviceSource]) -> str:
    return ", ".join(d.text() for d in sources)


@dataclasses.dataclass
class DeviceTimes:
    """One device's column of block times (seconds) and what it rests on."""

    source: DeviceSource
    times: list[float]
    kinds: list[str]  # per block: measured | predicted | flops
    note: str  # one line for the devices panel


def measured_column(store: Any, chain: Any, device_key: str | None) -> tuple[list[float], str] | None:
    """This chain's block medians (seconds, NaN where missing) on one stored device, and its key.

    Rows must come from the same block partition (chain signature) and input
    shape; in-context rows are preferred, then standalone; of several settings
    the most recently measured wins. None when nothing matches.
    """
    from ..measure.engine import chain_signature

    sig = chain_signature(chain)
    shape = "x".join(map(str, chain.spec.shape))
    for mode in ("in-context", "standalone"):
        rows = [r for r in store.rows(model=chain.spec.name, device=device_key, mode=mode)
                if r["block"] >= 0 and r.get("chain_sig") in (sig, None) and r.get("input_shape") == shape]
        if not rows:
            continue
        latest: dict[tuple[str, str], str] = {}
        for r in rows:
            k = (r["device_key"], r["setting"])
            latest[k] = max(latest.get(k, ""), r.get("measured_at") or "")
        dev, setting = max(latest, key=lambda k: latest[k])
        times = [math.nan] * len(chain.blocks)
        for r in rows:
            if (r["device_key"], r["setting"]) == (dev, setting) and r["block"] < len(times):
                times[r["block"]] = float(r["median_ms"]) / 1e3
        return times, dev
    return None


def device_times(
    source: DeviceSource,
    chain: Any,
    store: Any = None,
    predicted: Sequence[float] | None = None,
    fallback_rate: float = 20e9,
    predicting: bool = False,
) -> DeviceTimes:
    """The block times of one device (see the module docstring); BadInput when its source has nothing.

    ``predicted`` are the chosen predictor's seconds per block (None: none yet);
    ``predicting`` says they are being computed (FLOPs stand in meanwhile).
    """
    from ..partition.costs import flops_times

    flops = [max(1, b.flops) for b in chain.blocks]
    if source.kind == "flops":
        rate = source.rate or fallback_rate
        return DeviceTimes(source, flops_times(flops, rate), ["flops"] * len(flops), f"FLOPs at {format_rate(rate)}")
    if source.kind == "predicted":
        if predicted is None and predicting:
            return DeviceTimes(source, flops_times(flops, fallback_rate), ["flops"] * len(flops),
                               f"predicting…: FLOPs at {format_rate(fallback_rate)} meanwhile")
        if predicted is None:
            raise BadInput(f"device {source.name!r} wants predicted times but no predictor is chosen;"
                           " pick one in Results (3, then p) or give a FLOPs rate")
        times = [float(t) for t in predicted]
        return DeviceTimes(source, times, ["predicted"] * len(times), "predicted")
    found = measured_column(store, chain, source.ref) if store is not None else None
    if found is None and predicted is not None:
        # nothing measured yet: the chosen predictor's times stand in, and say so
        times = [float(t) for t in predicted]
        return DeviceTimes(source, times, ["predicted"] * len(times), "not measured yet: predicted")
    if found is None:
        return DeviceTimes(source, flops_times(flops, fallback_rate), ["flops"] * len(flops),
                           f"not measured yet: FLOPs at {format_rate(fallback_rate)}")
    times, key = found
    have = [i for i, t in enumerate(times) if not math.isnan(t)]
    rate = sum(flops[i] for i in have) / max(sum(times[i] for i in have), 1e-12)
    kinds = ["measured" if not math.isnan(t) else "flops" for t in times]
    estimated = flops_times(flops, rate)
    filled = [t if not math.isnan(t) else estimated[i] for i, t in enumerate(times)]
    missing = len(times) - len(have)
    note = f"measured on {key}" + (f", {missing} blocks from FLOPs at {format_rate(rate)}" if missing else "")
    return DeviceTimes(source, filled, kinds, note)


def cost_table(chain: Any, columns: Sequence[DeviceTimes]) -> Any:
    """The CostTable of ``chain`` with one column per device."""
    from ..partition.costs import CostTable

    return CostTable.from_chain(
        chain,
        {c.source.name: c.times for c in columns},
        sources={c.source.name: c.kinds for c in columns},
    )
