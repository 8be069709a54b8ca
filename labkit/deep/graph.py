"""Channel groups of any traceable CNN, found from its dependency graph, with channel masks
and the physically smaller model. Chapter 7 (Appendix E, for architectures the paper did
not use); the hand-described ResNet34 and MobileNetV2 groups are in :mod:`labkit.deep.nets`.

A *channel group* is a set of channels that must be kept or removed together: the output
channels of one or more producing convolutions (several when residual additions tie them),
every per-channel layer in between (BatchNorm, depthwise convolutions, activations, pooling,
squeeze-excitation gates) and the input channels of the *consumers*, the convolutions and
linear layers that read them. Torch-Pruning's DependencyGraph (Fang et al. 2023) finds the
groups and removes channels physically; labkit adds the mask semantics GFS needs.

Mask semantics. A mask ``mu`` (one non-negative weight per channel of the group) multiplies
the group's channels where each consumer reads them. Consumers are linear in their input, so
``consumer(mu h) = W (mu h) + b`` folds into the consumer's weights; a channel with
``mu_c = 0`` is read by no one and can be removed from every producer and per-channel
layer. :func:`shrink` does exactly that, so its outputs equal the masked model's (tested in
float64 on five torchvision families). Groups that touch a grouped (not depthwise)
convolution cannot lose single channels (``nn.Conv2d`` needs equal channels per group) and
are reported as unsupported, with the reason.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import fx, nn

# Modules with parameters or buffers that the mask semantics and Torch-Pruning's removal
# handle exactly; anything else is rejected by name (a LayerNorm or GroupNorm mixes channels,
# so removing one would change the others).
SUPPORTED_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
# Torch-Pruning's pseudo-modules for parameter-free tensor operations that act per channel
# or only move channels around; _OutputOp (channels that reach the model output) is not here.
_PASS_OPS = (tp.ops._ElementWiseOp, tp.ops._ReshapeOp, tp.ops._ConcatOp, tp.ops._SplitOp)


@dataclass(frozen=True)
class Consumer:
    """A layer that reads the group: ``module`` (Conv2d with ``groups=1``, or Linear) and
    ``index``, its input slots in group order: ``index.view(C, r)[c]`` are the ``r`` slots
    that carry channel ``c`` (``r = H W`` for a Linear after a flatten, else 1)."""

    name: str
    module: nn.Module
    index: torch.Tensor

    @property
    def width(self) -> int:
        m = self.module
        return m.in_channels if isinstance(m, nn.Conv2d) else m.in_features


@dataclass
class Group:
    """One channel group: ``C`` channels numbered like the output channels of the first
    producer ``root``; ``supported`` is False with ``reason`` when GFS cannot prune it."""

    name: str
    C: int
    root: nn.Module
    producers: tuple[str, ...]
    consumers: tuple[Consumer, ...] = ()
    supported: bool = True
    reason: str = ""

    @property
    def kind(self) -> str:
        """``inner`` for one producer (a block's hidden channels), ``coupled`` when residual
        additions tie several producers' outputs together."""
        return "inner" if len(self.producers) == 1 else "coupled"


def _is_grouped(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and not (
        m.groups == m.in_channels == m.out_channels)


def check_layers(model: nn.Module) -> None:
    """Raise a clear error naming the first module whose type channel GFS cannot prune."""
    allowed = ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
    for name, m in model.named_modules():
        own = list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))
        if own and not isinstance(m, SUPPORTED_LAYERS):
            raise ValueError(f"model: layer {name!r} is a {type(m).__name__}, which channel "
                             f"GFS cannot prune; layers with weights must be one of {allowed}")
        if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
            raise ValueError(f"model: layer {name!r} has padding_mode={m.padding_mode!r}; "
                             f"channel GFS supports 'zeros' only")


def _consumer(name, module, item, C) -> Consumer:
    slots = [[] for _ in range(C)]
    for j, c in zip(item.idxs, item.root_idxs, strict=True):
        slots[int(c)].append(int(j))
    r = {len(s) for s in slots}
    if len(r) != 1:
        raise ValueError(f"model: consumer {name!r} reads the group's channels unevenly "
                         f"({sorted(r)} slots per channel); channel GFS cannot mask it")
    return Consumer(name, module, torch.tensor(slots, dtype=torch.long).flatten())


