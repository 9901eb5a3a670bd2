"""Sec. 3.5 - Feature fusion module (FFM), Eq. 15-17.

For each core modality m with others o1, o2 (paper order v, t, a), one multi-head
attention takes its queries from F^{m o1}, its keys from F^{m o2} and its values
from the core modality's own code S^m (Fig. 1(a); the paper writes V(F^v)):

    Eq. 15  head_i    = softmax(Q_i K_i^T / sqrt(d/h)) V_i,  Q_i = F^{m o1} W_i^Q,
                        K_i = F^{m o2} W_i^K,  V_i = S^m W_i^V           (B, L, d/h)
    Eq. 16  F^{m-o1o2} = Concat(head_1..head_h) W^O                      (B, L, d)
    Eq. 17  y = Linear(mean over L of (F^{v-ta} + F^{t-va} + F^{a-vt}))  (B,)

Eq. 15 as printed lacks the transpose on K; the scale sqrt(d_k/h) is the usual
per-head scale sqrt(d/h). Eq. 17 prints a Softmax over the single regression
output, which would always be 1: it is dropped (the loss, Eq. 18, is an MAE).
With two modalities the single pair F^{mn} is both query and key source; with one
modality, the attention is self-attention on S^m.

The attention runs fused (``scaled_dot_product_attention``) in training mode and written out, with
its weights returned, in eval mode or inside ``mcihn.model.attention_weights(True)`` (attention.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..modalities import LETTER, others_of, pair_key, paper_order
from .attention import attend, want_weights


#: Where the fusion attention takes its values (Eq. 15 prints V(F^v), a tensor it never defines): "core", the
#: core modality's own code S^m (the reading notes' reading; ``paper`` and ``tiny`` presets), or "pairs", the
#: mean of its pair features F^{m o1}, F^{m o2}, where Eq. 9 multiplies the modalities (the ``auto`` preset:
#: with "core" the modalities meet only in the attention weights; README, "The development suite").
FFM_VALUES = ("core", "pairs")


class FusionAttention(nn.Module):
    """Eq. 15-16: h-head attention with separate query, key and value sources."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)  # W^Q, W^K, W^V (all heads)
        self.o = nn.Linear(d, d)  # W^O
        self.drop = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.h, self.dk).transpose(1, 2)  # (B, L, d) -> (B, h, L, d/h)

    def forward(self, q_src, k_src, v_src, need_weights: bool | None = None):
        """q_src, k_src, v_src (B, L, d) -> (output (B, L, d), weights (B, h, L, L) or None).

        ``need_weights=None``: as :func:`mcihn.model.attention.want_weights` decides (weights in eval mode).
        Dropout (``self.drop.p``) acts on the weights in training mode, on either path.
        """
        if need_weights is None:
            need_weights = want_weights(self)
        q, k, v = self.split_heads(self.q(q_src)), self.split_heads(self.k(k_src)), self.split_heads(self.v(v_src))
        # Eq. 15: softmax(Q K^T / sqrt(d/h)) V per head, (B, h, L, d/h)
        heads, weights = attend(q, k, v, dropout_p=self.drop.p if self.training else 0.0,
                                scale=1.0 / math.sqrt(self.dk), need_weights=need_weights)
        B, h, L, dk = heads.shape
        concat = heads.transpose(1, 2).reshape(B, L, h * dk)  # Concat(head_1..h): (B, L, d)
        return self.o(concat), weights  # Eq. 16


class FeatureFusion(nn.Module):
    """Eq. 15-17: one FusionAttention per core modality, summed, pooled, regressed."""

    def __init__(self, modalities, d: int, heads: int, dropout: float, values: str = "core"):
        super().__init__()
        if values not in FFM_VALUES:
            raise ValueError(f"values must be one of {FFM_VALUES}, not {values!r}")
        self.values = values  # "core": V = S^m (Eq. 15); "pairs": V = (F^{m o1} + F^{m o2}) / 2
        self.modalities = paper_order(modalities)
        self.attn = nn.ModuleDict({m: FusionAttention(d, heads, dropout) for m in self.modalities})
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d, 1)  # Eq. 17 "Linear"

    def sources(self, m: str, S: dict, F: dict):
        """(query, key) sources of core m: (F^{m o1}, F^{m o2}), (F^{mn}, F^{mn}) or (S^m, S^m)."""
        others = others_of(m, self.modalities)
        if len(others) == 2:
            return F[pair_key(m, others[0])], F[pair_key(m, others[1])]
        if len(others) == 1:
            f = F[pair_key(m, others[0])]
            return f, f
        return S[m], S[m]

    def forward(self, S: dict, F: dict):
        """S: modality -> (B, L, d); F: pair -> (B, L, d).

        Returns (prediction (B,), fused {"v-ta": (B, L, d), ...}, attention {"v-ta": (B, h, L, L), ...});
        the attention dict is empty when the fused path ran (training mode, see attention.py).
        """
        fused, weights = {}, {}
        for m in self.modalities:
            q_src, k_src = self.sources(m, S, F)
            others = "".join(LETTER[o] for o in others_of(m, self.modalities))
            name = f"{LETTER[m]}-{others}" if others else LETTER[m]
            v_src = S[m] if self.values == "core" or not others else (q_src + k_src) / 2  # (B, L, d)
            fused[name], w = self.attn[m](q_src, k_src, v_src)  # Eq. 15-16
            if w is not None:
                weights[name] = w
        total = sum(fused.values())  # Add(F^{v-ta}, F^{t-va}, F^{a-vt}), (B, L, d)
        pooled = self.drop(total.mean(dim=1))  # (B, d)
        return self.head(pooled).squeeze(-1), fused, weights  # Eq. 17 without the Softmax, (B,)
