"""Small custom models for the tests, loaded by import path (tests.custom_models:NAME)."""

from __future__ import annotations

import torch
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
