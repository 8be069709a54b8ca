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
# # 3. Lemma 1 and the bounds behind it
#
# Chapter 2 showed greedy forward selection (GFS) at work. This chapter states how fast its
# loss must fall: Lemma 1 of {cite}`wolfe2024pretraining` bounds the loss of the pruned
# network after $k$ steps by three terms, and Lemmas 2-3 and Theorem 1 turn that into a
# neuron count. Each statement is proved and then put to a numerical test.
#
# ```{admonition} Reconstruction note
# :class: note
# The lemma below is **our statement and proof** of Lemma 1, following the paper's proof
# outline (eqs. 13-15), with our constants: the harmonic number $H_k-1$ where the paper's prose suggests
# $\ln k$, and the factor $1-1/k$ on the dense loss. Both make our form slightly tighter
# than the three-term form the paper describes in words (the formula with $\ln k$ is our
# reading of it), which ours implies. Lemma 3 is stated for the output weights, as its
# surviving proof reasons; the statement and its constants are ours.
# ```

# %% tags=["hide-cell"]
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

import labkit as lk

# %% [markdown]
# ## Lemma 1
#
# Notation as in chapter 2: $\Phi_i\in\mathbb R^m$ are the neuron outputs over the dataset,
# $\mathcal M=\operatorname{conv}\{\Phi_i\}$, $\ell(z)=\frac1m\|z-y\|^2$, $z_k$ the GFS output
# after $k$ steps (with replacement), $D=\operatorname{diam}(\mathcal M)$ and
# $H_k=\sum_{j=1}^k 1/j$.
#
# ```{prf:lemma} Lemma 1 (our statement)
# :label: lem-gfs-rate
# :nonumber:
# For every $k\ge1$ and every $z^\star\in\mathcal M$,
#
# $$\ell(z_k)-\ell(z^\star)\le\frac{\ell(z_1)-\ell(z^\star)}{k}+\frac{D^2\,(H_k-1)}{m\,k}.$$
#
# With $z^\star=\frac1N\sum_i\Phi_i$, the output of the dense network, whose loss is
# $L_{\mathrm{dense}}=L(f_{[N]})$, this reads
#
# $$\begin{aligned}
# \ell(z_k)&\le\underbrace{\frac{\ell(z_1)}{k}}_{\text{first pick}}+\underbrace{\frac{D^2(H_k-1)}{mk}}_{\text{diameter}}+\underbrace{\Bigl(1-\frac1k\Bigr)L_{\mathrm{dense}}}_{\text{dense}}\\
# &\le\frac{\ell(z_1)}{k}+\frac{D^2\ln k}{mk}+L_{\mathrm{dense}},
# \end{aligned}$$
#
# our reading of the paper's three-term form, since $H_k-1\le\ln k$.
# ```
#
# ```{prf:proof}
# Let $s_k=\arg\min_{v\in\mathcal M}\langle\nabla\ell(z_k),v\rangle$; a linear function is
# minimised over a polytope at a vertex, so $s_k=\Phi_i$ for some $i$. GFS picks the neuron
# that minimises the loss of the next iterate, so it does at least as well as $s_k$ would:
#
# $$\ell(z_{k+1})\le\ell\Bigl(z_k+\tfrac{1}{k+1}(s_k-z_k)\Bigr).$$
#
# The loss is quadratic with Hessian $\frac2m I$, so expanding exactly (eq. 13),
#
# $$\ell\Bigl(z_k+\tfrac{s_k-z_k}{k+1}\Bigr)=\ell(z_k)+\frac{\langle\nabla\ell(z_k),s_k-z_k\rangle}{k+1}+\frac{\|s_k-z_k\|^2}{m(k+1)^2},$$
#
# and $\|s_k-z_k\|\le D$ because both points lie in $\mathcal M$ (eq. 14). By the choice of
# $s_k$ and the convexity of $\ell$ (eq. 15),
#
# $$\langle\nabla\ell(z_k),s_k-z_k\rangle\le\langle\nabla\ell(z_k),z^\star-z_k\rangle\le\ell(z^\star)-\ell(z_k).$$
#
# With $\delta_k=\ell(z_k)-\ell(z^\star)$ the three displays give
# $\delta_{k+1}\le\frac{k}{k+1}\delta_k+\frac{D^2}{m(k+1)^2}$, that is
# $(k+1)\delta_{k+1}\le k\delta_k+\frac{D^2}{m(k+1)}$. Unrolling from $k=1$,
# $k\delta_k\le\delta_1+\frac{D^2}{m}\sum_{j=2}^{k}\frac1j=\delta_1+\frac{D^2(H_k-1)}{m}$.
# Divide by $k$. For the three-term form take $z^\star$ the dense output and add
# $\ell(z^\star)=L_{\mathrm{dense}}$ to both sides.
# ```
#
# The proof uses only two facts about GFS: its step size $1/(k+1)$ and that it is at least as
# good as the Frank-Wolfe vertex at every step. Selection *without* replacement loses the
# second fact, and the lemma does not cover it.

