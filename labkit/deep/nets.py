"""Deep networks for Appendix E (Tables 1-2): torchvision's ResNet34 and MobileNetV2, their
prunable channel groups, channel masks, and the physically smaller pruned model. Chapter 7.

Both models come from ``torchvision.models``. For 32x32 inputs (CIFAR10, and the MNIST
digits padded to 32x32 in quick mode) they get the usual adaptation by replacing modules:
ResNet34's 7x7 stride-2 stem and max-pool become one 3x3 stride-1 convolution. MobileNetV2's
strides are a parameter, ``strides`` = (stem, then each of its seven stages): torchvision's
``MNV2_IMAGENET`` = (2, 1, 2, 2, 2, 1, 2, 1); the usual CIFAR adaptation ``MNV2_CIFAR`` = (1, 1,
1, 2, 2, 1, 2, 1) keeps a 4x4 map before pooling; the default for 32x32 inputs, kept for
quick mode, is ``MNV2_QUICK`` = (2, 1, 2, 2, 1, 1, 2, 1): a 2x2 map too, with the
expansions at 8x8 and below, where a CPU runs these narrow depthwise convolutions about
2.5x faster than at 16x16 (measured: 22 ms against 55 ms for 192 digits at width 0.1).
``width`` multiplies every channel count (MobileNetV2's own ``width_mult``; for ResNet34
the stage widths 64/128/256/512), so quick mode can use a narrow network with the same depth.

A *channel group* is what layer-wise GFS prunes (Ye et al. 2020, as used in Appendix E):

- ResNet34: the inner channels of each basic block (output of ``conv1 -> bn1 -> relu``);
- MobileNetV2: the expanded hidden channels of each inverted residual with expansion (the
  output of the depthwise ``conv -> bn -> relu6``).

Either way the group feeds a bias-free convolution (``conv2``, resp. the 1x1 projection)
that is linear in its input, so a channel mask ``mu`` (one non-negative weight per channel)
applied to that input can be folded into the convolution's weights: :func:`shrink` drops
the channels with ``mu_c = 0`` from every module that produces them and scales the next
convolution's input weights by ``mu_c``; its outputs equal the masked model's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
from torchvision.models.resnet import BasicBlock, ResNet

from labkit.deep import ARCHS


class _ResNet34(ResNet):
    """torchvision's ResNet34 with every stage width scaled by ``width``. Only
    ``_make_layer``'s ``planes`` argument is changed; the blocks are torchvision's."""

    def __init__(self, width: float, num_classes: int):
        object.__setattr__(self, "_width", width)
        super().__init__(BasicBlock, [3, 4, 6, 3], num_classes=num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # the first stage: its input is the (scaled) stem's output
            self.inplanes = _scaled(64, self._width)
        return super()._make_layer(block, _scaled(planes, self._width), blocks, stride, dilate)


# torchvision's MobileNetV2 stages: expansion t, channels c, blocks n, stride s
_MNV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


MNV2_IMAGENET = (2, 1, 2, 2, 2, 1, 2, 1)
MNV2_CIFAR = (1, 1, 1, 2, 2, 1, 2, 1)
MNV2_QUICK = (2, 1, 2, 2, 1, 1, 2, 1)


def build(arch: str, *, num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
          small_input: bool = True, seed: int = 0,
          strides: tuple[int, ...] | None = None) -> nn.Module:
    """A torchvision ``arch`` (``resnet34`` or ``mobilenet_v2``), seeded, adapted to 32x32
    inputs when ``small_input`` and to ``in_channels`` input planes. ``strides``:
    MobileNetV2's stem and stage strides (default ``MNV2_QUICK`` for small inputs,
    ``MNV2_IMAGENET`` otherwise)."""
    if arch not in ARCHS:
        raise ValueError(f"arch: unknown architecture {arch!r}; allowed: {', '.join(ARCHS)}")
    if not width > 0:
        raise ValueError(f"width: must be positive, got {width!r}")
    torch.manual_seed(seed)
    if arch == "resnet34":
        model = _ResNet34(width, num_classes)
        c0 = model.layer1[0].conv1.in_channels
        if small_input:
            model.conv1 = nn.Conv2d(in_channels, c0, 3, 1, 1, bias=False)
            model.maxpool = nn.Identity()
        else:
            model.conv1 = nn.Conv2d(in_channels, c0, 7, 2, 3, bias=False)
        model.bn1 = nn.BatchNorm2d(c0)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.fc = nn.Linear(model.inplanes, num_classes)
        return model
    strides = tuple(strides or (MNV2_QUICK if small_input else MNV2_IMAGENET))
    if len(strides) != 8 or not set(strides) <= {1, 2}:
        raise ValueError(f"strides: MobileNetV2 needs 8 strides of 1 or 2 (stem, then seven "
                         f"stages), got {strides!r}")
    setting = [[t, c, n, s] for (t, c, n, _), s in zip(_MNV2_STAGES, strides[1:], strict=True)]
    model = mobilenet_v2(num_classes=num_classes, width_mult=width,
                         inverted_residual_setting=setting)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, strides[0], 1,
                                     bias=False)
    nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    return model


def stages(model: nn.Module) -> list[nn.Module]:
    """The model as a chain of modules whose composition is ``model(x)``: stem, one entry
    per block, head. Prefixes and suffixes of this chain are what channel GFS reuses."""
    if isinstance(model, ResNet):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
                  for b in layer]
        head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
        return [stem, *blocks, head]
    if isinstance(model, MobileNetV2):
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)
        return [*model.features, head]
    raise ValueError(f"model: {type(model).__name__} has no prunable channel groups; use "
                     f"labkit.deep.nets.build with arch in {ARCHS}")


def run_chain(chain, x: torch.Tensor) -> torch.Tensor:
    for module in chain:
        x = module(x)
    return x


@dataclass
class ChannelGroup:
    """One prunable group: channels ``0..C-1`` entering the bias-free convolution ``conv``
    of ``block`` (which is ``stages(model)[stage]``)."""

    name: str
    stage: int
    block: nn.Module

    @property
    def conv(self) -> nn.Conv2d:
        return self.block.conv2 if isinstance(self.block, BasicBlock) else self.block.conv[-2]

    @property
    def C(self) -> int:
        return self.conv.in_channels

    def inner(self, x: torch.Tensor) -> torch.Tensor:
        """The group's channels ``h`` (B, C, H, W) from the block input ``x``."""
        if isinstance(self.block, BasicBlock):
            b = self.block
            return b.relu(b.bn1(b.conv1(x)))
        return self.block.conv[:-2](x)

    def tail(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The block output from ``z = conv(mu * h)`` and the block input ``x``; ``x`` may
        have a batch ``G`` times smaller than ``z`` (candidates stacked), and is repeated."""
        b = self.block
        rep = z.shape[0] // x.shape[0]
        if isinstance(b, BasicBlock):
            identity = x if b.downsample is None else b.downsample(x)
            return F.relu(b.bn2(z) + identity.repeat(rep, 1, 1, 1))
        out = b.conv[-1](z)
        return out + x.repeat(rep, 1, 1, 1) if b.use_res_connect else out


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """The prunable groups of a model from :func:`build`, input to output. MobileNetV2's
    first inverted residual (no expansion) has no hidden channels of its own and is left
    out."""
    groups = []
    for i, block in enumerate(stages(model)):
        if isinstance(block, BasicBlock) or (isinstance(block, InvertedResidual)
                                             and len(block.conv) == 4):
            groups.append(ChannelGroup(f"block{i}", i, block))
    if not groups:
        raise ValueError(f"model: {type(model).__name__} has no prunable channel groups; "
                         f"use labkit.deep.nets.build with arch in {ARCHS}")
    return groups


def _apply_mask(conv, args):
    return (args[0] * conv.channel_mask.view(1, -1, 1, 1),)


def set_mask(group: ChannelGroup, mask: torch.Tensor | None) -> None:
    """Weight the group's channels by ``mask`` (length ``C``) in every forward pass, or
    remove the mask (``None``). The mask is a buffer of ``conv``, so it is saved with the
    model's state."""
    conv, hooks = group.conv, group.conv._forward_pre_hooks
    if mask is None:
        for key in [key for key, fn in hooks.items() if fn is _apply_mask]:
            del hooks[key]
        conv._buffers.pop("channel_mask", None)
        return
    mask = torch.as_tensor(mask, dtype=conv.weight.dtype, device=conv.weight.device)
    if mask.shape != (group.C,) or (mask < 0).any():
        raise ValueError(f"mask: expected {group.C} non-negative weights for {group.name}, "
                         f"got shape {tuple(mask.shape)}")
    conv.register_buffer("channel_mask", mask.clone())
    # no handle kept: a deep copy of the model must carry its own hook, not the original's
    if _apply_mask not in hooks.values():
        conv.register_forward_pre_hook(_apply_mask)


def _new_conv(conv: nn.Conv2d, out_idx=None, in_idx=None, in_scale=None) -> nn.Conv2d:
    W = conv.weight.detach()
    depthwise = conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
    if out_idx is not None:
        W = W[out_idx]
    if in_idx is not None:
        W = W[:, in_idx] * in_scale.view(1, -1, 1, 1)
    groups = W.shape[0] if depthwise else conv.groups
    new = nn.Conv2d(W.shape[1] * groups, W.shape[0], conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, groups, bias=False,
                    device=W.device, dtype=W.dtype)
    new.weight.data.copy_(W)
    return new


def _new_bn(bn: nn.BatchNorm2d, idx) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), bn.eps, bn.momentum, device=bn.weight.device,
                         dtype=bn.weight.dtype)
    for name in ("weight", "bias"):
        getattr(new, name).data.copy_(getattr(bn, name).detach()[idx])
    new.running_mean.copy_(bn.running_mean[idx])
    new.running_var.copy_(bn.running_var[idx])
    new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new.train(bn.training)


