"""Which predictor a device's times come from: the files there are, and the choice for a device.

A predictor is a file written by ``gapp train`` or ``gapp calibrate`` (which
records it in the store as the device's own: :meth:`gapp_tui.store.Store.set_device_predictor`,
found again by :func:`predictor_for`). The ones
to choose from (:func:`available`) are the one GAPP ships, every ``*.pt`` in
``$GAPP_PREDICTORS`` and in ``<user data dir>/gapp/predictors``, and those the
store records as a device's own (``gapp calibrate``). A device's predictor
(:func:`resolve`) is the one it names (a path or a name), else its own, else the
shipped one, which was made for another machine; :meth:`Choice.describe` says
which, wherever its numbers are shown.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from ..errors import BadInput, closest
from ..features import extract
from .predictor import Predictor, default_predictor_path

ENV_VAR = "GAPP_PREDICTORS"


@dataclasses.dataclass(frozen=True)
class Choice:
    """A predictor file, its name, the machine it was made for, and whether it is the device's own."""

    path: Path
    name: str
    made_for: str
    own: bool = False

    def describe(self, device: str) -> str:
        """One line for a view: ``predicted by NAME (made for MACHINE)``, plus a warning when not the device's own."""
        text = f"predicted by {self.name} (made for {self.made_for})"
        if not self.own:
            text += f": no predictor of {device}'s own yet (gapp calibrate)"
        return text


def folders() -> list[Path]:
    """Where predictor files are looked for, in order (``$GAPP_PREDICTORS`` first)."""
    found = [Path(user_data_dir("gapp", appauthor=False)) / "predictors"]
    if os.environ.get(ENV_VAR):
        found.insert(0, Path(os.environ[ENV_VAR]))
    return found


@lru_cache(maxsize=32)
def _made_for(path: str, mtime: float) -> str:
    """What a predictor file says it was made for (read once per file version)."""
    return load(path).machine


def made_for(path: str | Path) -> str:
    p = Path(path)
    return _made_for(str(p), p.stat().st_mtime)


def available(store: Any = None) -> list[Choice]:
    """Every predictor to choose from: the shipped one, the folders' files, the store's device predictors."""
    paths: list[Path] = []
    if default_predictor_path().is_file():
        paths.append(default_predictor_path())
    for folder in folders():
        if folder.is_dir():
            paths += sorted(folder.glob("*.pt"))
    out = {p.resolve(): Choice(p.resolve(), p.stem, "") for p in paths}
    for rec in (store.device_predictors() if store is not None else []):
        p = Path(rec["path"])
        if p.is_file():
            out[p.resolve()] = Choice(p.resolve(), p.stem, "", own=True)
    return list(out.values())


def resolve(ref: str | None, device: str, store: Any = None, runtime: str = "eager") -> Choice:
    """The predictor of ``device``: the one ``ref`` names (path or name), else its own for ``runtime``
    (``executorch``, ``onnxruntime-int8``...), else the shipped one (made for eager PyTorch on another machine)."""
    if ref:
        p = Path(ref).expanduser()
        if p.is_file():
            own = store is not None and any(Path(r["path"]) == p.resolve() for r in store.device_predictors(device))
            return Choice(p.resolve(), p.stem, made_for(p), own)
        if os.sep in ref or ref.endswith(".pt"):
            raise BadInput(f"predictor file {str(p)!r} of device {device!r} not found; give a file written by"
                           " `gapp train` or `gapp calibrate`")
        names = {c.name: c for c in available(store)}
        if ref in names:
            c = names[ref]
            return dataclasses.replace(c, made_for=made_for(c.path))
        raise BadInput(f"predictor {ref!r} of device {device!r} is neither a file nor a known predictor"
                       f"{closest(ref, names)} (known: {', '.join(sorted(names)) or 'none'}); give a path to a"
                       " file written by `gapp train` or `gapp calibrate`")
    record = store.device_predictor(device, runtime) if store is not None else None
    if record is not None and Path(record["path"]).is_file():
        p = Path(record["path"])
        return Choice(p, p.stem, made_for(p), own=True)
    shipped = default_predictor_path()
    return Choice(shipped, "the shipped predictor", made_for(shipped), own=False)


@lru_cache(maxsize=8)
def _loaded(path: str, mtime: float) -> Predictor:
    return Predictor.load(path)


def load(path: str | Path) -> Predictor:
    """The predictor in ``path`` (loaded once per file version)."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"predictor file {str(p)!r} not found; train one with `gapp train --out {p}`")
    return _loaded(str(p), p.stat().st_mtime)


def predict_chain(chain: Any, path: str | Path) -> list[float]:
    """Seconds per block of ``chain`` predicted by the predictor in ``path`` (features on the chain's shapes)."""
    return [float(ms) / 1e3 for ms in load(path).block_times(extract(chain, warn=False))]


def predict_chain_bounds(chain: Any, path: str | Path) -> tuple[list[float], tuple[list[float], list[float], float] | None]:
    """Seconds per block of ``chain`` and, when the predictor has a calibrated interval, each block's low and
    high seconds and the level, ``(low, high, level)`` (:meth:`Predictor.block_intervals`); the times are
    the same as :func:`predict_chain`'s."""
    pred = load(path)
    graphs = extract(chain, warn=False)
    times = [float(ms) / 1e3 for ms in pred.block_times(graphs)]
    iv = pred.block_intervals(graphs)
    if iv is None:
        return times, None
    return times, ([float(v) / 1e3 for v in iv["low"]], [float(v) / 1e3 for v in iv["high"]], float(iv["level"]))


def service(store: Any = None) -> Callable[[Any, Any], tuple[list[float], str, tuple[list[float], list[float], float] | None]]:
    """The block-times service's ``predict`` (:mod:`gapp_tui.partition.times`): a device's predictor resolved
    against ``store`` (its own, else the shipped one) and run on the chain; returns (seconds per block, note,
    ``(low, high, level)`` of the calibrated interval or None: :class:`gapp_tui.partition.times.Bounds`)."""

    def predict(chain: Any, device: Any) -> tuple[list[float], str, tuple[list[float], list[float], float] | None]:
        choice = resolve(device.ref, device.name, store, device.runtime_text)
        times, bounds = predict_chain_bounds(chain, choice.path)
        return times, choice.describe(device.name), bounds

    return predict