# %% [markdown]
# ## Lemma 2: the diameter
#
# ```{prf:lemma} The diameter is attained at vertices (a step of ours)
# :label: lem-diameter
# :nonumber:
# $D=\max_{i,j}\|\Phi_i-\Phi_j\|$, and hence $D\le2\max_i\|\Phi_i\|$.
# ```
#
# ```{prf:proof}
# For fixed $z'$, $z\mapsto\|z-z'\|$ is convex, so its maximum over the polytope
# $\mathcal M$ is attained at a vertex $\Phi_i$. Apply this to $z$ and then to $z'$: the
# largest distance between two points of $\mathcal M$ is one between two vertices. The bound
# follows from $\|\Phi_i-\Phi_j\|\le\|\Phi_i\|+\|\Phi_j\|$.
# ```
#
# `labkit.diameter` computes $D$ exactly from blocks of the Gram matrix, so it stays cheap
# for $N=10{,}000$ neurons.

# %% [markdown]
# ## Putting Lemma 1 to the test on real networks
#
# Two networks, each pruned at several points of its pre-training: the $\tanh$
# teacher-student network of chapter 2, and a ReLU network fitted by squared loss to
# MNIST digits (inputs scaled to unit norm, labels $\pm1$ for digit $<5$ / $\ge5$). At every
# checkpoint we run GFS for $k$ steps and evaluate the bound at every step.

# %% tags=["hide-output"]
cfg = lk.config.get("lemma1")
cfg

# %%
checks, bounds = lk.lemma1_on_networks(cfg)
print(checks.to_string(float_format=lambda v: f"{v:.4g}"))

# %% [markdown]
# The `violations` column counts the steps $k$ at which the GFS loss exceeded the bound.
# The test suite makes the same check independently (its own GFS loop and a brute-force
# diameter) on 1,000 random instances with $z^\star$ a vertex, a random point, the dense
# output or the best point of $\mathcal M$, and on these networks.

# %%
total_violations = int(checks["violations"].sum())
tightest = checks["max_loss/bound_k>=2"].max()
print(f"violations: {total_violations}; "
      f"tightest ratio loss/bound over k >= 2: {tightest:.3f}")

# %% [markdown]
# At $k=1$ the bound is an identity (all terms but the first vanish), so the ratio is
# reported for $k\ge2$. The bound holds everywhere, and it is loose: the loss stays well
# below it. The figure shows why, before and after pre-training.

# %% tags=["remove-output"]
first, last = cfg.checkpoints[0], cfg.checkpoints[-1]
fig = lk.plot_lemma1({f"teacher-student, t = {first}": bounds["teacher-student", first],
                      f"teacher-student, t = {last}": bounds["teacher-student", last]})
lk.show(fig, "fig-lemma1")

