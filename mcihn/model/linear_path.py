"""An addition, not in the paper: a linear path beside the network ("wide and deep").

On real sentiment data a ridge regression on the time-averaged features is a strong baseline: text carries
most of the label, and it carries it nearly linearly. The deep path of MCIHN (encoders, gate, fusion, Eq.
6-17) can represent that linear function, but has to find it through several non-linear layers and dropout
on a few hundred clips. The linear path hands it over directly:

    m-bar_m   = mean over the real time steps of X_m                  (B, D_m)   (masked; 0 for an empty clip)
    y_lin     = w^T [m-bar_t ; m-bar_a ; m-bar_v] (+ no bias)         (B,)
    y^p       = y_deep (Eq. 17) + y_lin

It reads the same (normalised, and in training possibly ``missing_aug``-ed) inputs as the encoders. Its
weights start at zero, so an untrained model predicts exactly what Eq. 17 does, and are trained by the
same task loss (Eq. 18) and the same optimiser (AdamW's weight decay is its ridge penalty). With a
fine-tuned text encoder the text input is the encoder's token states, so the path reads those.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class LinearPath(nn.Module):
    """y_lin = w^T concat_m(masked time-mean of X_m): dims m -> (T_m, D_m) -> a (B,) prediction."""

    def __init__(self, dims: dict):
        super().__init__()
        self.modalities = list(dims)
        self.linear = nn.Linear(sum(D for _, D in dims.values()), 1, bias=False)  # w, (sum_m D_m) -> 1
        nn.init.zeros_(self.linear.weight)  # start as the paper's model

    def forward(self, batch: dict) -> torch.Tensor:
        """batch: m -> (B, T_m, D_m), m + "_mask" -> (B, T_m) bool. Returns (B,)."""
        pooled = [masked_mean(batch[m], batch.get(m + "_mask")) for m in self.modalities]  # each (B, D_m)
        return self.linear(torch.cat(pooled, dim=-1)).squeeze(-1)  # (B, sum_m D_m) -> (B,)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the real time steps: x (B, T, D), mask (B, T) bool -> (B, D); a clip with no real step gives 0.
    (The baselines pool with it too.)"""
    if mask is None:
        return x.mean(dim=1)
    m = mask[..., None].to(x.dtype)  # (B, T, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
