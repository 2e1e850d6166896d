"""The units people write and read: sizes, bandwidths, durations, FLOP rates, counts.

One parser and one formatter per quantity, used by the CLI, the TUI, plan
files and the benchmarks alike. The spelling follows ``tc`` and ``iperf``:

* a lower-case ``b`` (or ``bit``) is a **bit**, an upper-case ``B`` (or
  ``byte``) a **byte**, everywhere: ``512Mb`` is 64 MB, ``12.5MB/s`` is
  100 Mbit/s;
* ``k``, ``M``, ``G``, ``T`` are powers of 1000 (the SI prefixes may be
  written in lower case, as ``tc`` writes ``50mbit``); ``Ki``, ``Mi``, ``Gi``,
  ``Ti`` powers of 1024;
* a bandwidth needs ``/s`` (or ``ps``), except the ``tc`` spelling ``50mbit``;
* a duration needs a unit unless it is zero (``2ms``, ``500us``, ``1.5min``,
  ``5m`` is five minutes).

Every parser takes a number as already in the base unit (bytes, bytes per
second, seconds, FLOP/s) and raises :class:`~gapp_tui.errors.BadInput` with one
line naming the value and examples of what would be accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from .errors import BadInput

_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
           "ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}

BYTES_EXAMPLES = "512MB, 1GiB, 800kB, 4Gb (bits), 2e9"
BANDWIDTH_EXAMPLES = "100Mbit/s, 12.5MB/s, 1Gbps, 50mbit, 800kB/s, 1MiB/s"
TIME_EXAMPLES = "2ms, 500us, 0.1s, 0"
DURATION_EXAMPLES = "10m, 90s, 1.5h, 600"
RATE_EXAMPLES = "2GFLOP/s, 50GFLOPs, 500MFLOPS, 2e9"

_TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9,
               "min": 60.0, "h": 3600.0}


def _quantity(text: str | float, what: str, scale_of: Callable[[str, float], float | None], examples: str,
              zero_ok: bool = False) -> float:
    """A number and its unit, in the base unit: ``scale_of(unit, number)`` is the unit's size (None: not a unit).

    A number (not a string) is taken as already in the base unit. BadInput, one line, on anything else.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(_NUMBER + r"\s*([A-Za-z/µμ]*)", str(text).strip())
        if not m:
            raise BadInput(f"{what} {text!r} does not parse; give one such as {examples}")
        number, unit = float(m.group(1)), m.group(2)
        scale = scale_of(unit, number)
        if scale is None:
            raise BadInput(f"{what} {text!r}: unit {unit or '(none)'!r} is not known; give one such as {examples}")
        value = number * scale
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise BadInput(f"{what} {text!r} must be {'zero or ' if zero_ok else ''}positive, such as {examples}")
    return value


def _size_unit(unit: str) -> float | None:
    """Bytes in one size unit (``MB``, ``Mb``, ``Mbit``, ``MiB``, ``byte``...); None when it is not one."""
    low = unit.lower()
    for suffix, per in (("bits", 1 / 8), ("bit", 1 / 8), ("bytes", 1.0), ("byte", 1.0)):
        if low.endswith(suffix):
            prefix = unit[: -len(suffix)]
            break
    else:
        if unit.endswith("b"):
            per, prefix = 1 / 8, unit[:-1]
        elif unit.endswith("B"):
            per, prefix = 1.0, unit[:-1]
        else:
            return None
    scale = _PREFIX.get(prefix.lower())
    return None if scale is None else per * scale


# ----------------------------------------------------------------------------- sizes


def parse_bytes(text: str | float, what: str = "size") -> float:
    """Bytes from ``512MB``, ``1GiB``, ``4Gb`` (bits), ``800kB`` or a plain number (bytes); positive."""
    return _quantity(text, what, lambda unit, _: 1.0 if unit == "" else _size_unit(unit), BYTES_EXAMPLES)


def format_bytes(n: float) -> str:
    """``1.5 MiB``-style text (binary prefixes, as memory is usually quoted)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def format_count(n: float) -> str:
    """``1.82G``-style text for parameter and FLOP counts."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


