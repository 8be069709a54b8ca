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
# both simulations and tests three predictions against them.
#
# ```{admonition} Reconstruction note
# :class: note
# The grids of $(m, d, N)$ and the exact form of the prediction are **inferred**. We take
# the prediction to be the Gaussian edge $s(\sqrt N-\sqrt m)$, with $s$ the standard deviation
# of $\sigma(g)$, $g\sim\mathcal N(0,1)$, computed by quadrature rather than guessed, and add
# two more (below). Our grids: $m\in\{50,100\}$, three input dimensions $d\in\{10,100,1000\}$
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
# ## Three predictions for $\sigma_{\min}(\Phi_0)$
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
# (`labkit.kernel_matrix`, tested against Monte Carlo, an independent quadrature rule and,
# for ReLU, the closed form).
#
# **Generalized Marchenko-Pastur edge.** The kernel view ignores that $N$ is finite. The
# columns $\sigma(Xw_i)$ are $N$ independent vectors with second-moment matrix $K$, so
# $\Phi_0\Phi_0^\top/N$ is a sample second-moment matrix with population spectrum
# $\tau=\operatorname{eig}(K)$ and ratio $c=m/N$. Its smallest eigenvalue approaches the
# lower edge of the Marchenko-Pastur law with that population {cite}`silverstein1995analysis`,
#
# $$\lambda_-=\max_{0<v<\tau_{\min}}\;v\Bigl(1-\frac cm\sum_k\frac{\tau_k}{\tau_k-v}\Bigr),
# \qquad\sigma_{\min}(\Phi_0)\approx\sqrt{N\lambda_-},$$
#
# and the largest one the upper edge (the same expression minimized over $v>\tau_{\max}$,
# with $+\frac cm\sum_k\frac{\tau_k}{v-\tau_k}$). For $K=s^2I$ this is Bai-Yin's
# $s^2(1\mp\sqrt c)^2$; as $N\to\infty$ it tends to the kernel view. `lk.mp_edges` solves
# the two one-dimensional problems (tested against the closed form and against Gaussian
# simulations); nothing is fitted.

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
# simulations; solid: the generalized Marchenko-Pastur edge for each $d$; dashed: the
# kernel view; dotted: the Gaussian edge $s(\sqrt N-\sqrt m)$.
# ```

# %% [markdown]
# The relative error of each prediction against the simulated mean, at the narrowest and
# the widest network:

# %%
errors = lk.relative_errors(grid)
print(errors.to_string(float_format=lambda v: f"{v:+.2f}"))

# %% [markdown]
# **What the simulation shows.**
#
# - The **generalized Marchenko-Pastur edge** is the only prediction that holds across the
#   grid: within 8% at every $m$, $d$ and $N$ for both activations (the `mp` columns),
#   including $N=200$, only two to four times $m$.
# - The **kernel view** is its $N\to\infty$ limit: accurate for wide networks (within 7% at
#   $N=3{,}200$), but it overestimates $\sigma_{\min}$ by 26% to 170% at $N=200$, because it
#   drops the finite-$N$ spreading of the spectrum.
# - The **Gaussian edge** is close only where two errors cancel: at $d\gg m$ and $N$ near
#   $2m$. Even at $d=1000$ it drifts above the simulation as $N$ grows (the `edge` columns),
#   because $\lambda_{\min}(K)$ lies below $s^2$ unless $d/m\to\infty$; at $d=10$ it
#   overestimates $\sigma_{\min}$ several times over, because the rows of $\Phi_0$ are then
#   strongly correlated and $K$ has small eigenvalues.
# - So the paper's "$\sigma_{\min}$ behaves like $\sqrt N-\sqrt m$" is reproduced only near
#   $N\approx2m$ with $d\gg m$; in general $\sigma_{\min}$ follows the Marchenko-Pastur edge of
#   $K$'s spectrum and grows like $\sqrt{N\lambda_{\min}(K)}$ for wide networks.
#
# The same solve gives the condition number, $\kappa\approx\sqrt{\lambda_+/\lambda_-}$, beside
# its infinite-width limit $\kappa_\infty=\sqrt{\lambda_{\max}(K)/\lambda_{\min}(K)}$
# (`lk.kappa_infinite`, the quantity that sets chapter 4's threshold at large $N$):

# %% tags=["remove-output"]
fig = lk.plot_kappa(grid)
lk.show(fig, "fig-kappa")

# %% [markdown]
# ```{glue:figure} fig-kappa
# :name: fig-kappa
#
# **Condition number of $\Phi_0$** against the width $N$ (quick mode, as
# {numref}`fig-sigma-min`): simulations (dots), the generalized Marchenko-Pastur prediction
# (solid) and the infinite-width limit $\kappa_\infty$ (dotted), one colour per input
# dimension $d$.
# ```

# %%
ends = grid[grid["N"].isin([cfg.N_values[0], cfg.N_values[-1]])]
cols = ["activation", "m", "d", "N", "kappa_mean", "mp_kappa", "kappa_inf"]
print(ends[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# The simulated $\kappa$ falls with $N$ towards $\kappa_\infty$, as the Marchenko-Pastur
# prediction says, and $\kappa_\infty$ itself is far above Bai-Yin's value at small $d$ (tens
# at $d=10$, against $(\sqrt N+\sqrt m)/(\sqrt N-\sqrt m)\to1$): width cannot bring the
# condition number below what the data impose. For ReLU, whose mean adds an outlying
# eigenvalue to $K$ (next section), the prediction includes that outlier.

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

# %% tags=["remove-output"]
# the Marchenko-Pastur edge's largest relative error over the whole grid (glued below)
mp_error = (grid["mp_prediction"] / grid["sigma_min_mean"] - 1).abs().max()
lk.glue_text(mp_error=f"{100 * mp_error:.0f}%")

# %% [markdown]
# ## Summary
#
# | | paper (Appendix C) | this chapter |
# |---|---|---|
# | $\sigma_{\min}(\Phi_0)$ vs $N$ | close to $\sqrt N-\sqrt m$ ("almost overlap") | only near $N\approx2m$ with $d\gg m$; everywhere within {glue:text}`mp_error`: the generalized Marchenko-Pastur edge of $K$'s spectrum (not fitted), which tends to $\sqrt{N\lambda_{\min}(K)}$ for wide networks |
# | $\kappa(\Phi_0)$ vs $N$ | (through $\sigma_{\min}$) | falls towards the infinite-width $\kappa_\infty$, tens at $d=10$, far above Bai-Yin's value |
# | $\kappa$ of Gaussian matrices | decreases with $N$ | reproduced, within a few percent of Bai-Yin |
# | ReLU features | (not discussed) | the mean adds a rank-one spike: $\kappa$ 2-5 times larger, $\sigma_{\min}$ unchanged |
