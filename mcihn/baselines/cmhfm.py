"""CMHFM - cross-modal hierarchical fusion with multi-task learning (the CMHFM row of the MCIHN
paper's Table 2). There is no released code, and we had only the paper's description as the MCIHN
paper cites it: modalities fused hierarchically (unimodal -> bimodal -> trimodal), a prediction at
every level, the levels' predictions fused, and a loss on each (multi-task). Everything below that
is more specific than that sentence is our choice; README_baselines_new.md lists the choices.

1. Unimodal level. Each modality: a linear map to width d, a one-layer LSTM over the steps
   (B, T_m, d), and its utterance vector u_m = the state at the last real step (B, d).
   Unimodal prediction y_m = head(u_m).
2. Bimodal level. For each unordered pair (i, j): cross-modal attention both ways (i's steps attend
   to j's real steps and j's to i's, multi-head, pre-LayerNorm, residual), each attended sequence
   averaged over its real steps, and b_ij = ReLU(linear [pool_i; pool_j; u_i * u_j]) (B, d): the
   element-wise product of the utterance vectors adds an explicit bimodal interaction term.
   Bimodal prediction y_ij = head(b_ij).
3. Trimodal level. The bimodal vectors are tokens (B, P, d) for P pairs; one self-attention
   block over them (pre-LayerNorm, residual) and their mean give r (B, d);
   trimodal prediction y_tav = head([r; u_t; u_a; u_v]) (the trimodal level also sees the
   unimodal vectors, a skip across the hierarchy).
4. Decision fusion. The final prediction is a learned affine combination of the level
   predictions, y = sum_k w_k y_k + c (K = M + P + 1 tasks; w initialised to 1/K, c to 0).

Loss (multi-task): L = L1(y, y_m) + aux_weight * (1/K) sum_k L1(y_k, y_m): every level is trained on
the multimodal label (MOSI has no unimodal labels; SIMS's T/A/V labels are not used, so that the
model trains the same way on every dataset). With two modalities there is one pair and the
"trimodal" level fuses that pair with the two unimodal vectors.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.phases import Phase
from ..modalities import LETTER
from .common import BaselineConfig, BaselineModel, BaselineOutput, last_valid, masked_mean
from .emt import attention_mask


@dataclass
class CMHFMConfig(BaselineConfig):
    """Sizes of CMHFM: one width d everywhere, attention heads, prediction-head hidden size, weight of the
    level losses. Paper preset: our choice (no published sizes we could read): d 64, 4 heads, head 32."""

    d_model: int = 64
    heads: int = 4
    head_hidden: int = 32
    aux_weight: float = 1.0

    kind: ClassVar[str] = "cmhfm"
    title: ClassVar[str] = "CMHFM"
    TINY: ClassVar[dict] = dict(d_model=16, heads=2, head_hidden=8)
    MIN_MODALITIES: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")


def head(d_in: int, hidden: int, dropout: float) -> nn.Sequential:
    """A prediction head: (B, d_in) -> ReLU(linear) -> linear -> (B, 1)."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class CrossBlock(nn.Module):
    """x attends to y: x + MHA(LN x, LN y, LN y) with y's padding ignored: (B, T_x, d), (B, T_y, d) -> (B, T_x, d)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.ln_q, self.ln_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)

    def forward(self, x, y, y_pad=None):
        kv = self.ln_kv(y)
        return x + self.attn(self.ln_q(x), kv, kv, key_padding_mask=y_pad, need_weights=False)[0]


class CMHFM(BaselineModel):
    def __init__(self, cfg: CMHFMConfig, dims: dict):
        """cfg: sizes; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__(cfg, dims)
        d, p = cfg.d_model, cfg.dropout
        self.inp = nn.ModuleDict({m: nn.Linear(self.dims[m][1], d) for m in self.modalities})
        self.lstm = nn.ModuleDict({m: nn.LSTM(d, d, batch_first=True) for m in self.modalities})
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.cross = nn.ModuleDict()
        for i, j in self.pairs:  # both directions of each pair, keyed "t<-a"
            self.cross[f"{LETTER[i]}<-{LETTER[j]}"] = CrossBlock(d, cfg.heads, p)
            self.cross[f"{LETTER[j]}<-{LETTER[i]}"] = CrossBlock(d, cfg.heads, p)
        self.bimodal = nn.ModuleDict({self.pair_name(i, j): nn.Linear(3 * d, d) for i, j in self.pairs})
        self.tri_ln = nn.LayerNorm(d)
        self.tri_attn = nn.MultiheadAttention(d, cfg.heads, dropout=p, batch_first=True)
        self.tasks = list(self.modalities) + [self.pair_name(i, j) for i, j in self.pairs] + ["tri"]
        widths = {t: d for t in self.tasks}
        widths["tri"] = d * (1 + len(self.modalities))
        self.heads = nn.ModuleDict({t: head(widths[t], cfg.head_hidden, p) for t in self.tasks})
        K = len(self.tasks)
        self.fuse_weight = nn.Parameter(torch.full((K,), 1.0 / K))
        self.fuse_bias = nn.Parameter(torch.zeros(()))

    @staticmethod
    def pair_name(i: str, j: str) -> str:
        return LETTER[i] + LETTER[j]

    def levels(self, batch: dict) -> tuple[dict, dict]:
        """-> (predictions {task: (B,)} for every level, representations {task: (B, width)})."""
        seq, u, masks, pads = {}, {}, {}, {}
        for m in self.modalities:  # level 1
            x, mask = batch[m], batch.get(m + "_mask")
            if mask is not None:
                x = x * mask[..., None].to(x.dtype)
            h, _ = self.lstm[m](self.inp[m](x))  # (B, T_m, d)
            seq[m], u[m], masks[m], pads[m] = h, last_valid(h, mask), mask, attention_mask(mask)
        reps = dict(u)
        for i, j in self.pairs:  # level 2
            a = self.cross[f"{LETTER[i]}<-{LETTER[j]}"](seq[i], seq[j], pads[j])  # (B, T_i, d)
            b = self.cross[f"{LETTER[j]}<-{LETTER[i]}"](seq[j], seq[i], pads[i])  # (B, T_j, d)
            pooled = torch.cat([masked_mean(a, masks[i]), masked_mean(b, masks[j]), u[i] * u[j]], dim=-1)  # (B, 3d)
            reps[self.pair_name(i, j)] = F.relu(self.bimodal[self.pair_name(i, j)](pooled))  # (B, d)
        tokens = torch.stack([reps[self.pair_name(i, j)] for i, j in self.pairs], dim=1)  # (B, P, d), level 3
        h = self.tri_ln(tokens)
        tokens = tokens + self.tri_attn(h, h, h, need_weights=False)[0]
        reps["tri"] = torch.cat([tokens.mean(dim=1)] + [u[m] for m in self.modalities], dim=-1)  # (B, (1 + M) d)
        preds = {t: self.heads[t](reps[t]).squeeze(-1) for t in self.tasks}  # each (B,)
        return preds, reps

    def forward(self, batch: dict) -> BaselineOutput:
        """pred (B,) = the decision fusion of the level predictions; unimodal {m: y_m (B,)}; fused: the
        stacked level predictions (B, K) in the order of ``self.tasks``."""
        preds, _ = self.levels(batch)
        stacked = torch.stack([preds[t] for t in self.tasks], dim=-1)  # (B, K)
        pred = stacked @ self.fuse_weight + self.fuse_bias  # (B,)
        return BaselineOutput(pred=pred, unimodal={m: preds[m] for m in self.modalities}, fused=stacked)

    def training_phases(self) -> list[Phase]:
        return [Phase("main", "main (CMHFM: fused + per-level L1)", self.main_parameters(), self.task_loss)]

    def task_loss(self, batch: dict):
        """L1 of the fused prediction + aux_weight x the mean L1 of the K level predictions."""
        y = batch["label"].float()
        out = self(batch)
        loss_fused = F.l1_loss(out.pred.float(), y)
        per_task = (out.fused.float() - y[:, None]).abs().mean(dim=0)  # (K,)
        total = loss_fused + self.cfg.aux_weight * per_task.mean()
        logs = {"total": total.detach(), "mul": loss_fused.detach()}
        M, P = len(self.modalities), len(self.pairs)  # tasks: M unimodal, P bimodal, then the trimodal one
        logs.update({"uni": per_task[:M].mean().detach(), "bi": per_task[M:M + P].mean().detach(),
                     "tri": per_task[-1].detach()})
        return total, logs
