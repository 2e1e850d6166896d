"""Granularity: which operations of a captured graph form one block.

* ``natural`` (default): the network's own building blocks -- ResNet blocks,
  Inception modules, inverted residuals, transformer layers -- with the stem
  and the head as blocks of their own;
* ``stage``: natural blocks grouped by the module that holds them
  (ResNet's ``layer1`` .. ``layer4``);
* ``op``: one operation per block;
* an integer N: natural blocks merged into N contiguous groups of similar FLOPs.

Natural units are found on the model's module tree (:func:`unit_map`) and
every operation is labelled with the unit of the module it ran in (the
``nn_module_stack`` that both capture front ends record), so a ``torch.fx``
trace and a ``torch.export`` graph of the same model are grouped alike.
"""

from __future__ import annotations

from torch import fx, nn

from .errors import BadInput

GRANULARITIES = ("natural", "stage", "op")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
#: layers that carry the bulk of the work; a plain Sequential of leaf layers
#: (VGG's ``features``) is split so that each of these starts a block
_ANCHORS = (nn.modules.conv._ConvNd, nn.Linear, nn.MultiheadAttention)


def group_operations(model: nn.Module, compute: list[fx.Node], gran: str | int) -> list[tuple[str, int, int]]:
    """Contiguous groups of ``compute`` (the graph's operations, in order) as (block name, start, stop)."""
    if gran == "op":
        labels = [n.name for n in compute]
    else:
        labels = _natural_labels(model, compute)
        if gran == "stage":
            labels = [_stage_of(lab) for lab in labels]
    groups = _contiguous_groups(labels)
    if isinstance(gran, int):
        groups = _merge_balanced(groups, compute, gran)
    return groups


# --------------------------------------------------------------------------- natural units


def _is_leaf(m: nn.Module) -> bool:
    return next(m.children(), None) is None


def _anchors_in(m: nn.Module) -> int:
    return sum(1 for k in m.modules() if isinstance(k, _ANCHORS))


def _is_stack(c: nn.Module) -> bool:
    """A container of >= 2 repeated blocks: modules of one class, each with >= 2 heavy layers.

    ResNet's ``layer1`` and ViT's ``encoder.layers`` are stacks; the
    Conv-BN-activation triples inside one MBConv or RegNet block are not.
    """
    kids = list(c.children())
    return (
        len(kids) >= 2
        and len({type(k) for k in kids}) == 1
        and all(not _is_leaf(k) and _anchors_in(k) >= 2 for k in kids)
    )


def _has_stack(m: nn.Module) -> bool:
    for c in m.children():
        if isinstance(c, _CONTAINERS) and (_is_stack(c) or _has_stack(c)):
            return True
    return False


def unit_map(root: nn.Module) -> dict[str, str]:
    """Map module paths to the natural unit (block name) they belong to."""
    units: dict[str, str] = {}

    def leaf_run(c: nn.Module, path: str) -> None:
        # a Sequential of leaf layers: each anchor layer starts a unit
        kids = list(c.named_children())
        anchors = [n for n, k in kids if isinstance(k, _ANCHORS)]
        if len(anchors) <= 1:
            units[path] = path
            return
        current = f"{path}.{anchors[0]}"
        for n, k in kids:
            if isinstance(k, _ANCHORS):
                current = f"{path}.{n}"
            units[f"{path}.{n}"] = current

    def visit(m: nn.Module, prefix: str) -> None:
        for name, c in m.named_children():
            path = f"{prefix}{name}"
            if _is_leaf(c):
                continue  # glue: merged with a neighbour later
            if isinstance(c, _CONTAINERS):
                if all(_is_leaf(k) for k in c.children()):
                    leaf_run(c, path)
                else:
                    visit(c, path + ".")
            elif _has_stack(c):
                visit(c, path + ".")
            else:
                units[path] = path

    visit(root, "")
    return units


def _module_path(n: fx.Node) -> str:
    stack = n.meta.get("nn_module_stack") or {}
    if stack:
        return next(reversed(stack.values()))[0]
    if n.op == "call_module":
        return str(n.target)
    return ""


