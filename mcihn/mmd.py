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
output. It can still lower it by dropping the directions in which the two
samples differ (xi gets gradients from L_Adp only): watch its singular values,
or the MMD of the raw codes, when you study the alignment.

Eq. 12: h^2(core m) = MMD^2(xi(S^m), xi(F^{o1 o2})) with xi one shared linear layer.
Eq. 14: L_Adp = sum over the core modalities. With two modalities (m, n), the pair
of "other" modalities does not exist; we compare xi(S^m) with xi(S^n) once.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .cgmm import LETTER, others_of, pair_key, paper_order


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


def mmd2(x: torch.Tensor, y: torch.Tensor, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Squared MMD between samples x (n, k) and y (m, k), multi-kernel Gaussian, biased (V) estimate."""
    z = torch.cat([x, y], dim=0)  # (n + m, k)
    sigma2 = median_bandwidth(z)
    d = pairwise_sq_dists(z, z)  # (n + m, n + m)
    K = sum(torch.exp(-d / (c * sigma2)) for c in multipliers) / len(multipliers)  # (n + m, n + m)
    n = x.shape[0]
    return K[:n, :n].mean() + K[n:, n:].mean() - 2.0 * K[:n, n:].mean()


def as_samples(t: torch.Tensor, how: str) -> torch.Tensor:
    """(B, L, d) -> samples: 'pooled' -> (B, d) (mean over L); 'tokens' -> (B*L, d)."""
    return t.mean(dim=1) if how == "pooled" else t.reshape(-1, t.shape[-1])


class FeatureAdaptiveMMD(nn.Module):
    """L_Adp, Eq. 12-14: xi is one fully connected layer shared by all terms."""

    def __init__(self, modalities, d: int, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0), samples: str = "pooled"):
        super().__init__()
        self.modalities = paper_order(modalities)
        self.xi = nn.Linear(d, d)
        self.multipliers = tuple(multipliers)
        self.samples = samples

    def forward(self, S: dict, F: dict) -> tuple[torch.Tensor, dict]:
        """S: modality -> (B, L, d); F: pair key -> (B, L, d). Returns (L_Adp, {term name: h^2})."""
        if self.samples == "pooled" and next(iter(S.values())).shape[0] < 2:
            # One utterance per side carries no information (with the median bandwidth the estimate
            # is a constant), so a batch of size 1 adds nothing to L_Adp.
            return next(self.parameters()).new_zeros(()), {}
        xi = lambda t: self.xi(as_samples(t, self.samples))  # noqa: E731  (B or B*L, d)
        terms = {}
        if len(self.modalities) == 3:
            for m in self.modalities:  # Eq. 14: sum over the core modalities
                o1, o2 = others_of(m, self.modalities)
                terms[f"{LETTER[m]}-{pair_key(o1, o2)}"] = mmd2(xi(S[m]), xi(F[pair_key(o1, o2)]), self.multipliers)  # Eq. 12
        elif len(self.modalities) == 2:
            m, n = self.modalities
            terms[f"{LETTER[m]}-{LETTER[n]}"] = mmd2(xi(S[m]), xi(S[n]), self.multipliers)
        total = sum(terms.values()) if terms else next(self.parameters()).new_zeros(())
        return total, terms
