"""The link probe: how fast this machine and a device exchange tensors over SSH, stored for the partitioner.

:func:`probe` runs a tiny stdin/stdout responder on the device (plain Python,
no torch, passed with ``python -c``; nothing is written there) and, over that
one SSH channel, measures

* **latency**: the median round trip of a one-byte ping, halved (one way);
* **bandwidth, each direction**: the raw bytes of float32 tensors of growing
  sizes (4 KiB up to ``max_bytes``) sent to the device, which acknowledges
  when it has them all (``to_device``), and asked from the device
  (``from_device``); a straight line ``t = a + bytes / bandwidth`` fitted by
  least squares over every transfer gives the bandwidth as the inverse slope,
  so the fixed cost of each request does not bias it. A size is not repeated
  once one transfer of it takes longer than ``max_seconds``.

The numbers are those of the SSH channel (encrypted, one TCP connection), a
lower bound for the raw TCP a pipeline's gloo processes use.

A probe is stored with :func:`save` in the store's ``link_probes`` table
(``Store.links()`` / ``Store.latest_link()`` read it back). The partitioner
(``gapp partition --link-from-probe``, the app's ``l`` key) takes a Link from
:func:`gapp_tui.partition.link.stored_link`, the ``from_device`` direction by
default: activations travel from the device to the server.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import BadInput
from .partition.link import Link
from .ssh import ConnectionLost, RemoteError
from .store import Store
from .units import format_bandwidth, format_time

#: tensor sizes tried, in bytes (float32 tensors of 1 Ki .. 4 Mi elements)
DEFAULT_SIZES = (4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20)
DIRECTIONS = ("to_device", "from_device")

# the responder: 9-byte requests (op, 8-byte length); 'p' ping, 'u' upload n bytes then ack, 'd' send n bytes
_RESPONDER = r"""
import sys
r, w = sys.stdin.buffer, sys.stdout.buffer
w.write(b'R'); w.flush()
block = bytes(1 << 20)
while True:
    h = r.read(9)
    if len(h) < 9:
        break
    op, n = h[:1], int.from_bytes(h[1:], 'big')
    if op == b'p':
        w.write(b'p'); w.flush()
    elif op == b'u':
        left = n
        while left:
            c = r.read(min(left, 1 << 20))
            if not c:
                sys.exit(0)
            left -= len(c)
        w.write(b'k'); w.flush()
    elif op == b'd':
        left = n
        while left:
            k = min(left, len(block))
            w.write(block[:k]); left -= k
        w.flush()
"""

@dataclasses.dataclass
class Transfer:
    direction: str
    bytes: int
    seconds: float


@dataclasses.dataclass
class ProbeResult:
    """What one probe measured (``to_dict()`` is the ``--json`` document)."""

    host: str
    local: str
    latency_s: float
    rtt_s: list[float]
    bandwidth_Bps: dict[str, float]
    intercept_s: dict[str, float]
    transfers: list[Transfer]
    method: str = "ssh-channel"
    measured_at: str = ""
    seconds: float = 0.0

    def link(self, direction: str = "from_device") -> Any:
        """A :class:`gapp_tui.partition.link.Link` for one direction."""
        src, dst = (self.host, self.local) if direction == "from_device" else (self.local, self.host)
        return Link(self.bandwidth_Bps[direction], self.latency_s, 0.0, src, dst, "probe")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["links"] = {k: self.link(k).to_dict() for k in DIRECTIONS}
        d["summary"] = {
            "latency": format_time(self.latency_s),
            **{k: format_bandwidth(v) for k, v in self.bandwidth_Bps.items()},
        }
        return d


def _payload(nbytes: int) -> bytes:
    """``nbytes`` random bytes, as many as a float32 tensor's (random: SSH compression cannot shrink them)."""
    return os.urandom(nbytes)


class _Channel:
    """Exact reads and writes on the responder's channel, with a deadline."""

    def __init__(self, stream: Any, timeout: float) -> None:
        self.chan = stream.chan
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.chan.sendall(data)

    def recv_exact(self, n: int) -> None:
        self.chan.settimeout(self.timeout)  # a blocking read: the round trip is not padded by polling
        left = n
        while left:
            try:
                got = self.chan.recv(min(left, 1 << 20))
            except socket.timeout:
                raise ConnectionLost(f"the device stopped answering the link probe ({self.timeout:g} s)") from None
            if not got:
                err = self.chan.recv_stderr(4096).decode(errors="replace").strip() if self.chan.recv_stderr_ready() else ""
                raise RemoteError(
                    "the link probe's responder on the device ended early" + (f": {err.splitlines()[-1]}" if err else "")
                )
            left -= len(got)


