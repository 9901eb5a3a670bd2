"""Sec. 3.4, Eq. 12-14 - the feature-adaptive MMD loss L_Adp.

The squared maximum mean discrepancy between two samples X = {x_i} (n, k) and
Y = {y_j} (m, k) under a kernel K is (Gretton et al. 2012, biased estimate)

    MMD^2(X, Y) = mean_ij K(x_i, x_j) + mean_ij K(y_i, y_j) - 2 mean_ij K(x_i, y_j)

which is >= 0, symmetric, and 0 when the two samples coincide. As in the paper's
reference [5] (and DAN), the kernel is a *multi-kernel* Gaussian: the mean of
exp(-||x - y||^2 / (c * sigma^2)) over several multipliers c, with sigma^2 the
median pairwise squared distance of the pooled sample (no gradient through it).
Tying the bandwidth to the median makes the loss invariant to a uniform rescaling
of the features, so the shared layer xi cannot lower it just by shrinking its
output. A free linear xi can still lower it by dropping the directions in which
the two samples differ (xi gets gradients from L_Adp only); that is why xi is
orthogonal by default (:func:`make_xi`): then the loss is invariant to xi, and
only aligning S and F lowers it.

For teaching and testing, :func:`gaussian_mmd2` is the same estimator with a fixed kernel (biased or
unbiased), and :func:`gaussian_mmd2_analytic` the exact value between two isotropic Gaussians
(notebook 04 checks one against the other).

Eq. 12: h^2(core m) = MMD^2(xi(S^m), xi(F^{o1 o2})) with xi one shared layer.
Eq. 14: L_Adp = sum over the core modalities. With two modalities (m, n), the pair
of "other" modalities does not exist; we compare xi(S^m) with xi(S^n) once.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..modalities import LETTER, others_of, pair_key, paper_order


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 for x (n, k), y (m, k) -> (n, m), clamped at 0 against round-off."""
    d = x.pow(2).sum(-1)[:, None] + y.pow(2).sum(-1)[None, :] - 2.0 * x @ y.T
    return d.clamp_min(0.0)


def median_bandwidth(z: torch.Tensor) -> torch.Tensor:
    """Median of the off-diagonal pairwise squared distances of z (n, k), detached."""
    with torch.no_grad():
        d = pairwise_sq_dists(z, z)
        n = z.shape[0]
        off = d[~torch.eye(n, dtype=torch.bool, device=z.device)]
        med = off.median() if off.numel() else d.new_tensor(1.0)
        return med.clamp_min(1e-8)


def gaussian_mmd2(x: torch.Tensor, y: torch.Tensor, gammas, unbiased: bool = False) -> torch.Tensor:
    """Squared MMD between x (n, k) and y (m, k) for a *fixed* kernel
    K(a, b) = mean over gamma in ``gammas`` of exp(-||a - b||^2 / gamma).

    The biased (V) estimate averages over all pairs, the diagonal K(x_i, x_i) = 1 included; its
    expectation exceeds the population MMD^2 by (1 - E K(x, x'))/n + (1 - E K(y, y'))/m. The
    unbiased (U) estimate leaves i == j out of the two within-sample means (needs n, m >= 2);
    it is unbiased but can be negative.
    """
    z = torch.cat([x, y], dim=0)  # (n + m, k)
    d = pairwise_sq_dists(z, z)  # (n + m, n + m)
    K = sum(torch.exp(-d / g) for g in gammas) / len(gammas)  # (n + m, n + m)
    n, m = x.shape[0], y.shape[0]
    Kxx, Kyy, Kxy = K[:n, :n], K[n:, n:], K[:n, n:]
    if unbiased:
        return ((Kxx.sum() - Kxx.diagonal().sum()) / (n * (n - 1))
                + (Kyy.sum() - Kyy.diagonal().sum()) / (m * (m - 1)) - 2.0 * Kxy.mean())
    return Kxx.mean() + Kyy.mean() - 2.0 * Kxy.mean()


