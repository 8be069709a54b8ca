# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. The conditioning of the initial features (Appendix C)
#
# Theorems 2-3 of {cite}`wolfe2024pretraining` run on two numbers of the matrix of
# first-layer outputs at initialization, $\Phi_0=\sigma(XW_0^\top)\in\mathbb R^{m\times N}$:
# its smallest singular value $\lambda_0=\sigma_{\min}(\Phi_0)$, which sets the linear rate
# of gradient descent, and its condition number $\kappa$, which sets the pre-training
# threshold. The paper argues that the entries of $\Phi_0$ behave like Gaussians of constant
# variance, so that random-matrix theory gives $\sigma_{\min}(\Phi_0)\approx\sqrt N-\sqrt m$
# (up to that variance) when $N\gg m$, and checks this by simulation (Figure 2); Figure 3
# shows the condition number of Gaussian matrices falling as $N$ grows. This chapter redoes
# both simulations and tests two predictions against them.
#
# ```{admonition} Reconstruction note
# :class: note
# The grids of $(m, d, N)$ and the exact form of the prediction are **inferred**. We take
# the prediction to be the Gaussian edge $s(\sqrt N-\sqrt m)$, with $s$ the standard deviation
# of $\sigma(g)$, $g\sim\mathcal N(0,1)$, computed by quadrature rather than guessed, and add a
# second one (below). Our grids: $m\in\{50,100\}$, three input dimensions $d\in\{10,100,1000\}$
# because the input dimension turns out to decide which prediction holds, and $N$ from 200 to
# 3,200, with 10 repetitions each; the full preset extends all three.
# ```

# %% tags=["hide-cell"]
import labkit as lk

# %% [markdown]
# ## The setting
#
# Inputs $x_j$ are Gaussian vectors normalized to the unit sphere, weights $w_i\sim\mathcal N(0,I_d)$,
# so every pre-activation $w_i^\top x_j$ is exactly standard normal. What is *not*
# independent is the matrix: entries in one column share $w_i$, entries in one row share
# $x_j$, and two rows are correlated through $x_j^\top x_l$, which is of order $1/\sqrt d$.

# %% tags=["hide-output"]
cfg = lk.config.get("rmt")
cfg

# %% [markdown]
# The two statistics of the activation output that the predictions use:

# %%
for activation in cfg.activations:
    mean, s = lk.activation_moments(activation)
    print(f"{activation}: E[sigma(g)] = {mean:.4f}, sd[sigma(g)] = s = {s:.4f}")

# %% [markdown]
# ## Two predictions for $\sigma_{\min}(\Phi_0)$
#
# **Gaussian edge.** If the entries were independent with standard deviation $s$, the
# Bai-Yin law {cite}`bai1993limit` would give $\sigma_{\min}\approx s(\sqrt N-\sqrt m)$ for
# $N>m$.
#
# **Kernel view.** Write $\Phi_0\Phi_0^\top=\sum_{i=1}^N\sigma(Xw_i)\sigma(Xw_i)^\top$, a sum of
# $N$ independent rank-one terms with mean $K$, where
# $K_{jl}=\mathbb E_w[\sigma(w^\top x_j)\sigma(w^\top x_l)]$. For $N\gg m$ the sum concentrates,
# so $\sigma_{\min}(\Phi_0)^2\approx N\lambda_{\min}(K)$. For ReLU, $K$ is the arc-cosine kernel
# in closed form; for $\tanh$ we compute it by two-dimensional Gauss-Hermite quadrature
# (`labkit.kernel_matrix`, tested against Monte Carlo and, for ReLU, against the closed form).

# %% tags=["remove-output"]
grid = lk.sigma_min_grid(cfg)
fig = lk.plot_sigma_min(grid)
lk.show(fig, "fig-sigma-min")

# %% [markdown]
# ```{glue:figure} fig-sigma-min
# :name: fig-sigma-min
#
# **Smallest singular value of the initial feature matrix $\Phi_0$** against the width $N$,
# the analog of the paper's Figure 2 (quick mode: $m$ = 50 and 100, input dimensions $d$ =
# 10, 100, 1,000, 10 repetitions). Dots and bars: mean and standard deviation of
# simulations; dashed: the kernel prediction for each $d$; dotted: the Gaussian edge
# $s(\sqrt N-\sqrt m)$.
# ```

# %% [markdown]
# Dots are simulations (mean and standard deviation over the repetitions), dashed lines
# the kernel view for each $d$, the dotted black line the Gaussian edge (which does not
# depend on $d$). The relative error of each prediction, at the narrowest and the widest
# network:

# %%
errors = lk.relative_errors(grid)
print(errors.to_string(float_format=lambda v: f"{v:+.2f}"))

