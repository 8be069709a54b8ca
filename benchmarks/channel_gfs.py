"""Benchmark: one greedy step of channel GFS in a CIFAR-shaped ResNet34 (chapter 7), our
scorer against the reference strategy.

- ``ours``: ``labkit.deep.channel_gfs.score_candidates``: the frozen prefix (stem and earlier
  blocks) runs once, every candidate's pre-activation comes from one grouped convolution
  (the block's ``conv2`` is linear in the channel mask), and only the block's tail and the
  suffix run per candidate, candidates stacked along the batch;
- ``ref``: ``labkit.deep.channel_gfs.brute_force_scores``: one full-network forward pass per
  candidate, as in the reference implementation.

Setting (issue 7): torchvision ResNet34 at full width with the 3x3 CIFAR stem, a batch of
128 inputs of shape 3x32x32, 50 random candidates, ``k = 5`` channels already selected; one
row per pruned block. Both must select the same channel (asserted) and the largest score
difference is printed. ``FLOPs`` are counted with ``torch.utils.flop_counter`` for both
strategies (on 8 of the inputs: both are linear in the batch), so the time ratio can be
set against the work ratio: the saving is the prefix,
so it grows with the block's depth.

``--families`` (issue 19) runs the same comparison for the any-architecture scorer
(``labkit.deep.prune.score_candidates``: an fx trace run once up to the cut, the rest per
candidate) on four supported groups at increasing depth (first, middle, three quarters,
last) of each torchvision family of ``labkit.deep.zoo`` at ``--width``, against
``labkit.deep.prune.reference_scores``; for ResNet34 and MobileNetV2 it also times the
hand-described scorer on the same group when there is one (``hand_s``), to show what the
generic graph walk costs.

Run: ``python benchmarks/channel_gfs.py [--blocks 1,8,14,16] [--repeats 1] [--json out.json]``
or ``python benchmarks/channel_gfs.py --families all --width 0.5 --batch 64 --json out.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# speed is measured with the machine's own fastest kernels and all its cores, not quick
# mode's CPU pins (labkit.infra.cpu_pins), which exist for reproducible numbers
os.environ.setdefault("LABKIT_PIN_CPU", "0")

import torch
from torch.utils.flop_counter import FlopCounterMode

from labkit.deep import channel_gfs as cg
from labkit.deep import graph as cgr
from labkit.deep import nets as dn
from labkit.deep import prune as cp
from labkit.deep import zoo


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def bench_block(model, group, x, y, n_candidates: int, k: int, repeats: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(group.C)
    counts[torch.randperm(group.C, generator=g)[:k]] = 1
    free = torch.nonzero(counts == 0).flatten()
    cands = free[torch.randperm(len(free), generator=g)[:n_candidates]].sort().values
    chain = dn.stages(model)

    def ours(x=x, y=y):
        with torch.no_grad():
            x_in = dn.run_chain(chain[:group.stage], x)  # the frozen prefix, once per step
            h = group.inner(x_in)
            return cg.score_candidates(model, group, x_in, h, y, counts, cands)

    def ref(x=x, y=y):
        return cg.brute_force_scores(model, group, x, y, counts, cands)

    fast, t_fast = timed(ours, repeats)
    slow, t_slow = timed(ref, repeats)
    # FLOPs are linear in the batch: count them on 8 inputs (same rows per pass per candidate)
    few = {"x": x[:8], "y": y[:8]}
    same = cg.pick(fast, cands) == cg.pick(slow, cands)
    assert same, f"{group.name}: our scorer and the reference select different channels"
    return {"block": group.name, "C": group.C, "ours_s": t_fast, "ref_s": t_slow,
            "speedup": t_slow / t_fast,
            "flop_ratio": flops(lambda: ref(**few)) / flops(lambda: ours(**few)),
            "max_score_diff": float((fast - slow).abs().max()), "same_selection": same,
            "selected": cg.pick(fast, cands)}


def _hand_group(model, group):
    """The hand-described group of ``model`` (a ``labkit.deep.nets`` ResNet34 or
    MobileNetV2) whose consumer is ``group``'s only consumer, else ``None``."""
    try:
        hands = dn.channel_groups(model)
    except ValueError:
        return None
    mods = [c.module for c in group.consumers]
    return next((h for h in hands if mods == [h.conv]), None)