def _natural_labels(model: nn.Module, compute: list[fx.Node]) -> list[str]:
    # the original model, not the GraphModule: tracing flattens module classes away
    units = unit_map(model)
    raw: list[str | None] = []
    paths: list[str] = []
    for n in compute:
        label = None
        stack = n.meta.get("nn_module_stack") or {}
        candidates = [v[0] for v in stack.values()]
        if n.op == "call_module":
            candidates.append(str(n.target))
        for p in candidates:  # outermost first
            if p in units:
                label = units[p]
                break
        if label is None and n.op == "call_module" and any(u.startswith(f"{n.target}.") for u in units.values()):
            label = str(n.target)  # a leaf module holding natural units: one block of its own
        raw.append(label)
        paths.append(_module_path(n))
    unit_idx = [i for i, lab in enumerate(raw) if lab is not None]
    if not unit_idx:
        return ["model"] * len(compute)
    # glue (operations outside every unit): before the first unit it is the stem,
    # after the last the head; in between it joins the previous unit when it lies
    # in the same container (DenseNet's concatenation), else the next one
    labels: list[str] = []
    for i, lab in enumerate(raw):
        if lab is not None:
            labels.append(lab)
            continue
        prev = next((raw[j] for j in range(i - 1, -1, -1) if raw[j] is not None), None)
        nxt = next((raw[j] for j in range(i + 1, len(raw)) if raw[j] is not None), None)
        if prev is None:
            labels.append("stem")
        elif _inside_parent(paths[i], prev):
            labels.append(prev)
        else:
            labels.append(nxt if nxt is not None else "head")
    return labels


def _inside_parent(path: str, unit: str) -> bool:
    """Is module ``path`` inside the container that holds ``unit``?"""
    parent = unit.rsplit(".", 1)[0] if "." in unit else ""
    return bool(parent) and (path == parent or path.startswith(parent + "."))


def _stage_of(label: str) -> str:
    return label.rsplit(".", 1)[0] if "." in label else label


# --------------------------------------------------------------------------- grouping


def parse_granularity(value: str | int) -> str | int:
    """``natural``, ``stage``, ``op`` or a positive integer (number of blocks)."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        n = int(value)
        if n <= 0:
            raise BadInput(f"granularity {value!r} is not valid; give natural, stage, op or a positive integer")
        return n
    if value not in GRANULARITIES:
        raise BadInput(f"granularity {value!r} is not valid; give natural, stage, op or a positive integer")
    return value


def _contiguous_groups(labels: list[str]) -> list[tuple[str, int, int]]:
    """Runs of labels as (name, start, stop); a label that reappears swallows what lies between."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(lab, i)
        last[lab] = i
    groups: list[tuple[str, int, int]] = []
    i = 0
    while i < len(labels):
        names = [labels[i]]
        stop = last[labels[i]] + 1
        j = i
        while j < stop:
            if labels[j] not in names:
                names.append(labels[j])
            stop = max(stop, last[labels[j]] + 1)
            j += 1
        name = names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
        groups.append((name, i, stop))
        i = stop
    return groups


def _merge_balanced(groups: list[tuple[str, int, int]], compute: list[fx.Node], n: int) -> list[tuple[str, int, int]]:
    """Merge adjacent groups into at most ``n`` groups of similar FLOPs (greedy over the prefix sum)."""
    if n >= len(groups):
        return groups
    weights = [max(1, sum(c.meta.get("flops", 0) for c in compute[lo:hi])) for _, lo, hi in groups]
    total = sum(weights)
    merged: list[tuple[str, int, int]] = []
    start = 0
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        remaining_groups = n - len(merged) - 1
        remaining_items = len(groups) - i - 1
        target = total * (len(merged) + 1) / n
        if remaining_groups > 0 and (acc >= target or remaining_items == remaining_groups):
            merged.append(_span(groups, start, i))
            start = i + 1
    merged.append(_span(groups, start, len(groups) - 1))
    return merged


def _span(groups: list[tuple[str, int, int]], a: int, b: int) -> tuple[str, int, int]:
    name = groups[a][0] if a == b else f"{groups[a][0]}..{groups[b][0]}"
    return (name, groups[a][1], groups[b][2])
