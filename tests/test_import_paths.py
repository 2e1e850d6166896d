"""Import paths: completion without importing, resolution with one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gapp_tui.import_paths import callables, complete, submodules

ROOT = Path(__file__).resolve().parents[1]


def test_completes_modules_of_a_package_and_callables_of_a_module():
    assert "gapp_tui.blocks" in complete("gapp_tui.bl")
    assert complete("tests.custom_models:two") == ["tests.custom_models:two_branch", "tests.custom_models:two_images"]
    assert complete("tests.custom_models:two_b") == ["tests.custom_models:two_branch"]
    assert complete("tests.custom_models")[0] == "tests.custom_models:"
    assert "blocks" in submodules("gapp_tui") and "tui" in submodules("gapp_tui")
    assert complete("no_such_package_x.y") == []


def test_private_names_only_when_asked():
    assert not any(c.split(":")[1].startswith("_") for c in complete("gapp_tui.zoo:"))
    assert "gapp_tui.zoo:_build_on_meta" in complete("gapp_tui.zoo:_b")


def test_completion_imports_nothing():
    # a fresh interpreter: completing a top-level name, a submodule and the callables of a module
    # that star-imports its package's modules reads files only
    code = (
        "import sys, json; from gapp_tui.import_paths import complete;"
        "a = complete('gapp_tu'); b = complete('gapp_tui.pre'); c = complete('tests.custom_models:pad');"
        "print(json.dumps([a, b, c, 'torch' in sys.modules, 'gapp_tui.blocks' in sys.modules]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    a, b, c, torch_loaded, blocks_loaded = json.loads(r.stdout)
    assert "gapp_tui" in a and "gapp_tui.predict" in b and c == ["tests.custom_models:padded"]
    assert not torch_loaded and not blocks_loaded


def test_star_imports_of_a_model_zoo_are_followed():
    pytest.importorskip("timm")
    names = callables("timm.models")
    assert "vit_tiny_patch16_224" in names and "resnet18" in names


def test_completions_from_several_threads_list_a_package_once():
    """The app completes from a thread per keystroke: concurrent calls wait for one listing, not parse it
    each (two threads in ``ast`` at once can fail in CPython 3.11). In a fresh process: timm not imported,
    so its callables come from its sources."""
    pytest.importorskip("timm")
    code = (
        "import json, sys, threading\n"
        "from gapp_tui.import_paths import callables, complete\n"
        "out, errors = [], []\n"
        "def one():\n"
        "    try:\n"
        "        out.append(complete('timm.models:vit_t'))\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=one) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(json.dumps([out, errors, callables.cache_info().misses, 'timm.models' in sys.modules]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    out, errors, misses, imported = json.loads(r.stdout)
    assert errors == [] and len(out) == 4 and all(o == out[0] for o in out)
    assert "timm.models:vit_tiny_patch16_224" in out[0] and not imported
    assert misses == 1
