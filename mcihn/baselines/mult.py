"""MulT - Multimodal Transformer for unaligned multimodal language sequences (Tsai, Bai, Liang,
Kolter, Morency and Salakhutdinov, ACL 2019).

MulT never aligns the modalities in time. Each modality keeps its own sequence, and for every
*ordered* pair (beta -> alpha) a crossmodal transformer lets the target alpha's time steps
attend to the source beta's steps:

1. Temporal convolution: a Conv1d maps X_m (B, T_m, D_m) to width d, then sinusoidal
   positions are added: Z_m^[0] (B, T_m, d).
2. Crossmodal transformer CM_{beta -> alpha}, D layers. Layer i: multi-head attention with
   queries from LN(Z_{beta->alpha}^[i-1]) and keys / values from LN(Z_beta^[0]) - always the
   *low-level* source features, not a processed version - plus a residual, then a
   position-wise feed-forward block with a residual. Z_{beta->alpha}^[0] = Z_alpha^[0]; the output
   keeps alpha's length: (B, T_alpha, d).
3. For each target alpha, the two streams arriving at it are concatenated, (B, T_alpha, 2d), and
   a self-attention transformer runs over them; its state at the last time step summarises alpha.
4. The three summaries are concatenated, (B, 6d), and a residual two-layer block and a linear
   output give the score.

With three modalities there are six crossmodal transformers (L<-A, L<-V, A<-L, A<-V, V<-L, V<-A)
and three self-attention transformers. The attention weights are returned for plots in eval mode
(or inside ``mcihn.model.attention_weights(True)``); in training mode the attention runs fused
(``nn.MultiheadAttention`` with ``need_weights=False`` calls ``scaled_dot_product_attention``) and
``attention`` is empty.

Departures: the paper ignores padding (its features are zero-padded); here padded source steps
are masked out of every attention, and "the last time step" is each sequence's last *real* step
(an all-padding sequence attends everywhere, to zeros, instead of producing NaN). The released
code's defaults give the paper preset's sizes (d = 30, 5 heads, 5 layers, kernel 1); dropout is
one number here (the paper tunes attention, residual, embedding and output dropout apart).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from ..modalities import LETTER
from ..model.attention import deterministic_backend, want_weights
from .common import BaselineConfig, BaselineModel, BaselineOutput, last_valid


@dataclass
class MulTConfig(BaselineConfig):
    """Sizes of MulT: width d of every stream, heads, layers per transformer, Conv1d kernel."""

    d_model: int = 30
    heads: int = 5
    layers: int = 5
    conv_kernel: int = 1
    dropout: float = 0.1

    kind: ClassVar[str] = "mult"
    title: ClassVar[str] = "MulT"
    TINY: ClassVar[dict] = dict(d_model=16, heads=2, layers=2, conv_kernel=1)
    MIN_MODALITIES: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd so the convolution keeps the length, got {self.conv_kernel}")


def sinusoidal_positions(T: int, d: int) -> torch.Tensor:
    """(T, d): sin on even features, cos on odd ones, wavelengths from 2 pi to 10000 * 2 pi."""
    pos = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)  # (ceil(d/2),)
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return pe


def padding_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) True = real step -> key_padding_mask (B, T) True = ignore. A row with no real step
    ignores nothing (it attends to its zero padding) so that the softmax stays finite."""
    if mask is None:
        return None
    empty = ~mask.any(dim=1, keepdim=True)  # (B, 1)
    return ~(mask | empty)


