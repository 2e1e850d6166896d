"""Synthetic blocks: seeded random operator mixes that widen the training corpus.

One concept: the synthetic block space (its kinds and how each is drawn).

The torchvision corpus holds 16 families, and a family left out of training
often uses an operation in a regime no other family does: VGG's 100-million-
weight fully connected layers, ShuffleNet's channel shuffles, ViT's patch
convolution. :func:`sample` draws blocks from a generic space instead --
convolutions of any kernel, stride, groups and width, fully connected layers
up to 10^8 weights, attention, layout changes, norms, pools, element-wise
ops, and short chains of them -- so that the GNN has seen an operation's
regime before it meets it in a new family. Nothing here copies a torchvision
block; the space is sampled log-uniformly and bounded by cost (at most about
2 GFLOP and 256 MB of tensors per block, so one block times in well under a
second on one CPU thread).

``sample(seed)`` is deterministic: the same seed always gives the same block
and input shape, so a measured time can be stored as ``(seed, time)`` and the
features extracted again from the seed when training (``gapp_tui/data/
synthetic_times.csv.gz``, measured by ``benchmarks/build_synthetic.py``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import torch
from torch import nn

#: the import path the feature extractor records as the model name of every synthetic block
MODEL_NAME = "gapp_tui.predict.synthetic:sample"
FAMILY = "synthetic"
KINDS = ("conv", "linear", "attention", "layout", "pointwise", "chain", "transformer", "concat", "channels_last",
         "branches")
#: the kinds a seed cycles through when none is named (convolutions, chains and linears twice as often)
DEFAULT_CYCLE = ("conv", "linear", "attention", "layout", "pointwise", "chain", "transformer", "chain", "linear", "conv")
_MAX_FLOPS = 2.0e9
_MAX_ELEMENTS = 16_000_000  # per activation tensor (64 MB of float32)

_ACTS = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid, "hardsigmoid": nn.Hardsigmoid, "tanh": nn.Tanh,
}


@dataclasses.dataclass(frozen=True)
class SyntheticBlock:
    seed: int
    kind: str
    module: nn.Module
    input_shape: tuple[int, ...]
    description: str


def _logint(rng: random.Random, lo: float, hi: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _channels(rng: random.Random, lo: float, hi: float) -> int:
    """A width drawn log-uniformly; three times in four rounded the way network designers round
    (to 8, 16 or 32): kernels run measurably faster on aligned widths, and both kinds must be seen."""
    c = _logint(rng, lo, hi)
    if rng.random() < 0.75:
        m = 8 if c < 128 else 16 if c < 512 else 32
        c = max(m, int(round(c / m)) * m)
    return c


def _act(rng: random.Random) -> nn.Module:
    return _ACTS[rng.choice(sorted(_ACTS))]()


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Gate(nn.Module):
    """x * gate(x): squeeze-excitation when the gate pools, a gated activation when it does not."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class _Shuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.view(b, self.groups, c // self.groups, h, w)
        return torch.transpose(x, 1, 2).contiguous().view(b, c, h, w)


class _SplitMerge(nn.Module):
    """chunk in two along channels, transform one half, concatenate."""

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat((a, self.branch(b)), dim=1)