def shrink(model: nn.Module) -> nn.Module:
    """A physically smaller copy of a masked model: channels with zero weight are removed,
    the others' weights folded into the next convolution, BatchNorm statistics kept. In eval
    mode its outputs equal the masked model's (tested in float64)."""
    model = copy.deepcopy(model)
    for g in channel_groups(model):
        mask = getattr(g.conv, "channel_mask", None)
        if mask is None:
            continue
        keep = torch.nonzero(mask).flatten()
        if len(keep) == 0:
            raise ValueError(f"mask: {g.name} keeps no channel; a group needs at least one")
        b, scale = g.block, mask[keep]
        if isinstance(b, BasicBlock):
            b.conv1, b.bn1 = _new_conv(b.conv1, out_idx=keep), _new_bn(b.bn1, keep)
            b.conv2 = _new_conv(b.conv2, in_idx=keep, in_scale=scale)
        else:
            expand, dw = b.conv[0], b.conv[1]
            expand[0], expand[1] = _new_conv(expand[0], out_idx=keep), _new_bn(expand[1], keep)
            dw[0], dw[1] = _new_conv(dw[0], out_idx=keep), _new_bn(dw[1], keep)
            b.conv[2] = _new_conv(b.conv[2], in_idx=keep, in_scale=scale)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on one input (``torch.utils.flop_counter``: 2 per
    multiply-add of convolutions and linear layers)."""
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *input_shape, dtype=p.dtype, device=p.device))
    model.train(was_training)
    return int(counter.get_total_flops())