class CrossmodalLayer(nn.Module):
    """One layer: attention with queries from the target stream and keys / values from the source
    (the same module, with source = target, is a self-attention layer), then a feed-forward block."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.ln_q, self.ln_kv, self.ln_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, src: torch.Tensor, src_pad: torch.Tensor | None):
        """z (B, T_a, d), src (B, T_b, d), src_pad (B, T_b) True = padding -> ((B, T_a, d), (B, h, T_a, T_b) or
        None when the fused path runs, see ``mcihn.model.attention``)."""
        kv, q = self.ln_kv(src), self.ln_q(z)
        with deterministic_backend(q, kv):  # CUDA: a deterministic kernel while deterministic algorithms are on
            a, w = self.attn(q, kv, kv, key_padding_mask=src_pad, need_weights=want_weights(self),
                             average_attn_weights=False)  # (B, T_a, d), (B, h, T_a, T_b)
        z = z + self.drop(a)
        z = z + self.drop(self.ff(self.ln_ff(z)))  # position-wise feed-forward
        return z, w


class CrossmodalTransformer(nn.Module):
    """CM_{beta -> alpha}: ``layers`` CrossmodalLayers, every one reading the same source Z_beta^[0].
    Called with the target as its own source, it is the self-attention transformer of step 3."""

    def __init__(self, d: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([CrossmodalLayer(d, heads, dropout) for _ in range(layers)])
        self.ln_out = nn.LayerNorm(d)

    def forward(self, z_target, z_source, source_pad=None, self_attention: bool = False):
        """(B, T_a, d), (B, T_b, d) -> ((B, T_a, d), [per layer (B, h, T_a, T_b)])."""
        weights = []
        z = z_target
        for layer in self.layers:
            z, w = layer(z, z if self_attention else z_source, source_pad)
            weights.append(w)
        return self.ln_out(z), weights


class MulT(BaselineModel):
    def __init__(self, cfg: MulTConfig, dims: dict):
        """cfg: sizes; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__(cfg, dims)
        d, k = cfg.d_model, cfg.conv_kernel
        self.proj = nn.ModuleDict({m: nn.Conv1d(self.dims[m][1], d, k, padding=k // 2, bias=False)
                                   for m in self.modalities})  # step 1: D_m -> d
        for m in self.modalities:  # fixed sinusoidal positions of each modality's length, (T_m, d)
            self.register_buffer(f"pos_{m}", sinusoidal_positions(self.dims[m][0], d), persistent=False)
        self.embed_drop = nn.Dropout(cfg.dropout)
        # step 2: one crossmodal transformer per ordered pair, keyed "target<-source", e.g. "t<-a"
        self.pairs = [(a, b) for a in self.modalities for b in self.modalities if a != b]
        self.cross = nn.ModuleDict({self.pair_name(a, b): CrossmodalTransformer(d, cfg.heads, cfg.layers, cfg.dropout)
                                    for a, b in self.pairs})
        # step 3: per target, self-attention over the concatenated incoming streams
        width = {m: d * (len(self.modalities) - 1) for m in self.modalities}
        self.memory = nn.ModuleDict({m: CrossmodalTransformer(width[m], cfg.heads, cfg.layers, cfg.dropout)
                                     for m in self.modalities})
        # step 4: residual block and output on the concatenated summaries
        total = sum(width.values())
        self.proj1, self.proj2 = nn.Linear(total, total), nn.Linear(total, total)
        self.out_drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(total, 1)

    @staticmethod
    def pair_name(target: str, source: str) -> str:
        return f"{LETTER[target]}<-{LETTER[source]}"

    def embed(self, m: str, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Step 1: X_m (B, T_m, D_m) -> Z_m^[0] (B, T_m, d)."""
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)  # padding to 0, so a kernel > 1 cannot carry it into real steps
        z = self.proj[m](x.transpose(1, 2)).transpose(1, 2)  # (B, D_m, T_m) -> (B, d, T_m) -> (B, T_m, d)
        z = math.sqrt(z.shape[-1]) * z + getattr(self, f"pos_{m}").to(z.dtype)  # (B, T_m, d) + (T_m, d)
        return self.embed_drop(z)

    def forward(self, batch: dict) -> BaselineOutput:
        """batch: m -> (B, T_m, D_m), m + "_mask" -> (B, T_m).

        Returns pred (B,), unimodal summary of each target m (B, (M-1) d), fused (B, M (M-1) d) and
        attention: "t<-a" -> last crossmodal layer (B, h, T_t, T_a), "t" -> last self-attention layer
        (B, h, T_t, T_t).
        """
        masks = {m: batch.get(m + "_mask") for m in self.modalities}
        pads = {m: padding_mask(masks[m]) for m in self.modalities}
        z0 = {m: self.embed(m, batch[m], masks[m]) for m in self.modalities}  # m -> (B, T_m, d)
        summaries, attention = {}, {}
        for a in self.modalities:
            streams = []
            for b in self.modalities:
                if b == a:
                    continue
                name = self.pair_name(a, b)
                z, w = self.cross[name](z0[a], z0[b], pads[b])  # step 2: (B, T_a, d)
                streams.append(z)
                if w[-1] is not None:
                    attention[name] = w[-1]
            h = torch.cat(streams, dim=-1)  # (B, T_a, (M-1) d)
            h, w = self.memory[a](h, h, pads[a], self_attention=True)  # step 3: (B, T_a, (M-1) d)
            if w[-1] is not None:
                attention[LETTER[a]] = w[-1]
            summaries[a] = last_valid(h, masks[a])  # (B, (M-1) d)
        fused = torch.cat([summaries[m] for m in self.modalities], dim=-1)  # (B, M (M-1) d)
        h = self.proj2(self.out_drop(torch.relu(self.proj1(fused)))) + fused  # step 4: residual block
        pred = self.out(h).squeeze(-1)  # (B, 1) -> (B,)
        return BaselineOutput(pred=pred, unimodal=summaries, fused=fused, attention=attention)
