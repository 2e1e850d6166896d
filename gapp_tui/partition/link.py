"""The link between two neighbouring devices of a pipeline, and the units people write.

A transfer of one cut over a link takes

    latency + bytes / bandwidth + tensors * per_tensor

seconds: a fixed cost per message (``latency``), the serialisation of the
payload (``bandwidth`` in bytes per second), and a fixed cost per tensor (the
header, the framing and the extra send/recv each tensor of a multi-tensor cut
costs). Directions are independent (full duplex): the return link of a plan
whose output goes back to the first device is a link of its own.

``cpu_per_byte`` is the sending device's CPU time per byte sent (copies,
system calls, the TCP stack). With overlapped communication the wire time
hides behind compute but this CPU time does not: the estimate adds it to the
sending stage's busy time.

Plain Python, no torch: the TUI re-estimates on every keystroke.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from ..errors import BadInput

_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"

#: decimal and binary prefixes (case-insensitive for the SI ones, as `tc` writes `50mbit`)
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}

BANDWIDTH_EXAMPLES = "100Mbit/s, 12.5MB/s, 1Gbps, 50mbit, 800kB/s, 1MiB/s"
TIME_EXAMPLES = "2ms, 500us, 0.1s, 0"
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9, "min": 60.0}


def parse_bandwidth(text: str | float | int) -> float:
    """Bytes per second from ``100Mbit/s``, ``12.5MB/s``, ``1Gbps``, ``50mbit``, ``1MiB/s``.

    Lower-case ``b`` or ``bit`` means bits, upper-case ``B`` or ``byte`` bytes;
    ``k``/``M``/``G`` are powers of 1000, ``Ki``/``Mi``/``Gi`` powers of 1024.
    A number (not a string) is taken as bytes per second. Zero, negative,
    non-finite or unparsable values raise :class:`BadInput` (one line).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        unit_text = f"{text!r} bytes/s"
    else:
        raw = str(text).strip()
        m = re.fullmatch(_NUMBER + r"\s*([A-Za-z/]*)", raw)
        if not m:
            raise BadInput(f"bandwidth {text!r} does not parse; give a number and a unit such as {BANDWIDTH_EXAMPLES}")
        number, unit = float(m.group(1)), m.group(2)
        scale = _bandwidth_unit(unit)
        if scale is None:
            raise BadInput(
                f"bandwidth {text!r}: unit {unit or '(none)'!r} is not known; give one such as {BANDWIDTH_EXAMPLES}"
            )
        value = number * scale
        unit_text = repr(text)
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"bandwidth {unit_text} must be positive and finite, such as {BANDWIDTH_EXAMPLES}")
    return value


def _bandwidth_unit(unit: str) -> float | None:
    """Bytes per second in one ``unit`` (None when it is not a bandwidth unit)."""
    u = unit.strip()
    per_second = False
    for suffix in ("/s", "/sec", "ps"):
        if u.endswith(suffix):
            u, per_second = u[: -len(suffix)], True
            break
    # without "/s" only the `tc` spelling (50mbit, 1gbit) is a rate; "12MB" alone is a size
    if not u or not (per_second or u.lower().endswith(("bit", "bits"))):
        return None
    if u.lower().endswith("bit") or u.lower().endswith("bits"):
        per, prefix = 1 / 8, u[: -4] if u.lower().endswith("bits") else u[:-3]
    elif u.lower().endswith("bytes") or u.lower().endswith("byte"):
        per, prefix = 1.0, u[: -5] if u.lower().endswith("bytes") else u[:-4]
    elif u.endswith("b"):
        per, prefix = 1 / 8, u[:-1]
    elif u.endswith("B"):
        per, prefix = 1.0, u[:-1]
    else:
        return None
    p = prefix.lower()
    if p not in _PREFIX:
        return None
    return per * _PREFIX[p]


