"""Chapter 10's experiment code against independent computations: the ResNet's size
against a closed-form count, the schedule, the diets against plain NumPy selections, the
matching density and the red line against hand-made tables, a tiny real run (IMP's exact
densities, the output layer kept whole, resumable), and the configuration's regime checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from labkit import config
from labkit.algorithms import sparsity as S
from labkit.experiments.diet import analysis as DA
from labkit.experiments.diet import cell as D
from labkit.experiments.diet import resnet


def _closed_form_params(depth: int, w: int, cin: int, classes: int) -> int:
    """He et al.'s CIFAR ResNet with 1x1 convolution shortcuts, counted by hand: every
    convolution without bias, every batch norm 2 parameters per channel."""
    n = (depth - 2) // 6
    total = 9 * cin * w + 2 * w  # stem
    c = w
    for stage, cout in enumerate((w, 2 * w, 4 * w)):
        for j in range(n):
            total += 9 * c * cout + 2 * cout + 9 * cout * cout + 2 * cout
            if stage > 0 and j == 0:
                total += c * cout + 2 * cout  # the shortcut
            c = cout
    return total + c * classes + classes


@pytest.mark.parametrize("depth,width,cin", [(20, 16, 3), (8, 8, 1), (14, 4, 1)])
def test_resnet_size_matches_the_closed_form(depth, width, cin):
    net = resnet.CifarResNet(depth, width, cin)
    assert sum(p.numel() for p in net.parameters()) == _closed_form_params(depth, width,
                                                                           cin, 10)
    with pytest.raises(ValueError, match="depth"):
        resnet.CifarResNet(10, 8, 1)


def test_schedule_drops_at_half_and_three_quarters():
    cfg = config.get("diet", steps=100, lr=0.1)
    assert [D.rate(cfg, t) for t in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_diets_against_plain_selections():
    cfg = config.get("diet", diet_size=30)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    rng.shuffle(labels)
    scores = rng.random(len(labels))
    import torch

    data = (torch.zeros(len(labels), 1, 4, 4), torch.as_tensor(labels), None, None, False)
    D._EL2N[(cfg.digest(), 5)] = scores  # the scores EL2N would give, fixed
    try:
        for diet in ("easy", "hard"):
            got = D.diet_pool(cfg, data, diet, 5)
            expected = []
            for c in range(10):  # per class, the 3 lowest (highest) scores
                idx = np.flatnonzero(labels == c)
                ranked = idx[np.argsort(scores[idx])]
                expected += list(ranked[:3] if diet == "easy" else ranked[-3:])
            assert np.array_equal(got, np.sort(expected)), diet
        got = D.diet_pool(cfg, data, "easy_global", 5)
        assert np.array_equal(got, np.sort(np.argsort(scores)[:30]))
    finally:
        D._EL2N.clear()
    rand = D.diet_pool(cfg, data, "random", 5)
    assert len(rand) == 30 and np.all(np.bincount(labels[rand]) == 3)
    assert np.array_equal(D.diet_pool(cfg, data, "full", 5), np.arange(len(labels)))


def test_batches_depend_only_on_stream_and_step():
    pool = np.arange(100)
    a = D._batch(pool, 8, 3, 17)
    assert np.array_equal(a, D._batch(pool, 8, 3, 17))
    assert not np.array_equal(a, D._batch(pool, 8, 4, 17))
    assert not np.array_equal(a, D._batch(pool, 8, 3, 18))


def test_matching_and_red_line_read_hand_made_tables():
    rows = [{"part": "imp", "seed": 0, "diet": "full", "t": 0, "round": r, "density": d,
             "test_error": e}
            for r, (d, e) in enumerate([(1, 0.05), (0.5, 0.055), (0.25, 0.07), (0.125, 0.058)])]
    m = DA.matching(pd.DataFrame(rows), tol=0.01)
    # 0.07 is the first beyond 0.05 + 0.01: matching stops at 0.5, though 0.058 is back
    assert m.loc[0, "matching_density"] == 0.5
    assert m.loc[0, "sparsest_error"] == 0.058 and m.loc[0, "dense_error"] == 0.05
    g = [{"part": "gfs", "mode": "pretrain", "f": 1.0, "seed": 0, "t": t, "accuracy": a}
         for t, a in ((0, 0.6), (10, 0.8), (20, 0.95), (30, 0.96), (40, 0.96))]
    g += [{"part": "gfs", "mode": "pretrain", "f": 0.5, "seed": 0, "t": t, "accuracy": a}
          for t, a in ((0, 0.6), (10, 0.7), (20, 0.9), (30, 0.99), (40, 0.99))]
    red = DA.gfs_red_line(pd.DataFrame(g), plateau_from=30, tolerance=0.02)
    assert red["target"].iloc[0] == pytest.approx(0.94)
    by = red.set_index("f")
    assert by.loc[1.0, "t_red"] == 20  # the plateau checkpoints are never candidates
    assert by.loc[0.5, "censored"] and math.isnan(by.loc[0.5, "t_red"])


def test_a_tiny_run_prunes_exactly_and_resumes(tmp_path):
    cfg = config.get("diet", image_size=8, width=2, steps=12, rewinds=(0, 3),
                     diets=("random",), diet_step=3, diet_size=50, rounds=3,
                     imp_fraction=0.5, lmc_alphas=3, bn_batches=2, lmc_examples=40,
                     seeds=(0,), gfs_N=20, gfs_k=5, gfs_fractions=(0.5, 1.0),
                     gfs_checkpoints=(0, 5), gfs_plateau=(10,), gfs_batch=16,
                     gfs_seeds=(0,))
    table = D.run_diet(cfg, out=tmp_path)
    net = resnet.CifarResNet(cfg.depth, cfg.width, 1)
    prunable = S.prunable(net, ignore=(D.OUTPUT,))
    assert D.OUTPUT not in prunable
    total = sum(p.numel() for p in prunable.values())
    kept = [total]
    for _ in range(2):
        kept.append(kept[-1] - math.ceil(0.5 * kept[-1]))
    imp = table[table["part"] == "imp"]
    for _, g in imp.groupby(["diet", "t"]):
        assert list(g.sort_values("round")["density"]) == pytest.approx(
            [k / total for k in kept])
    assert set(table["part"]) == {"imp", "lmc", "rewind", "gfs"}
    again = D.run_diet(cfg, out=tmp_path)
    pd.testing.assert_frame_equal(table, again)
    info = json.loads((tmp_path / "diet" / "manifest.json").read_text())
    assert info["cells_computed"] == 0


def test_the_regime_is_validated():
    with pytest.raises(ValueError, match="rewinds: a rewind point must come early"):
        config.get("diet", steps=100, rewinds=(0, 60))
    with pytest.raises(ValueError, match="rewinds: must include 0"):
        config.get("diet", rewinds=(10, 25))
    with pytest.raises(ValueError, match="diet_step"):
        config.get("diet", diet_step=30)
    with pytest.raises(ValueError, match="diets"):
        config.get("diet", diets=("medium",))
    with pytest.raises(ValueError, match="gfs_k"):
        config.get("diet", gfs_N=100, gfs_k=50)
    with pytest.raises(ValueError, match="gfs_fractions"):
        config.get("diet", gfs_fractions=(0.1, 0.5))