class _ChannelsLastNorm(nn.Module):
    """permute to channels-last, LayerNorm, permute back."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Attention(nn.Module):
    """Multi-head self-attention written out: qkv projection, reshape, scores, softmax, mix, projection."""

    def __init__(self, dim: int, heads: int, fused: bool) -> None:
        super().__init__()
        self.heads, self.fused = heads, fused
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused:
            o = nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            a = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
            o = a.softmax(dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


# ----------------------------------------------------------------------------- generators
# each returns (module, input shape, description) or None when the draw is too expensive


def _conv(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b = rng.choice([1, 1, 4])
    cin = 3 if rng.random() < 0.15 else _channels(rng, 8, 1024)
    h = rng.choice([2, 4, 7, 8, 14, 16, 28, 32, 56, 64, 112, 128, 224])
    style = rng.choice(["dense", "dense", "depthwise", "grouped", "patch", "pointwise"])
    if style == "patch":
        k = rng.choice([2, 4, 7, 8, 14, 16, 32])
        stride, pad, groups = k, 0, 1
        cout = _channels(rng, 16, 1024)
    else:
        k = 1 if style == "pointwise" else rng.choice([1, 3, 3, 3, 5, 7, 11])
        stride = rng.choice([1, 1, 2] if k > 1 else [1, 1, 1, 2])
        pad = k // 2
        if style == "depthwise":
            groups, cout = cin, cin * rng.choice([1, 1, 2, 4])
        elif style == "grouped":
            groups = rng.choice([g for g in (2, 3, 4, 8, 16, 32) if cin % g == 0] or [1])
            cout = groups * max(1, _channels(rng, 8, 1024) // groups)
        else:
            groups, cout = 1, _channels(rng, 8, 1024)
    if h < k:
        return None
    ho = (h + 2 * pad - k) // stride + 1
    flops = 2 * b * cout * ho * ho * (cin // groups) * k * k
    if flops > _MAX_FLOPS or b * max(cin * h * h, cout * ho * ho) > _MAX_ELEMENTS:
        return None
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=rng.random() < 0.5)]
    if rng.random() < 0.7:
        layers.append(nn.BatchNorm2d(cout))
    if rng.random() < 0.7:
        layers.append(_act(rng))
    if rng.random() < 0.15 and ho >= 2:
        layers.append(rng.choice([nn.MaxPool2d(2, 2), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, 2)]))
    body = nn.Sequential(*layers)
    desc = f"conv {style} {cin}->{cout} k{k} s{stride} g{groups} @{h}"
    pooled = any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in layers)
    if cin == cout and stride == 1 and not pooled and rng.random() < 0.4:
        return _Residual(body), (b, cin, h, h), desc + " +residual"
    return body, (b, cin, h, h), desc


def _linear(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b = rng.choice([1, 1, 2, 4])
    k, n = _channels(rng, 32, 30000), _channels(rng, 10, 8192)
    if k * n > 1.1e8:
        return None
    shape: tuple[int, ...]
    style = rng.choice(["vector", "vector", "tokens", "flatten"])
    layers: list[nn.Module] = []
    if style == "tokens":
        t = _logint(rng, 4, 4096)
        shape = (b, t, k)
        rows = b * t
    elif style == "flatten":
        c = rng.choice([c for c in (16, 32, 64, 128, 256, 512) if k // c >= 1])
        s = max(1, int(math.sqrt(k // c)))
        k = c * s * s
        shape = (b, c, s, s)
        layers.append(nn.Flatten(1))
        rows = b
    else:
        shape = (b, k)
        rows = b
    if 2 * rows * k * n > _MAX_FLOPS or rows * max(k, n) > _MAX_ELEMENTS:
        return None
    layers.append(nn.Linear(k, n, bias=rng.random() < 0.8))
    if rng.random() < 0.6:
        layers.append(_act(rng))
    if rng.random() < 0.3:
        layers.append(nn.Dropout(0.5))
    if rng.random() < 0.3 and rows * n * 4 <= _MAX_FLOPS:
        n2 = _channels(rng, 10, 4096)
        if n * n2 <= 1.1e8 and 2 * rows * n * n2 <= _MAX_FLOPS:
            layers.append(nn.Linear(n, n2))
    return nn.Sequential(*layers), shape, f"linear {style} rows{rows} {k}->{n}"


class _SelfMHA(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


def _attention(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b = rng.choice([1, 1, 4])
    heads = rng.choice([1, 2, 3, 4, 6, 8, 12, 16])
    dim = heads * rng.choice([16, 32, 48, 64, 96])
    t = _logint(rng, 4, 3200)
    flops = 2 * b * t * dim * dim * 4 + 4 * b * t * t * dim
    if flops > _MAX_FLOPS or b * heads * t * t > _MAX_ELEMENTS:
        return None
    style = rng.choice(["explicit", "fused", "torch_mha"])
    if style == "torch_mha":
        mod: nn.Module = _SelfMHA(dim, heads)
    else:
        mod = _Attention(dim, heads, fused=style == "fused")
    if rng.random() < 0.5:
        mod = nn.Sequential(nn.LayerNorm(dim), mod)
    if rng.random() < 0.5:
        mod = _Residual(mod)
    return mod, (b, t, dim), f"attention {style} t{t} d{dim} h{heads}"


def _spatial(rng: random.Random, elements: int = 4_000_000) -> tuple[int, int, int]:
    b = rng.choice([1, 1, 4])
    c = _channels(rng, 4, 1024)
    c += c % 2
    h = rng.choice([2, 4, 7, 8, 14, 16, 28, 32, 56, 64, 112, 128])
    while b * c * h * h > elements and h > 7:
        h //= 2
    return b, c, h


def _layout(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b, c, h = _spatial(rng)
    style = rng.choice(["shuffle", "shuffle", "channels_last_norm", "split_merge", "transpose", "flatten"])
    if style == "shuffle":
        g = rng.choice([g for g in (2, 3, 4, 8) if c % g == 0] or [2])
        if c % g:
            return None
        return _Shuffle(g), (b, c, h, h), f"shuffle g{g} {c}@{h}"
    if style == "channels_last_norm":
        return _ChannelsLastNorm(c), (b, c, h, h), f"channels-last layernorm {c}@{h}"
    if style == "split_merge":
        half = nn.Sequential(nn.Conv2d(c // 2, c // 2, 1, bias=False), nn.BatchNorm2d(c // 2), _act(rng)) \
            if rng.random() < 0.5 else _act(rng)
        return _SplitMerge(half), (b, c, h, h), f"split-merge {c}@{h}"
    if style == "transpose":
        return nn.Sequential(nn.Flatten(2), _Transpose(), nn.LayerNorm(c)), (b, c, h, h), f"tokens {c}@{h}"
    return nn.Sequential(nn.AdaptiveAvgPool2d(rng.choice([1, 1, 2, 6, 7])), nn.Flatten(1)), (b, c, h, h), f"pool-flatten {c}@{h}"


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _pointwise(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b, c, h = _spatial(rng, 8_000_000)
    style = rng.choice(["act", "bn", "groupnorm", "pool", "adaptive", "gate", "se", "lrn"])
    if style == "act":
        mod: nn.Module = _act(rng)
    elif style == "bn":
        mod = nn.Sequential(nn.BatchNorm2d(c), _act(rng)) if rng.random() < 0.5 else nn.BatchNorm2d(c)
    elif style == "groupnorm":
        g = rng.choice([g for g in (1, 2, 4, 8, 16, 32) if c % g == 0])
        mod = nn.GroupNorm(g, c)
    elif style == "pool":
        if h < 3:
            return None
        k = rng.choice([2, 3, 3, 5])
        s = rng.choice([1, 2, 2])
        mod = nn.MaxPool2d(k, s, k // 2, ceil_mode=rng.random() < 0.3) if rng.random() < 0.6 else nn.AvgPool2d(k, s, k // 2)
    elif style == "adaptive":
        mod = nn.AdaptiveAvgPool2d(1) if rng.random() < 0.7 else nn.AdaptiveMaxPool2d(1)
    elif style == "gate":
        mod = _Gate(_act(rng))
    elif style == "lrn":
        mod = nn.LocalResponseNorm(5)
    else:
        r = max(1, c // rng.choice([4, 8, 16]))
        mod = _Gate(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), nn.ReLU(), nn.Conv2d(r, c, 1),
                                  rng.choice([nn.Sigmoid(), nn.Hardsigmoid()])))
    return mod, (b, c, h, h), f"{style} {c}@{h}"


def _chain(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    """2-4 convolution-style stages in a row, some with a residual or a gate."""
    b, c, h = _spatial(rng, 3_000_000)
    shape = (b, c, h, h)
    layers: list[nn.Module] = []
    flops = 0
    desc = []
    for _ in range(rng.randint(2, 4)):
        k = rng.choice([1, 1, 3, 3, 5])
        dw = k > 1 and rng.random() < 0.4
        cout = c if dw else _channels(rng, 8, 512)
        stride = 2 if (rng.random() < 0.2 and h >= 8) else 1
        groups = c if dw else 1
        conv = nn.Conv2d(c, cout, k, stride, k // 2, groups=groups, bias=False)
        stage: nn.Module = nn.Sequential(conv, nn.BatchNorm2d(cout), _act(rng))
        h = (h + 2 * (k // 2) - k) // stride + 1
        flops += 2 * b * cout * h * h * (c // groups) * k * k
        if cout == c and stride == 1 and rng.random() < 0.4:
            stage = _Residual(stage)
        layers.append(stage)
        desc.append(f"{'dw' if dw else 'c'}{k}x{cout}")
        c = cout
    if rng.random() < 0.3:
        r = max(1, c // 4)
        layers.append(_Gate(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), nn.SiLU(), nn.Conv2d(r, c, 1), nn.Sigmoid())))
        desc.append("se")
    if flops > _MAX_FLOPS:
        return None
    return nn.Sequential(*layers), shape, "chain " + " ".join(desc)


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: nn.Module) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), act, nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _EncoderLayer(nn.Module):
    """A generic transformer layer: attention and an MLP, each with a norm and a residual (pre- or post-norm)."""

    def __init__(self, attn: nn.Module, mlp: nn.Module, dim: int, pre_norm: bool) -> None:
        super().__init__()
        self.attn, self.mlp, self.pre_norm = attn, mlp, pre_norm
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.drop(self.attn(self.norm1(x)))
            return x + self.drop(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.mlp(x)))


def _transformer(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    """1-2 transformer layers of random width, heads, MLP ratio and token count (attention and MLP together,
    so the block's weights compete for the cache as in a real encoder)."""
    b = rng.choice([1, 1, 2, 4])
    heads = rng.choice([1, 2, 3, 4, 6, 8, 12, 16])
    dim = heads * rng.choice([16, 32, 48, 64, 96])
    t = _logint(rng, 2, 2048)
    ratio = rng.choice([2, 3, 4, 4])
    n = rng.choice([1, 1, 1, 2])
    flops = n * (2 * b * t * dim * dim * (4 + 2 * ratio) + 4 * b * t * t * dim)
    if flops > _MAX_FLOPS or b * heads * t * t > _MAX_ELEMENTS or b * t * dim * ratio > _MAX_ELEMENTS:
        return None
    style = rng.choice(["torch_mha", "torch_mha", "explicit", "fused"])
    layers = []
    for _ in range(n):
        attn = _SelfMHA(dim, heads) if style == "torch_mha" else _Attention(dim, heads, fused=style == "fused")
        act = rng.choice([nn.GELU(), nn.GELU(), nn.ReLU(), nn.SiLU()])
        layers.append(_EncoderLayer(attn, _MLP(dim, ratio * dim, act), dim, pre_norm=rng.random() < 0.7))
    return nn.Sequential(*layers), (b, t, dim), f"transformer x{n} {style} t{t} d{dim} h{heads} mlp{ratio}"


class _Concat(nn.Module):
    """Split the input into parts along channels, join them again (a copy, as a concatenation of
    separately computed maps is), then the tail: dense connectivity and multi-branch modules in general."""

    def __init__(self, sizes: list[int], tail: nn.Module) -> None:
        super().__init__()
        self.sizes, self.tail = sizes, tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)
        # indexed one by one, so that the concatenation has k tensor inputs (as in a traced model), not one tuple
        return self.tail(torch.cat([parts[i] for i in range(len(self.sizes))], dim=1))


