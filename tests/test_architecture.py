"""The layout the code promises (docs/architecture.md): no import cycles, each area imports only below it."""

from __future__ import annotations

import ast

from tests.imports import ROOT, cycles, graph, modules

#: area -> the areas it may import (an area is a top-level module or package of gapp_tui)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "units": {"errors"},
    "ssh": {"errors"},
    "store": {"errors", "units"},
    # capture: model building, import paths, Hugging Face configs, shapes, the front ends, the blocks
    "shapes": {"errors"},
    "granularity": {"errors"},
    "hf": {"errors"},
    "import_paths": {"errors"},
    "capture": {"errors", "granularity", "shapes"},
    "zoo": {"errors", "capture", "hf", "import_paths"},
    "blocks": {"errors", "units", "zoo", "capture", "granularity", "shapes"},
    "composite": {"errors", "blocks", "shapes"},
    "aten_ops": {"errors", "composite"},
    "features": {"errors", "units", "zoo", "blocks", "composite", "aten_ops", "shapes"},
    "partition": {"errors", "units", "store"},  # the store's setting format, not its file
    # the stand-alone stage runner is copied to a device: it imports nothing of gapp_tui
    "stage_runner": set(),
    "runtime": {"errors", "stage_runner"},
    # the agent loads artifacts with the stand-alone runner (copied next to it on the device)
    "measure": {"errors", "units", "zoo", "blocks", "store", "ssh", "runtime", "stage_runner"},
    "predict": {"shapes", "granularity", "hf", "import_paths", "capture", "aten_ops", "errors", "units", "zoo", "blocks", "composite", "features", "store", "measure"},
    "link_probe": {"errors", "units", "ssh", "store", "partition"},
    "pipeline": {"", "errors", "units", "zoo", "blocks", "partition", "ssh", "store", "runtime", "stage_runner"},
    "cli": {"", "shapes", "granularity", "hf", "import_paths", "capture", "aten_ops", "errors", "units", "ssh", "store", "zoo", "blocks", "composite", "features", "partition", "measure",
            "predict", "link_probe", "pipeline", "runtime", "stage_runner", "tui"},
    "tui": {"shapes", "granularity", "hf", "import_paths", "capture", "aten_ops", "errors", "units", "ssh", "store", "zoo", "blocks", "composite", "features", "partition", "measure",
            "predict", "link_probe", "pipeline", "runtime", "stage_runner"},
    # the seed's entry points and `python -m gapp_tui` are command lines
    "time_measurer": {"cli"},
    "feature_extractor": {"cli"},
    "__main__": {"cli"},
    "": set(),  # gapp_tui/__init__.py: the version only
}
#: the one place the CLI opens the app
CLI_OPENS_THE_APP = "gapp_tui.cli.tui"


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles_inside_gapp_tui():
    """Counting imports inside functions too: a lazy import is still a dependency."""
    assert cycles(graph()) == []


def test_every_area_imports_only_the_areas_below_it():
    wrong = []
    for module, deps in graph().items():
        here = area(module)
        assert here in ALLOWED, f"{module}: area {here!r} is not in the layering table (docs/architecture.md)"
        for dep in deps:
            there = area(dep)
            if there == here:
                continue
            if there == "tui" and module != CLI_OPENS_THE_APP:
                wrong.append(f"{module} -> {dep} (only {CLI_OPENS_THE_APP} opens the app)")
            elif there not in ALLOWED[here]:
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_the_plain_areas_import_no_torch_at_module_level():
    """partition, units, store, ssh and errors load without torch (the TUI re-estimates on every key)."""
    plain = {"partition", "units", "store", "ssh", "errors"}
    heavy = []
    for name, path in modules().items():
        if area(name) not in plain:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                heavy += [f"{name}: {n}" for n in names if n.split(".")[0] in ("torch", "torchvision", "torch_geometric")]
    assert heavy == []


def test_a_module_over_500_lines_says_which_one_concept_it_holds():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 500 and "One concept:" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    assert long == [], "split these or say 'One concept: ...' in their docstring"
