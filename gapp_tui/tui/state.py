"""What the terminal app remembers between runs: last model, host, measurement settings, predictor and link.

A small JSON file in the user's config directory (``platformdirs``), or the
path in ``GAPP_TUI_STATE`` (tests point it at a temporary file). A missing or
unreadable file gives the defaults: remembering is a convenience, never a
reason to fail at start-up.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir

ENV_VAR = "GAPP_TUI_STATE"


def state_path() -> Path:
    """Where the state file lives (``$GAPP_TUI_STATE`` wins)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(user_config_dir("gapp")) / "tui.json"


@dataclasses.dataclass
class UiState:
    """The fields the app restores at start-up; every field has a safe default."""

    model: str = "resnet18"
    input_size: str = ""  # empty: the model's natural size
    batch_size: int = 1
    num_classes: int = 1000
    granularity: str = "natural"
    host: str = ""  # user@host, empty: this machine
    port: int = 22
    identity: str = ""
    known_hosts: str = ""  # empty: ~/.ssh/known_hosts
    remote_python: str = "python3"
    # how to measure (the Measure section's form)
    mode: str = "in-context"
    threads: str = ""  # empty: every core
    precision: str = "normal"  # normal (1% interval) | quick
    dtype: str = "float32"
    #: the predictor shown beside measured times (a file path; empty: none)
    predictor: str = ""
    bandwidth: str = "100Mbit/s"
    latency: str = "2ms"
    communication: str = "overlapped"
    devices: str = "pi=2GFLOP/s, server=measured"

    @classmethod
    def load(cls, path: Path | None = None) -> UiState:
        path = path or state_path()
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        default = cls()
        for key, value in raw.items():
            if key in known and isinstance(value, type(getattr(default, key))):
                kwargs[key] = value
        return cls(**kwargs)

    def save(self, path: Path | None = None) -> bool:
        """Write the state; False (and nothing raised) when the directory is not writable."""
        path = path or state_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2))
            tmp.replace(path)
            return True
        except OSError:
            return False
