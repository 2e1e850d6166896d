"""Every message the app's workers post, in one place.

Worker threads reach the UI only through these (``post_message`` is
thread-safe); the handlers run on the app's event loop. A section's worker
posts to that section; the app's own worker (predictions) to the app.
Textual's Message initialises dataclass messages itself (``__post_init__``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class Traced(Message):
    """A model was traced into a BlockChain."""

    chain: Any
    seconds: float


@dataclass
class MeasureStarted(Message):
    """A measurement began: ``total`` blocks (plus the full model when asked)."""

    total: int
    target: str


@dataclass
class MeasureProgress(Message):
    """One progress event from the engine (or the remote agent)."""

    event: Any


@dataclass
class MeasureLog(Message):
    """A line for the measure log pane."""

    text: str


@dataclass
class MeasureDone(Message):
    """A measurement ended (``cancelled`` when the user stopped it)."""

    result: Any
    cancelled: bool


@dataclass
class HostKeyQuestion(Message):
    """An SSH host is not in known_hosts: ask the user to accept or refuse its key."""

    host: str
    port: int
    key_type: str
    fingerprint: str


@dataclass
class TimesReady(Message):
    """The block times of the Partition section's devices (or the one-line reason there are none)."""

    chain: Any
    devices: list[Any]
    link: Any
    table: Any
    columns: list[Any]
    error: str | None = None
    quiet: bool = False  # the error is shown in place, without a notification (the section was only shown)
    sources: list[Any] = field(default_factory=list)  # per column: where its times come from (tui.labels.Source)
    token: int = 0  # which request these answer (an older request's answer is dropped)


@dataclass
class PipelineDone(Message):
    """A real pipeline run finished: its report, to show beside the estimate."""

    report: Any


@dataclass
class Predicted(Message):
    """The chosen predictor's per-block seconds for a chain are ready (``key``: the predictor file);
    ``bounds``: its calibrated interval's (low seconds, high seconds, level), or None."""

    chain: Any
    key: str
    times: list[float]
    bounds: Any = None


@dataclass
class AcceleratorFound(Message):
    """This machine has an accelerator to measure on (``kind``: ``cuda``; ``name``: the device's name)."""

    kind: str
    name: str


@dataclass
class CalibrateEvent(Message):
    """One event of a calibration (:func:`gapp_tui.predict.calibrate.calibrate`'s ``on_event`` dicts)."""

    event: dict[str, Any]


@dataclass
class CalibrateDone(Message):
    """A calibration ended: its report (the predictor written and recorded), or why it stopped (``stopped``)."""

    report: dict[str, Any] | None
    stopped: str | None = None
