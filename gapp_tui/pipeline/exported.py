"""An exported plan as a run sees it: ``gapp pipeline run --from-export DIR``.

:func:`read_export` reads the manifest ``gapp export`` wrote (through the
stand-alone runner's :func:`~gapp_tui.stage_runner.read_manifest`) and gives
the launcher (:func:`gapp_tui.pipeline.run.run_plan`) everything that differs
from a run built from the model:

* the plan (the manifest's own copy of it; a PLAN given beside the export must
  be the same model, devices and boundaries, and its hosts are used);
* per stage the runtime it runs under and the SHA-256 of its artifact, which
  takes the place of the weights digest (each stage checks its artifact
  against the manifest before it loads it, and reports the digest);
* the bytes each cut sends on the wire (int8 where the export quantized it);
* the estimate to compare with: the manifest's ``estimate.wire`` (the plan's
  stage compute times with the bytes the exported cuts really send);
* how the output is checked: as the export checked itself (within 1e-4 of the
  unsplit model when everything is float32; cosine at least 0.99 with an int8
  stage or cut).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import stage_runner
from ..errors import BadInput
from .config import PlanView, read_plan
from .process import export_files


@dataclasses.dataclass(frozen=True)
class ExportedRun:
    """What the launcher needs from an export directory (see the module docstring)."""

    directory: Path
    manifest: dict[str, Any]
    view: PlanView
    seed: int
    runtimes: tuple[str, ...]  # per stage
    digests: tuple[str | None, ...]  # per stage: the artifact's SHA-256 (None: an empty stage)
    wire_bytes: Mapping[int, float]  # chain cut index -> bytes sent there (cuts between stages)
    lossy: bool  # an int8 stage or cut: the output is checked by its cosine
    tolerance: float | None
    min_cosine: float | None

    @property
    def estimate(self) -> dict[str, Any]:
        """The manifest's estimate with the bytes the exported cuts send (empty for a hand-made plan)."""
        return dict((self.manifest.get("estimate") or {}).get("wire") or {})

    def files(self, rank: int) -> dict[str, Path]:
        """What stage ``rank`` takes to a remote host (:func:`gapp_tui.pipeline.process.export_files`)."""
        return export_files(self.directory, self.manifest, rank)


def _plan_doc(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The plan of an export: its own copy, or (a manifest written before it kept one) rebuilt from its fields."""
    if isinstance(manifest.get("plan"), Mapping):
        return dict(manifest["plan"])
    k = len(manifest["devices"])
    links = list(manifest.get("links") or [])
    return {"version": 1, "model": manifest["model"], "granularity": manifest.get("granularity", "natural"),
            "devices": manifest["devices"], "hosts": manifest.get("hosts") or {},
            "boundaries": manifest["boundaries"], "links": links, "return_output": len(links) == k > 1,
            "estimate": (manifest.get("estimate") or {}).get("plan") or {}, "blocks": manifest.get("blocks") or []}


def read_export(directory: str | Path, plan: Any = None) -> ExportedRun:
    """The export in ``directory`` (BadInput, one line, when it is not one or does not fit ``plan``)."""
    path = Path(directory)
    try:
        manifest = stage_runner.read_manifest(path)
    except stage_runner.BadManifest as exc:
        raise BadInput(str(exc)) from None
    view = read_plan(_plan_doc(manifest))
    view = dataclasses.replace(view, source=str(path))
    if plan is not None:
        given = read_plan(plan)
        for what, a, b in (("model", given.spec, view.spec), ("devices", given.devices, view.devices),
                           ("boundaries", given.boundaries, view.boundaries),
                           ("granularity", given.granularity, view.granularity)):
            if a != b:
                raise BadInput(f"plan {given.source} and the export in {str(path)!r} differ in their {what}"
                               f" ({_show(a)} against {_show(b)}); export the plan again or run the export alone")
        view = dataclasses.replace(view, hosts=dict(given.hosts), source=given.source)
    stages = manifest["stages"]
    for st in stages:
        art = st.get("artifact")
        if art and not (path / art).is_file():
            raise BadInput(f"artifact {str(path / art)!r} of stage {st['index']} is missing; copy the whole export"
                           " directory, or export the plan again")
        if st.get("runtime") not in stage_runner.RUNTIMES:
            raise BadInput(f"stage {st['index']} of {str(path)!r} names runtime {st.get('runtime')!r}; this GAPP runs"
                           f" {', '.join(stage_runner.RUNTIMES)}")
    wire: dict[int, float] = {}
    for c in manifest["cuts"][1:-1]:
        wire.setdefault(int(c["index"]), float(sum(w["bytes"] for w in c["wire"])))
    check = manifest.get("check") or {}
    lossy = any(s.get("quantize") for s in stages) or any(
        w["dtype"] == "int8" for c in manifest["cuts"] for w in c["wire"])
    return ExportedRun(
        directory=path,
        manifest=manifest,
        view=view,
        seed=int(manifest.get("seed", 0)),
        runtimes=tuple(s["runtime"] for s in stages),
        digests=tuple(s.get("sha256") for s in stages),
        wire_bytes=wire,
        lossy=lossy,
        tolerance=None if lossy else float(check.get("tolerance") or 1e-4),
        min_cosine=float(check.get("min_cosine") or 0.99) if lossy else None,
    )


def _show(value: Any) -> str:
    if hasattr(value, "label"):
        return value.label()
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