# %% [markdown]
# ```{glue:figure} fig-lemma1
# :name: fig-lemma1
#
# **GFS loss against Lemma 1's bound and its three terms**, at the first and the last
# pre-training checkpoint ($t=0$ and $t=1000$ GD steps; quick mode: $m=200$, $N=400$,
# teacher-student data). The bound (red) is our statement of Lemma 1 with the dense output
# as $z^\star$; the dotted red curve is the looser form with $\ln k$ and $L$ (our reading of
# the paper's three terms). Our experiment
# (no paper figure).
# ```

# %% [markdown]
# At initialization the bound is dominated by the diameter term for small $k$ and by the
# dense loss for large $k$, while GFS falls below the dense loss within a few steps: a
# handful of well-chosen neurons fits the labels better than the average of all of them.
# After pre-training the dense loss is small and, over the whole range of $k$ shown, the
# diameter term dominates. That term is the price of the worst case,
# $\|s_k-z_k\|=D$ at every step, while the actual GFS steps are much shorter. Note also how
# $D^2/m$ grows with pre-training in the table: training enlarges the polytope, which is what
# Lemma 3 has to control.

# %% [markdown]
# ## Can the test tell Lemma 1 from a wrong lemma?
#
# "No violation" on networks and random instances proves little if the bound is never
# approached: on 400 random instances GFS used at most 5.4% of the diameter term, so a
# lemma with that term divided by 10 would pass the same tests. We therefore searched small
# instances offline for ones where GFS comes close (`tools/lemma1_adversarial.py`, seeded;
# the instances are stored in the repository and only read here). For each, with $z^\star$
# the best point of $\mathcal M$: the *usage* of the diameter term, the excess
# $\ell(z_k)-\ell(z^\star)$ beyond the first-pick term as a fraction of the diameter term
# (Lemma 1 says at most 1; a bound with $D^2/c$ fails exactly where it exceeds $1/c$), the
# largest ratio of the excess to the bound's excess, and whether the bound with $D^2/c$ is
# violated.

# %%
adversarial = lk.lemma1_adversarial()
print(adversarial.to_string(float_format=lambda v: f"{v:.3f}"))
print(f"largest usage {adversarial['usage'].max():.3f}; tightest ratio excess/bound "
      f"over k >= 2: {adversarial['max_excess/bound_k>=2'].max():.3f}")

# %% [markdown]
# On these instances GFS uses up to 3/8 of the diameter term (the best one is an apex just
# above a regular simplex with $y$ far below it; the construction tends to $(m-1)/(2m)$), so
# the bounds with $D^2/5$ and $D^2/10$ are **false** and the test suite shows it
# (`tests/test_bounds.py`), while Lemma 1 holds. The bound with $D^2/2$ is never violated,
# and the reason is a sharper form of the lemma:
#
# ```{prf:remark} Lemma 1 with half the diameter term (our sharpening)
# :label: rem-lemma1-half
# :nonumber:
# In the proof, compare GFS with the $a$-weighted average of the vertices, where
# $z^\star=\sum_ia_i\Phi_i$, instead of the single vertex $s_k$. Expanding
# $\ell(z_k+\frac{\Phi_i-z_k}{k+1})$ and averaging with the weights $a_i$ gives
# $\langle\nabla\ell(z_k),z^\star-z_k\rangle/(k+1)$ and
# $\bigl(\|z^\star-z_k\|^2+V\bigr)/(m(k+1)^2)$ with $V=\sum_ia_i\|\Phi_i-z^\star\|^2$; strong
# convexity, $\langle\nabla\ell(z_k),z^\star-z_k\rangle\le\ell(z^\star)-\ell(z_k)-\|z^\star-z_k\|^2/m$,
# absorbs the first square. So the recursion holds with $D^2$ replaced by $V$, and
# $V=\frac12\sum_{i,j}a_ia_j\|\Phi_i-\Phi_j\|^2\le\frac{D^2}2$: **Lemma 1 holds with $D^2/2$**,
# and no instance can use more than half of the original diameter term.
# ```
#
# The tests check this form too (on the stored and on random instances). The remaining
# factor between 3/8 and 1/2 is what the search could not close.

