"""Small custom models for the tests, loaded by import path (tests.custom_models:NAME)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TwoBranch(nn.Module):
    """A model whose skip connection crosses a block boundary."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.block1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        a = self.conv1(x)
        b = self.block1(a)
        c = self.block2(b)
        y = (a + c).mean(dim=(2, 3))
        return self.fc(y)


def two_branch() -> nn.Module:
    return TwoBranch()


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace ``Gate`` unless it is a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = Gate()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.gate(self.stem(x)).mean(dim=(2, 3)))


class Gate(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return torch.relu(x)
        return -x


def branchy() -> nn.Module:
    return Branchy()


def not_a_module():
    return 42


class SamePad(nn.Module):
    """TensorFlow-style 'same' padding computed from the input's size: torch.fx cannot trace ``math.ceil``
    of a size, but the arithmetic only needs shapes, so meta tensors can replay it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x):
        h = x.shape[-1]
        pad = max((math.ceil(h / 2) - 1) * 2 + 3 - h, 0)
        x = F.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
        return torch.relu(self.conv(x))


class Unit(nn.Module):
    """Two convolutions and a residual: a natural block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


class Padded(nn.Module):
    """A stack of units with one SamePad module that torch.fx cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = SamePad(8)
        self.layers = nn.Sequential(Unit(8), Unit(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.layers(self.down(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


class GatedUnit(nn.Module):
    """Data-dependent control flow (an ``if`` on values) around a convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 0:
            return torch.relu(y)
        return -y


class Gated(nn.Module):
    """A stack of units with one GatedUnit that torch.fx cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = GatedUnit(8)
        self.layers = nn.Sequential(Unit(8), Unit(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.layers(self.gate(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


def gated() -> nn.Module:
    return Gated()


def padded() -> nn.Module:
    return Padded()


class SizeLoop(nn.Module):
    """torch.fx cannot trace this model's own forward (a loop over a size); torch.export can."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layers = nn.Sequential(Unit(8), Unit(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        for _ in range(x.shape[-1] // 8):  # halve the map until it is 8 wide
            x = F.max_pool2d(x, 2) if x.shape[-1] > 8 else x
        x = self.layers(x)
        return self.fc(x.mean(dim=(2, 3)))


def size_loop() -> nn.Module:
    return SizeLoop()


class ShapeStage(nn.Module):
    """A stage of units whose own forward torch.fx cannot trace (a loop that reads a size)."""

    def __init__(self) -> None:
        super().__init__()
        self.units = nn.ModuleList([Unit(8), Unit(8)])

    def forward(self, x):
        for unit in self.units:
            if x.shape[-1] >= 4:
                x = unit(x)
        return x


class Staged(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stage = ShapeStage()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.stage(self.stem(x)).mean(dim=(2, 3)))


def staged() -> nn.Module:
    return Staged()


#: an import path naming this is refused: it is not callable
NOT_CALLABLE = 3


# pytorchcv's TResNet: a space-to-depth stem (3 channels become 48 before the first convolution) and units
# that define ``__call__`` instead of ``forward``


class CallUnit(nn.Module):
    """A residual unit written as ``__call__`` (no ``forward``): it bypasses ``nn.Module.__call__``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def __call__(self, x):
        return torch.relu(x + self.b(torch.relu(self.a(x))))


class SpaceToDepthStem(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels * 16, out_channels, 3, padding=1)

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 3, 5, 1, 2, 4).reshape(b, c * 16, h // 4, w // 4)
        return self.conv(x)


class SpaceToDepthNet(nn.Module):
    """Declares its input the pytorchcv way: ``in_size`` and an ``in_channels=3`` default."""

    def __init__(self, in_channels: int = 3, in_size: tuple[int, int] = (32, 32), num_classes: int = 5,
                 rearrange: bool = True) -> None:
        super().__init__()
        self.in_size = in_size
        self.stem = SpaceToDepthStem(in_channels, 8) if rearrange else nn.Conv2d(in_channels, 8, 3, stride=4)
        self.layers = nn.Sequential(CallUnit(8), CallUnit(8), CallUnit(8))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


def space_to_depth() -> nn.Module:
    return SpaceToDepthNet()


def gray() -> nn.Module:
    """Built for one channel, with a plain stem: its first convolution's one channel is the input's."""
    return SpaceToDepthNet(in_channels=1, rearrange=False)


# ConViT's GPSA: a buffer replaced on first use when the number of positions changes


class PositionTable(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.register_buffer("table", torch.zeros(1, 1), persistent=False)

    def forward(self, x):
        n = x.shape[-1]
        if self.table.shape[1] != n:  # torch.fx cannot trace it: this module becomes a leaf
            self.table = torch.arange(n, dtype=x.dtype, device=x.device).view(1, n) / n
        return self.proj(x) + self.table


class Positioned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pos = PositionTable(8)
        self.layers = nn.Sequential(Unit(8), Unit(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.layers(self.pos(self.stem(x))).mean(dim=(2, 3)))


def positioned() -> nn.Module:
    return Positioned()


# pytorchcv's RevNet: a reversible unit computed by a custom autograd Function that frees its input


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, *params):
        with torch.no_grad():
            a, b = torch.chunk(x, 2, dim=1)
            y = torch.cat((a + f(b.contiguous()), b), dim=1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover -- never trained here
        raise NotImplementedError


class ReversibleUnit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.f = nn.Conv2d(channels // 2, channels // 2, 3, padding=1)

    def forward(self, x):
        y = _Reversible.apply(x, self.f, *self.f.parameters())
        x.data.set_()  # frees the input, as RevNet does
        return y


class Reversible(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.units = nn.Sequential(ReversibleUnit(8), ReversibleUnit(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.units(self.stem(x)).mean(dim=(2, 3)))


def reversible() -> nn.Module:
    return Reversible()


class TwoImages(nn.Module):
    """Two inputs (optical flow's two frames, a stereo pair): a branch for each, added, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.fuse = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 5)

    def forward(self, image1, image2, scale: float = 1.0):
        y = self.fuse(self.left(image1) + self.right(image2) * scale)
        return self.head(y.mean(dim=(2, 3)))


def two_images() -> nn.Module:
    return TwoImages()


class ImageAndId(nn.Module):
    """An image and an integer id per item (pytorchcv's ``voca``/``nvpattexp`` person id): two dtypes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.person = nn.Embedding(100, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x, pid):
        return self.head(self.stem(x).mean(dim=(2, 3)) + self.person(pid))


def image_and_id() -> nn.Module:
    return ImageAndId()