def parse_time(text: str | float | int, what: str = "latency") -> float:
    """Seconds from ``2ms``, ``500us``, ``0.1s``, ``1e-3 s`` or ``0``; a number is seconds.

    Negative, non-finite or unparsable values raise :class:`BadInput` (one line).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip()
        m = re.fullmatch(_NUMBER + r"\s*([A-Za-zµμ]*)", raw)
        if not m:
            raise BadInput(f"{what} {text!r} does not parse; give a number and a unit such as {TIME_EXAMPLES}")
        number, unit = float(m.group(1)), m.group(2)
        if unit == "":
            if number != 0:
                raise BadInput(f"{what} {text!r} has no unit; give one such as {TIME_EXAMPLES}")
            scale = 1.0
        elif unit in _TIME_UNITS or unit.lower() in _TIME_UNITS:
            scale = _TIME_UNITS.get(unit, _TIME_UNITS.get(unit.lower(), 1.0))
        else:
            raise BadInput(f"{what} {text!r}: unit {unit!r} is not known; give one such as {TIME_EXAMPLES}")
        value = number * scale
    if not math.isfinite(value) or value < 0:
        raise BadInput(f"{what} {text!r} must be zero or positive, such as {TIME_EXAMPLES}")
    return value


def format_bandwidth(bytes_per_s: float) -> str:
    """``100Mbit/s``-style text (decimal prefixes, bits), the way links are usually quoted."""
    bits = bytes_per_s * 8
    for unit, div in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= div:
            return f"{bits / div:.4g}{unit}"
    return f"{bits:.4g}bit/s"


def format_time(seconds: float) -> str:
    """``2ms``-style text."""
    if seconds == 0:
        return "0"
    for unit, div in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= div:
            return f"{seconds / div:.4g}{unit}"
    return f"{seconds / 1e-9:.4g}ns"


@dataclasses.dataclass(frozen=True)
class Link:
    """One direction of the connection from device ``src`` to device ``dst``.

    ``bandwidth`` is in bytes per second, ``latency`` and ``per_tensor`` in
    seconds. ``source`` says where the numbers came from (``user``, ``probe``).
    """

    bandwidth: float
    latency: float = 0.0
    per_tensor: float = 0.0
    src: str = ""
    dst: str = ""
    source: str = "user"
    cpu_per_byte: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bandwidth", parse_bandwidth(self.bandwidth))
        object.__setattr__(self, "latency", parse_time(self.latency, "latency"))
        object.__setattr__(self, "per_tensor", parse_time(self.per_tensor, "per-tensor overhead"))
        object.__setattr__(self, "cpu_per_byte", parse_time(self.cpu_per_byte, "sender CPU time per byte"))

    @classmethod
    def parse(
        cls,
        bandwidth: str | float,
        latency: str | float = 0.0,
        per_tensor: str | float = 0.0,
        src: str = "",
        dst: str = "",
        source: str = "user",
        cpu_per_byte: str | float = 0.0,
    ) -> Link:
        """A link from the text a user types (``Link.parse("100Mbit/s", "2ms")``)."""
        return cls(bandwidth, latency, per_tensor, src, dst, source, cpu_per_byte)

    def between(self, src: str, dst: str) -> Link:
        """The same link, named by the devices it joins."""
        return dataclasses.replace(self, src=src, dst=dst)

    def seconds(self, nbytes: float, tensors: int = 1) -> float:
        """Time to send ``nbytes`` in ``tensors`` tensors over this link."""
        return self.latency + nbytes / self.bandwidth + tensors * self.per_tensor

    def sender_cpu(self, nbytes: float) -> float:
        """CPU seconds the sending device spends on ``nbytes``."""
        return self.cpu_per_byte * nbytes

    @property
    def name(self) -> str:
        return f"{self.src or '?'}->{self.dst or '?'}"

    def describe(self) -> str:
        parts = [format_bandwidth(self.bandwidth), f"latency {format_time(self.latency)}"]
        if self.per_tensor:
            parts.append(f"{format_time(self.per_tensor)}/tensor")
        if self.cpu_per_byte:
            parts.append(f"sender CPU {format_time(self.cpu_per_byte)}/B")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "bandwidth_Bps": self.bandwidth,
            "latency_s": self.latency,
            "per_tensor_s": self.per_tensor,
            "bandwidth": format_bandwidth(self.bandwidth),
            "source": self.source,
            "cpu_per_byte_s": self.cpu_per_byte,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Link:
        if not isinstance(doc, dict) or "bandwidth_Bps" not in doc:
            raise BadInput(f"link {doc!r} is not valid; give an object with bandwidth_Bps, latency_s, per_tensor_s")
        return cls(
            float(doc["bandwidth_Bps"]),
            float(doc.get("latency_s", 0.0)),
            float(doc.get("per_tensor_s", 0.0)),
            str(doc.get("src", "")),
            str(doc.get("dst", "")),
            str(doc.get("source", "user")),
            float(doc.get("cpu_per_byte_s", 0.0)),
        )