# %% [markdown]
# ## Lemma 3: how far the output weights move
#
# For a bounded activation, $|\sigma|\le1$, each neuron output obeys
# $\|\Phi_i\|=|b_i|\,\|\sigma(Xw_i)\|\le|b_i|\sqrt m$, so by Lemma 2
#
# $$\frac{D^2}{m}\le\frac{4\max_i\|\Phi_i\|^2}{m}\le4\max_i b_i^2 .$$
#
# The diameter term of Lemma 1 is therefore **dimension-free** as long as the output
# weights $b_i$ stay bounded along pre-training. That is what the paper's Lemma 3 controls:
# its surviving proof bounds the movement of each $b_i$ through the gradient with respect
# to $b_i$ and the boundedness of $\sigma$ (the first layer does not enter the bound above).
#
# ```{prf:lemma} Lemma 3 (our statement, for the output weights)
# :label: lem-b-movement
# :nonumber:
# Let gradient descent take the step $s_b$ on $b$. For every neuron $i$ and iteration $t$,
#
# $$|b_i(t)-b_i(0)|\le\frac{2s_b}{N}\sum_{s<t}\sqrt{L(s)},\qquad\text{hence}\qquad
# \frac{D_t^2}{m}\le4\Bigl(\max_i|b_i(0)|+\frac{2s_b}{N}\sum_{s<t}\sqrt{L(s)}\Bigr)^2 .$$
# ```
#
# ```{prf:proof}
# With $r=f-y$, $\partial L/\partial b_i=\frac2{mN}\sum_jr_j\sigma(w_i^\top x_j)$, and by
# Cauchy-Schwarz $|\partial L/\partial b_i|\le\frac2{mN}\|r\|\,\|\sigma(Xw_i)\|\le
# \frac2{mN}\sqrt{mL}\sqrt m=\frac2N\sqrt L$. Each step moves $b_i$ by at most $s_b$ times
# that; sum over the steps. The cap on $D_t^2/m$ is the display above.
# ```
#
# If the loss falls linearly, $L(s)\le(1-1/\kappa^2)^{2s}L(0)$ (chapter 4's Theorem 2), the
# sum is at most $\sqrt{L(0)}/(1-\sqrt{1-1/\kappa^2})\le2\kappa^2\sqrt{L(0)}$: the output
# weights move by at most $4s_b\kappa^2\sqrt{L(0)}/N$, a constant fixed in advance, but one
# that grows with $\kappa^2$. With the mean-field step $s_b=\text{lr}\,N$ it is
# width-independent; it is small only if the step on $b$ is small compared with $N$.
#
# ```{admonition} Reconstruction note
# :class: note
# How the step size scales with the width $N$ is not fixed by the paper (**inferred**
# below). We measure three choices: the **mean-field** step used elsewhere in this book
# ($\theta\leftarrow\theta-\text{lr}\,N\nabla L$ on both layers), the **raw** step of eq. (5)
# with a fixed $\eta$ (equal to the mean-field one at the smallest width), and **Theorem 2's**
# step of chapter 4 (Song et al.'s coordinates, $N^2\eta$ on $b$ with
# $\eta=m/(2\sigma_{\max}(\Phi_0)^2)$), the regime in which chapter 4 tests the threshold.
# ```

# %% tags=["remove-output"]
movement = lk.lemma3_movement(cfg)
fig = lk.plot_lemma3(movement)
lk.show(fig, "fig-lemma3")

