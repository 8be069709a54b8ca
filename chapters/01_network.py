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
# # 1. The network and the geometry of neuron pruning
#
# The paper {cite}`wolfe2024pretraining` studies the simplest network in which "pre-train,
# then prune" can be analysed: a two-layer network in the mean-field scaling, pruned by
# keeping a few of its hidden neurons. This chapter sets up that network, states the
# assumptions, and draws the one picture that the rest of the book keeps returning to: the
# network's outputs over the dataset form a polytope, and pruning picks a point in it.
#
# ```{admonition} Reconstruction note
# :class: note
# Equations (1)-(3) are our statement of the network the paper describes ("first layer
# weight ... second layer weight", "the average of the hidden neuron's activation", "a
# subset of the hidden neurons"); the precise form of Assumptions 1-2 is inferred and
# marked as such.
# ```

# %% tags=["hide-cell"]
import torch

import labkit as lk

# %% [markdown]
# ## The two-layer mean-field network
#
# Hidden neuron $i$ has first-layer weights $w_i\in\mathbb R^d$ and a second-layer weight
# $b_i\in\mathbb R$, together $\theta_i=(w_i,b_i)$. On an input $x\in\mathbb R^d$ it outputs
#
# $$g(x;\theta_i) = b_i\,\sigma(w_i^\top x). \tag{1}$$
#
# The network averages its $N$ neurons (the *mean-field* scaling, {cite}`mei2018mean`):
#
# $$f(x;\Theta) = \frac1N\sum_{i=1}^N g(x;\theta_i). \tag{2}$$
#
# Pruning keeps a multiset $S$ of neurons; a neuron may be kept more than once, which acts
# like a learned output weight. The pruned network averages over $S$:
#
# $$f_S(x;\Theta) = \frac1{|S|}\sum_{i\in S} g(x;\theta_i), \tag{3}$$
#
# so the dense network is $f_{[N]}$. In code a multiset is a vector of `counts` of length
# $N$; `labkit.TwoLayerNet` implements (1)-(3).

# %% [markdown]
# ```{prf:assumption} Assumption 1, network (our reading)
# :label: ass-network
# :nonumber:
# The activation $\sigma$ is twice differentiable and $|\sigma|$, $|\sigma'|$, $|\sigma''|$
# are bounded (the paper adds boundedness of $\sigma$ itself to the assumptions of
# {cite}`song2021subquadratic`; $\tanh$ is its example). At initialization
# $w_i\sim\mathcal N(0, I_d)$ and $b_i$ has a fixed magnitude with a random sign.
# ```
#
# ```{prf:assumption} Assumption 2, data (our reading)
# :label: ass-data
# :nonumber:
# The dataset $\{(x_j,y_j)\}_{j=1}^m$ satisfies $\|x_j\|\le 1$ and $|y_j|\le 1$.
# ```
#
# The training loss is the squared error over the dataset (eq. 4; the $1/m$ normalization
# is our convention), minimised by full-batch gradient descent (eq. 5):
#
# $$L(\Theta)=\frac1m\sum_{j=1}^m\bigl(f(x_j;\Theta)-y_j\bigr)^2 .$$

# %% [markdown]
# ## A network small enough to draw
#
# Everything in the paper's analysis happens in $\mathbb R^m$, one coordinate per data
# point. With $m=2$ data points we can draw it. The configuration holds every size; the
# chapter only reads it.

# %% tags=["hide-output"]
cfg = lk.config.get("polytope")
cfg

# %% [markdown]
# The data follow {prf:ref}`ass-data`: inputs on the unit sphere, labels from a small
# $\tanh$ teacher network, hence in $[-1,1]$.

# %%
X, y = lk.teacher_student(cfg.m, cfg.d, teacher_width=cfg.teacher_width, seed=cfg.seed)
print("||x_j|| =", X.norm(dim=1).numpy().round(6), " y =", y.numpy().round(4))

# %%
gen = lk.seed_everything(cfg.seed)
net = lk.TwoLayerNet(cfg.d, cfg.N, activation=cfg.activation, generator=gen)
net

# %% [markdown]
# ## Neurons as points, subnetworks as convex combinations
#
# Stack neuron $i$'s outputs over the dataset into
# $\Phi_i=[g(x_1;\theta_i),\dots,g(x_m;\theta_i)]\in\mathbb R^m$. The outputs of the pruned
# network (3) over the dataset are then
#
# $$z_S = \frac1{|S|}\sum_{i\in S}\Phi_i ,$$
#
# a convex combination of the $\Phi_i$ with weights $\text{count}_i/|S|$. All of them lie in
# the *marginal polytope* {cite}`wainwright2008graphical,ye2020good`
#
# $$\mathcal M = \operatorname{conv}\{\Phi_1,\dots,\Phi_N\}, \tag{7}$$
#
# and the loss of a subnetwork depends on $S$ only through that point:
# $L(f_S)=\ell(z_S)$ with $\ell(z)=\frac1m\|z-y\|^2$ (eq. 8). The dense network sits at the
# centroid of the $N$ points. In code, $\Phi$ is an $N\times m$ matrix whose row $i$ is
# $\Phi_i$.

