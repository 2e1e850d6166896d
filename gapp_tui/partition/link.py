"""The link between two neighbouring devices of a pipeline.

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
from typing import Any

from ..errors import BadInput
from ..units import format_bandwidth, format_time, parse_bandwidth, parse_time

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
        return {"src": self.src, "dst": self.dst, "bandwidth_Bps": self.bandwidth, "latency_s": self.latency,
                "per_tensor_s": self.per_tensor, "bandwidth": format_bandwidth(self.bandwidth), "source": self.source,
                "cpu_per_byte_s": self.cpu_per_byte}

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


def stored_link(store: Any, host: str | None = None, direction: str = "from_device") -> tuple[Link, dict[str, Any]] | None:
    """The newest stored link probe (``gapp link probe``) of one direction as a Link, and its row; or None.

    With ``host``, that host's probe; when it has none, the newest of any host.
    """
    found = store.latest_link(host, direction) or (store.latest_link(None, direction) if host else None)
    if found is None:
        return None
    link = Link(found["bandwidth_Bps"], found.get("latency_s") or 0.0, found.get("per_tensor_s") or 0.0,
                source="probe")
    return link, found
