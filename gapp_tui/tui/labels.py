"""How the app names things in words: machines, settings, cuts and where a time comes from.

Presentation only (the values come from the store, the block-times service and
the predictor registry). Every time the app shows names its source and its
hardware through these functions, so the words are the same in every section:

* a machine: ``this machine (AMD EPYC 7B13, 2 cores)``, ``pi4 (Cortex-A72, 4 cores)``;
* a setting: ``32px, batch 1, float32, 1 thread, natural``;
* a cut: ``after block 4 layer2.1`` (and a bottleneck link by the cut it carries);
* a device's times (:class:`Source`): ``measured here, 1 thread`` or, for a
  device without a predictor of its own, ``not pi's times: predicted for 2-core AMD EPYC VM``.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

from ..errors import BadInput
from ..store import parse_setting
from ..units import format_bytes, format_flops_rate


def this_host() -> str:
    return socket.gethostname()


def _cpu(desc: Mapping[str, Any]) -> str:
    if desc.get("accelerator"):
        return str(desc["accelerator"])
    cpu = str(desc.get("cpu_model") or desc.get("machine") or "unknown CPU")
    for noise in ("(R)", "(TM)", " CPU", " Processor", " processor"):
        cpu = cpu.replace(noise, "")
    cores = desc.get("cores")
    return f"{' '.join(cpu.split())}, {cores} cores" if cores else " ".join(cpu.split())


def is_here(desc: Mapping[str, Any]) -> bool:
    return bool(desc) and desc.get("hostname") == this_host()


def machine_words(desc: Mapping[str, Any] | None, key: str = "") -> str:
    """``this machine (CPU, cores)`` or ``HOST (CPU, cores)``; the key's host part when nothing is described."""
    if not desc:
        return key.rsplit("-", 2)[0] if key.count("-") >= 2 else key or "an unknown machine"
    who = "this machine" if is_here(desc) else str(desc.get("hostname") or key)
    return f"{who} ({_cpu(desc)})"


def setting_words(setting: str) -> str:
    """``32px, batch 1, float32, 1 thread, natural`` (the text itself when it does not parse)."""
    try:
        s = parse_setting(setting)
    except BadInput:
        return setting
    dims = s["input_shape"].split("x")
    size = f"{dims[-1]}px" if len(dims) == 4 and dims[-1] == dims[-2] else s["input_shape"]
    gran = s["granularity"]
    gran = f"{gran} groups" if gran.isdigit() else gran
    words = [size, f"batch {s['batch_size']}", s["dtype"], threads_words(s["threads"]), gran]
    if s["device_type"] != "cpu":
        words.append(s["device_type"].upper())
    if s["clock"] == "cpu":
        words.append("CPU-time clock")
    return ", ".join(words)


def threads_words(threads: int | None) -> str:
    if threads is None:
        return "all threads"
    return f"{threads} thread" + ("" if threads == 1 else "s")


def cut_words(blocks: list[str], boundary: int) -> str:
    """Where a cut is: ``after block 4 layer2.1`` (``before the first block``, ``after the last block``)."""
    if boundary <= 0:
        return "before the first block"
    if boundary >= len(blocks):
        return "after the last block"
    return f"after block {boundary - 1} {blocks[boundary - 1]}"


def cut_load(table: Any, boundary: int) -> str:
    n = table.cut_tensors[boundary]
    return f"{format_bytes(table.cut_bytes[boundary])} in {n} tensor{'s' if n != 1 else ''}"


def machine_of(made_for: str) -> str:
    """The machine part of a predictor's "made for" note (``the shipped corpus: 2-core AMD EPYC VM, 1 thread``)."""
    return made_for.rsplit(": ", 1)[-1].strip() or made_for


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one device's block times come from: ``short`` for a table cell, ``long`` for the devices line.

    ``foreign`` is true when the times were made for another machine than the device
    (a predictor that is not the device's own): never to be read as the device's times.
    """

    short: str
    long: str
    foreign: bool = False
    here: bool = False  # measured on this machine (a pipeline run here runs on the very hardware)
    tag: str = ""  # one or two words for the status line

    @property
    def word(self) -> str:
        return self.tag or self.short


def source_of(column: Any, desc: Mapping[str, Any] | None = None, choice: Any = None) -> Source:
    """The :class:`Source` of a :class:`~gapp_tui.partition.times.DeviceTimes` column.

    ``desc``: the stored description of a measured column's device; ``choice``: the
    :class:`~gapp_tui.predict.registry.Choice` of a predicted one.
    """
    device = column.device
    name = device.name
    if device.source == "flops":
        rate = format_flops_rate(device.rate or 0.0)
        return Source(f"FLOPs at {rate}", f"FLOPs at {rate}: no hardware measured", tag="FLOPs")
    if device.source == "measured":
        setting = column.setting or ""
        try:
            threads = threads_words(parse_setting(setting)["threads"]) if setting else ""
        except BadInput:
            threads = ""
        where = machine_words(desc, column.store_key or "")
        here = "here" if desc and is_here(desc) else f"on {where.split(' (')[0]}"
        mode = "in-context" if "in-context" in column.note else ("standalone" if "standalone" in column.note else "")
        missing = column.kinds.count("flops")
        tail = f"; {missing} of {len(column.kinds)} blocks from FLOPs" if missing else ""
        extra = ", ".join(x for x in (threads, mode) if x)
        return Source(f"measured {here}" + (f", {threads}" if threads else ""),
                      f"measured on {where}" + (f", {extra}" if extra else "") + tail, here=here == "here",
                      tag=f"measured {here}")
    # predicted
    if choice is None:
        return Source("predicted", column.note, foreign=True, tag=f"not {name}'s times")
    machine = machine_of(choice.made_for or "another machine")
    if choice.own:
        return Source(f"{name}'s predictor", f"predicted by {name}'s own predictor {choice.name} (made for {machine})",
                      tag="predicted")
    return Source(f"not {name}'s: {machine.split(',')[0]}",
                  f"not {name}'s times: predicted for {machine} by {choice.name}"
                  f" (no predictor of {name}'s own yet: gapp calibrate)", foreign=True, tag=f"not {name}'s times")


def seconds_words(seconds: float) -> str:
    """``12.3 ms`` (three significant figures, as the estimate panel shows times)."""
    v = seconds * 1e3
    return f"{v:.0f} ms" if v >= 100 else (f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms")


def bottleneck_words(est: Any, blocks: list[str]) -> str:
    """An estimate's bottleneck named as everything else names it: a stage by its device, a link by its cut."""
    bn = est.bottleneck
    if bn["kind"] == "stage":
        st = est.stages[bn["index"]]
        return f"stage {st.stage} {st.device} ({seconds_words(st.busy_s)})"
    tr = next(t for t in est.transfers if t.link == bn["index"])
    if tr.is_return:
        return f"the output's return {tr.src}→{tr.dst} ({format_bytes(tr.bytes)}, {seconds_words(tr.seconds)})"
    return (f"link {tr.src}→{tr.dst} carrying the cut {cut_words(blocks, tr.cut)}"
            f" ({format_bytes(tr.bytes)}, {seconds_words(tr.seconds)})")