# %% [markdown]
# ```{glue:figure} fig-lemma3
# :name: fig-lemma3
#
# **What Lemma 3 controls, measured along GD** for widths $N$ = 50 to 3,200 (quick mode,
# $m=200$, teacher-student data). Top: the largest movement of an output weight,
# $\max_i|b_i(t)-b_i(0)|$ (dots), and the bound of Lemma 3 computed from the same run's
# losses (dashed); bottom: the relative movement of the first layer. Columns: the
# mean-field, raw and Theorem 2 steps. Our experiment (no paper figure).
# ```

# %% [markdown]
# The numbers at the last checkpoint, and the check of Lemma 3's bound on every row (every
# width, step rule and checkpoint). The bound is not implied by $|\tanh|\le1$ alone: it
# depends on the step actually taken, and a bound 1.5 times smaller is violated on a run
# where it is nearly attained (`tests/test_bounds.py`).

# %%
final = movement["t"] == cfg.lemma3_checkpoints[-1]
shown = ["max_b_move", "b_move_bound", "D^2/m", "D^2/m_cap", "rel_first", "rel_second",
         "dense_loss"]
print(movement[final].set_index(["scaling", "N"])[shown].to_string(
    float_format=lambda v: f"{v:.3g}"))
ratio = movement["max_b_move"] / movement["b_move_bound"].where(movement["t"] > 0)
holds = (movement["max_b_move"] <= movement["b_move_bound"] * (1 + 1e-6)).all()
print(f"Lemma 3's bound holds on every row: {bool(holds)}; "
      f"largest ratio movement/bound: {ratio.max():.2f}")

# %% [markdown]
# The bound holds everywhere and is loose at long times: it adds up $\sqrt{L(s)}$ while the
# weights settle. What the three step rules do:
#
# - **Mean-field step**: the output weights move by a few units at every width, the same
#   order as their initial values $\pm1$; $D^2/m$ is width-independent but grows with
#   training, to tens of times its initial value.
# - **Raw step**: the output weights' movement and $D^2/m$ shrink as $N$ grows, the regime of
#   "each neuron moves little"; the price is in `dense_loss`: at the same number of
#   iterations a wider network has trained less.
# - **Theorem 2's step**: the first layer is frozen (its movement falls by orders of
#   magnitude with $N$), but the step on $b$ is $N^2\eta$, large, and the output weights
#   move by tens of units, more at larger $N$; $D^2/m$ reaches the thousands. Lemma 3's
#   premise fails in the regime where Theorems 2-3 hold, and the diameter term inflates:
#   chapter 4 sees this in the pruned loss.
#
# So "the neuron outputs stay of order $\sqrt m$" holds with a constant that depends on the
# step rule and on training time; the MNIST rows of the table above, where $D^2/m$ reaches
# nearly a thousand after pre-training, show the same.

# %% [markdown]
# ## Theorem 1: how many neurons for excess $\varepsilon$
#
# ```{prf:theorem} Theorem 1 (the paper's structure, our constants)
# :label: thm-neurons
# :nonumber:
# Under Assumptions 1-2 and the conclusion of Lemma 3,
# $\ell(z_k)\le L_{\mathrm{dense}}+O(\ln k/k)$. Precisely, with $c=D^2/m$ and $a=\ell(z_1)$,
# $\ell(z_k)-L_{\mathrm{dense}}\le(a+c\ln k)/k$, and this is at most $\varepsilon$ for every
# $k\ge k_\varepsilon$ with
#
# $$k_\varepsilon=-\frac{c}{\varepsilon}\,W_{-1}\Bigl(-\frac{\varepsilon}{c}e^{-a/c}\Bigr),$$
#
# $W_{-1}$ the lower branch of the Lambert $W$ function {cite}`corless1996lambertw`. With
# $a=0$ this is $k\ge-\frac{c}{\varepsilon}W_{-1}(-\frac{\varepsilon}{c})$, of order
# $\varepsilon^{-1}\ln\varepsilon^{-1}$: our reconstruction of the Lambert-$W$ solution the
# paper's text describes.
# ```
#
# ```{prf:proof}
# The first inequality is Lemma 1 with $H_k-1\le\ln k$ and $(1-\frac1k)L_{\mathrm{dense}}\le L_{\mathrm{dense}}$.
# Setting $k=-\frac c\varepsilon w$, the equation $\varepsilon k=a+c\ln k$ becomes
# $we^{w}=-\frac\varepsilon c e^{-a/c}$; its root on the lower branch is the larger root of
# $\varepsilon k=a+c\ln k$, beyond which $(a+c\ln k)/k$ decreases.
# ```
#
# `labkit.theorem1_neurons` evaluates $k_\varepsilon$ (tested against a direct scan). Here it
# is beside the number of neurons GFS actually needed on the pre-trained teacher-student
# network (`k_gfs`: the first $k$ from which the loss stays within $\varepsilon$ of the dense
# loss; blank if not reached within the $k$ steps run).

