"""The devices of a pipeline and where each one's block times come from: the one text syntax.

The CLI (``gapp partition --devices``) and the terminal app (the Partition
section's Devices field) read the same text: devices in pipeline order,
comma-separated, each ``NAME=SOURCE``::

    pi=2GFLOP/s, server=measured
    pi=predicted:pi.pt, server=measured:vm-cpu-1a2b/1x3x224x224/float32/t2/natural/c1000/cpu
    pi=measured@executorch-int8, server=measured

Any ``measured`` or ``predicted`` source may end with ``@RUNTIME`` — what the
device's stages will run under: ``eager`` (the default), ``executorch`` or
``onnxruntime``, with ``-int8`` for int8 stages. A device's times come only from
rows measured under its runtime (and from a predictor made for it): rows of
another runtime never stand in.

Sources:

* ``measured`` — this model's stored block times (``gapp measure``); optionally
  ``measured:KEY`` (a stored device key, ``gapp results devices``) or
  ``measured:KEY/SETTING`` (one stored setting). A bare ``NAME`` means ``NAME=measured``.
* ``predicted`` — the device's own predictor when one is recorded for it
  (``gapp calibrate``), otherwise the predictor GAPP ships (made for another
  machine, and every view says so); ``predicted:PREDICTOR`` names a predictor
  file or a predictor by name.
* a FLOPs rate (``2GFLOP/s``, ``500M``, also written ``flops:2GFLOP/s``) —
  every block's FLOPs divided by it: a plan before anything is measured.

How each source becomes per-block seconds is :mod:`gapp_tui.partition.times`.
Plain Python: parsing never touches torch, the store or a predictor.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from ..errors import BadInput, closest
from ..store import SETTING_RUNTIMES
from ..units import RATE_EXAMPLES, format_flops_rate, parse_flops_rate

#: where a device's block times can come from
SOURCES = ("measured", "predicted", "flops")
SYNTAX = "NAME=measured[:KEY[/SETTING]][@RUNTIME], NAME=predicted[:PREDICTOR][@RUNTIME] or NAME=<FLOP rate>"
#: what a device's stages run under (a measured or predicted device names it after @; eager by default)
RUNTIMES = ("eager", *SETTING_RUNTIMES)
RUNTIME_CHOICES = ", ".join([*RUNTIMES, *(f"{r}-int8" for r in SETTING_RUNTIMES)])
EXAMPLE = "pi=2GFLOP/s, server=measured"
_NAME = re.compile(r"[A-Za-z0-9_.#-]+")


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    """One device of a pipeline and the source of its block times.

    ``ref``: for ``measured``, a stored device key optionally followed by
    ``/SETTING``; for ``predicted``, a predictor file or name. ``rate``: FLOP/s
    for ``flops``. None means "the default" (see the module docstring).
    """

    name: str
    source: str = "measured"
    ref: str | None = None
    rate: float | None = None
    runtime: str = "eager"  # eager | executorch | onnxruntime
    quantize: str | None = None  # "int8": int8 stages under the runtime

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name or ""):
            raise BadInput(f"device name {self.name!r} is not valid; use letters, digits, '.', '_', '-' (e.g. pi)")
        if self.source not in SOURCES:
            raise BadInput(f"time source {self.source!r} of device {self.name!r} is not known{closest(self.source, SOURCES)};"
                           f" give {SYNTAX}")
        if self.source == "flops" and (self.rate is None or not self.rate > 0):
            raise BadInput(f"device {self.name!r} has FLOPs times but no rate; give e.g. {self.name}=2GFLOP/s")
        if self.runtime not in RUNTIMES or (self.quantize not in (None, "int8")) or \
                (self.quantize and self.runtime == "eager"):
            raise BadInput(f"runtime {self.runtime_text!r} of device {self.name!r} is not known; give one of"
                           f" {RUNTIME_CHOICES}")

    @property
    def runtime_text(self) -> str:
        """``executorch-int8``-style: what the device's stages run under."""
        return self.runtime + (f"-{self.quantize}" if self.quantize else "")

    @property
    def store_key(self) -> str | None:
        """``measured``: the stored device key asked for (None: the default rule)."""
        return self.ref.split("/", 1)[0] if self.source == "measured" and self.ref else None

    @property
    def store_setting(self) -> str | None:
        """``measured``: the stored setting asked for (None: the newest that fits the chain)."""
        if self.source == "measured" and self.ref and "/" in self.ref:
            return self.ref.split("/", 1)[1]
        return None

    def text(self) -> str:
        """The item as the user writes it (``pi=2GFLOP/s``); :func:`parse_devices` reads it back."""
        if self.source == "flops":
            return f"{self.name}={format_flops_rate(self.rate or 0.0)}"
        runtime = "" if self.runtime == "eager" else f"@{self.runtime_text}"
        return f"{self.name}={self.source}" + (f":{self.ref}" if self.ref else "") + runtime

    def with_name(self, name: str) -> DeviceSpec:
        return dataclasses.replace(self, name=name)


def parse_runtime_text(text: str, device: str) -> tuple[str, str | None]:
    """``executorch-int8`` -> ``("executorch", "int8")``; BadInput naming ``device`` when it is not known."""
    runtime, _, quantize = str(text).strip().lower().partition("-")
    if runtime not in RUNTIMES or quantize not in ("", "int8") or (quantize and runtime == "eager"):
        raise BadInput(f"runtime {str(text).strip()!r} of device {device!r} is not known; give one of {RUNTIME_CHOICES}")
    return runtime, quantize or None


