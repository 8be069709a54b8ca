"""Torchvision CNN families at any width, for channel GFS on architectures the paper did
not use (chapter 7's example, ``tests/test_channel_prune.py``, ``benchmarks/channel_gfs.py``).

Every model is built from torchvision's own blocks and constructors; ``width`` scales the
stage widths so that CPU tests and benchmarks can run the same depth at a small size.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v2, mobilenet_v3_small, regnet, resnet, vgg

FAMILIES = ("resnet18", "resnet34", "mobilenet_v2", "mobilenet_v3_small", "vgg11_bn",
            "resnext", "regnet_x")


class _ResNet(resnet.ResNet):
    """torchvision's ResNet with the stem and every stage's ``planes`` scaled by ``width``
    (``_make_layer`` is the only method changed; the blocks are torchvision's)."""

    def __init__(self, block, layers, width: float, **kw):
        object.__setattr__(self, "_width", width)
        super().__init__(block, layers, **kw)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage reads the scaled stem
            self.inplanes = max(1, round(64 * self._width))
        return super()._make_layer(block, max(1, round(planes * self._width)), blocks,
                                   stride, dilate)


def _vgg11_bn(width: float, num_classes: int) -> nn.Module:
    cfg = [max(1, round(c * width)) if c != "M" else c for c in vgg.cfgs["A"]]
    model = vgg.VGG(vgg.make_layers(cfg, batch_norm=True), num_classes=num_classes)
    c, hidden = cfg[-2], max(8, round(4096 * width))
    # torchvision's classifier shape (7x7 pooled features, two hidden layers, dropout)
    model.classifier = nn.Sequential(
        nn.Linear(c * 49, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, num_classes))
    return model


def tv_model(family: str, *, width: float = 1.0, num_classes: int = 10,
             seed: int = 0) -> nn.Module:
    """A torchvision ``family`` (see :data:`FAMILIES`) with its widths scaled by ``width``.
    ``resnext`` is a one-block-per-stage ResNeXt (4 groups of 8 channels per 64 planes);
    ``regnet_x`` a four-block RegNetX with group width 4."""
    if family not in FAMILIES:
        raise ValueError(f"family: unknown {family!r}; allowed: {', '.join(FAMILIES)}")
    if not width > 0:
        raise ValueError(f"width: must be positive, got {width!r}")
    torch.manual_seed(seed)
    if family in ("resnet18", "resnet34", "resnext"):
        block = resnet.Bottleneck if family == "resnext" else resnet.BasicBlock
        layers = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}.get(family, [1] * 4)
        kw = {"groups": 4, "width_per_group": 8} if family == "resnext" else {}
        model = _ResNet(block, layers, width, num_classes=num_classes, **kw)
        c0 = max(1, round(64 * width))
        model.conv1, model.bn1 = nn.Conv2d(3, c0, 7, 2, 3, bias=False), nn.BatchNorm2d(c0)
        model.fc = nn.Linear(model.inplanes, num_classes)
        return model
    if family == "mobilenet_v2":
        return mobilenet_v2(num_classes=num_classes, width_mult=width)
    if family == "mobilenet_v3_small":
        return mobilenet_v3_small(num_classes=num_classes, width_mult=width)
    if family == "vgg11_bn":
        return _vgg11_bn(width, num_classes)
    params = regnet.BlockParams.from_init_params(depth=4, w_0=max(4, round(64 * width)),
                                                 w_a=max(4.0, 32 * width), w_m=2,
                                                 group_width=4)
    return regnet.RegNet(params, num_classes=num_classes)
