"""Chapter 11's stopping rules and :class:`labkit.EarlyTicket` against independent
computations: the pruning term against chapter 3's Lemma 1 bound and against GFS itself
(a deliberately wrong term fails), the two-sweep diameter against the exact one, the
distances against ``collections.Counter`` and set arithmetic, the streaming callback
against the offline rule on whole trajectories (random ones and seeded ones whose right
stop is known), the callback in real training loops of both network kinds, and the
configuration's regime checks."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import labkit as lk
from labkit import config
from labkit.experiments.stopping import analysis as tr_analysis
from labkit.experiments.stopping import cell as tr
from labkit.experiments.stopping import rules as st


def _instance(seed: int, N: int = 40, m: int = 12):
    g = torch.Generator().manual_seed(seed)
    Phi = torch.randn(N, m, generator=g, dtype=torch.float64) * (1 + seed % 3)
    y = torch.randn(m, generator=g, dtype=torch.float64)
    return Phi, y


def test_pruning_term_is_lemma1_bound_less_its_dense_part():
    for seed in range(5):
        Phi, y = _instance(seed)
        k = 25
        bound = lk.lemma1_bound(Phi, y, k)
        l1 = float(st.vertex_losses(Phi, y, "mse").min())
        for j in (1, 2, 10, k):
            term = st.pruning_term(l1, bound.D, Phi.shape[1], j)
            assert term + (1 - 1 / j) * bound.dense_loss == pytest.approx(bound.total[j - 1],
                                                                          rel=1e-12)


def test_pruning_term_holds_on_adversarial_instances_and_a_wrong_term_does_not():
    """``l(z_k) <= P_k + (1 - 1/k) l(z*)`` on chapter 3's adversarial instances (``z*`` the
    polytope's minimizer), which use 3/8 of the diameter term: the same bound without its
    diameter term fails on every one of them."""
    for inst in lk.adversarial_instances():
        Phi, y, z_star = (torch.as_tensor(inst[key]) for key in ("Phi", "y", "z_star"))
        k = 20
        res = lk.greedy_forward_selection(Phi, y, k, replacement=True)
        D, m = lk.diameter(Phi)[0], Phi.shape[1]
        l1 = float(st.vertex_losses(Phi, y, "mse").min())
        best = float(((z_star - y) ** 2).mean())
        ks = range(1, k + 1)
        assert all(res.losses[j - 1] <= st.pruning_term(l1, D, m, j) + (1 - 1 / j) * best
                   + 1e-12 for j in ks)
        assert any(res.losses[j - 1] > l1 / j + (1 - 1 / j) * best + 1e-12 for j in ks)


def test_cross_entropy_pruning_term_bounds_gfs():
    """The binary cross-entropy form (``beta/2 = 1/(8m)``: the logistic loss's second
    derivative is at most 1/4) holds for GFS with replacement on random instances at
    several scales, the logits from small (the quadratic regime) to large."""
    for seed in range(12):
        Phi, y = _instance(seed)
        Phi, y = Phi * (0.2 + seed), (y > 0).double()
        k = 30
        res = lk.greedy_forward_selection(Phi, y, k, loss="bce", replacement=True)
        D = lk.diameter(Phi)[0]
        l1 = float(st.vertex_losses(Phi, y, "bce").min())
        dense = float(st.vertex_losses(Phi.mean(0, keepdim=True), y, "bce")[0])
        for j in range(1, k + 1):
            rhs = st.pruning_term(l1, D, Phi.shape[1], j, "bce") + (1 - 1 / j) * dense
            assert res.losses[j - 1] <= rhs + 1e-9


def test_pruning_term_rejects_bad_input():
    with pytest.raises(ValueError, match="loss"):
        st.pruning_term(1.0, 1.0, 4, 3, "hinge")
    with pytest.raises(ValueError, match="k"):
        st.pruning_term(1.0, 1.0, 4, 0)


def test_sweep_diameter_brackets_the_exact_one():
    for seed in range(10):
        Phi, _ = _instance(seed, N=60, m=5)
        D = lk.diameter(Phi)[0]
        radius = float(((Phi - Phi.mean(0)) ** 2).sum(1).max().sqrt())
        assert st.sweep_diameter(Phi) <= D + 1e-12 <= 2 * radius + 1e-9
    line = torch.tensor([[0.0], [1.0], [5.0], [-2.0]])  # collinear points: exact
    assert st.sweep_diameter(line) == pytest.approx(7.0)


def _multiset_distance(a, b) -> float:
    ca, cb = collections.Counter(a), collections.Counter(b)
    return 1 - sum((ca & cb).values()) / max(len(a), len(b))


def test_distances_match_counter_and_set_arithmetic():
    assert st.selection_distance([1, 1, 2], [1, 2, 2]) == pytest.approx(1 / 3)
    assert st.selection_distance([1, 2], [2, 3], multiset=False) == pytest.approx(2 / 3)
    assert st.mask_distance([0, 1, 2], [1, 2, 3], 8) == pytest.approx(2 / 8)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(0, 6, 8).tolist(), rng.integers(0, 6, 8).tolist()
        assert st.selection_distance(a, b) == pytest.approx(_multiset_distance(a, b))
        A, B = set(a), set(b)
        assert st.selection_distance(a, b, multiset=False) == pytest.approx(
            len(A ^ B) / len(A | B))


def test_top_mask_is_a_global_threshold():
    scores = torch.tensor([0.5, 3.0, 1.0, 3.0, -9.0, 2.0])
    assert st.top_mask(scores, 0.5) == [1, 3, 5]
    rng = np.random.default_rng(1)
    s = rng.normal(size=101)
    assert st.top_mask(s, 0.3) == sorted(np.argsort(-s)[:31].tolist())


# -- the callback against the offline rule ----------------------------------------------------

def _replay(rule, obs) -> int | None:
    monitor = st.EarlyTicket(rule, k=len(obs[0].get("selection", [0])))
    for j, o in enumerate(obs):
        if monitor.observe_step(j, o):
            return monitor.stopped_at
    return None


def _random_trajectory(seed: int, C: int = 30, calm_from: int | None = None) -> list[dict]:
    """Selections and masks that drift less and less (a random walk whose steps shrink),
    dense losses that fall, pruning terms that grow."""
    rng = np.random.default_rng(seed)
    sel, mask, out = rng.integers(0, 20, 10), rng.choice(40, 20, replace=False), []
    for j in range(C):
        change = (max(0, 5 - j // 5) if calm_from is None
                  else (2 if 1 <= j <= calm_from else 0))
        for _ in range(change):  # each change really changes one entry
            i = rng.integers(10)
            sel[i] = (sel[i] + 1 + rng.integers(19)) % 20
            out_of_mask = np.setdiff1d(np.arange(40), mask)
            mask = mask.copy()
            mask[rng.integers(20)] = rng.choice(out_of_mask)
        out.append({"dense": float(np.exp(-0.3 * j + rng.normal(0, 0.3))),
                    "pruning_term": 0.01 * (1 + j), "selection": sel.tolist(),
                    "mask": sorted(mask.tolist()), "units": 40})
    return out


RULES = [st.BoundRule(0.1), st.BoundRule(1.0), st.StabilityRule(0.1), st.StabilityRule(0.0),
         st.StabilityRule(0.2, window=2, multiset=False), st.EarlyBirdRule(0.1),
         st.EarlyBirdRule(0.05, window=6)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.label} w={getattr(r, 'window', 0)}")
def test_callback_stops_where_the_offline_rule_does(rule):
    fired = 0
    for seed in range(20):
        obs = _random_trajectory(seed)
        offline = st.stop_index(rule, obs)
        assert _replay(rule, obs) == offline
        fired += offline is not None
    assert fired > 0  # the comparison is not vacuous


@pytest.mark.parametrize("calm_from", [0, 3, 11])
def test_a_trajectory_that_settles_stops_exactly_window_checks_later(calm_from):
    """Selections and masks change at every check up to ``calm_from`` and never after: a
    distance rule with ``tol=0`` fires at ``calm_from + window`` (at ``window``, the first
    full queue, when nothing ever changes), never before; with a window longer than the
    trajectory it never fires."""
    obs = _random_trajectory(7, C=20, calm_from=calm_from)
    for rule in (st.StabilityRule(0.0, window=4), st.EarlyBirdRule(0.0, window=3)):
        want = calm_from + rule.window
        assert st.stop_index(rule, obs) == want == _replay(rule, obs)
    assert st.stop_index(st.StabilityRule(0.0, window=25), obs) is None
    assert _replay(st.StabilityRule(0.0, window=25), obs) is None


def test_bound_rule_fires_at_the_first_crossing_equality_included():
    obs = [{"dense": d, "pruning_term": 1.0} for d in (0.5, 0.3, 0.1, 0.05)]
    assert st.stop_index(st.BoundRule(0.1), obs) == 2 == _replay(st.BoundRule(0.1), obs)
    assert st.stop_index(st.BoundRule(0.01), obs) is None


def test_rules_and_callback_reject_bad_input():
    with pytest.raises(ValueError, match="tol"):
        st.StabilityRule(tol=1.5)
    with pytest.raises(ValueError, match="window"):
        st.EarlyBirdRule(window=0)
    with pytest.raises(ValueError, match="keep"):
        st.EarlyBirdRule(keep=1.0)
    with pytest.raises(ValueError, match="fraction"):
        st.BoundRule(fraction=0)
    with pytest.raises(ValueError, match="rule"):
        st.EarlyTicket("stability", k=3)
    with pytest.raises(ValueError, match="every"):
        st.EarlyTicket(st.StabilityRule(), k=3, every=0)


def test_callback_in_a_two_layer_training_loop():
    """A user's own loop: the monitor checks every 5 steps, stops where the offline rule
    on the same observations says, and stays stopped."""
    X, y = lk.teacher_student(64, 5, seed=0)
    net = lk.TwoLayerNet(5, 256, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(net.parameters(), lr=0.5 * 256)
    rule = st.StabilityRule(0.25, window=3)
    monitor, seen = st.EarlyTicket(rule, k=8, every=5), []
    for step in range(400):
        loss = ((net(X) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 0:
            seen.append(st.observe(net, X, y, 8, bound=False))
        if monitor.update(step, net, (X, y)):
            break
    assert monitor.should_stop and monitor.update(step + 5, net, (X, y))
    assert monitor.stopped_at == 5 * st.stop_index(rule, seen)
    assert len(monitor.check_seconds) == len(seen) and "stopped at step" in repr(monitor)
    bound = st.EarlyTicket(st.BoundRule(0.5), k=8)
    assert bound.update(0, net, (X, y)) == (seen[-1]["dense"] <= 0.5 * st.observe(
        net, X, y, 8)["pruning_term"])


def test_channel_selection_matches_the_brute_force_scores():
    from labkit.deep.channel_gfs import brute_force_scores
    from labkit.deep.nets import channel_groups

    net = lk.build_deepnet("resnet34", width=0.0625, in_channels=1, seed=1).double().eval()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 1, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=g)
    order = st.channel_selection(net, X, y, 3)
    group = channel_groups(net)[-1]
    counts = torch.zeros(group.C, dtype=torch.float64)
    for c in order:  # each pick is the brute-force minimum given the earlier ones
        scores = brute_force_scores(net, group, X, y, counts, torch.arange(group.C))
        assert scores[c] <= scores.min() + 1e-9
        counts[c] += 1


def test_callback_on_a_channel_network():
    net = lk.build_deepnet("resnet34", width=0.0625, in_channels=1, seed=1)
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(8, 1, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    monitor = st.EarlyTicket(st.EarlyBirdRule(0.1, window=2), k=4)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    for step in range(4):
        loss = torch.nn.functional.cross_entropy(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.update(step, net, (X, y))
    assert net.training  # the check leaves the model's mode as it found it
    obs = st.observe(net, X, y, 4)
    assert obs["units"] == sum(m.num_features for m in net.modules()
                               if isinstance(m, torch.nn.BatchNorm2d))
    assert len(obs["selection"]) == 4 and len(monitor.check_seconds) == 4
    with pytest.raises(ValueError, match="rule: the bound rule"):
        st.EarlyTicket(st.BoundRule(), k=4).update(0, net, (X, y))
    with pytest.raises(ValueError, match="model: Sequential"):
        st.observe(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), X, y, 2)


# -- the experiment ---------------------------------------------------------------------------

def test_config_checks_the_regime():
    with pytest.raises(ValueError, match="ts_m"):
        config.StoppingConfig(ts_m=(300,), ts_N=1024)
    with pytest.raises(ValueError, match="ts_k"):
        config.StoppingConfig(ts_k=200)
    with pytest.raises(ValueError, match="fig1_k"):
        config.StoppingConfig(fig1_k=300)
    with pytest.raises(ValueError, match="fraction"):
        config.StoppingConfig(fraction=0.5)
    with pytest.raises(ValueError, match="ts_every"):
        config.StoppingConfig(ts_every=700)
    with pytest.raises(ValueError, match="testbeds"):
        config.StoppingConfig(testbeds=("cifar",))
    # a check interval that does not divide the horizon still ends at it: the fixed schedule
    uneven = config.StoppingConfig(ts_steps=1050, ts_every=100)
    assert uneven.checkpoints("teacher_student") == [*range(0, 1001, 100), 1050]


def _hand_table() -> pd.DataFrame:
    """Two seeds of one accuracy testbed, 8 checks of 10 steps: the selections settle at
    check 2 (seed 0) and check 4 (seed 1)."""
    rows = []
    for seed, calm in ((0, 2), (1, 4)):
        for j in range(8):
            sel = "1 2 3" if j >= calm else f"{j} {j + 10} {j + 20}"
            rows.append({"testbed": "digits", "setting": "s", "horizon": 70, "t": 10 * j,
                         "seed": seed, "dense": 1.0, "outcome": 0.5 + 0.05 * j,
                         "pruning_term": 0.0, "D_ratio": 1.0, "selection": sel,
                         "mask": "0 1", "units": 4, "check_s": 0.0})
    return pd.DataFrame(rows)


def test_stops_saving_and_cost_by_hand():
    cfg = config.StoppingConfig(tols=(0.0, 0.1), tol=0.1, window=2)
    stop = tr_analysis.rule_stops(_hand_table(), cfg)
    s = stop[stop["label"] == "stability tol=0"].set_index("seed")
    # seed 0 settles at check 2: stops at check 4 (t = 40); seed 1 at check 6 (t = 60)
    assert s.loc[0, "t_stop"] == 40 and s.loc[1, "t_stop"] == 60
    assert s.loc[0, "saved"] == pytest.approx(1 - 40 / 70)
    assert s.loc[0, "cost"] == pytest.approx(0.05 * 7 - 0.05 * 4)
    bound = stop[stop["rule"] == "bound"]  # dense 1.0 > c * 0: never fires, no saving
    assert not bound["fired"].any() and (bound["saved"] == 0).all()
    summary = tr_analysis.stop_summary(stop)
    row = summary[summary["rule"] == "stability tol=0"].iloc[0]
    assert row["saved"] == pytest.approx(np.mean([1 - 40 / 70, 1 - 60 / 70]))
    assert row["saved_lo"] < row["saved"] < row["saved_hi"]
    # the reading view: percent, the t-interval by hand (two seeds: t_{0.975, 1} = 12.706)
    saved = np.array([1 - 40 / 70, 1 - 60 / 70])
    half = 12.706 * saved.std(ddof=1) / np.sqrt(2)
    # (a fraction saved: the interval is cut at 0 and 1)
    view = tr_analysis.stop_view(summary).loc[("digits", "s", "stability tol=0")]
    assert view["saved %"] == (f"{100 * saved.mean():.1f} "
                               f"[{100 * max(saved.mean() - half, 0):.1f}, "
                               f"{100 * min(saved.mean() + half, 1):.1f}]")


def test_tiny_run_through_the_same_code_path(tmp_path):
    cfg = config.StoppingConfig(testbeds=("teacher_student", "mnist1d"), seeds=(0, 1),
                                ts_m=(8,), ts_N=64, ts_k=4, ts_steps=60, ts_every=10,
                                fig1_N=40, fig1_k=10, fig1_steps=60, fig1_every=10,
                                mnist1d_size=100, window=2)
    table = tr.run_stopping(cfg, out=tmp_path)
    assert set(table["testbed"]) == {"teacher_student", "mnist1d"}
    assert len(table) == 2 * 2 * 7 and (table["D_ratio"] <= 1 + 1e-9).all()
    ts = table[table["testbed"] == "teacher_student"]
    assert (ts["outcome"] >= 0).all() and (ts["pruning_term"] > 0).all()
    acc = table[table["testbed"] == "mnist1d"]["outcome"]
    assert ((acc >= 0) & (acc <= 1)).all()
    stop = tr_analysis.rule_stops(table, cfg)
    assert len(stop) == 2 * 2 * len(tr_analysis.rule_grid(cfg))
    again = tr.run_stopping(cfg, out=tmp_path)  # every cell reused
    pd.testing.assert_frame_equal(table, again)
    ms = tr_analysis.check_costs(table)
    assert set(ms["testbed"]) == {"teacher_student", "mnist1d"}


def test_reliability_flags():
    cfg = config.StoppingConfig()
    summary = pd.DataFrame([
        {"testbed": "digits", "setting": "s", "rule": "a", "saved_lo": 0.5, "cost_hi": 0.005},
        {"testbed": "digits", "setting": "s", "rule": "b", "saved_lo": 0.5, "cost_hi": 0.05},
        {"testbed": "teacher_student", "setting": "s", "rule": "c", "saved_lo": 0.0,
         "cost_hi": 0.05}])
    rel = tr_analysis.reliability(summary, cfg)
    assert rel["safe"].tolist() == [True, False, True]
    assert rel["useful"].tolist() == [True, False, False]
    view = tr_analysis.reliability_view(rel)
    assert view.loc["a", "digits"] == "1 / 1 / 1" and view.loc["a", "teacher_student"] == "-"
    assert view.loc["c", "teacher_student"] == "0 / 1 / 1"


def test_dataclass_replace_keeps_rules_frozen():
    rule = st.StabilityRule(0.1)
    assert dataclasses.replace(rule, multiset=False).multiset is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.tol = 0.2


def test_chapter4_archive_as_trajectories_matches_its_results_table():
    """The archived cells read with their own keys give the same losses as the archive's
    results table, and a selection of the archive's ``k`` picks at every checkpoint."""
    c4 = tr_analysis.chapter4_table()
    table, _ = lk.load_archive("threshold_cpu")
    table = table[(table["kind"] == "checkpoint") & (table["scaling"] == "theorem")]
    assert len(c4) == len(table)
    parts = c4["setting"].str.extract(r"N=(\d+) m=(\d+) d=(\d+)").astype(int)
    mine = c4.assign(N=parts[0], m=parts[1], d=parts[2])
    both = mine.merge(table, on=["N", "m", "d", "seed", "t"], validate="one_to_one")
    np.testing.assert_allclose(both["outcome"], both["pruned_128"], rtol=1e-6)
    np.testing.assert_allclose(both["dense"], both["dense_loss"], rtol=1e-6)
    assert (c4["selection"].str.split().map(len) == 128).all()
    stop = tr_analysis.rule_stops(c4, config.StoppingConfig())
    assert set(stop["rule"]) == {"stability"}  # no pruning term, no mask stored
    with pytest.raises(ValueError, match="scaling"):
        tr_analysis.chapter4_table(scaling="lazy")
