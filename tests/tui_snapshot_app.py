"""A deterministic GappApp for snapshot tests: a traced resnet18 and fixed, synthetic store rows.

Snapshots must not change from run to run, so the rows here are made up from
each block's FLOPs (they are never shown as measurements anywhere else); the
Pilot tests in test_tui.py use real measurements.
"""

from __future__ import annotations

from pathlib import Path

from gapp_tui.blocks import BlockChain
from gapp_tui.tui.app import GappApp
from gapp_tui.tui.state import UiState
from gapp_tui.tui.workspace import Workspace
from gapp_tui.zoo import ModelSpec

DEVICE = "snapshot-cpu-00000000"


def fixed_rows(chain) -> list[dict]:
    from gapp_tui.measure.record import RowContext, make_row
    from gapp_tui.store import setting_key

    spec = chain.spec
    setting = setting_key(spec.shape, "float32", 1, chain.granularity, spec.num_classes, "cpu")
    ctx = RowContext(device_key=DEVICE, model=spec.name, model_label=spec.label(), setting=setting,
                     granularity=chain.granularity, batch_size=spec.shape[0],
                     input_shape="x".join(map(str, spec.shape)), num_classes=spec.num_classes, dtype="float32",
                     threads=1, device_type="cpu", chain_sig=chain.signature())
    rows = []
    total = 0.0
    for b in chain.blocks:
        ms = round(b.flops / 4e9 * 1e3 + 0.05, 4)
        total += ms
        stats = {"median_ms": ms, "mean_ms": ms * 1.01, "std_ms": ms * 0.02, "iqr_ms": round(ms * 0.03, 4),
                 "min_ms": ms * 0.97, "max_ms": ms * 1.1, "runs": 20, "ci_rel": 0.01}
        for mode in ("in-context", "standalone"):
            rows.append(make_row(ctx, mode, b.index, b.name, {**stats, "median_ms": ms * (1.0 if mode == "in-context" else 1.05)}))
    full = round(total * 0.97, 4)
    rows.append(make_row(ctx, "full", -1, "full model", {"median_ms": full, "mean_ms": full, "std_ms": 0.0,
                                                         "iqr_ms": 0.0, "min_ms": full, "max_ms": full, "runs": 20,
                                                         "ci_rel": 0.01}))
    return rows


def make_app(tmp_path: Path, monkeypatch, with_rows: bool = True) -> GappApp:
    """resnet18 at 32x32 (natural blocks), traced; the store holds fixed rows of one device."""
    from gapp_tui.store import Store

    monkeypatch.setenv("GAPP_DB", str(tmp_path / "gapp.sqlite"))
    monkeypatch.setenv("GAPP_TUI_STATE", str(tmp_path / "tui.json"))
    monkeypatch.setenv("GAPP_PLANS", str(tmp_path / "plans"))
    spec = ModelSpec("resnet18", input_size=32)
    chain = BlockChain.from_spec(spec, "natural", device="meta")
    if with_rows:
        with Store() as store:
            store.add_device({"key": DEVICE, "hostname": "snapshot", "cpu_model": "fixed"})
            store.add_rows(fixed_rows(chain))
    ws = Workspace(spec=spec, chain=chain, trace_seconds=0.25, device=DEVICE if with_rows else None)
    state = UiState(model="resnet18", input_size="32", host="", identity="")
    return GappApp(state=state, remember=False, workspace=ws)
