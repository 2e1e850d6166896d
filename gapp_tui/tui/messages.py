"""Every message the app's workers post, in one place.

Worker threads reach the UI only through these (``post_message`` is
thread-safe); the handlers run on the app's event loop. A section's worker
posts to that section; the app's own worker (predictions) to the app.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Traced(Message):
    """A model was traced into a BlockChain."""

    def __init__(self, chain: Any, seconds: float) -> None:
        self.chain = chain
        self.seconds = seconds
        super().__init__()


class MeasureStarted(Message):
    """A measurement began: ``total`` blocks (plus the full model when asked)."""

    def __init__(self, total: int, target: str) -> None:
        self.total = total
        self.target = target
        super().__init__()


class MeasureProgress(Message):
    """One progress event from the engine (or the remote agent)."""

    def __init__(self, event: Any) -> None:
        self.event = event
        super().__init__()


class MeasureLog(Message):
    """A line for the measure log pane."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()


class MeasureDone(Message):
    """A measurement ended (``cancelled`` when the user stopped it)."""

    def __init__(self, result: Any, cancelled: bool) -> None:
        self.result = result
        self.cancelled = cancelled
        super().__init__()


class HostKeyQuestion(Message):
    """An SSH host is not in known_hosts: ask the user to accept or refuse its key."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str) -> None:
        self.host = host
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        super().__init__()


class TimesReady(Message):
    """The block times of the Partition section's devices (or the one-line reason there are none)."""

    def __init__(self, chain: Any, devices: list[Any], link: Any, table: Any, columns: list[Any],
                 error: str | None = None, quiet: bool = False, sources: list[Any] | None = None,
                 token: int = 0) -> None:
        self.quiet = quiet  # the error is shown in place, without a notification (the section was only shown)
        self.sources = sources or []  # per column: where its times come from, in words (tui.labels.Source)
        self.token = token  # which request these answer (an older request's answer is dropped)
        self.chain = chain
        self.devices = devices
        self.link = link
        self.table = table
        self.columns = columns
        self.error = error
        super().__init__()


class PipelineDone(Message):
    """A real pipeline run finished: its report, to show beside the estimate."""

    def __init__(self, report: Any) -> None:
        self.report = report
        super().__init__()


class Predicted(Message):
    """The chosen predictor's per-block seconds for a chain are ready (``key``: the predictor file);
    ``bounds``: its calibrated interval's (low seconds, high seconds, level), or None."""

    def __init__(self, chain: Any, key: str, times: list[float], bounds: Any = None) -> None:
        self.chain = chain
        self.key = key
        self.times = times
        self.bounds = bounds
        super().__init__()


class AcceleratorFound(Message):
    """This machine has an accelerator to measure on (``kind``: ``cuda``; ``name``: the device's name)."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__()


class CalibrateEvent(Message):
    """One event of a calibration (:func:`gapp_tui.predict.calibrate.calibrate`'s ``on_event`` dicts)."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        super().__init__()


class CalibrateDone(Message):
    """A calibration ended: its report (the predictor written and recorded), or why it stopped (``stopped``)."""

    def __init__(self, report: dict[str, Any] | None, stopped: str | None = None) -> None:
        self.report = report
        self.stopped = stopped
        super().__init__()