# %% [markdown]
# **What the simulation shows.**
#
# - The **kernel view** is accurate for wide networks at every input dimension: within a
#   few percent at $N=3{,}200$, for both activations. It is poor at $N=200$, where $N$ is
#   not yet large compared with $m$, as expected of a concentration argument.
# - The **Gaussian edge** holds only when the input dimension is large compared with $m$
#   ($d=1000$): then the rows of $\Phi_0$ are nearly uncorrelated and the entries nearly
#   independent. At $d=10$ it overestimates $\sigma_{\min}$ several times over, because with few
#   input dimensions the rows of $\Phi_0$ are strongly correlated and $K$ has small
#   eigenvalues (the smooth part of $\sigma$ is captured by few directions).
# - So the paper's statement "$\sigma_{\min}$ behaves like $\sqrt N-\sqrt m$" is reproduced in
#   the regime $d\gg m$; in general the growth in $N$ is the $\sqrt N$ of the kernel view,
#   with a constant $\sqrt{\lambda_{\min}(K)}$ that shrinks as $m$ grows and $d$ falls.

# %% [markdown]
# ## The mean of ReLU features is a rank-one spike
#
# $\mathbb E[\operatorname{relu}(g)]=1/\sqrt{2\pi}\neq0$, so the ReLU feature matrix is a centered
# random matrix plus $\mu\mathbf 1_m\mathbf 1_N^\top$, a rank-one term with singular value
# $\mu\sqrt{mN}$. It barely moves $\sigma_{\min}$ but inflates $\sigma_{\max}$, and with it $\kappa$:

# %%
relu = grid[grid["activation"] == "relu"]
cols = ["m", "d", "N", "sigma_min_mean", "centered_sigma_min_mean", "kappa_mean",
        "centered_kappa_mean"]
print(relu[relu["N"].isin([cfg.N_values[0], cfg.N_values[-1]])][cols].to_string(
    index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# Removing the mean changes $\sigma_{\min}$ by less than one percent and divides the condition
# number by a factor between about 2 and 5. For the threshold of Theorem 3, which grows
# with $\kappa^2$, that factor matters: the uncentered ReLU features look worse conditioned
# than the part of them that gradient descent has to fit.

# %% [markdown]
# ## Figure 3: condition numbers of Gaussian matrices
#
# For standard Gaussian $m\times N$ matrices the Bai-Yin law gives
# $\kappa\to(\sqrt N+\sqrt m)/(\sqrt N-\sqrt m)$, which falls towards 1 as $N$ grows.

# %% tags=["remove-output"]
gauss = lk.gaussian_condition(cfg.gaussian_m, cfg.gaussian_N, cfg.reps, seed=cfg.seed)
fig = lk.plot_condition(gauss)
lk.show(fig, "fig-condition")

# %% [markdown]
# ```{glue:figure} fig-condition
# :name: fig-condition
#
# **Condition number of standard Gaussian $m\times N$ matrices** against $N$ (mean and
# standard deviation over 10 draws) beside the Bai-Yin limit, the analog of the paper's
# Figure 3.
# ```

# %%
gauss["relative_error"] = gauss["kappa_mean"] / gauss["bai_yin_kappa"] - 1
print(gauss[["m", "N", "kappa_mean", "kappa_std", "bai_yin_kappa", "relative_error"]]
      .to_string(index=False, float_format=lambda v: f"{v:.3f}"))

# %% [markdown]
# The simulated condition numbers sit within a few percent of the limit and fall with $N$,
# as in the paper's Figure 3. The test suite checks this agreement independently (4%
# tolerance at $m\ge100$, $N\ge800$).
#
# ## What this means for the threshold
#
# Chapter 4 found that, under Theorem 2's step, the pre-training threshold is set by the
# spectrum of $\Phi_0$ (it equals that of the second-layer linear model to a step) and grows
# with $m$ at fixed $N$. This chapter shows why: at fixed $N$, $\sigma_{\min}(\Phi_0)=\lambda_0$
# shrinks as $m$ grows (the kernel's smallest eigenvalue falls and fewer of the $N$
# directions are left over), so $\kappa$ grows. A wider network raises $\lambda_0$ like
# $\sqrt N$ and brings $\kappa$ down towards its infinite-width value
# $\sqrt{\lambda_{\max}(K)/\lambda_{\min}(K)}$ (`lk.kappa_infinite`), which itself grows with
# $m$ and, at small $d$, lies far above the Bai-Yin value: width buys faster pre-training
# but does not remove the dependence on $m$.
#
# ## Summary
#
# | | paper (Appendix C) | this chapter |
# |---|---|---|
# | $\sigma_{\min}(\Phi_0)$ vs $N$ | close to $\sqrt N-\sqrt m$ ("almost overlap") | reproduced for $d\gg m$; for small $d$ the kernel view $\sqrt{N\lambda_{\min}(K)}$ holds instead |
# | $\kappa$ of Gaussian matrices | decreases with $N$ | reproduced, within a few percent of Bai-Yin |
# | ReLU features | (not discussed) | the mean adds a rank-one spike: $\kappa$ 2-5 times larger, $\sigma_{\min}$ unchanged |