def _concat(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b = rng.choice([1, 1, 4])
    k = rng.choice([2, 3, 4, 4, 6, 8, 12, 16, 24, 32, 48])
    g = rng.choice([8, 12, 16, 24, 32, 48, 64, 128])
    first = rng.choice([g, 2 * g, 64, 128, 256])
    sizes = [first] + [g] * (k - 1)
    c = sum(sizes)
    h = rng.choice([2, 4, 7, 8, 14, 16, 28, 32, 56])
    if b * c * h * h > 4_000_000:
        return None
    style = rng.choice(["none", "dense", "dense", "transition", "conv"])
    flops = 0
    if style == "dense":  # norm, activation, 1x1 to a bottleneck, norm, activation, 3x3 to the growth width
        mid = rng.choice([2, 4]) * g
        tail: nn.Module = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, mid, 1, bias=False), nn.BatchNorm2d(mid),
                                        nn.ReLU(), nn.Conv2d(mid, g, 3, padding=1, bias=False))
        flops = 2 * b * h * h * (c * mid + mid * g * 9)
    elif style == "transition":
        tail = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2))
        flops = 2 * b * h * h * c * c // 2
        if h < 2:
            return None
    elif style == "conv":
        cout = _channels(rng, 16, 512)
        tail = nn.Sequential(nn.Conv2d(c, cout, 1), _act(rng))
        flops = 2 * b * h * h * c * cout
    else:
        tail = nn.Identity()
    if flops > _MAX_FLOPS:
        return None
    return _Concat(sizes, tail), (b, c, h, h), f"concat {k} parts of {g} (+{first}) @{h} {style}"


