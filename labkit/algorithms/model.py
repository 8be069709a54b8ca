"""The two-layer mean-field network of eqs. (1)-(3) and neuron pruning as a multiset.

- eq. (1), neuron: ``g(x; theta_i) = b_i * sigma(w_i . x)``;
- eq. (2), network: ``f(x) = (1/N) sum_i g(x; theta_i)`` (the mean-field average);
- eq. (3), pruned network: ``f_S(x) = (1/|S|) sum_{i in S} g(x; theta_i)`` for a multiset S,
  given here as a length-``N`` vector of counts.

An optional output transform (``sigmoid`` for the MNIST experiment, Section 5) is applied
on top; the average itself is the *logit*. Used in chapters 1, 2 and every later one.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
OUTPUTS = ("identity", "sigmoid")


def _check_choice(field: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{field}: unknown value {value!r}; allowed: {', '.join(allowed)}")


class TwoLayerNet(nn.Module):
    """Mean-field two-layer network ``f(x) = out((1/N) sum_i b_i sigma(w_i . x))``.

    Parameters are ``W`` (shape ``(N, d)``, the first-layer weights ``w_i``) and ``b``
    (shape ``(N,)``, the second-layer weights ``b_i``). Initialization follows Assumption 1
    (our reconstruction): ``w_i ~ N(0, w_scale^2 I_d)`` and ``b_i = +-b_scale`` with a
    random sign.
    """

    def __init__(
        self,
        d: int,
        N: int,
        *,
        activation: str = "tanh",
        output: str = "identity",
        w_scale: float = 1.0,
        b_scale: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        for field, value in (("d", d), ("N", N)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{field}: must be a positive integer, got {value!r}")
        _check_choice("activation", activation, tuple(ACTIVATIONS))
        _check_choice("output", output, OUTPUTS)
        self.activation, self.output = activation, output
        W = torch.randn(N, d, generator=generator, dtype=dtype) * w_scale
        signs = torch.randint(0, 2, (N,), generator=generator).to(dtype) * 2 - 1
        self.W = nn.Parameter(W)
        self.b = nn.Parameter(signs * b_scale)

    def extra_repr(self) -> str:
        return (f"d={self.d}, N={self.N}, activation={self.activation!r}, "
                f"output={self.output!r}")

    @property
    def N(self) -> int:
        return self.W.shape[0]

    @property
    def d(self) -> int:
        return self.W.shape[1]

    def neuron_outputs(self, X: torch.Tensor) -> torch.Tensor:
        """``Phi`` of Section 2: row ``i`` is neuron ``i``'s output ``b_i sigma(w_i . x_j)``
        over the ``m`` data points; shape ``(N, m)``."""
        return self.b[:, None] * ACTIVATIONS[self.activation](self.W @ X.T)

    def logits(self, X: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """The average of eq. (2) (``counts=None``) or of eq. (3) for the multiset given by
        ``counts`` (length ``N``, non-negative integers, at least one positive)."""
        Phi = self.neuron_outputs(X)
        if counts is None:
            return Phi.mean(0)
        counts = check_counts(counts, self.N).to(Phi)
        return counts @ Phi / counts.sum()

    def _out(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z) if self.output == "sigmoid" else z

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self._out(self.logits(X))

    def pruned_forward(self, X: torch.Tensor, counts) -> torch.Tensor:
        """Output of the pruned network ``f_S`` of eq. (3) (output transform included)."""
        return self._out(self.logits(X, counts))


def check_counts(counts, N: int) -> torch.Tensor:
    """Validate a multiset given as counts: length ``N``, integer-valued, non-negative,
    not all zero."""
    counts = torch.as_tensor(counts)
    if counts.shape != (N,):
        raise ValueError(f"counts: expected shape ({N},), got {tuple(counts.shape)}")
    if (counts < 0).any() or (counts != counts.round()).any():
        raise ValueError("counts: entries must be non-negative integers")
    if counts.sum() <= 0:
        raise ValueError("counts: the multiset is empty (all counts are zero)")
    return counts


@torch.no_grad()
def export_pruned(net: TwoLayerNet, counts) -> TwoLayerNet:
    """A physically smaller :class:`TwoLayerNet` holding only the distinct selected neurons.

    With ``k = sum(counts)`` and ``N'`` distinct neurons, neuron ``i`` kept with
    multiplicity ``c_i`` gets output weight ``b_i c_i N' / k``, so that the mean over the
    ``N'`` kept neurons equals the multiset average of eq. (3). Chapter 2.
    """
    counts = check_counts(counts, net.N)
    keep = torch.nonzero(counts > 0).flatten()
    n_keep, k = len(keep), counts.sum().item()
    small = TwoLayerNet(net.d, n_keep, activation=net.activation, output=net.output,
                        dtype=net.W.dtype)
    small.W.copy_(net.W[keep])
    small.b.copy_(net.b[keep] * counts[keep].to(net.b) * n_keep / k)
    return small.to(net.W.device)
