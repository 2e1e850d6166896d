"""Training data: BlockGraphs joined with measured block times, and the splits.

A :class:`BlockDataset` holds ``graphs`` (BlockGraphs), ``items`` (one item
per measured block: ``[(graph id, 1)]``), ``y`` (milliseconds), and per item
its ``model``, ``family``, ``batch_size``, ``input_size`` and ``block_name``.

Sources of rows:

* :func:`load_corpus` -- the corpus kept in the repository
  (``gapp_tui/data/corpus_times.csv.gz``: torchvision blocks measured on the
  development machine's CPU, see ``corpus_meta.json``);
* :func:`synthetic_dataset` -- seeded random blocks measured on the same
  machine (``gapp_tui/data/synthetic_times.csv.gz``, family ``synthetic``;
  see :mod:`gapp_tui.predict.synthetic`), which widen the corpus and are
  never a held-out family;
* :func:`rows_from_store` -- a measurement store, for one device and one
  setting family (threads, dtype, mode).

Features are extracted from the models themselves on meta tensors (the
same extractor that serves predictions), and the block partition is checked
against each row's ``chain_sig`` so that times never attach to another
cutting of the model.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from ..blocks import BlockChain
from ..errors import BadInput, closest
from ..features import FEATURE_SCHEMA_VERSION, BlockGraph, extract
from ..store import parse_setting
from ..zoo import ModelSpec, family_of, is_import_path
from . import probes
from .synthetic import FAMILY, MODEL_NAME, sample

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
CORPUS_PATH = DATA_DIR / "corpus_times.csv.gz"
SYNTHETIC_PATH = DATA_DIR / "synthetic_times.csv.gz"


@dataclasses.dataclass
class BlockDataset:
    graphs: list[Any]
    items: list[list[tuple[int, int]]]
    y: np.ndarray
    model: list[str]
    family: list[str]
    batch_size: list[int]
    input_size: list[int]
    block_name: list[str]
    description: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def families(self) -> list[str]:
        return sorted(set(self.family))

    def describe(self) -> dict[str, Any]:
        return {**self.description, "blocks": len(self), "models": sorted(set(self.model)),
                "families": self.families(), "batch_sizes": sorted(set(self.batch_size)),
                "input_sizes": sorted(set(self.input_size)),
                "ms_range": [float(self.y.min()), float(self.y.max())] if len(self) else None}


def load_corpus(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows of the corpus file (gzip CSV): model, family, batch_size, input_size, block, block_name, median_ms, ..."""
    p = Path(path) if path else CORPUS_PATH
    if not p.is_file():
        raise BadInput(f"corpus file {str(p)!r} not found; rebuild it with benchmarks/build_corpus.py or give --corpus PATH")
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"corpus file {str(p)!r} is not a readable CSV ({exc}); rebuild it with benchmarks/build_corpus.py") from None
    for r in rows:
        r["batch_size"] = int(r["batch_size"])
        r["input_size"] = int(r["input_size"])
        r["block"] = int(r["block"])
        # the label: `time_ms` (min over the corpus's measurement passes) when present
        r["median_ms"] = float(r.get("time_ms") or r["median_ms"])
    return rows


