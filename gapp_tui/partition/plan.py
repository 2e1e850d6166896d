"""The Plan: which device runs which blocks, and the links between them.

A plan over ``k`` devices (in pipeline order) and ``n`` blocks has boundaries
``0 = b0 <= b1 <= ... <= bk = n``; stage ``s`` runs blocks ``[b_s, b_{s+1})``
on ``devices[s]``. Between stage ``s`` and ``s + 1`` the tensors of cut
``b_{s+1}`` travel over ``links[s]`` (an empty stage forwards what it receives,
so the same cut travels on). With ``return_output`` the output (cut ``n``) goes
back from the last device to the first over one more link, ``links[k - 1]``.

The plan file (JSON, ``version`` 1) is what ``gapp pipeline run`` reads::

    {"version": 1,
     "model": {"name", "batch_size", "num_classes", "input_size", "input_shape"
               (+ "input_dtype", "hf_config", "capture" when they are not the defaults)},
     "granularity": "natural",
     "devices": ["pi", "server"],
     "hosts": {"pi": "user@10.0.0.2:22", "server": null},
     "boundaries": [0, 7, 21],
     "links": [{"src", "dst", "bandwidth_Bps", "latency_s", "per_tensor_s", ...}],
     "estimate": {...},
     "blocks": [block names], "communication": "overlapped", "return_output": false,
     "objective": "throughput",
     "runtimes": {"pi": "executorch-int8"}}

``runtimes`` (optional) names what a device's stages run under, as the device
syntax writes it after ``@`` (absent: eager): ``gapp export`` takes its
runtime and int8 from it, and an int8 device's outgoing cut is estimated as int8.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .devices import parse_runtime_text
from .link import Link

PLAN_VERSION = 1
COMMUNICATION = ("overlapped", "serial")
_HOST = re.compile(r"^(?:[^@\s]+@)?[^@\s:]+(?::\d+)?$")


@dataclasses.dataclass
class Plan:
    """Devices in pipeline order, the cut points between them, and the links.

    ``hosts[device]`` is ``user@host:port`` for a stage started over SSH, or
    ``None`` for this machine. ``communication`` is ``overlapped`` (receive,
    compute and send run concurrently: the period is the slowest of any stage
    or link) or ``serial`` (a stage receives, computes, then sends).
    """

    devices: list[str]
    boundaries: list[int]
    links: list[Link]
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    granularity: str = "natural"
    hosts: dict[str, str | None] = dataclasses.field(default_factory=dict)
    communication: str = "overlapped"
    return_output: bool = False
    objective: str = "manual"
    blocks: list[str] = dataclasses.field(default_factory=list)
    estimate: dict[str, Any] | None = None
    runtimes: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.devices = [str(d) for d in self.devices]
        try:
            self.boundaries = [_int(b) for b in self.boundaries]
        except (TypeError, ValueError):
            raise BadInput(f"plan boundaries {self.boundaries!r} must be integers such as [0, 7, 21]") from None
        self.links = [lk if isinstance(lk, Link) else Link.from_dict(lk) for lk in self.links]
        self.hosts = {d: self.hosts.get(d) for d in self.devices} if self.hosts is not None else {}
        self.runtimes = {str(d): str(r) for d, r in (self.runtimes or {}).items() if r and r != "eager"}
        self.validate()

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(
        cls,
        table: Any,
        devices: Sequence[str],
        boundaries: Sequence[int],
        link: Link | Sequence[Link],
        *,
        return_output: bool = False,
        communication: str = "overlapped",
        objective: str = "manual",
        hosts: dict[str, str | None] | None = None,
    ) -> Plan:
        """A plan for a CostTable: one link (used between every pair) or one per link."""
        table.check_devices(devices)
        plan = cls(
            list(devices),
            list(boundaries),
            chain_links(devices, link, return_output),
            model=dict(table.model),
            granularity=table.granularity,
            hosts=dict(hosts or {}),
            communication=communication,
            return_output=return_output,
            objective=objective,
            blocks=list(table.blocks),
        )
        plan.check_against(table)
        return plan

    def with_boundaries(self, boundaries: Sequence[int], objective: str = "manual") -> Plan:
        """The same devices and links cut elsewhere (what the TUI does on every keystroke)."""
        return dataclasses.replace(self, boundaries=list(boundaries), objective=objective, estimate=None)

    # ------------------------------------------------------------------ checks

    @property
    def k(self) -> int:
        return len(self.devices)

    @property
    def n(self) -> int:
        return self.boundaries[-1]

    @property
    def has_return(self) -> bool:
        """True when the output travels back to the first device (needs two or more devices)."""
        return self.return_output and self.k > 1

    def validate(self, n: int | None = None) -> None:
        """BadInput (one line) unless the plan is well formed (and covers ``n`` blocks when given)."""
        if not self.devices:
            raise BadInput("plan has no devices; give one or more device names")
        if len(set(self.devices)) != len(self.devices):
            dup = next(d for d in self.devices if self.devices.count(d) > 1)
            raise BadInput(f"plan lists device {dup!r} twice; a pipeline uses each device once")
        b = self.boundaries
        k = self.k
        if len(b) != k + 1:
            raise BadInput(f"plan boundaries {b} have {len(b)} entries; {k} devices need {k + 1} (0, the cuts, n)")
        if b[0] != 0:
            raise BadInput(f"plan boundaries {b} must start at 0 (the model input)")
        for s in range(k):
            if b[s + 1] < b[s]:
                raise BadInput(f"plan boundaries {b} are out of order at position {s + 1}; give 0 <= b1 <= ... <= n")
        if n is not None and b[-1] != n:
            raise BadInput(f"plan boundaries {b} end at {b[-1]}, out of range for {n} blocks; the last must be {n}")
        want_links = k - 1 + (1 if self.has_return else 0)
        if len(self.links) != want_links:
            raise BadInput(
                f"plan has {len(self.links)} links for {k} devices; give {want_links}"
                + (" (one more for the output's return)" if self.return_output else "")
            )
        if self.communication not in COMMUNICATION:
            raise BadInput(f"communication {self.communication!r} is not known; give one of {', '.join(COMMUNICATION)}")
        for d, h in self.hosts.items():
            if h is not None and not _HOST.match(str(h)):
                raise BadInput(f"host {h!r} of device {d!r} is not valid; give user@host:port, host, or null")
        for d, r in self.runtimes.items():
            if d not in self.devices:
                raise BadInput(f"plan names the runtime of device {d!r}, which is not one of its devices")
            parse_runtime_text(r, d)

    def send_dtype(self) -> dict[str, str]:
        """What each device sends at its outgoing cut: int8 after an int8 runtime (``CostTable.send_dtype``)."""
        return {d: "int8" for d, r in self.runtimes.items() if r.endswith("-int8")}

    def check_against(self, table: Any) -> None:
        """BadInput unless this plan's devices and blocks match the cost table."""
        table.check_devices(self.devices)
        self.validate(table.n)
        if self.blocks and list(self.blocks) != list(table.blocks):
            first = next((i for i, (a, b) in enumerate(zip(self.blocks, table.blocks)) if a != b), min(len(self.blocks), table.n))
            raise BadInput(
                f"plan's blocks differ from the cost table's at block {first} "
                f"({len(self.blocks)} vs {table.n} blocks); re-plan for this model and granularity"
            )

    # ------------------------------------------------------------------ views

    def stages(self) -> list[dict[str, Any]]:
        """One dict per stage: device, host, the block range ``[start, end)`` and its names."""
        out = []
        for s, d in enumerate(self.devices):
            lo, hi = self.boundaries[s], self.boundaries[s + 1]
            out.append(
                {
                    "stage": s,
                    "device": d,
                    "host": self.hosts.get(d),
                    "start": lo,
                    "end": hi,
                    "blocks": self.blocks[lo:hi] if self.blocks else [],
                }
            )
        return out

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "model": self.model,
            "granularity": self.granularity,
            "devices": self.devices,
            "hosts": {d: self.hosts.get(d) for d in self.devices},
            "boundaries": self.boundaries,
            "links": [lk.to_dict() for lk in self.links],
            "estimate": self.estimate,
            "blocks": self.blocks,
            "communication": self.communication,
            "return_output": self.return_output,
            "objective": self.objective,
            "runtimes": dict(self.runtimes),
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Plan:
        if not isinstance(doc, dict):
            raise BadInput("plan file is not a JSON object; expected the output of `gapp partition -o`")
        version = doc.get("version")
        if version != PLAN_VERSION:
            raise BadInput(f"plan version {version!r} is not supported; this GAPP reads version {PLAN_VERSION}")
        for key in ("devices", "boundaries", "links"):
            if key not in doc:
                raise BadInput(f"plan file has no {key!r}; expected the output of `gapp partition -o`")
        if not isinstance(doc["devices"], list) or not isinstance(doc["boundaries"], list):
            raise BadInput("plan devices and boundaries must be lists")
        return cls(
            devices=doc["devices"],
            boundaries=doc["boundaries"],
            links=doc["links"],
            model=dict(doc.get("model") or {}),
            granularity=str(doc.get("granularity", "natural")),
            hosts=dict(doc.get("hosts") or {}),
            communication=str(doc.get("communication", "overlapped")),
            return_output=bool(doc.get("return_output", False)),
            objective=str(doc.get("objective", "manual")),
            blocks=list(doc.get("blocks") or []),
            estimate=doc.get("estimate"),
            runtimes=dict(doc.get("runtimes") or {}),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise BadInput(f"plan file {str(path)!r} does not exist; write one with `gapp partition ... -o {path}`") from None
        except OSError as exc:
            raise BadInput(f"plan file {str(path)!r} cannot be read ({exc.strerror})") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"plan file {str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        return cls.from_dict(doc)


def chain_links(devices: Sequence[str], link: Link | Sequence[Link], return_output: bool = False) -> list[Link]:
    """The links of a device chain, named by the devices they join.

    ``link`` is one Link (used for every hop, and for the return) or a list of
    ``k - 1`` links (plus one for the return when ``return_output``); a list
    one short of that with ``return_output`` reuses the first link for the return.
    """
    k = len(devices)
    pairs = [(devices[s], devices[s + 1]) for s in range(k - 1)]
    if return_output and k > 1:
        pairs.append((devices[-1], devices[0]))
    if isinstance(link, Link):
        given = [link] * len(pairs)
    else:
        given = list(link)
        if return_output and len(given) == k - 1 and k > 1:
            given.append(given[0])
        if len(given) == 1:
            given = given * len(pairs)
        if len(given) != len(pairs):
            raise BadInput(f"{len(given)} links given for {k} devices; give 1 or {len(pairs)}")
    return [lk.between(a, b) for lk, (a, b) in zip(given, pairs)]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(value)