# ----------------------------------------------------------------------------- bandwidths


def parse_bandwidth(text: str | float) -> float:
    """Bytes per second from ``100Mbit/s``, ``12.5MB/s``, ``1Gbps``, ``50mbit``, ``1MiB/s`` (a number: bytes/s)."""
    return _quantity(text, "bandwidth", lambda unit, _: _bandwidth_unit(unit), BANDWIDTH_EXAMPLES)


def _bandwidth_unit(unit: str) -> float | None:
    """Bytes per second in one bandwidth unit (None when it is not one)."""
    u = unit.strip()
    per_second = False
    for suffix in ("/s", "/sec", "ps"):
        if u.endswith(suffix):
            u, per_second = u[: -len(suffix)], True
            break
    # without "/s" only the `tc` spelling (50mbit, 1gbit) is a rate; "12MB" alone is a size
    if not u or not (per_second or u.lower().endswith(("bit", "bits"))):
        return None
    return _size_unit(u)


def format_bandwidth(bytes_per_s: float) -> str:
    """``100Mbit/s``-style text (decimal prefixes, bits), the way links are quoted."""
    bits = bytes_per_s * 8
    for unit, div in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= div:
            return f"{bits / div:.4g}{unit}"
    return f"{bits:.4g}bit/s"


# ----------------------------------------------------------------------------- durations


def parse_time(text: str | float, what: str = "latency") -> float:
    """Seconds from ``2ms``, ``500us``, ``0.1s``, ``1.5min`` or ``0`` (a number: seconds); zero or positive.

    A short time: a unit is required unless the value is zero, and ``m`` is refused
    as ambiguous (milli or minutes?). For budgets and deadlines see :func:`parse_duration`.
    """

    def scale_of(unit: str, number: float) -> float | None:
        if unit == "":
            return 1.0 if number == 0 else None
        return _TIME_UNITS.get(unit, _TIME_UNITS.get(unit.lower()))

    return _quantity(text, what, scale_of, TIME_EXAMPLES, zero_ok=True)


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Seconds from ``10m``, ``90s``, ``1.5h``, ``2min`` or a plain number of seconds; positive.

    A long time (a budget, a deadline): ``m`` means minutes here.
    """
    return _quantity(text, what, lambda unit, _: {"": 1.0, "m": 60.0}.get(unit.lower(), _TIME_UNITS.get(unit.lower())),
                     DURATION_EXAMPLES)


def format_time(seconds: float) -> str:
    """``2ms``-style text (what :func:`parse_time` reads back)."""
    if seconds == 0:
        return "0"
    for unit, div in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= div:
            return f"{seconds / div:.4g}{unit}"
    return f"{seconds / 1e-9:.4g}ns"


def format_clock(seconds: float) -> str:
    """``m:ss`` for elapsed and remaining times."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------- FLOP rates


def parse_flops_rate(text: str | float) -> float:
    """FLOPs per second from ``2GFLOP/s``, ``50 GFLOPs``, ``500MFLOPS``, ``20G`` or a plain number; positive."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(_NUMBER + r"\s*([kKmMgGtT]?)(?:flop(?:s|/s)?)?\s*", str(text).strip(), flags=re.IGNORECASE)
        if not m:
            raise BadInput(f"FLOP rate {text!r} does not parse; give one such as {RATE_EXAMPLES}")
        value = float(m.group(1)) * _PREFIX[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"FLOP rate {text!r} must be positive, such as {RATE_EXAMPLES}")
    return value


def format_flops_rate(rate: float) -> str:
    """``2GFLOP/s``-style text (what :func:`parse_flops_rate` reads back)."""
    for unit, div in (("TFLOP/s", 1e12), ("GFLOP/s", 1e9), ("MFLOP/s", 1e6), ("kFLOP/s", 1e3)):
        if rate >= div:
            return f"{rate / div:.3g}{unit}"
    return f"{rate:.3g}FLOP/s"
