"""The CostTable: everything a plan's estimate needs, as plain numbers.

For a chain of ``n`` blocks:

- ``times[device][i]``: seconds block ``i`` takes on ``device``, each with its
  source in ``sources[device][i]`` (``measured``, ``predicted`` or ``flops``);
- ``cut_bytes[c]`` and ``cut_tensors[c]`` for the ``n + 1`` cuts: cut ``c`` is
  before block ``c``, cut 0 the model's input, cut ``n`` its output;
- ``cut_bytes_int8[c]``: the bytes of cut ``c`` sent as int8 (what ``gapp export``
  sends after an int8 stage: one byte per element of every floating tensor,
  other tensors as they are), and ``send_dtype[device]`` (``float32`` or
  ``int8``): what each device sends at its outgoing cut. :meth:`bytes_sent`
  is the column a device's link carries; the model's output always travels
  as it is (an export never quantizes it);
- ``param_bytes[i]``: the weights and buffers block ``i`` holds (for memory limits);
- ``cuttable[c]``: False where something that is not a tensor (a size, a
  Python value) crosses cut ``c``: a pipeline cannot send it, so the solver
  never cuts there.

No torch at estimate time: :meth:`CostTable.from_chain` reads a BlockChain by
duck typing, and the prefix sums the estimator and the solver share are
computed once and cached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import BadInput, closest

#: where a block time came from
SOURCES = ("measured", "predicted", "flops")
#: what a device sends at its outgoing cut
SEND_DTYPES = ("float32", "int8")
#: floating dtypes an int8 cut quantizes (one byte per element); anything else is sent as it is
_FLOATING = ("torch.float32", "torch.float16", "torch.bfloat16", "torch.float64")


class CostTable:
    """Block times per device, cut sizes and block weights of one model's chain.

    Build it from plain lists and dicts::

        CostTable(
            blocks=["conv1", "layer1", "fc"],
            times={"pi": [0.02, 0.05, 0.001], "server": [0.001, 0.002, 0.0001]},
            cut_bytes=[602112, 802816, 401408, 4000],
            cut_tensors=[1, 1, 1, 1],
            param_bytes=[37632, 887808, 2052000],
            sources={"pi": "measured", "server": "predicted"},
        )

    or from a BlockChain with :meth:`from_chain`. ``sources`` may give one
    source per device or one per block of a device (a mixed column).
    ``send_dtype={"pi": "int8"}`` makes ``pi`` send its cut as int8
    (``cut_bytes_int8``; default: a quarter of ``cut_bytes``, every cut
    being float32).
    """

    def __init__(
        self,
        blocks: Sequence[str],
        times: Mapping[str, Sequence[float] | Mapping[str, float]],
        cut_bytes: Sequence[float],
        cut_tensors: Sequence[int] | None = None,
        param_bytes: Sequence[float] | None = None,
        sources: str | Mapping[str, str | Sequence[str]] = "measured",
        model: Mapping[str, Any] | None = None,
        granularity: str = "natural",
        batch_size: int | None = None,
        cuttable: Sequence[bool] | None = None,
        cut_bytes_int8: Sequence[float] | None = None,
        send_dtype: Mapping[str, str] | None = None,
    ) -> None:
        self.blocks: list[str] = [str(b) for b in blocks]
        n = len(self.blocks)
        if n == 0:
            raise BadInput("cost table has no blocks; give at least one block")
        if not times:
            raise BadInput("cost table has no devices; give the block times of at least one device")
        self.times: dict[str, list[float]] = {}
        self.sources: dict[str, list[str]] = {}
        for device, column in times.items():
            self.times[str(device)] = self._column(str(device), column)
            self.sources[str(device)] = self._source_column(str(device), sources)
        self.cut_bytes: list[float] = self._numbers("cut bytes", cut_bytes, n + 1)
        self.cut_tensors: list[int] = (
            [1] * (n + 1) if cut_tensors is None else [int(c) for c in self._numbers("cut tensors", cut_tensors, n + 1)]
        )
        self.param_bytes: list[float] = (
            [0.0] * n if param_bytes is None else self._numbers("parameter bytes", param_bytes, n)
        )
        self.cuttable: list[bool] = [True] * (n + 1) if cuttable is None else [bool(c) for c in cuttable]
        if len(self.cuttable) != n + 1:
            raise BadInput(f"cuttable: {len(self.cuttable)} entries, expected {n + 1}")
        self.cut_bytes_int8: list[float] = (
            [b / 4 for b in self.cut_bytes] if cut_bytes_int8 is None
            else self._numbers("int8 cut bytes", cut_bytes_int8, n + 1)
        )
        self.send_dtype: dict[str, str] = {d: "float32" for d in self.times}
        for d, dt in (send_dtype or {}).items():
            if d not in self.times:
                raise BadInput(f"send dtype given for device {d!r}, which is not in the cost table{closest(str(d), self.devices)}")
            if dt not in SEND_DTYPES:
                raise BadInput(f"device {d!r} sends {dt!r}; give one of {', '.join(SEND_DTYPES)}")
            self.send_dtype[d] = dt
        self.model: dict[str, Any] = dict(model or {})
        self.granularity = str(granularity)
        self.batch_size = int(batch_size or self.model.get("batch_size") or 1)
        self._prefix_arrays: dict[str, np.ndarray] = {}
        self._prefix_lists: dict[str, list[float]] = {}
        self._missing: dict[str, list[int]] = {}  # blocks without a time, per device (checked once)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_chain(
        cls,
        chain: Any,
        times_by_device: Mapping[str, Sequence[float] | Mapping[str, float]],
        sources: str | Mapping[str, str | Sequence[str]] = "measured",
        send_dtype: Mapping[str, str] | None = None,
    ) -> CostTable:
        """Cut sizes and block weights from a ``BlockChain``, times from ``times_by_device``.

        ``times_by_device[device]`` is a list in block order or a dict by block
        name. Parameter bytes count the weights and buffers each block's module
        holds (a meta-device chain works: only sizes are read). ``send_dtype``:
        as in the constructor; the int8 bytes of every cut come from its tensors.
        """
        blocks = list(chain.blocks)
        cut_bytes = [c.bytes for c in chain.cuts]
        cut_bytes_int8 = [sum(int(math.prod(t.shape)) if str(t.dtype) in _FLOATING else t.bytes for t in c.tensors)
                          for c in chain.cuts]
        cut_tensors = [c.count for c in chain.cuts]
        param_bytes = [_module_bytes(b.module) for b in blocks]
        cuttable = [all(str(t.dtype).startswith("torch.") for t in c.tensors) for c in chain.cuts]
        spec = chain.spec
        model = spec.to_dict()  # name, batch_size, num_classes, input_size, input_shape (+ dtype, hf_config, capture when set)
        return cls(
            [b.name for b in blocks],
            times_by_device,
            cut_bytes,
            cut_tensors,
            param_bytes,
            sources,
            model=model,
            granularity=chain.granularity,
            batch_size=spec.batch_size,
            cuttable=cuttable,
            cut_bytes_int8=cut_bytes_int8,
            send_dtype=send_dtype,
        )

    def with_times(
        self, device: str, times: Sequence[float] | Mapping[str, float], source: str | Sequence[str]
    ) -> CostTable:
        """A copy with ``device``'s column added or replaced."""
        merged_times = {d: list(t) for d, t in self.times.items()}
        merged_sources: dict[str, str | Sequence[str]] = {d: list(s) for d, s in self.sources.items()}
        merged_times[device] = times  # type: ignore[assignment]
        merged_sources[device] = source
        sends = {d: dt for d, dt in self.send_dtype.items() if d in merged_times}
        return CostTable(
            self.blocks, merged_times, self.cut_bytes, self.cut_tensors, self.param_bytes, merged_sources,
            self.model, self.granularity, self.batch_size, self.cuttable, self.cut_bytes_int8, sends,
        )

    def with_send_dtype(self, send_dtype: Mapping[str, str]) -> CostTable:
        """A copy where the devices named send their cuts as given (``{"pi": "int8"}``)."""
        return CostTable(
            self.blocks, self.times, self.cut_bytes, self.cut_tensors, self.param_bytes, self.sources,
            self.model, self.granularity, self.batch_size, self.cuttable, self.cut_bytes_int8,
            {**self.send_dtype, **dict(send_dtype)},
        )

    def fill(self, device: str, other: Sequence[float], source: str) -> CostTable:
        """A copy where ``device``'s missing (NaN) times are taken from ``other`` with ``source``."""
        times = list(self.times[device])
        srcs = list(self.sources[device])
        for i, t in enumerate(times):
            if math.isnan(t):
                times[i], srcs[i] = float(other[i]), source
        return self.with_times(device, times, srcs)

    # ------------------------------------------------------------------ validation helpers

    def _column(self, device: str, column: Sequence[float] | Mapping[str, float]) -> list[float]:
        n = len(self.blocks)
        if isinstance(column, Mapping):
            missing = [b for b in self.blocks if b not in column]
            extra = [b for b in column if b not in set(self.blocks)]
            if extra:
                raise BadInput(
                    f"device {device!r}: time for unknown block {extra[0]!r}{closest(str(extra[0]), self.blocks)}"
                )
            if missing:
                raise BadInput(
                    f"device {device!r} has no time for block {missing[0]!r} ({len(missing)} of {n} blocks missing)"
                )
            column = [column[b] for b in self.blocks]
        values = self._numbers(f"times of device {device!r}", column, n, allow_nan=True)
        return values

    def _source_column(self, device: str, sources: str | Mapping[str, str | Sequence[str]]) -> list[str]:
        n = len(self.blocks)
        spec: str | Sequence[str]
        if isinstance(sources, str):
            spec = sources
        elif device in sources:
            spec = sources[device]
        else:
            raise BadInput(f"no time source for device {device!r}; give one of {', '.join(SOURCES)}")
        col = [spec] * n if isinstance(spec, str) else [str(s) for s in spec]
        if len(col) != n:
            raise BadInput(f"device {device!r} has {len(col)} time sources for {n} blocks; give one per block")
        for s in col:
            if s not in SOURCES:
                raise BadInput(f"time source {s!r} is not known; give one of {', '.join(SOURCES)}")
        return col

    @staticmethod
    def _numbers(what: str, values: Sequence[float], n: int, allow_nan: bool = False) -> list[float]:
        try:
            out = [float(v) for v in values]
        except (TypeError, ValueError):
            raise BadInput(f"{what}: every entry must be a number") from None
        if len(out) != n:
            raise BadInput(f"{what}: {len(out)} entries, expected {n}")
        for i, v in enumerate(out):
            if math.isnan(v) and allow_nan:
                continue
            if not math.isfinite(v) or v < 0:
                raise BadInput(f"{what}: entry {i} is {v!r}; give finite values >= 0")
        return out

    # ------------------------------------------------------------------ queries

    @property
    def n(self) -> int:
        """Number of blocks."""
        return len(self.blocks)

    @property
    def devices(self) -> list[str]:
        return list(self.times)

    def check_devices(self, devices: Sequence[str]) -> None:
        """BadInput (one line) unless every name is a device of this table, each once."""
        if not devices:
            raise BadInput(f"no devices given; give one or more of {', '.join(self.devices)}")
        seen: set[str] = set()
        for d in devices:
            if d not in self.times:
                raise BadInput(
                    f"device {d!r} is not in the cost table{closest(d, self.devices)} (devices: {', '.join(self.devices)})"
                )
            if d in seen:
                raise BadInput(f"device {d!r} appears twice; a pipeline uses each device once")
            seen.add(d)
        for d in devices:
            missing = self._missing.get(d)
            if missing is None:
                missing = self._missing[d] = [i for i, t in enumerate(self.times[d]) if math.isnan(t)]
            if missing:
                raise BadInput(
                    f"device {d!r} has no time for block {self.blocks[missing[0]]!r}"
                    f" ({len(missing)} of {self.n} blocks missing); measure them or use predicted times"
                )

    def bytes_sent(self, device: str) -> list[float]:
        """The bytes of every cut as ``device`` sends it (``cut_bytes``, or ``cut_bytes_int8`` for an int8 sender)."""
        return self.cut_bytes_int8 if self.send_dtype.get(device) == "int8" else self.cut_bytes

    def source_of(self, device: str) -> str:
        """``measured``/``predicted``/``flops``, or ``mixed`` when the column mixes sources."""
        kinds = set(self.sources[device])
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def total(self, device: str) -> float:
        """Time of the whole chain on one device."""
        return self.prefix(device)[-1]

    def prefix(self, device: str) -> list[float]:
        """``p[j] - p[i]`` is the time of blocks ``[i, j)`` on ``device`` (Python floats: fast to index)."""
        cache = self._prefix_lists
        if device not in cache:
            cache[device] = self.prefix_array(device).tolist()
        return cache[device]

    def prefix_array(self, device: str) -> np.ndarray:
        cache = self._prefix_arrays
        if device not in cache:
            if device not in self.times:
                self.check_devices([device])
            cache[device] = np.concatenate(([0.0], np.cumsum(np.asarray(self.times[device], dtype=float))))
        return cache[device]

    @cached_property
    def param_prefix(self) -> np.ndarray:
        """``q[j] - q[i]`` is the weight bytes of blocks ``[i, j)``."""
        return np.concatenate(([0.0], np.cumsum(np.asarray(self.param_bytes, dtype=float))))

    @cached_property
    def param_prefix_list(self) -> list[float]:
        return self.param_prefix.tolist()

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "granularity": self.granularity,
            "batch_size": self.batch_size,
            "blocks": self.blocks,
            "devices": {
                d: {"times_s": [None if math.isnan(t) else t for t in self.times[d]], "sources": self.sources[d]}
                for d in self.times
            },
            "cut_bytes": self.cut_bytes,
            "cut_bytes_int8": self.cut_bytes_int8,
            "send_dtype": self.send_dtype,
            "cut_tensors": self.cut_tensors,
            "param_bytes": self.param_bytes,
            "cuttable": self.cuttable,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> CostTable:
        try:
            devices = doc["devices"]
            times = {d: [math.nan if t is None else t for t in v["times_s"]] for d, v in devices.items()}
            sources = {d: v.get("sources", "measured") for d, v in devices.items()}
            return cls(
                doc["blocks"], times, doc["cut_bytes"], doc.get("cut_tensors"), doc.get("param_bytes"),
                sources, doc.get("model"), doc.get("granularity", "natural"), doc.get("batch_size"),
                doc.get("cuttable"), doc.get("cut_bytes_int8"), doc.get("send_dtype"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadInput(f"cost table document is missing or has a bad field ({exc}); expected CostTable.to_dict() output") from None

    def __repr__(self) -> str:
        return f"CostTable({self.n} blocks, devices={self.devices})"


def flops_times(flops: Sequence[float], rate: float) -> list[float]:
    """Block times from FLOP counts and a device's sustained FLOP rate (the ``flops`` source)."""
    return [float(f) / rate for f in flops]


def _module_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers, read without importing torch."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        total += int(t.numel()) * int(t.element_size())
    return total
