"""Chapter 10's network: a small CIFAR ResNet (He et al.'s ResNet-20 family, as Paul et al.
and open_lth use it) of ``depth`` layers and base ``width``, with batch norm; its output layer
(:data:`OUTPUT`) is never pruned."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_STRIDE = 1_000_003


class _Block(nn.Module):
    """A basic residual block (two 3x3 convolutions with batch norm)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of ``depth`` = 6n + 2 layers at ``width`` (open_lth's
    ``cifar_resnet_<depth>_<width>``)."""

    def __init__(self, depth: int = 20, width: int = 16, in_channels: int = 3,
                 num_classes: int = 10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth: a CIFAR ResNet has 6n + 2 layers (8, 14, 20, ...), "
                             f"got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, c = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for j in range(n):
                blocks.append(_Block(c, cout, 2 if stage > 0 and j == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        h = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


OUTPUT = "fc.weight"  # the output layer: never pruned


def build(cfg, seed: int, in_channels: int, device="cpu") -> CifarResNet:
    """The seed's network, initialized on the CPU (the same weights on any device)."""
    torch.manual_seed(seed * _STRIDE + 7)  # the initialization's own stream
    return CifarResNet(cfg.depth, cfg.width, in_channels).to(device)