def find_groups(model: nn.Module, example_inputs: torch.Tensor) -> list[Group]:
    """Every channel group of ``model`` rooted at a convolution or linear layer, input to
    output (by the position of the root in ``model.named_modules()``), supported or not.
    Groups that no layer reads (the logits) are left out."""
    check_layers(model)
    names = {m: n for n, m in model.named_modules()}
    position = {m: i for i, m in enumerate(names)}
    was_training = model.training
    model.eval()
    DG = _graph(model, example_inputs)
    model.train(was_training)
    groups = []
    for g in DG.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear]):
        root = g.items[0].dep.target.module
        C = len(g.items[0].idxs)
        producers, consumers, reason = [], [], ""
        for item in g.items:
            m, fn = item.dep.target.module, item.dep.handler
            if isinstance(m, tp.ops._OutputOp):
                reason = "its channels reach the model output"
                continue
            if isinstance(m, _PASS_OPS):
                continue
            name = names[m]
            if _is_grouped(m) and not reason:
                reason = (f"{name} is a grouped convolution (groups={m.groups}): channels "
                          f"can only be removed a whole group at a time")
            elif not isinstance(m, SUPPORTED_LAYERS) and not reason:
                reason = f"{name} is a {type(m).__name__}"
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not (
                    isinstance(m, nn.Conv2d) and m.groups > 1):
                if fn in (tp.prune_conv_in_channels, tp.prune_linear_in_channels):
                    consumers.append(_consumer(name, m, item, C))
                else:
                    producers.append(name)
        if reason == "its channels reach the model output" or not consumers:
            continue  # the logits, or channels that reach the output otherwise
        groups.append(Group(names[root], C, root,
                            tuple(producers), tuple(consumers), not reason, reason))
    return sorted(groups, key=lambda g: position[g.root])


# -- masks ---------------------------------------------------------------------------------

def _apply_mask(module, args):
    x, mask = args[0], module.channel_mask
    if isinstance(module, nn.Conv2d):
        return (x * mask.view(-1, 1, 1),)
    return (x * mask,)


def consumer_mask(consumer: Consumer) -> torch.Tensor:
    """The consumer's current input mask (ones where none is set)."""
    m = consumer.module
    mask = getattr(m, "channel_mask", None)
    if mask is None:
        return torch.ones(consumer.width, dtype=m.weight.dtype, device=m.weight.device)
    return mask


def set_group_mask(group: Group, mu: torch.Tensor | None) -> None:
    """Weight the group's channels by ``mu`` (length ``C``) wherever a consumer reads them,
    or reset them to 1 (``None``). Masks are buffers of the consumers, kept with the model's
    state; a consumer fed by several groups (a concatenation) carries all of their masks."""
    C = group.C
    if mu is not None:
        mu = torch.as_tensor(mu)
        if mu.shape != (C,) or (mu < 0).any():
            raise ValueError(f"mu: expected {C} non-negative weights for {group.name}, got "
                             f"shape {tuple(mu.shape)}")
    for cons in group.consumers:
        m = cons.module
        mask = consumer_mask(cons).clone()
        r = len(cons.index) // C
        new = torch.ones(C) if mu is None else mu
        mask[cons.index] = new.to(mask).repeat_interleave(r)
        m.register_buffer("channel_mask", mask)
        # no handle kept: a deep copy of the model must carry its own hook
        if _apply_mask not in m._forward_pre_hooks.values():
            m.register_forward_pre_hook(_apply_mask)


def clear_masks(model: nn.Module) -> None:
    for m in model.modules():
        hooks = m._forward_pre_hooks
        for key in [key for key, fn in hooks.items() if fn is _apply_mask]:
            del hooks[key]
        m._buffers.pop("channel_mask", None)


# -- the physically smaller model -------------------------------------------------------------

@torch.no_grad()
def shrink(model: nn.Module, example_inputs: torch.Tensor) -> nn.Module:
    """A physically smaller copy of a masked model: every mask is folded into its consumer's
    weights, then Torch-Pruning removes the channels no consumer reads (``mu_c = 0``) from
    every layer of their group. In eval mode its outputs equal the masked model's."""
    model = copy.deepcopy(model)
    for m in model.modules():
        mask = getattr(m, "channel_mask", None)
        if mask is not None:
            shape = (1, -1, 1, 1) if isinstance(m, nn.Conv2d) else (1, -1)
            m.weight.mul_(mask.view(shape))
    # a slot is dead when its mask is zero; a channel is removable when no consumer reads it
    dead = {id(m): getattr(m, "channel_mask", None) for m in model.modules()}
    clear_masks(model)
    for g in find_groups(model, example_inputs):
        if not g.supported:
            continue
        masks = [dead[id(c.module)] for c in g.consumers]
        if any(mk is None for mk in masks):
            continue
        zero = torch.ones(g.C, dtype=torch.bool)
        for cons, mk in zip(g.consumers, masks, strict=True):
            r = len(cons.index) // g.C
            zero &= (mk[cons.index].view(g.C, r) == 0).all(1).cpu()
        idxs = torch.nonzero(zero).flatten().tolist()
        if len(idxs) == g.C:
            raise ValueError(f"mask: {g.name} keeps no channel; a group needs at least one")
        if idxs:
            _prune(model, g, idxs, example_inputs)
    return model