def bench_family(family, width, x, y, n_candidates, k, repeats, seed):
    """Four groups of one family: the generic scorer against one pass per candidate."""
    if family in dn.ARCHS:  # the book's own adaptation (3x3 stem), so hand groups exist
        model = dn.build(family, width=width, in_channels=3, seed=seed)
    else:
        model = zoo.tv_model(family, width=width, seed=seed)
    model = model.to(x.device).eval()
    found = [g for g in cgr.find_groups(model, x[:1]) if g.supported]
    inner = [g for g in found if g.kind == "inner"]
    inner = inner if len(inner) >= 4 else found  # ResNeXt, RegNetX: few inner groups left
    picks = sorted({round(q * (len(inner) - 1)) for q in (0, 0.5, 0.75, 1)})
    traced = cgr.Traced(model)
    rows = []
    for i in picks:
        group = inner[i]
        g = torch.Generator().manual_seed(seed + i)
        counts = torch.zeros(group.C, device=x.device)
        counts[torch.randperm(group.C, generator=g)[:min(k, group.C - 1)]] = 1
        free = torch.nonzero(counts.cpu() == 0).flatten()
        cands = free[torch.randperm(len(free), generator=g)[:n_candidates]].sort().values

        def ours(x=x, y=y, group=group, counts=counts, cands=cands):
            return cp.score_candidates(traced, group, x, y, counts, cands)

        def ref(x=x, y=y, group=group, counts=counts, cands=cands):
            return cp.reference_scores(model, group, x, y, counts, cands)

        fast, t_fast = timed(ours, repeats)
        slow, t_slow = timed(ref, repeats)
        hand, t_hand = _hand_group(model, group), None
        if hand is not None:
            chain = dn.stages(model)

            def by_hand(hand=hand, counts=counts, cands=cands, chain=chain):
                with torch.no_grad():
                    x_in = dn.run_chain(chain[:hand.stage], x)
                    return cg.score_candidates(model, hand, x_in, hand.inner(x_in), y,
                                               counts, cands)

            _, t_hand = timed(by_hand, repeats)
        few = {"x": x[:8], "y": y[:8]}

        def ratio(few=few, ours=ours, ref=ref):
            return flops(lambda: ref(**few)) / flops(lambda: ours(**few))

        same = cg.pick(fast, cands) == cg.pick(slow, cands)
        assert same, f"{family} {group.name}: the scorers select different channels"
        rows.append({"family": family, "block": group.name, "C": group.C,
                     "ours_s": t_fast, "ref_s": t_slow, "hand_s": t_hand,
                     "speedup": t_slow / t_fast,
                     "flop_ratio": ratio(), "same_selection": same,
                     "max_score_diff": float((fast - slow).abs().max())})
    return rows


def main_families(args):
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(10, (args.batch,), generator=g).to(device)
    families = zoo.FAMILIES if args.families == "all" else args.families.split(",")
    print(f"width {args.width}, 32x32 inputs, batch {args.batch}, {args.candidates} "
          f"candidates, k={args.k}, {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'family':>18} {'group':>34} {'C':>5} {'ours (s)':>9} {'ref (s)':>9} "
          f"{'hand (s)':>9} {'speed-up':>9} {'FLOP ratio':>10}")
    rows = []
    for family in families:
        for row in bench_family(family, args.width, x, y, args.candidates, args.k,
                                args.repeats, seed=0):
            rows.append(row)
            hand = "-" if row["hand_s"] is None else f"{row['hand_s']:.3f}"
            print(f"{family:>18} {row['block']:>34} {row['C']:>5} {row['ours_s']:>9.3f} "
                  f"{row['ref_s']:>9.3f} {hand:>9} {row['speedup']:>8.1f}x "
                  f"{row['flop_ratio']:>9.1f}x", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="1,8,14,16",
                        help="1-based indices of the 16 basic blocks to prune")
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--k", type=int, default=5, help="channels already selected")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    parser.add_argument("--families", default=None,
                        help="'all' or comma-separated labkit.deep.zoo families (any "
                             "architecture scorer) instead of the ResNet34 blocks")
    args = parser.parse_args(argv)
    if args.families:
        rows = main_families(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "torch": torch.__version__, "rows": rows}, f,
                          indent=2)
        return

    device = torch.device(args.device)
    model = dn.build("resnet34", width=args.width, in_channels=3, seed=0).to(device).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(10, (args.batch,), generator=g).to(device)
    groups = dn.channel_groups(model)
    rows = []
    print(f"ResNet34 (width {args.width}, CIFAR stem), batch {args.batch}, "
          f"{args.candidates} candidates, k={args.k}, {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'block':>8} {'C':>4} {'ours (s)':>9} {'ref (s)':>9} {'speed-up':>9} "
          f"{'FLOP ratio':>10} {'max |diff|':>10} same")
    for b in (int(s) for s in args.blocks.split(",")):
        if not 1 <= b <= len(groups):
            raise SystemExit(f"--blocks: {b} is not a block index in 1..{len(groups)}")
        row = bench_block(model, groups[b - 1], x, y, args.candidates, args.k, args.repeats,
                          seed=b)
        rows.append(row)
        print(f"{row['block']:>8} {row['C']:>4} {row['ours_s']:>9.2f} {row['ref_s']:>9.2f} "
              f"{row['speedup']:>8.1f}x {row['flop_ratio']:>9.1f}x "
              f"{row['max_score_diff']:>10.1e} {row['same_selection']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