class _ChannelsLastMLP(nn.Module):
    """Optional depthwise conv, then per-pixel layers on a channels-last view: norm, one or two linears,
    an optional learned per-channel scale, back to channels-first, optional residual."""

    def __init__(self, c: int, dw: int, norm: bool, hidden: int | None, act: nn.Module, scale: bool,
                 residual: bool, channels_last_input: bool) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, dw, padding=dw // 2, groups=c) if dw else None
        self.norm = nn.LayerNorm(c) if norm else None
        self.fc1 = nn.Linear(c, hidden or c)
        self.act = act
        self.fc2 = nn.Linear(hidden, c) if hidden else None
        self.scale = nn.Parameter(torch.full((c,), 1e-2)) if scale else None
        self.residual, self.cl_input = residual, channels_last_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.cl_input else x.permute(0, 2, 3, 1)
        if self.dw is not None:
            y = self.dw(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if self.norm is not None:
            y = self.norm(y)
        y = self.act(self.fc1(y))
        if self.fc2 is not None:
            y = self.fc2(y)
        if self.scale is not None:
            y = self.scale * y
        if not self.cl_input:
            y = y.permute(0, 3, 1, 2)
        return x + y if self.residual else y


def _channels_last(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    b = rng.choice([1, 1, 4])
    c = _channels(rng, 16, 1024)
    h = rng.choice([1, 2, 4, 7, 8, 14, 16, 28, 32, 56])
    ratio = rng.choice([None, 2, 4, 4])
    dw = rng.choice([0, 0, 3, 7])
    if dw and h < 2:
        dw = 0
    rows = b * h * h
    flops = 2 * rows * c * c * (2 * ratio if ratio else 1) + 2 * rows * c * dw * dw
    if flops > _MAX_FLOPS or rows * c * (ratio or 1) > _MAX_ELEMENTS:
        return None
    cl_input = rng.random() < 0.4
    mod = _ChannelsLastMLP(c, dw, rng.random() < 0.7, ratio * c if ratio else None, _act(rng), rng.random() < 0.4,
                           rng.random() < 0.5, cl_input)
    shape = (b, h, h, c) if cl_input else (b, c, h, h)
    return mod, shape, f"channels-last mlp {c}x{ratio or 1} @{h} dw{dw}{' cl-in' if cl_input else ''}"


class _Branches(nn.Module):
    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([br(x) for br in self.branches], dim=1)


def _branches(rng: random.Random) -> tuple[nn.Module, tuple[int, ...], str] | None:
    """2-4 parallel branches (1x1, square, factorized 1xk/kx1 convolutions, pools), concatenated."""
    b, c, h = _spatial(rng, 2_000_000)
    stride = 2 if (h >= 8 and rng.random() < 0.2) else 1
    branches: list[nn.Module] = []
    desc: list[str] = []
    flops = 0
    for _ in range(rng.randint(2, 4)):
        style = rng.choice(["1x1", "square", "square", "factorized", "pool"])
        out_c = _channels(rng, 8, 384)
        layers: list[nn.Module] = []
        if style == "pool":
            layers.append(rng.choice([nn.MaxPool2d(3, stride, 1, ceil_mode=stride == 1 and rng.random() < 0.5),
                                      nn.AvgPool2d(3, stride, 1)]))
            if rng.random() < 0.7:
                layers += [nn.Conv2d(c, out_c, 1, bias=False), nn.BatchNorm2d(out_c), nn.ReLU()]
                flops += 2 * b * c * out_c * (h // stride) ** 2
            elif stride == 1:
                out_c = c
            else:
                out_c = c
        else:
            mid = _channels(rng, 8, 256) if style != "1x1" and rng.random() < 0.7 else c
            cur = c
            if mid != c:
                layers += [nn.Conv2d(c, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU()]
                flops += 2 * b * c * mid * h * h
                cur = mid
            if style == "1x1":
                kernels = [(1, 1)]
            elif style == "square":
                k = rng.choice([3, 3, 5])
                kernels = [(k, k)] * rng.choice([1, 1, 2])
            else:
                k = rng.choice([3, 5, 7])
                kernels = [(1, k), (k, 1)] if rng.random() < 0.5 else [(k, 1), (1, k)]
            for j, (kh, kw) in enumerate(kernels):
                s = stride if j == len(kernels) - 1 else 1
                oc = out_c if j == len(kernels) - 1 else cur
                layers += [nn.Conv2d(cur, oc, (kh, kw), s, (kh // 2, kw // 2), bias=False), nn.BatchNorm2d(oc), nn.ReLU()]
                flops += 2 * b * cur * oc * kh * kw * (h // s) ** 2
                cur = oc
        branches.append(nn.Sequential(*layers))
        desc.append(f"{style}:{out_c}")
    if flops > _MAX_FLOPS:
        return None
    return _Branches(branches), (b, c, h, h), f"branches {c}@{h} s{stride} " + " ".join(desc)


_GENERATORS = {"conv": _conv, "linear": _linear, "attention": _attention, "layout": _layout,
               "pointwise": _pointwise, "chain": _chain, "transformer": _transformer, "concat": _concat,
               "channels_last": _channels_last, "branches": _branches}


def _runs(module: nn.Module, shape: tuple[int, ...]) -> bool:
    """Does the draw run on its input shape (checked on meta tensors: no memory, no time)?"""
    try:
        with torch.no_grad():
            module.eval()(torch.empty(shape, device="meta"))
        return True
    except (RuntimeError, ValueError):
        return False


def sample(seed: int, device: str | torch.device = "cpu", kind: str | None = None) -> SyntheticBlock:
    """The synthetic block of ``seed`` and ``kind`` (default: the kind cycles through :data:`DEFAULT_CYCLE`)."""
    if kind is None:
        kind = DEFAULT_CYCLE[seed % len(DEFAULT_CYCLE)]
    if kind not in _GENERATORS:
        raise ValueError(f"unknown synthetic kind {kind!r} (kinds: {', '.join(KINDS)})")
    rng = random.Random(f"gapp-synthetic-{seed}")
    for _ in range(1000):
        state = rng.getstate()
        with torch.device("meta"):  # draw and check on meta tensors first: a draw that does not run is skipped
            got = _GENERATORS[kind](rng)
        if got is None or not _runs(got[0], got[1]):
            continue
        if torch.device(device).type != "meta":  # the same draw again, with real weights
            rng.setstate(state)
            with torch.device(device):
                got = _GENERATORS[kind](rng)
        module, shape, desc = got
        # a container at the root, so that a lone torch.nn layer stays one (leaf) operation when traced
        root = nn.Sequential(module).eval()
        return SyntheticBlock(seed, kind, root, tuple(int(d) for d in shape), desc)
    raise RuntimeError(f"synthetic seed {seed}: no draw within the cost bounds")  # pragma: no cover