def rows_from_store(store: Any, device: str | None = None, mode: str = "standalone",
                    threads: int | None = None, runtime: str = "eager", quantize: str | None = None) -> list[dict[str, Any]]:
    """Block rows of one device (and optionally one thread count) from a store, in the corpus's shape.

    Only rows measured under ``runtime`` (the setting's last part; eager when
    it names none) and, with ``quantize="int8"``, only int8 rows (else only
    float ones): a predictor is trained for one runtime and never on another's times.
    """
    devices = [d["key"] for d in store.devices()]
    if device is None:
        if len(devices) != 1:
            raise BadInput(f"the store holds {len(devices)} devices; name one with --device (devices: {', '.join(devices) or 'none'})")
        device = devices[0]
    if device not in devices:
        raise BadInput(f"device {device!r} has no rows in the store{closest(device, devices)} (devices: {', '.join(devices) or 'none'})")
    out = []
    for r in store.rows(device=device, mode=mode):
        if threads is not None and r["threads"] != threads:
            continue
        if r["block"] < 0 or not r["median_ms"] or r["granularity"] != "natural":
            continue
        try:
            if parse_setting(r["setting"])["runtime"] != runtime or (r["dtype"] == "int8") != (quantize == "int8"):
                continue
        except BadInput:
            continue
        # several inputs: their shapes joined by + (2x3x16x16+2x3x16x16); the first gives batch and size
        shapes = [tuple(int(v) for v in part.split("x")) for part in str(r["input_shape"]).split("+")]
        shape = shapes[0]
        out.append({"model": r["model"], "family": family_of(r["model"]), "batch_size": shape[0],
                    "input_size": shape[-1], "input_shape": shape if len(shapes) == 1 else tuple(shapes),
                    "num_classes": r["num_classes"],
                    "block": r["block"], "block_name": r["block_name"], "median_ms": float(r["median_ms"]),
                    "chain_sig": r["chain_sig"], "threads": r["threads"], "dtype": r["dtype"]})
    if not out:
        raise BadInput(f"device {device!r} has no {mode} block rows at natural granularity"
                       f"{'' if threads is None else f' with {threads} threads'} under runtime {runtime}"
                       f"{' int8' if quantize else ''}; measure some with `gapp measure --runtime {runtime}`")
    return out


def model_graphs(model: str, batch_size: int, input_size: int | None = None, input_shape: tuple[Any, ...] | None = None,
                 num_classes: int = 1000) -> tuple[list[Any], str]:
    """(BlockGraphs at natural granularity, chain signature) of one model and input, on meta tensors.

    ``input_shape``: one shape, or a tuple of shapes for a model of several inputs (float inputs: a
    stored row does not say an input's dtype).

    The probe suite (:data:`gapp_tui.predict.probes.MODEL_NAME`, what ``gapp calibrate`` measures) is not
    a model but a pool of independent blocks: its graphs come from :mod:`gapp_tui.predict.probes`.
    """
    if model == probes.MODEL_NAME:
        return probes.graphs(), probes.signature()

    if input_shape is not None and is_import_path(model):
        spec = ModelSpec(model, batch_size=batch_size, num_classes=num_classes, input_shape=input_shape)
    else:
        spec = ModelSpec(model, batch_size=batch_size, num_classes=num_classes, input_size=input_size)
    chain = BlockChain.from_spec(spec, "natural", device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = extract(chain, warn=False)
    return graphs, chain.signature()


def assemble(rows: Sequence[dict[str, Any]], description: dict[str, Any] | None = None,
             progress: Callable[[str], None] | None = None, cache: str | Path | None = None) -> BlockDataset:
    """Join rows with the BlockGraphs of their models (one extraction per model and input)."""
    if not rows:
        raise BadInput("no measured blocks to train on; measure some with `gapp measure` or use the corpus")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["model"], r["batch_size"], r["input_size"], tuple(r.get("input_shape") or ()),
               int(r.get("num_classes") or 1000), str(r.get("dtype") or "float32"))
        groups.setdefault(key, []).append(r)
    cached = _load_cache(cache)
    n_cached = len(cached)
    graphs: list[Any] = []
    ds = BlockDataset([], [], np.zeros(0), [], [], [], [], [], dict(description or {}))
    ys: list[float] = []
    skipped: list[str] = []
    for n, (key, rs) in enumerate(sorted(groups.items())):
        model, b, s, shape, classes, dtype = key
        if progress:
            progress(f"features {n + 1}/{len(groups)}: {model} b{b} s{s}")
        ckey = f"{model}|{b}|{s}|{shape}|{classes}"
        if ckey in cached:
            gs, sig = cached[ckey]
        else:
            try:
                gs, sig = model_graphs(model, b, s, shape or None, classes)
            except Exception as exc:  # a model this torchvision cannot build any more: skip, say so
                skipped.append(f"{model} ({type(exc).__name__})")
                continue
            cached[ckey] = (gs, sig)
        if dtype != "float32":  # quantized blocks: the same graphs, computing in int8
            gs = [g.with_dtype(dtype) for g in gs]
        for r in rs:
            if r.get("chain_sig") and r["chain_sig"] != sig:
                skipped.append(f"{model} b{b} s{s} (block partition changed)")
                break
            i = r["block"]
            if i >= len(gs) or gs[i].block_name != r["block_name"]:
                skipped.append(f"{model} b{b} s{s} block {i}")
                continue
            ds.items.append([(len(graphs), 1)])
            graphs.append(gs[i])
            ys.append(r["median_ms"])
            ds.model.append(model)
            ds.family.append(r["family"])
            ds.batch_size.append(b)
            ds.input_size.append(s)
            ds.block_name.append(r["block_name"])
    if len(cached) > n_cached:  # rewrite the cache file only when something was extracted
        _save_cache(cache, cached)
    if skipped:
        warnings.warn(f"rows skipped: {', '.join(sorted(set(skipped)))}", stacklevel=2)
    ds.graphs = graphs
    ds.y = np.array(ys, dtype=float)
    if not len(ds):
        raise BadInput("none of the measured blocks could be matched with their model's features")
    return ds


