"""What the app is working on now: the model, its chain, and what was measured.

Plain data shared by the sections (no UI): the one source of truth for the
current model and plan. The sections read it when they are shown, and the
app's message handlers update it; tracing another model clears everything that
belonged to the previous one (:meth:`GappApp.set_chain`).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Workspace:
    spec: Any = None  # zoo.ModelSpec
    chain: Any = None  # blocks.BlockChain
    trace_seconds: float = 0.0
    #: the latest measurement result of this model (engine's result object), if any
    measurement: Any = None
    #: the device the Results and Partition sections show (a store device id/label)
    device: str | None = None
    #: the chosen predictor's path (None: no predictor)
    predictor: str | None = None
    #: the user's plan in the Partition section (cut indices between stages)
    cuts: tuple[int, ...] = ()
    #: for the status line: where and how the latest measurement ran ("measured here, 1 thread, 2/2 blocks")
    measured_words: str = ""
    #: for the status line: where each device's times come from ("pi FLOPs · server measured here")
    devices_words: str = ""
    #: for the status line: the plan's throughput and its share of the optimum
    plan_words: str = ""

    @property
    def ready(self) -> bool:
        return self.chain is not None

    def label(self) -> str:
        return self.spec.label() if self.spec is not None else "no model"