def probe(
    session: Any,
    remote_python: str = "python3",
    sizes: Sequence[int] = DEFAULT_SIZES,
    max_bytes: int | None = None,
    pings: int = 20,
    repeats: int = 3,
    max_seconds: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Measure the link to the device behind ``session`` (see the module docstring)."""
    if pings < 1 or repeats < 1:
        raise BadInput(f"pings {pings} and repeats {repeats} must be >= 1")
    sizes = sorted({int(s) for s in sizes if int(s) > 0 and (max_bytes is None or int(s) <= max_bytes)})
    if len(sizes) < 2:
        raise BadInput(f"the link probe needs at least two tensor sizes up to --max-bytes; got {sizes}")
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    stream = session.stream([remote_python, "-u", "-c", _RESPONDER], silence_timeout=3600)
    ch = _Channel(stream, timeout=max(30.0, session.target.connect_timeout * 3))
    try:
        ch.recv_exact(1)  # the responder is up
        rtts = []
        for _ in range(pings + 2):
            t0 = time.perf_counter()
            ch.send(b"p" + (0).to_bytes(8, "big"))
            ch.recv_exact(1)
            rtts.append(time.perf_counter() - t0)
        rtts = rtts[2:]  # the first round trips pay for the channel's start
        say(f"latency: median round trip {statistics.median(rtts) * 1e3:.3f} ms over {len(rtts)} pings")
        transfers: list[Transfer] = []
        for direction in DIRECTIONS:
            # one untimed transfer first: the responder's first read and the channel's window growth
            if direction == "to_device":
                ch.send(b"u" + sizes[0].to_bytes(8, "big") + _payload(sizes[0]))
                ch.recv_exact(1)
            else:
                ch.send(b"d" + sizes[0].to_bytes(8, "big"))
                ch.recv_exact(sizes[0])
            for size in sizes:
                payload = _payload(size) if direction == "to_device" else b""
                took = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    if direction == "to_device":
                        ch.send(b"u" + size.to_bytes(8, "big") + payload)
                        ch.recv_exact(1)
                    else:
                        ch.send(b"d" + size.to_bytes(8, "big"))
                        ch.recv_exact(size)
                    dt = time.perf_counter() - t0
                    took.append(dt)
                    transfers.append(Transfer(direction, size, dt))
                    if dt > max_seconds:
                        break
                say(f"{direction}: {size} bytes in {statistics.median(took) * 1e3:.2f} ms")
                if min(took) > max_seconds:
                    break  # larger sizes would only take longer
    finally:
        stream.stop()
    bandwidth, intercept = {}, {}
    for direction in DIRECTIONS:
        pts = [t for t in transfers if t.direction == direction]
        if len({t.bytes for t in pts}) < 2:
            raise BadInput(f"the link is too slow to probe two sizes within {max_seconds:g} s each; raise --max-seconds")
        b, a = statistics.linear_regression([t.bytes for t in pts], [t.seconds for t in pts])
        if b <= 0:  # noise bigger than the transfer times: fall back to the largest transfer alone
            big = max(pts, key=lambda t: t.bytes)
            b = max(big.seconds - statistics.median(rtts), 1e-9) / big.bytes
        bandwidth[direction] = 1.0 / b
        intercept[direction] = a
    return ProbeResult(
        host=session.target.label,
        local=socket.gethostname(),
        latency_s=statistics.median(rtts) / 2,
        rtt_s=rtts,
        bandwidth_Bps=bandwidth,
        intercept_s=intercept,
        transfers=transfers,
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        seconds=time.perf_counter() - t_start,
    )


# ----------------------------------------------------------------------------- storing


def save(store: Store, result: ProbeResult) -> list[int]:
    """Store both directions of a probe in the store's ``link_probes`` table; returns their ids."""
    ids = []
    for direction in DIRECTIONS:
        lk = result.link(direction)
        detail = {
            "intercept_s": result.intercept_s[direction],
            "rtt_s": result.rtt_s,
            "transfers": [dataclasses.asdict(t) for t in result.transfers if t.direction == direction],
        }
        ids.append(store.add_link_probe({
            "host": result.host, "local": result.local, "direction": direction, "latency_s": lk.latency,
            "bandwidth_Bps": lk.bandwidth, "per_tensor_s": lk.per_tensor, "method": result.method,
            "measured_at": result.measured_at, "detail": detail,
        }))
    return ids