def corpus_dataset(path: str | Path | None = None, progress: Callable[[str], None] | None = None,
                   cache: str | Path | None = "default") -> BlockDataset:
    """The corpus file joined with features (extracted once, cached under the user cache directory)."""
    p = Path(path) if path else CORPUS_PATH
    meta_path = p.with_name("corpus_meta.json")
    desc = {"source": str(p)}
    if meta_path.is_file():
        desc["machine"] = json.loads(meta_path.read_text()).get("machine")
    return assemble(load_corpus(p), desc, progress, corpus_features_cache() if cache == "default" else cache)


def corpus_features_cache() -> Path:
    """Where the corpus models' BlockGraphs are cached (keyed by model, batch, input; dropped on a schema change)."""
    return Path(platformdirs.user_cache_dir("gapp")) / "corpus_features.pt"


def synthetic_dataset(path: str | Path | None = None, progress: Callable[[str], None] | None = None,
                      cache: str | Path | None = "default") -> BlockDataset:
    """The synthetic blocks' measured times joined with features extracted again from their seeds.

    A row whose seed now draws another block (the generator changed since
    the file was measured) is skipped with a warning instead of being given
    the wrong features.
    """
    p = Path(path) if path else SYNTHETIC_PATH
    if not p.is_file():
        raise BadInput(f"synthetic corpus {str(p)!r} not found; rebuild it with benchmarks/build_synthetic.py")
    try:
        with gzip.open(p, "rt", newline="") as fh:
            rows = list(csv.DictReader(fh))
        rows = [{**r, "seed": int(r["seed"]), "time_ms": float(r["time_ms"])} for r in rows]
    except (OSError, KeyError, ValueError, csv.Error) as exc:
        raise BadInput(f"synthetic corpus {str(p)!r} is not readable ({exc}); rebuild it with benchmarks/build_synthetic.py") from None
    if cache == "default":
        cache = Path(platformdirs.user_cache_dir("gapp")) / "synthetic_features.pt"
    cached = _load_cache(cache)
    n_cached = len(cached)
    ds = BlockDataset([], [], np.zeros(0), [], [], [], [], [], {"source": str(p)})
    meta_path = p.with_name("synthetic_meta.json")
    if meta_path.is_file():
        ds.description["machine"] = json.loads(meta_path.read_text()).get("machine")
    ys: list[float] = []
    stale: list[int] = []
    for n, r in enumerate(rows):
        if progress and n % 250 == 0:
            progress(f"synthetic features {n + 1}/{len(rows)}")
        key = f"{r['seed']}|{r['description']}|{r['input_shape']}"
        if key not in cached:
            sb = sample(r["seed"], "meta", kind=r["kind"])
            if sb.description != r["description"] or "x".join(map(str, sb.input_shape)) != r["input_shape"]:
                stale.append(r["seed"])
                continue
            chain = BlockChain.from_spec(ModelSpec(MODEL_NAME, input_shape=sb.input_shape), 1, device="meta", model=sb.module)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cached[key] = (extract(chain, warn=False), "")
        g = cached[key][0][0]
        ds.items.append([(len(ds.graphs), 1)])
        ds.graphs.append(g)
        ys.append(r["time_ms"])
        ds.model.append(f"synthetic-{r['kind']}")
        ds.family.append(FAMILY)
        shape = [int(v) for v in r["input_shape"].split("x")]
        ds.batch_size.append(shape[0])
        ds.input_size.append(shape[-1])
        ds.block_name.append(f"seed {r['seed']}: {r['description']}")
    if len(cached) > n_cached:  # rewrite the cache file only when something was extracted
        _save_cache(cache, cached)
    if stale:
        warnings.warn(f"{len(stale)} synthetic rows skipped: their seeds draw other blocks now (first: {stale[:5]}); "
                      "rebuild the file with benchmarks/build_synthetic.py", stacklevel=2)
    ds.y = np.array(ys, dtype=float)
    if not len(ds):
        raise BadInput(f"no usable rows in the synthetic corpus {str(p)!r}; rebuild it with benchmarks/build_synthetic.py")
    return ds


