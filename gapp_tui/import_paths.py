"""Import paths (``package.module:callable``): resolving one, and completing a prefix of one.

Completion never imports a package to list what is in it: module names come
from the file system (``pkgutil.iter_modules`` over the package's
directories), and the callables of a module from its source (``ast``: the
public functions and classes it defines, and those of the modules it
star-imports from its own package, which is how ``timm.models`` and
``pytorchcv.model_provider`` export their models). A module that is already
imported is read directly. Every answer is cached, so a completion list
follows each keystroke; the first listing of a large package's callables
(``timm.models``: about a hundred files) takes a second or two, so a UI calls
it from a worker.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import BadInput


def resolve(path: str) -> Any:
    """The object ``package.module:attr.attr`` names (importing the module); BadInput when it cannot be found."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise BadInput(f"import path {path!r} is malformed; give package.module:callable")
    # like `python -m` and uvicorn: modules in the current directory are importable
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"import path {path!r}: module {module_name!r} cannot be imported ({exc})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BadInput(f"import path {path!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BadInput(f"import path {path!r} names a {type(obj).__name__}, not a callable returning a module")
    return obj


# --------------------------------------------------------------------------- completion


#: one completion at a time: a UI calls it from a thread per keystroke, and two threads parsing at once
#: would each read the same files (the caches fill on a miss) and can break CPython 3.11's ast
#: ("AST constructor recursion depth mismatch")
_LOCK = threading.Lock()


def complete(prefix: str, limit: int = 50) -> list[str]:
    """Import paths that extend ``prefix``, sorted, at most ``limit``.

    ``tim`` -> ``timm``, ...; ``timm.mo`` -> ``timm.models``, ...;
    ``timm.models:vit_t`` -> ``timm.models:vit_tiny_patch16_224``, ...
    A prefix naming a module exactly is also offered with its colon
    (``timm.models`` -> ``timm.models:``). Private names (``_x``) only when the
    prefix asks for them.
    """
    with _LOCK:
        return _complete(prefix.strip(), limit)


def _complete(prefix: str, limit: int) -> list[str]:
    if ":" in prefix:
        module, _, start = prefix.partition(":")
        head, _, last = start.rpartition(".")
        if head:  # an attribute of a class: not completed
            return []
        hidden = last.startswith("_")
        names = [n for n in callables(module) if n.startswith(last) and (hidden or not n.startswith("_"))]
        return [f"{module}:{n}" for n in names[:limit]]
    parent, _, last = prefix.rpartition(".")
    children = submodules(parent) if parent else top_level_modules()
    hidden = last.startswith("_")
    out = [f"{parent}.{c}" if parent else c for c in children
           if c.startswith(last) and (hidden or not c.startswith("_"))]
    if prefix and module_file(prefix) is not None:
        out.insert(0, f"{prefix}:")
    return out[:limit]


@lru_cache(maxsize=1)
def top_level_modules() -> tuple[str, ...]:
    """Every top-level module and package on ``sys.path`` (nothing is imported)."""
    names = {m.name for m in pkgutil.iter_modules()}
    names |= set(sys.builtin_module_names)
    return tuple(sorted(names))


@lru_cache(maxsize=256)
def submodules(package: str) -> tuple[str, ...]:
    """The modules and subpackages of ``package`` (nothing is imported); empty when it is not a package."""
    dirs = _package_dirs(package)
    return tuple(sorted({m.name for m in pkgutil.iter_modules(dirs)})) if dirs else ()


def _package_dirs(package: str) -> list[str]:
    loaded = sys.modules.get(package)
    if loaded is not None:
        return list(getattr(loaded, "__path__", []) or [])
    top, *rest = package.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: found, not imported
    except (ImportError, ValueError):
        return []
    dirs = list(spec.submodule_search_locations or []) if spec else []
    for part in rest:
        dirs = [os.path.join(d, part) for d in dirs if os.path.isdir(os.path.join(d, part))]
    return dirs


@lru_cache(maxsize=256)
def module_file(module: str) -> Path | None:
    """The source file of ``module`` (``__init__.py`` for a package), found without importing it."""
    parent, _, last = module.rpartition(".")
    if parent:
        dirs = _package_dirs(parent)
    else:
        try:
            spec = importlib.util.find_spec(last)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        if spec.origin and spec.origin.endswith(".py"):
            return Path(spec.origin)
        return None
    for d in dirs:
        for candidate in (Path(d) / last / "__init__.py", Path(d) / f"{last}.py"):
            if candidate.is_file():
                return candidate
    return None


@lru_cache(maxsize=256)
def callables(module: str) -> tuple[str, ...]:
    """Functions and classes of ``module``: from the module when it is imported, else from its source."""
    loaded = sys.modules.get(module)
    path = module_file(module) if loaded is None else None
    if path is not None and "_LazyModule(" in path.read_text(encoding="utf-8", errors="replace"):
        # a lazy package (transformers) lists its names in dir() without importing what they live in,
        # while its sources spread them over hundreds of files
        try:
            loaded = importlib.import_module(module)
        except Exception:  # noqa: BLE001 -- completion never fails
            return ()
        return tuple(sorted(n for n in dir(loaded) if not n.startswith("__")))
    if loaded is not None:
        return tuple(sorted(n for n, v in vars(loaded).items() if callable(v) and not n.startswith("__")))
    names: set[str] = set()
    _defined(module, names, seen=set())
    return tuple(sorted(n for n in names if not n.startswith("__")))


def _defined(module: str, names: set[str], seen: set[str]) -> None:
    if module in seen or len(seen) > 400:
        return
    seen.add(module)
    path = module_file(module)
    if path is None:
        return
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names) and node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
            _defined(target, names, seen)
        elif isinstance(node, ast.ImportFrom) and node.level:  # `from .resnet import resnet18`: re-exported
            names.update(a.asname or a.name for a in node.names if a.name != "*")


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Top-level statements, including those inside ``if``/``try`` (``if TYPE_CHECKING:``, optional imports)."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            out += _statements(node.body) + _statements(node.orelse)
        elif isinstance(node, ast.Try):
            out += _statements(node.body) + _statements(node.orelse)
        else:
            out.append(node)
    return out
