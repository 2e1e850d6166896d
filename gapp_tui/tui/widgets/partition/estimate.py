"""The estimate panel: per-stage compute and transfer, the bottleneck, throughput and latency."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ....units import format_bytes
from .strip import STAGE_COLOURS, ms


class EstimatePanel(Static):
    """Shows an :class:`~gapp_tui.partition.estimate.Estimate`; the bottleneck row is highlighted."""

    def show(self, est: Any, blocks: list[str], sources: Mapping[str, str] | None = None) -> None:
        """``sources``: device -> where its times come from, in a few words (``measured here, 1 thread``)."""
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False, padding=(0, 1))
        table.add_column("stage", no_wrap=True)
        table.add_column("blocks", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("compute", justify="right", no_wrap=True)
        table.add_column("send", justify="right", no_wrap=True)
        table.add_column("times from", no_wrap=True, overflow="ellipsis")
        bn = est.bottleneck
        transfers = {t.link: t for t in est.transfers if not t.is_return}
        for st in est.stages:
            colour = STAGE_COLOURS[st.stage % len(STAGE_COLOURS)]
            is_bn = bn["kind"] == "stage" and bn["index"] == st.stage
            span = "(empty)" if st.blocks == 0 else (
                f"{st.start}–{st.end - 1} ({st.blocks}) {blocks[st.start]}…{blocks[st.end - 1]}" if st.blocks > 1
                else f"{st.start} {blocks[st.start]}")
            tr = transfers.get(st.stage)
            send = "" if tr is None else f"{ms(tr.seconds)} {format_bytes(tr.bytes)}"
            send_text = Text(send, style="bold reverse red" if (tr is not None and bn["kind"] == "link"
                                                                  and bn["index"] == tr.link) else "")
            table.add_row(
                Text(f"{st.stage} {st.device}", style=f"bold {colour}"),
                span,
                Text(ms(st.compute_s), style="bold reverse red" if is_bn else ""),
                send_text,
                Text((sources or {}).get(st.device) or "/".join(st.sources) or "-",
                     style="yellow" if (sources or {}).get(st.device, "").startswith("not ") else ""),
            )
        for t in est.transfers:
            if t.is_return:
                table.add_row(Text(f"↩ {t.src}→{t.dst}", style="dim"), "output returns", "",
                              ms(t.seconds), "")
        # while only cuts move the table keeps its rows: skip the layout pass (the hot path of the strip)
        rows = len(est.stages) + len(est.transfers)
        self.update(table, layout=rows != getattr(self, "_rows", None))
        self._rows = rows