def _graph(model, example_inputs) -> tp.DependencyGraph:
    with torch.enable_grad():  # Torch-Pruning traces through autograd
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs,
                                                     verbose=False)


def _prune(model, g: Group, idxs, example_inputs) -> None:
    DG = _graph(model, example_inputs)
    fn = (tp.prune_conv_out_channels if isinstance(g.root, nn.Conv2d)
          else tp.prune_linear_out_channels)
    DG.get_pruning_group(g.root, fn, idxs=idxs).prune()


# -- running a traced model from a cut ----------------------------------------------------------

class Traced:
    """``model`` traced by ``torch.fx``, run node by node so that the part of the network a
    group cannot change runs once and the rest runs for many candidates stacked in one batch.
    Modules are called from ``model`` itself, so its masks apply."""

    def __init__(self, model: nn.Module):
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as err:  # fx raises many types; the user needs the cause
            raise ValueError(f"model: torch.fx cannot trace {type(model).__name__} ({err}); "
                             f"channel GFS needs a traceable forward") from err
        self.model = model
        self.nodes = list(self.gm.graph.nodes)
        self.node_of: dict[str, fx.Node] = {}
        for n in self.nodes:
            if n.op == "call_module" and isinstance(model.get_submodule(n.target),
                                                    (nn.Conv2d, nn.Linear)):
                if n.target in self.node_of:
                    raise ValueError(f"model: module {n.target!r} is called twice in one "
                                     f"forward; channel GFS needs each layer used once")
                self.node_of[n.target] = n
        self.inputs = [n for n in self.nodes if n.op == "placeholder"]
        if len(self.inputs) != 1:
            raise ValueError(f"model: forward takes {len(self.inputs)} inputs; channel GFS "
                             f"needs exactly one")
        self.batched = self.descendants(self.inputs)
        self._cuts: dict = {}
        # the last node that reads each node's value: after it, the value can be dropped
        position = {n: i for i, n in enumerate(self.nodes)}
        self.last_use = {n: max((position[u] for u in n.users), default=position[n])
                         for n in self.nodes}

    def cut(self, group: Group) -> tuple[dict, set]:
        """``group``'s consumer nodes (node -> :class:`Consumer`) and the nodes the group
        can change (the consumers and everything downstream), computed once per group."""
        key = tuple(c.name for c in group.consumers)
        if key not in self._cuts:
            by_node = {self.node_of[c.name]: c for c in group.consumers}
            self._cuts[key] = (by_node, self.descendants(by_node))
        return self._cuts[key]

    def descendants(self, start) -> set:
        out, stack = set(), list(start)
        while stack:
            n = stack.pop()
            if n not in out:
                out.add(n)
                stack.extend(n.users)
        return out

    def call(self, n: fx.Node, get):
        args, kwargs = fx.node.map_arg(n.args, get), fx.node.map_arg(n.kwargs, get)
        if n.op == "call_module":
            return self.model.get_submodule(n.target)(*args, **kwargs)
        if n.op == "call_function":
            return n.target(*args, **kwargs)
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        if n.op == "get_attr":
            obj = self.gm
            for part in n.target.split("."):
                obj = getattr(obj, part)
            return obj
        raise ValueError(f"model: unexpected graph node {n.op!r}")

    def prefix(self, x: torch.Tensor, cut: set) -> dict:
        """Values of every node outside ``cut`` (the nodes a group can change)."""
        env = {}
        for n in self.nodes:
            if n in cut or n.op == "output":
                continue
            env[n] = x if n.op == "placeholder" else self.call(n, env.__getitem__)
        return env

    def suffix(self, env: dict, cut: set, G: int, B: int, replace) -> torch.Tensor:
        """The output with every node of ``cut`` run on ``G`` stacked candidates (row
        ``g B + b``); ``replace(node, get)`` returns a consumer's output or ``None``."""
        env2, rep = {}, {}

        def get(a):
            if a in cut:
                return env2[a]
            v = env[a]
            if a in self.batched and torch.is_tensor(v) and v.dim() and v.shape[0] == B:
                if a not in rep:
                    rep[a] = v.repeat(G, *([1] * (v.dim() - 1)))
                return rep[a]
            return v

        for i, n in enumerate(self.nodes):
            if n.op == "output":
                return fx.node.map_arg(n.args[0], get)
            if n in cut:
                z = replace(n, get)
                env2[n] = self.call(n, get) if z is None else z
            # drop what no later node reads: G stacked candidates' activations are large
            for a in n.all_input_nodes:
                if self.last_use[a] == i:
                    env2.pop(a, None)
                    rep.pop(a, None)
        raise ValueError("model: traced graph has no output")
