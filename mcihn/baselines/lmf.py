"""LMF - Low-rank Multimodal Fusion with modality-specific factors (Liu, Shen, Lakshminarasimhan,
Liang, Zadeh and Morency, ACL 2018).

TFN's first inference layer multiplies the fused tensor Z = [z_1; 1] (x) ... (x) [z_M; 1] by a
weight tensor W of size d_h x prod(d_m + 1). LMF writes W as a sum of r rank-one terms, each the
outer product of one factor per modality,

    W = sum_{i=1..r}  w_1^(i) (x) w_2^(i) (x) ... (x) w_M^(i),     w_m^(i) of size (d_m + 1) x d_h,

(for each output unit k the slice W[k] is a rank-r tensor), and never builds Z: because the
contraction of a rank-one tensor with an outer product factorises,

    h = W . Z + b = sum_{i=1..r}  prod_{m=1..M} ( [z_m; 1] w_m^(i) )  + b      (elementwise product)

which costs O(r d_h sum_m d_m) instead of O(d_h prod_m d_m). This file keeps everything else of
TFN (subnetworks, the rest of the inference network): the only difference between the TFN and LMF
rows of a table is this factorisation. :meth:`LowRankFusion.full_weight` rebuilds W from the
factors, which is how the tests check the identity above.

Departures: in LMF the fused vector is itself the task output (d_h = 1 for a sentiment score);
here h (d_h = post_hidden) goes through TFN's remaining inference layers (ReLU, a second layer, the
output) so that the two models differ only in the fusion layer. The authors' released code also
learns one weight per rank term; such weights are absorbed in the factors (scaling w_1^(i) by
lambda_i gives the same W), so we keep the paper's plain sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from .tfn import TFN, TFNConfig


@dataclass
class LMFConfig(TFNConfig):
    """TFN's sizes plus the rank r of the factorisation (the LMF paper reports robust results over a wide
    range of small ranks; 4 here)."""

    rank: int = 4

    kind: ClassVar[str] = "lmf"
    title: ClassVar[str] = "LMF"
    TINY: ClassVar[dict] = dict(TFNConfig.TINY, rank=4)


class LowRankFusion(nn.Module):
    """h = sum_i prod_m ([z_m; 1] w_m^(i)) + b for z_m (B, d_m) -> h (B, out_dim)."""

    def __init__(self, in_dims: list[int], out_dim: int, rank: int):
        super().__init__()
        self.in_dims, self.out_dim, self.rank = list(in_dims), out_dim, rank
        # factors[m]: w_m^(1..r) stacked, (r, d_m + 1, d_h)
        self.factors = nn.ParameterList([nn.Parameter(torch.empty(rank, d + 1, out_dim)) for d in in_dims])
        self.bias = nn.Parameter(torch.zeros(out_dim))
        for w in self.factors:
            # each [z; 1] w^(i) is then about as large as z; dividing by r^(1/M) keeps the sum over i at that size
            nn.init.normal_(w, std=1.0 / math.sqrt(w.shape[1]) / rank ** (1.0 / len(in_dims)))

    def forward(self, zs: list[torch.Tensor]) -> torch.Tensor:
        h = None
        for z, w in zip(zs, self.factors):
            z1 = torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)  # [z_m; 1], (B, d_m + 1)
            f = torch.einsum("bi,rio->bro", z1, w)  # [z_m; 1] w_m^(i) for every i: (B, r, d_h)
            h = f if h is None else h * f  # elementwise product over modalities, (B, r, d_h)
        return h.sum(dim=1) + self.bias  # sum over the rank: (B, d_h)

    def full_weight(self) -> torch.Tensor:
        """The TFN weight these factors stand for, (d_h, prod(d_m + 1)), flattened like ``Z.flatten(1)``.

        W[k, i_1, ..., i_M] = sum_r  w_1[r, i_1, k] * ... * w_M[r, i_M, k].
        """
        W = self.factors[0].permute(0, 2, 1)  # (r, d_h, d_1 + 1)
        for w in self.factors[1:]:
            w = w.permute(0, 2, 1)  # (r, d_h, d_m + 1)
            W = W.unsqueeze(-1) * w.reshape(w.shape[0], w.shape[1], *([1] * (W.dim() - 2)), w.shape[2])
        return W.sum(dim=0).reshape(self.out_dim, -1)  # sum over the rank, then (d_h, prod(d_m + 1))


class LMF(TFN):
    """TFN with its tensor-fusion layer replaced by :class:`LowRankFusion` (same subnetworks, same head)."""

    def __init__(self, cfg: LMFConfig, dims: dict):
        super().__init__(cfg, dims)

    def build_fusion(self) -> None:
        self.fusion_layer = LowRankFusion(self.z_dims, self.cfg.post_hidden, self.cfg.rank)

    def fuse(self, zs: list[torch.Tensor]):
        """zs (B, d_m) -> (h (B, post_hidden), None): the tensor Z is never formed."""
        return self.fusion_layer([self.drop(z) for z in zs]), None
