"""Where a cost table's block times come from: the store, the predictor, or FLOPs.

:func:`cost_table` builds a CostTable for a BlockChain and named devices, each
with its source:

- ``measured``: the store's rows (``gapp measure``) for the device's stored
  key and setting — the setting is found from the chain (input shape,
  granularity, classes) when only one stored setting matches;
- ``predicted``: the predictor's times for the device's profile (``gapp_tui.predict``);
- ``flops``: FLOPs / a sustained rate the user gives (``--rate pi=2GFLOPs``),
  usable before anything is measured.

Nothing is typed in: every number comes from one of these. Building a table
needs the chain (torch); estimating and solving with it do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BadInput, closest
from .costs import SOURCES, CostTable, flops_times

STORE_MODES = ("in-context", "standalone")


def parse_sources(values: list[str] | None, devices: list[str], default: str = "measured") -> dict[str, str]:
    """``["flops"]`` or ``["pi=measured", "server=predicted"]`` -> a source per device."""
    out = {d: default for d in devices}
    for v in values or []:
        for part in [p for p in v.split(",") if p.strip()]:
            if "=" in part:
                dev, src = (x.strip() for x in part.split("=", 1))
                if dev not in devices:
                    raise BadInput(f"--times names device {dev!r}, which is not in --devices {','.join(devices)}")
                targets = [dev]
            else:
                src, targets = part.strip(), devices
            if src not in SOURCES:
                raise BadInput(f"time source {src!r} is not known{closest(src, SOURCES)}; give one of {', '.join(SOURCES)}")
            for d in targets:
                out[d] = src
    return out


def parse_assignments(values: list[str] | None, option: str, devices: list[str] | None = None) -> dict[str, str]:
    """``["pi=KEY", "server=KEY2"]`` (or comma-joined) -> a dict; BadInput on a missing ``=``."""
    out: dict[str, str] = {}
    for v in values or []:
        for part in [p for p in v.split(",") if p.strip()]:
            if "=" not in part:
                raise BadInput(f"{option} {part!r} is not DEVICE=VALUE (e.g. {option} pi=...)")
            dev, val = (x.strip() for x in part.split("=", 1))
            if devices is not None and dev not in devices:
                raise BadInput(f"{option} names device {dev!r}, which is not in --devices {','.join(devices)}")
            out[dev] = val
    return out


def measured_times(
    store: Any, chain: Any, device_key: str, setting: str | None = None, mode: str = "in-context"
) -> list[float]:
    """Seconds per block from the store, for this chain's model, input, granularity and classes.

    ``device_key`` may carry the setting after the first ``/``
    (``KEY/1x3x224x224/float32/t4/natural/c1000/cpu``). BadInput (one line)
    when nothing matches, the choice is ambiguous, a block is missing, or the
    stored blocks are not this chain's.
    """
    if mode not in STORE_MODES:
        raise BadInput(f"store mode {mode!r} is not a block mode; give one of {', '.join(STORE_MODES)}")
    if setting is None and "/" in device_key:
        device_key, setting = device_key.split("/", 1)
    spec = chain.spec
    keys = [d["key"] for d in store.devices()]
    if device_key not in keys:
        raise BadInput(
            f"device {device_key!r} has no measurements in {str(store.path)!r}{closest(device_key, keys)}"
            f" (stored devices: {', '.join(keys) or 'none'}); map a device to one with --device-times NAME=KEY,"
            " measure it with `gapp measure`, or use --times flops"
        )
    if setting is None:
        shape = "x".join(map(str, spec.shape))
        found = [
            s for s in store.settings(model=spec.name, device=device_key)
            if s.get("input_shape") == shape and str(s.get("granularity")) == str(chain.granularity)
            and int(s.get("num_classes") or 0) == spec.num_classes and mode in s.get("modes", {})
        ]
        if not found:
            raise BadInput(
                f"no {mode} measurements of {spec.name} {shape} ({chain.granularity} blocks) on {device_key};"
                f" run `gapp measure {spec.name}` there first, or use --times flops"
            )
        if len(found) > 1:
            raise BadInput(
                f"{spec.name} on {device_key} has {len(found)} matching settings ("
                + "; ".join(s["setting"] for s in found[:4])
                + f"); pick one with --device-times DEVICE={device_key}/SETTING"
            )
        setting = found[0]["setting"]
    rows = store.block_table(spec.name, device_key, setting, mode)
    names = [r["block_name"] for r in rows]
    if names != list(chain.names):
        raise BadInput(
            f"stored blocks of {spec.name} on {device_key} ({len(names)}) are not this chain's ({len(chain)} blocks);"
            " measure again with the same granularity and leaves"
        )
    return [float(r["median_ms"]) / 1e3 for r in rows]


def predicted_times(chain: Any, device: str, predictor: str | None = None) -> list[float]:
    """Seconds per block predicted from the chain's BlockGraphs alone (no measurement of this model).

    ``predictor`` is a predictor file (``gapp train``); default: the one the
    predictor area ships (``gapp_tui.predict.predictor.default_predictor_path()``).
    The file holds one device profile; ``device`` only names the column.
    """
    try:
        from ..predict.predictor import Predictor, default_predictor_path
    except ImportError as exc:
        raise BadInput(
            f"predicted times need the predictor (gapp_tui.predict), which cannot be imported here ({exc});"
            " use --times measured or --times flops"
        ) from None
    from ..features import extract

    loaded = predictor if isinstance(predictor, Predictor) else Predictor.load(predictor or default_predictor_path())
    ms = loaded.block_times(extract(chain, warn=False))
    return [float(t) / 1e3 for t in ms]


def cost_table(
    chain: Any,
    sources: Mapping[str, str],
    *,
    store: Any = None,
    device_keys: Mapping[str, str] | None = None,
    rates: Mapping[str, float] | None = None,
    mode: str = "in-context",
    predictor: Any = None,
    predictors: Mapping[str, Any] | None = None,
) -> CostTable:
    """A CostTable for ``chain`` with one column per device, each from its source.

    ``device_keys[device]`` is the stored device key of a ``measured`` device
    (default: the device's own name); ``rates[device]`` the FLOP rate of a
    ``flops`` device; ``predictors[device]`` (or ``predictor`` for all) the
    predictor file of a ``predicted`` device.
    """
    times: dict[str, list[float]] = {}
    for device, source in sources.items():
        if source == "measured":
            if store is None:
                raise BadInput("measured times need a store; give --db PATH or measure first")
            times[device] = measured_times(store, chain, (device_keys or {}).get(device, device), mode=mode)
        elif source == "predicted":
            times[device] = predicted_times(chain, device, (predictors or {}).get(device, predictor))
        elif source == "flops":
            if not rates or device not in rates:
                raise BadInput(f"flops times need a rate for device {device!r}; give --rate {device}=2GFLOPs")
            times[device] = flops_times([b.flops for b in chain.blocks], rates[device])
        else:
            raise BadInput(f"time source {source!r} is not known; give one of {', '.join(SOURCES)}")
    return CostTable.from_chain(chain, times, dict(sources))