def concat(*datasets: BlockDataset) -> BlockDataset:
    """One dataset holding the items of several (graph ids renumbered)."""
    out = BlockDataset([], [], np.zeros(0), [], [], [], [], [], {"sources": [d.description for d in datasets]})
    ys = []
    for d in datasets:
        off = len(out.graphs)
        out.graphs.extend(d.graphs)
        out.items.extend([[(g + off, c) for g, c in it] for it in d.items])
        ys.append(d.y)
        for f in ("model", "family", "batch_size", "input_size", "block_name"):
            getattr(out, f).extend(getattr(d, f))
    out.y = np.concatenate(ys) if ys else np.zeros(0)
    return out


def training_dataset(corpus: str | Path | None = None, synthetic: str | Path | bool | None = True,
                     progress: Callable[[str], None] | None = None) -> BlockDataset:
    """The torchvision corpus, plus the synthetic blocks unless ``synthetic`` is False/None."""
    ds = corpus_dataset(corpus, progress=progress)
    if not synthetic:
        return ds
    return concat(ds, synthetic_dataset(None if synthetic is True else synthetic, progress=progress))


def _load_cache(path: str | Path | None) -> dict[str, tuple[list[Any], str]]:
    if not path or not Path(path).is_file():
        return {}
    import torch  # slow (torch)

    try:
        doc = torch.load(Path(path), weights_only=True)
        if doc.get("schema_version") != FEATURE_SCHEMA_VERSION:
            return {}
        return {k: ([BlockGraph.from_dict(d) for d in v["graphs"]], v["sig"]) for k, v in doc["models"].items()}
    except Exception:  # a stale or broken cache is rebuilt, never fatal
        return {}


def _save_cache(path: str | Path | None, cached: dict[str, tuple[list[Any], str]]) -> None:
    if not path:
        return
    import torch  # slow (torch)

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"schema_version": FEATURE_SCHEMA_VERSION,
                    "models": {k: {"graphs": [g.to_dict() for g in gs], "sig": sig} for k, (gs, sig) in cached.items()}},
                   Path(path))
    except OSError:
        pass


# ----------------------------------------------------------------------------- splits


def random_split(n: int, val: float = 0.1, test: float = 0.2, seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """(train, validation, test) indices of a seeded random permutation."""
    p = np.random.RandomState(seed).permutation(n)
    n_te, n_va = int(round(test * n)), int(round(val * n))
    return sorted(p[n_te + n_va:].tolist()), sorted(p[n_te:n_te + n_va].tolist()), sorted(p[:n_te].tolist())


def leave_one_family_out(ds: BlockDataset, families: Sequence[str] | None = None, val: float = 0.1,
                         seed: int = 0) -> Iterator[tuple[str, tuple[list[int], list[int], list[int]]]]:
    """For each family: (train = other families less a validation share, validation, test = the family).

    The synthetic blocks are never held out (they belong to no model a user
    runs); they are always in training.
    """
    fams = list(families) if families else [f for f in ds.families() if f != FAMILY]
    for fam in fams:
        if fam not in set(ds.family):
            raise BadInput(f"family {fam!r} has no rows{closest(fam, ds.families())} (families: {', '.join(ds.families())})")
        test = [i for i, f in enumerate(ds.family) if f == fam]
        rest = np.array([i for i, f in enumerate(ds.family) if f != fam])
        perm = np.random.RandomState(seed).permutation(len(rest))
        n_va = max(1, int(round(val * len(rest))))
        yield fam, (sorted(rest[perm[n_va:]].tolist()), sorted(rest[perm[:n_va]].tolist()), test)
