"""Which predictor a device has of its own, and which machine a predictor was made for (no torch imported).

``gapp calibrate`` records the predictor it makes in the store
(:meth:`gapp_tui.store.Store.set_device_predictor`). :func:`predictor_for`
finds it again without loading torch (``gapp results devices`` lists them
quickly); a device with none gets ``None``, never silently another machine's
predictor — the caller may fall back to :func:`shipped`, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..store import Store, default_path

#: the predictor GAPP ships (trained on this project's corpus)
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "predictor_cpu.pt"


def shipped_machine() -> str:
    """The machine the shipped predictor was made for, in words (from the corpus's meta file)."""
    try:
        meta = json.loads((SHIPPED.parent / "corpus_meta.json").read_text())
    except (OSError, ValueError):
        return "GAPP's corpus machine"
    m, threads = meta.get("machine") or {}, int(meta.get("threads", 1))
    return (f"GAPP's corpus machine ({m.get('cores', '?')}-core {m.get('cpu_model', 'CPU')},"
            f" {threads} thread{'s' if threads != 1 else ''}, eager)")


def shipped() -> dict[str, Any]:
    """The shipped predictor: ``{"path", "made_for": {"device_key", "label", "runtime", "threads"}, "own": False}``."""
    return {"path": str(SHIPPED), "own": False,
            "made_for": {"device_key": "corpus-cpu-t1", "label": shipped_machine(), "runtime": "eager", "threads": 1}}


def predictor_for(device_key: str, runtime: str = "eager", threads: int | None = None,
                  db: str | Path | None = None, store: Any = None) -> dict[str, Any] | None:
    """The predictor recorded for ``device_key`` (and ``runtime``, ``threads``), or None when it has none.

    ``{"path", "made_for": {...}, "own": True, "device_key", "runtime", "threads", "created_at"}``; a
    record whose file has gone is treated as absent. ``store`` (an open Store) or ``db`` (its path; default
    ``$GAPP_DB`` / the user data directory) says where to look; a missing store file means no record.
    """
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
