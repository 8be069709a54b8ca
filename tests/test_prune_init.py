"""Chapter 9's model against independent computations: the network's neuron outputs against
a loop over neurons and patches, one GD step against the logistic loss's gradient written
out in NumPy, the data model's structure, the threshold reading against hand-made curves,
and the configuration's regime checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from labkit import config
from labkit.algorithms.sparsity import random_mask
from labkit.experiments.prune_init import analysis as PA
from labkit.experiments.prune_init import cell as P


def _small(seed=0):
    g = torch.Generator().manual_seed(seed)
    X, y = P.patch_data(7, 12, 1.5, 1.0, g)
    W = torch.randn(2, 6, 12, generator=g) * 0.5
    M = random_mask((2, 6, 12), 0.4, g)
    s = P.signs(6).expand(2, -1)
    return X, y, W, M, s


def test_neuron_outputs_match_a_loop():
    X, y, W, M, s = _small()
    for q in (1, 2):
        Phi = P.neuron_outputs(W, M, s, X, q).numpy()
        Wn, Mn, Xn, sn = W.numpy(), M.numpy(), X.numpy(), s.numpy()
        for b in range(2):
            for i in range(6):
                for j in range(7):
                    ref = 2 * sn[b, i] * sum(max(0.0, float((Wn[b, i] * Mn[b, i]) @ Xn[j, p]))
                                             ** q for p in range(2))
                    assert Phi[b, i, j] == pytest.approx(ref, rel=1e-5, abs=1e-6)
        # the network is the mean of its neurons: F_{+1} - F_{-1} with a 1/(N/2) layer
        f = P.logits(W, M, s, X, q).numpy()
        Fp = Phi[:, :3].sum(1) / 2 / 3
        Fm = -Phi[:, 3:].sum(1) / 2 / 3
        assert np.allclose(f, Fp - Fm, atol=1e-5)


def test_one_gd_step_matches_the_gradient_written_out():
    X, y, W, M, s = _small(1)
    q, lr = 2, 0.3
    W1, losses, _ = P.train_gd(W, M, s, X, y, steps=1, lr=lr, power=q)
    Wn, Mn, Xn, yn, sn = (a.numpy().astype(np.float64) for a in (W, M, X, y, s))
    B, N, d = Wn.shape
    m = len(yn)
    for b in range(B):
        Wm = Wn[b] * Mn[b]
        z = np.einsum("nd,jpd->njp", Wm, Xn)
        f = (2 / N) * (sn[b][:, None] * (np.maximum(z, 0) ** q).sum(-1)).sum(0)
        loss = np.mean(np.log1p(np.exp(-yn * f)))
        assert losses[b, 0].item() == pytest.approx(loss, rel=1e-5)
        dl_df = -yn / (1 + np.exp(yn * f)) / m  # d/df_j of the mean logistic loss
        act = q * np.maximum(z, 0) ** (q - 1) * (z > 0)  # sigma'(z)
        grad = (2 / N) * sn[b][:, None] * np.einsum("j,njp,jpd->nd", dl_df, act, Xn) * Mn[b]
        expected = Wn[b] - lr * N * grad
        assert np.allclose(W1[b].numpy(), expected, atol=1e-5)


def test_the_data_model():
    X, y = P.patch_data(4000, 50, 2.0, 0.7, torch.Generator().manual_seed(0))
    assert X.shape == (4000, 2, 50)
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    assert abs(y.mean().item()) < 0.05
    assert torch.equal(X[:, 0, 0], 2.0 * y)  # the signal patch is y mu, mu = ||mu|| e_1
    assert torch.all(X[:, 0, 1:] == 0)
    assert torch.all(X[:, 1, 0] == 0)  # the noise is orthogonal to mu
    assert X[:, 1, 1:].std().item() == pytest.approx(0.7, rel=0.02)


def test_crossing_and_thresholds_read_what_the_curve_says():
    fr = [0.0, 0.5, 0.9, 0.99]
    # crossing 0.45 between 0.9 and 0.99, halfway in the error: halfway in log(kept)
    at = PA._crossing(fr, [0.1, 0.1, 0.3, 0.6], 0.45)
    assert at == pytest.approx(1 - np.exp(0.5 * (np.log(0.1) + np.log(0.01))))
    assert np.isnan(PA._crossing(fr, [0.1, 0.1, 0.2, 0.3], 0.45))
    rows = [{"part": "sweep", "mu_norm": 1.0, "seed": s, "fraction": f, "test_error": e}
            for s, errs in ((0, [0.1, 0.1, 0.3, 0.6]), (1, [0.1, 0.2, 0.2, 0.3]))
            for f, e in zip(fr, errs, strict=True)]
    th = PA.prune_thresholds(pd.DataFrame(rows), level=0.05)
    assert th.loc[0, "threshold"] == pytest.approx(at)
    assert not th.loc[0, "censored"] and th.loc[1, "censored"]
    assert list(th["dense_test_error"]) == [0.1, 0.1]


def test_the_regime_is_validated():
    with pytest.raises(ValueError, match="d: .*4m"):
        config.get("prune_init", m=100, d=300)
    with pytest.raises(ValueError, match="keep"):
        config.get("prune_init", keep=(0.8,))
    with pytest.raises(ValueError, match="fractions"):
        config.get("prune_init", fractions=(0.1, 0.5, 0.9, 0.99))
    with pytest.raises(ValueError, match="pretrain"):
        config.get("prune_init", pretrain=(10, 30))
    with pytest.raises(ValueError, match="N: an even"):
        config.get("prune_init", N=7)


def test_a_run_resumes_and_its_bridge_compares_equal_sizes(tmp_path):
    cfg = config.get("prune_init", m=10, m_test=40, d=40, N=16, steps=10,
                     fractions=(0.0, 0.5, 0.9, 0.99), keep=(0.25,), pretrain=(0, 5),
                     seeds=(0, 1))
    first = P.run_prune_init(cfg, out=tmp_path)
    again = P.run_prune_init(cfg, out=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    import json

    info = json.loads((tmp_path / "prune_init" / "manifest.json").read_text())
    assert info["cells_computed"] == 0 and info["cells_reused"] == 2
    bridge = first[first["part"] == "bridge"]
    assert set(bridge["method"]) == {"gfs", "random_neurons", "random_mask"}
    assert set(bridge["k"]) == {4}  # 0.25 of 16 neurons: as many weights as the mask keeps
    sweep = first[first["part"] == "sweep"]
    assert sweep.loc[sweep["fraction"] == 0, "kept"].eq(1).all()
