"""Sec. 3.4 - Cross-modal gate mechanism model (CGMM), Eq. 6-11.

Input: the latent codes S^m (B, L, d) of the active modalities (from the AAEs).
For each *core* modality m, with o1, o2 the other two:

    Eq. 6   M^m     = S^m W_m (S^o1 + S^o2)^T / sqrt(d)          (B, L, L)
    Eq. 7   alpha^m = softmax over the last axis of M^m           (B, L, L)
    Eq. 8   A^m     = alpha^m (S^o1 + S^o2)                       (B, L, d)

and for each unordered pair (m, n):

    Eq. 9   S^mn = [S^m, S^n, S^m - S^n, S^m * S^n] W_mn + b_mn   (B, L, 4d) -> (B, L, d)
    Eq. 10  G^mn = ReLU(S^mn)                                     (B, L, d)
    Eq. 11  F^mn = G^mn * P_mn[A^m, S^m] + G^mn * P_mn[A^n, S^n]  (B, L, d)

How the printed equations are read (see the README's paper-to-code table):
Eq. 6 is written S^v[W(S^a)^T + W(S^t)^T], which by linearity is S^v W (S^a+S^t)^T;
we add the usual 1/sqrt(d) so the softmax does not saturate at d=256. Eq. 8 prints
A = alpha * M, an (L, L) matrix that cannot be concatenated with S (L, d) in Eq. 11,
so we read it as attention transfer, A = alpha (S^o1 + S^o2). Eq. 9's concatenation
is 4d wide, so W_mn is (4d, d). Eq. 11's "G [A, S]" is G times a linear projection
P_mn (2d -> d, shared by the pair's two sides) of the concatenation.

With two modalities, "the others" of m is just n. With ``use_cgmm=False``
(ablation MCIHN-2) the pair feature is the plain mean (S^m + S^n) / 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
import torch
import torch.nn as nn

from ..modalities import others_of, pair_key, pairs_of, paper_order

@dataclass
class CGMMOutput:
    """What the gate computed, for the loss and for plots (keys: modality or pair key)."""

    alpha: dict = field(default_factory=dict)  # core m -> (B, L, L), Eq. 7
    A: dict = field(default_factory=dict)      # core m -> (B, L, d), Eq. 8
    G: dict = field(default_factory=dict)      # pair "vt" -> (B, L, d), Eq. 10
    F: dict = field(default_factory=dict)      # pair "vt" -> (B, L, d), Eq. 11


class CrossModalGate(nn.Module):
    """Eq. 6-11 for any set of two or three modalities."""

    def __init__(self, modalities, d: int):
        super().__init__()
        if len(modalities) < 2:
            raise ValueError("the cross-modal gate needs at least two modalities")
        self.modalities = paper_order(modalities)
        self.d = d
        # Eq. 6: one bilinear matrix W_m (d, d) per core modality.
        self.W = nn.ParameterDict({m: nn.Parameter(torch.empty(d, d)) for m in self.modalities})
        for w in self.W.values():
            nn.init.xavier_uniform_(w)
        keys = [pair_key(m, n) for m, n in pairs_of(self.modalities)]
        self.gate = nn.ModuleDict({k: nn.Linear(4 * d, d) for k in keys})  # Eq. 9: W_mn (4d, d), b_mn
        self.proj = nn.ModuleDict({k: nn.Linear(2 * d, d) for k in keys})  # Eq. 11: P_mn (2d -> d)

    def attention_transfer(self, m: str, S: dict):
        """Eq. 6-8 for core modality m: returns alpha^m (B, L, L) and A^m (B, L, d)."""
        context = sum(S[o] for o in others_of(m, self.modalities))  # S^o1 + S^o2, (B, L, d)
        M = (S[m] @ self.W[m]) @ context.transpose(1, 2) / math.sqrt(self.d)  # Eq. 6, (B, L, L)
        alpha = M.softmax(dim=-1)  # Eq. 7, rows sum to 1
        return alpha, alpha @ context  # Eq. 8 (read as attention transfer), (B, L, d)

    def forward(self, S: dict) -> CGMMOutput:
        """S: modality -> (B, L, d). Returns alpha, A per core modality and G, F per pair."""
        out = CGMMOutput()
        for m in self.modalities:
            out.alpha[m], out.A[m] = self.attention_transfer(m, S)
        for m, n in pairs_of(self.modalities):
            k = pair_key(m, n)
            cat = torch.cat([S[m], S[n], S[m] - S[n], S[m] * S[n]], dim=-1)  # (B, L, 4d)
            G = torch.relu(self.gate[k](cat))  # Eq. 9-10, (B, L, d)
            side_m = self.proj[k](torch.cat([out.A[m], S[m]], dim=-1))  # (B, L, 2d) -> (B, L, d)
            side_n = self.proj[k](torch.cat([out.A[n], S[n]], dim=-1))
            out.G[k] = G
            out.F[k] = G * side_m + G * side_n  # Eq. 11
        return out


def plain_pairs(S: dict, modalities) -> CGMMOutput:
    """Ablation MCIHN-2: no gate, F^mn = (S^m + S^n) / 2 for each pair."""
    out = CGMMOutput()
    for m, n in pairs_of(modalities):
        out.F[pair_key(m, n)] = 0.5 * (S[m] + S[n])  # (B, L, d)
    return out