# %%
with torch.no_grad():
    Phi_init = net.neuron_outputs(X)
Phi_init.shape

# %% [markdown]
# Pruning is choosing a point of $\mathcal M$ that can be written with few neurons and lies
# close to $y$. Now pre-train the dense network by gradient descent and look again.

# %%
history = lk.pretrain_gd(net, X, y, steps=cfg.steps, lr=cfg.lr)
with torch.no_grad():
    Phi_trained = net.neuron_outputs(X)
print(f"dense loss: {history[0]:.4f} at initialization -> {history[-1]:.6f} "
      f"after {cfg.steps} GD steps")

# %% [markdown]
# The grey dots are all subnetworks with $k$ = `cfg.k_lattice` neurons (every multiset of
# that size): a grid of points inside the polytope. The best of them is the grey dot nearest
# the red star.

# %% tags=["remove-output"]
fig = lk.plot_polytopes({"at initialization": Phi_init, f"after {cfg.steps} GD steps":
                         Phi_trained}, y, k_lattice=cfg.k_lattice)
lk.show(fig, "fig-polytopes")

# %% [markdown]
# ```{glue:figure} fig-polytopes
# :name: fig-polytopes
#
# **The marginal polytope before and after pre-training.** Quick mode: $m=2$ data points,
# $N=12$ $\tanh$ neurons, 400 full-batch GD steps. Dots: the neuron outputs $\Phi_i$;
# shaded: their convex hull $\mathcal M$ (eq. 7); square: the dense network (the centroid);
# star: the labels $y$; grey: every subnetwork of $k=3$ neurons. The picture behind the
# paper's Section 3; the paper has no such figure.
# ```

# %% [markdown]
# Pre-training moves every neuron, so it moves the whole polytope, and the dense output
# (the centroid) travels to $y$. With only two data points, though, $y$ already lies inside
# $\mathcal M$ at initialization: some subnetwork of the *untrained* network fits the data
# as well as we like. In the plane that is easy; in $\mathbb R^m$ for larger $m$ it is not.
#
# ## When does the polytope contain the labels?
#
# The smallest loss any convex combination of neurons can reach, $\min_{z\in\mathcal M}\ell(z)$,
# is zero exactly when $y\in\mathcal M$ (`labkit.polytope_min` solves this small quadratic
# program). Below, for networks of width `cfg.sweep_N` and a growing number of data points
# $m$, we measure it at initialization and after `cfg.sweep_steps` GD steps, over
# `cfg.sweep_seeds` seeds.

# %%
rows = lk.polytope_gap(cfg)
table = lk.polytope_gap_table(rows)
print(table.to_string(float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# Read the table as a first, geometric version of the paper's question. At initialization
# the labels lie in the polytope only for the smallest datasets; as $m$ grows, the $N$
# random neuron points span too little of $\mathbb R^m$ and no subnetwork can fit the data.
# After pre-training the polytope has moved to contain $y$ for larger $m$, but the same
# number of GD steps stops being enough once $m$ approaches $N$. Larger datasets need more
# pre-training before good subnetworks exist at all. How *much* more, and whether the
# growth is logarithmic in $m$ as Theorem 3 says, is measured in chapter 4.

# %% [markdown]
# ## The best subnetwork, and a physically smaller network
#
# For this tiny network we can search all multisets of size $k$ exhaustively
# (`labkit.best_multiset`): there are $\binom{N+k-1}{k}$ of them.

# %%
k = cfg.k_lattice
best_S, best_loss = lk.best_multiset(Phi_trained.double(), y.double(), k)
print(f"best multiset of size {k}: {best_S}, loss {best_loss:.6f} "
      f"(dense loss {history[-1]:.6f})")

# %% [markdown]
# A multiset is only bookkeeping until it becomes a network. `labkit.export_pruned` builds a
# `TwoLayerNet` holding only the distinct selected neurons, folding each multiplicity into
# the neuron's output weight so that the mean over the kept neurons equals (3):
# $b_i' = b_i\,\text{count}_i\,N'/k$ for $N'$ distinct neurons.

# %%
counts = torch.bincount(torch.tensor(best_S), minlength=cfg.N)
small = lk.export_pruned(net, counts)
with torch.no_grad():
    gap = (small(X) - net.pruned_forward(X, counts)).abs().max().item()
print(f"exported network: N' = {small.N} neurons; max |f_small - f_S| = {gap:.1e}")

# %% [markdown]
# The exported network computes the same function with fewer neurons; the test suite checks
# this equality for random multisets, both activations and both output transforms.
#
# ## Summary
#
# - A network of the form (2) is a point (its output over the data) at the centroid of $N$
#   neuron points in $\mathbb R^m$; every pruned network (3) is a point of their convex hull
#   $\mathcal M$ (7).
# - The loss of a subnetwork is the squared distance of its point to $y$ (8), so pruning is
#   a search over rational points of $\mathcal M$ with small denominators.
# - Pre-training moves the polytope. Chapter 2 turns the search into an algorithm, greedy
#   forward selection, and shows that it is Frank-Wolfe over $\mathcal M$.
