"""Which predictor a device's block times come from, and which machine it was made for (no torch imported).

``gapp calibrate`` records the predictor it makes in the store
(:meth:`gapp_tui.store.Store.set_device_predictor`). Everything that shows
predicted times -- ``gapp predict``, ``gapp partition --times predicted``, the
TUI -- asks :func:`predictor_for` for the device it shows, and names the
machine the predictor was made for beside the numbers: a device with no
predictor of its own gets ``None`` here, never silently another machine's
times (the caller may fall back to :func:`shipped`, saying so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SHIPPED_PATH = DATA_DIR / "predictor_cpu.pt"


def shipped() -> dict[str, Any]:
    """The shipped predictor: ``{"path", "made_for": {"device_key", "label", "runtime", "threads"}, "own": False}``."""
    label = "GAPP's corpus machine"
    try:
        meta = json.loads((DATA_DIR / "corpus_meta.json").read_text())
        m = meta.get("machine") or {}
        label = (f"GAPP's corpus machine ({m.get('cores', '?')}-core {m.get('cpu_model', 'CPU')},"
                 f" {meta.get('threads', 1)} thread{'s' if meta.get('threads', 1) != 1 else ''}, eager)")
        threads = int(meta.get("threads", 1))
    except (OSError, ValueError):
        threads = 1
    return {"path": str(SHIPPED_PATH), "own": False,
            "made_for": {"device_key": "corpus-cpu-t1", "label": label, "runtime": "eager", "threads": threads}}


def predictor_for(device_key: str, runtime: str = "eager", threads: int | None = None,
                  db: str | Path | None = None, store: Any = None) -> dict[str, Any] | None:
    """The predictor recorded for ``device_key`` (and ``runtime``, ``threads``), or None when it has none.

    ``{"path", "made_for": {...}, "own": True, "device_key", "runtime", "threads", "created_at"}``; a
    record whose file has gone is treated as absent. ``store`` (an open Store) or ``db`` (its path; default
    ``$GAPP_DB`` / the user data directory) says where to look; a missing store file means no record.
    """
    from ..store import Store, default_path

    if store is not None:
        rec = store.device_predictor(device_key, runtime, threads)
    else:
        path = Path(db) if db is not None else default_path()
        if not path.is_file():
            return None
        with Store(path, readonly=True) as st:
            rec = st.device_predictor(device_key, runtime, threads)
    if rec is None or not Path(rec["path"]).is_file():
        return None
    return {**rec, "own": True}


def describe_machine(made_for: dict[str, Any]) -> str:
    """One line naming the machine a predictor was made for."""
    return str(made_for.get("label") or made_for.get("device_key") or "an unknown machine")