# %%
counts = lk.theorem1_table(bounds["teacher-student", last], cfg.eps)
print(counts.to_string(na_rep="-"))

# %% [markdown]
# The guarantee is honest but pessimistic, by orders of magnitude on this instance: it must
# hold for the worst polytope of the given diameter, and the actual one is far from the
# worst. Its value is the *shape*, $O(\varepsilon^{-1}\ln\varepsilon^{-1})$ neurons independent
# of the width $N$ and, through Lemma 3, of the dataset size $m$.

# %% [markdown]
# ## Explore the bound
#
# In JupyterLab the sliders below redraw the dimension-free form of the bound,
# $\ell(z_k)-L_{\mathrm{dense}}\le\frac{(B+1)^2}{k}+\frac{4B^2(H_k-1)}{k}$, using only closed forms:
# $|\Phi_{ij}|\le B$ and $|y_j|\le1$ give $\ell(z_1)\le(B+1)^2$ and $D^2/m\le4B^2$. The dataset
# size $m$ does not enter at all, which is the point of Lemma 3. The explorer needs a
# kernel: on the static page only its code shows, and the figures above make the point.

# %% tags=["nbval-ignore-output", "remove-cell"]
def show_bound(k=64, B=1.0):
    ks = np.arange(1, 4097)
    bound = ((B + 1) ** 2 + (2 * B) ** 2 * (lk.harmonic(4096) - 1)) / ks
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.loglog(ks, bound, color="C3")
    ax.loglog(k, bound[k - 1], "o", color="k")
    ax.set_xlabel("$k$")
    ax.set_ylabel("bound on the excess loss")
    ax.set_title(f"B = {B:g}: bound at k = {k} is {bound[k - 1]:.4f}")
    plt.show()


explorer = widgets.interact(show_bound, k=widgets.IntSlider(64, 1, 4096),
                            B=widgets.FloatSlider(value=1.0, min=0.1, max=5.0))

# %% [markdown]
# ## Summary
#
# - Lemma 1 (our re-derivation) bounds the GFS loss by a first-pick term, a diameter term
#   of order $\ln k/k$ and the dense loss; it held at every step on every network and random
#   instance we tried, with room to spare.
# - Lemma 2 reduces the diameter to the largest neuron-output norm; for a bounded
#   activation that norm is at most $|b_i|\sqrt m$, so the diameter term is dimension-free.
# - Lemma 3 (our statement) bounds the output weights' movement by the step on $b$ times
#   the accumulated $\sqrt L$; the bound holds on every run. The movement shrinks with $N$
#   under the raw step (at the cost of slower training), is width-independent under the
#   mean-field step, and is large under Theorem 2's step, where $D^2/m$ inflates.
# - GFS can use up to 3/8 of Lemma 1's diameter term (adversarial instances), so the tests
#   reject a lemma with a 5 or 10 times smaller term; the lemma also holds with half of it.
# - Theorem 1's neuron count is of the right shape and very conservative. Chapter 4 turns to
#   the dense-loss term: how long must pre-training run before it is small?