def parse_device(item: str) -> DeviceSpec:
    """One ``NAME=SOURCE`` item (BadInput, one line, on errors)."""
    name, _, src = item.partition("=")
    name, src = name.strip(), src.strip()
    if not _NAME.fullmatch(name):
        raise BadInput(f"device name {name!r} in {item.strip()!r} is not valid; use letters, digits, '.', '_', '-'"
                       f" and write {SYNTAX}")
    kind, _, ref = src.partition(":")
    kind_low = kind.strip().lower()
    runtime, quantize = "eager", None
    if kind_low.partition("@")[0] in ("measured", "predicted") and "@" in src:
        src_body, _, rt = src.rpartition("@")
        runtime, quantize = parse_runtime_text(rt, name)
        kind, _, ref = src_body.partition(":")
        kind_low = kind.strip().lower()
    ref = ref.strip() or None
    if not src or kind_low == "measured":
        return DeviceSpec(name, "measured", ref, runtime=runtime, quantize=quantize or None)
    if kind_low == "predicted":
        return DeviceSpec(name, "predicted", ref, runtime=runtime, quantize=quantize or None)
    rate_text = ref if kind_low == "flops" else src
    try:
        rate = parse_flops_rate(rate_text or "")
    except BadInput:
        raise BadInput(
            f"time source {src!r} of device {name!r} is not known{closest(kind_low, SOURCES)}; give {SYNTAX}"
            f" (a FLOP rate such as {RATE_EXAMPLES})"
        ) from None
    return DeviceSpec(name, "flops", rate=rate)


def parse_devices(text: str | Sequence[str]) -> list[DeviceSpec]:
    """``pi=2GFLOP/s, server=measured`` (or a list of items) -> DeviceSpecs in pipeline order."""
    raw = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    items = [t.strip() for t in raw if t.strip()]
    if not items:
        raise BadInput(f"no devices given; write them in pipeline order, e.g. {EXAMPLE}")
    out: list[DeviceSpec] = []
    for item in items:
        device = parse_device(item)
        if any(d.name == device.name for d in out):
            raise BadInput(f"device {device.name!r} appears twice; a pipeline uses each device once"
                           " (name copies pi, pi2)")
        out.append(device)
    return out


def format_devices(devices: Sequence[DeviceSpec]) -> str:
    """The text :func:`parse_devices` reads back."""
    return ", ".join(d.text() for d in devices)


def _assignments(values: Sequence[str] | None, option: str, names: Sequence[str]) -> dict[str | None, str]:
    """``["pi=X", "Y"]`` -> ``{"pi": "X", None: "Y"}`` (None: every device); BadInput on unknown names."""
    out: dict[str | None, str] = {}
    for value in values or []:
        for part in [p.strip() for p in value.split(",") if p.strip()]:
            dev, sep, val = part.partition("=")
            if not sep:
                out[None] = part
                continue
            dev = dev.strip()
            if dev not in names:
                raise BadInput(f"{option} names device {dev!r}, which is not in --devices {','.join(names)}")
            out[dev] = val.strip()
    return out


def with_options(
    devices: Sequence[DeviceSpec],
    *,
    times: Sequence[str] | None = None,
    rates: Sequence[str] | None = None,
    device_times: Sequence[str] | None = None,
    predictors: Sequence[str] | None = None,
    explicit: Mapping[str, bool] | None = None,
) -> list[DeviceSpec]:
    """The CLI's older per-device options, written into the one syntax.

    ``--times SOURCE`` or ``--times DEVICE=SOURCE``, ``--rate DEVICE=RATE``,
    ``--device-times DEVICE=KEY[/SETTING]`` and ``--predictor [DEVICE=]PATH``
    set the source of devices named bare in ``--devices``; ``explicit[name]``
    says the device already wrote its source (``pi=2GFLOP/s``), and an option
    that contradicts it is refused rather than silently winning.
    """
    names = [d.name for d in devices]
    given = {
        "--times": _assignments(times, "--times", names),
        "--rate": _assignments(rates, "--rate", names),
        "--device-times": _assignments(device_times, "--device-times", names),
        "--predictor": _assignments(predictors, "--predictor", names),
    }
    for option in ("--rate", "--device-times"):
        if None in given[option]:
            raise BadInput(f"{option} {given[option][None]!r} is not DEVICE=VALUE (e.g. {option} pi=...)")
    out: list[DeviceSpec] = []
    for d in devices:
        source = given["--times"].get(d.name, given["--times"].get(None))
        rate = given["--rate"].get(d.name)
        key = given["--device-times"].get(d.name)
        own_predictor = given["--predictor"].get(d.name)
        if source is None and rate is None and key is None and own_predictor is None:
            if d.source == "predicted" and d.ref is None and None in given["--predictor"]:
                d = dataclasses.replace(d, ref=given["--predictor"][None])
            out.append(d)
            continue
        if explicit and explicit.get(d.name):
            opt = "--times" if source is not None else "--rate" if rate else "--device-times" if key else "--predictor"
            raise BadInput(f"device {d.name!r} already has its source in --devices ({d.text()}); drop {opt} for it")
        source = (source or ("flops" if rate else "predicted" if own_predictor else "measured")).strip().lower()
        if source not in SOURCES:
            raise BadInput(f"time source {source!r} is not known{closest(source, SOURCES)}; give one of {', '.join(SOURCES)}")
        if source == "flops":
            if not rate:
                raise BadInput(f"flops times need a rate for device {d.name!r}; give --rate {d.name}=2GFLOP/s")
            out.append(DeviceSpec(d.name, "flops", rate=parse_flops_rate(rate)))
        elif source == "predicted":
            out.append(DeviceSpec(d.name, "predicted", own_predictor or given["--predictor"].get(None)))
        else:
            out.append(DeviceSpec(d.name, "measured", key))
    return out