def mmd2(x: torch.Tensor, y: torch.Tensor, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Squared MMD between samples x (n, k) and y (m, k), multi-kernel Gaussian, biased (V) estimate.

    The kernel widths are ``c * sigma^2`` for c in ``multipliers``, sigma^2 the median pairwise
    squared distance of the pooled sample (a data-dependent choice, with no gradient through it).
    """
    sigma2 = median_bandwidth(torch.cat([x, y], dim=0))
    return gaussian_mmd2(x, y, [c * sigma2 for c in multipliers])


def gaussian_mmd2_analytic(mean_x, var_x: float, mean_y, var_y: float, gammas,
                           n: int | None = None, m: int | None = None) -> float:
    """Exact MMD^2 between P = N(mean_x, var_x I) and Q = N(mean_y, var_y I) in k dimensions
    for the kernel of :func:`gaussian_mmd2` (a reference value for the estimators).

    For Z ~ N(mu, v I_k), E exp(-||Z||^2 / gamma) = (1 + 2v/gamma)^(-k/2) exp(-||mu||^2 / (gamma + 2v)).
    X - X' ~ N(0, 2 var_x I), Y - Y' ~ N(0, 2 var_y I), X - Y ~ N(mean_x - mean_y, (var_x + var_y) I), so

        MMD^2 = E K(X, X') + E K(Y, Y') - 2 E K(X, Y).

    With sample sizes ``n`` and ``m`` it returns instead the expectation of the *biased* estimate
    (the diagonal terms add (1 - E K(X, X'))/n + (1 - E K(Y, Y'))/m).
    """
    import numpy as np

    mx, my = np.atleast_1d(np.asarray(mean_x, float)), np.atleast_1d(np.asarray(mean_y, float))
    k, shift2 = mx.size, float(((mx - my) ** 2).sum())
    total = 0.0
    for g in gammas:
        g = float(g)
        exx = (1 + 4 * var_x / g) ** (-k / 2)
        eyy = (1 + 4 * var_y / g) ** (-k / 2)
        exy = (1 + 2 * (var_x + var_y) / g) ** (-k / 2) * np.exp(-shift2 / (g + 2 * (var_x + var_y)))
        value = exx + eyy - 2 * exy
        if n is not None and m is not None:
            value += (1 - exx) / n + (1 - eyy) / m
        total += value
    return float(total / len(gammas))


def as_samples(t: torch.Tensor, how: str) -> torch.Tensor:
    """(B, L, d) -> samples: 'pooled' -> (B, d) (mean over L); 'tokens' -> (B*L, d)."""
    return t.mean(dim=1) if how == "pooled" else t.reshape(-1, t.shape[-1])


#: How the shared layer xi of Eq. 12 is built (``MCIHNConfig.xi``).
XI_KINDS = ("orthogonal", "linear", "none")


def make_xi(d: int, kind: str = "orthogonal") -> nn.Module:
    """The layer xi of Eq. 12 ("a fully connected layer"), shared by all MMD terms.

    'linear': a free ``nn.Linear(d, d)``. Trained by L_Adp alone it lowers the MMD by projecting out
    the directions in which S and F differ (effective rank 26 -> 5 in a trained model), which aligns
    nothing. 'orthogonal' (default): the same layer with its weight constrained orthogonal
    (``torch.nn.utils.parametrizations.orthogonal``). A rotation and a shift keep every pairwise
    distance, so with the median-bandwidth Gaussian kernel the MMD does not depend on xi: L_Adp can
    only fall by moving S and F themselves. 'none': the identity (the same MMD values as 'orthogonal').
    """
    if kind == "linear":
        return nn.Linear(d, d)
    if kind == "orthogonal":
        return nn.utils.parametrizations.orthogonal(nn.Linear(d, d))
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"xi must be one of {XI_KINDS}, not {kind!r}")


def effective_rank(weight: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of a matrix (Roy & Vetterli 2007): d for an
    orthogonal d x d matrix, 1 for a rank-one matrix."""
    s = torch.linalg.svdvals(weight.detach().float())
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


class FeatureAdaptiveMMD(nn.Module):
    """L_Adp, Eq. 12-14: xi is one layer shared by all terms (:func:`make_xi`)."""

    def __init__(self, modalities, d: int, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0), samples: str = "pooled",
                 xi: str = "orthogonal"):
        super().__init__()
        self.modalities = paper_order(modalities)
        self.xi = make_xi(d, xi)
        self.multipliers = tuple(multipliers)
        self.samples = samples

    def forward(self, S: dict, F: dict) -> tuple[torch.Tensor, dict]:
        """S: modality -> (B, L, d); F: pair key -> (B, L, d). Returns (L_Adp, {term name: h^2})."""
        if self.samples == "pooled" and next(iter(S.values())).shape[0] < 2:
            # One utterance per side carries no information (with the median bandwidth the estimate
            # is a constant), so a batch of size 1 adds nothing to L_Adp.
            return next(iter(S.values())).new_zeros(()), {}
        xi = lambda t: self.xi(as_samples(t, self.samples))  # noqa: E731  (B or B*L, d)
        terms = {}
        if len(self.modalities) == 3:
            for m in self.modalities:  # Eq. 14: sum over the core modalities
                o1, o2 = others_of(m, self.modalities)
                terms[f"{LETTER[m]}-{pair_key(o1, o2)}"] = mmd2(xi(S[m]), xi(F[pair_key(o1, o2)]), self.multipliers)  # Eq. 12
        elif len(self.modalities) == 2:
            m, n = self.modalities
            terms[f"{LETTER[m]}-{LETTER[n]}"] = mmd2(xi(S[m]), xi(S[n]), self.multipliers)
        total = sum(terms.values()) if terms else next(iter(S.values())).new_zeros(())
        return total, terms
