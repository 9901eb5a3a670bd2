"""TFN - Tensor Fusion Network (Zadeh, Chen, Poria, Cambria and Morency, EMNLP 2017).

Three parts, as in the paper:

1. Modality embedding subnetworks. Language: an LSTM over the words, then two fully
   connected ReLU layers (paper: 128 units) -> z^l. Visual and acoustic: the mean over time
   of the frame features, then three fully connected ReLU layers (paper: 32 units) -> z^v, z^a.
2. Tensor fusion layer. Each unimodal vector gets a constant 1 appended, and the fused
   representation is their three-fold outer product

       Z = [z^l; 1] (x) [z^v; 1] (x) [z^a; 1]      shape (d_l + 1) x (d_v + 1) x (d_a + 1)

   Thanks to the appended 1, Z holds every unimodal vector (z^l = Z[:d_l, d_v, d_a], ...),
   every bimodal product (z^l (x) z^v = Z[:d_l, :d_v, d_a], ...) and the trimodal product
   (Z[:d_l, :d_v, :d_a]) side by side: a linear layer on Z can weigh all of them.
3. Sentiment inference subnetwork: two fully connected ReLU layers (paper: 128 units) on the
   flattened Z, then the output. The first of these layers is where the cost lives: its
   weight is post_hidden x prod(d_m + 1), 128 x 129 x 33 x 33 = 18 M parameters at the
   paper's sizes. LMF (``lmf.py``) factorises exactly this layer.

Choices of ours: the output is one linear unit (the same kind of head as every other row of the
tables, trained with the same MAE); the fusion works for any non-empty subset of the modalities
(the outer product of those present); dropout follows each fully connected layer and its rate is
fixed (0.2 in the paper preset) where the paper tunes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from .common import BaselineConfig, BaselineModel, BaselineOutput, LanguageSubnet, PooledSubnet

#: The paper writes the tensor as language (x) visual (x) acoustic.
TFN_ORDER = ("text", "vision", "audio")


@dataclass
class TFNConfig(BaselineConfig):
    """Sizes of TFN. Paper preset: z^l 128, z^v = z^a 32, inference layers 128 (TFN, Sec. 4)."""

    text_dim: int = 128
    audio_dim: int = 32
    vision_dim: int = 32
    post_hidden: int = 128

    kind: ClassVar[str] = "tfn"
    title: ClassVar[str] = "TFN"
    TINY: ClassVar[dict] = dict(text_dim=16, audio_dim=8, vision_dim=8, post_hidden=16)

    def unimodal_dim(self, m: str) -> int:
        return {"text": self.text_dim, "audio": self.audio_dim, "vision": self.vision_dim}[m]


def tensor_fusion(zs: list[torch.Tensor]) -> torch.Tensor:
    """The tensor fusion layer: [z_1; 1] (x) [z_2; 1] (x) ... for z_k (B, d_k).

    Returns Z (B, d_1 + 1, d_2 + 1, ...); for three modalities this is
    ``einsum("bi,bj,bk->bijk", z1, z2, z3)`` of the vectors with their 1 appended.
    """
    B = zs[0].shape[0]
    one = zs[0].new_ones(B, 1)
    Z = torch.cat([zs[0], one], dim=-1)  # (B, d_1 + 1)
    for z in zs[1:]:
        z1 = torch.cat([z, one], dim=-1)  # (B, d_k + 1)
        # (B, ..., 1) * (B, 1, ..., 1, d_k + 1): the outer product, one more axis per modality
        Z = Z.unsqueeze(-1) * z1.view(B, *([1] * (Z.dim() - 1)), z1.shape[-1])
    return Z


class TFN(BaselineModel):
    def __init__(self, cfg: TFNConfig, dims: dict):
        """cfg: sizes; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__(cfg, dims)
        self.order = [m for m in TFN_ORDER if m in self.modalities]
        self.subnet = nn.ModuleDict({
            m: (LanguageSubnet(self.dims[m][1], cfg.text_dim, cfg.dropout) if m == "text"
                else PooledSubnet(self.dims[m][1], cfg.unimodal_dim(m), cfg.dropout))
            for m in self.order
        })
        self.z_dims = [cfg.unimodal_dim(m) for m in self.order]
        self.drop = nn.Dropout(cfg.dropout)
        self.build_fusion()
        # The rest of the sentiment inference subnetwork: ReLU, a second layer of post_hidden, the output.
        self.inference = nn.Sequential(nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.post_hidden, cfg.post_hidden),
                                       nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.post_hidden, 1))

    def build_fusion(self) -> None:
        """The first inference layer, on the flattened tensor: prod(d_m + 1) -> post_hidden."""
        n = 1
        for d in self.z_dims:
            n *= d + 1
        self.fusion_layer = nn.Linear(n, self.cfg.post_hidden)

    def fuse(self, zs: list[torch.Tensor]):
        """zs: unimodal vectors (B, d_m) in TFN_ORDER -> (h (B, post_hidden), Z (B, d_1+1, d_2+1, ...))."""
        Z = tensor_fusion(zs)  # (B, d_l + 1, d_v + 1, d_a + 1)
        return self.fusion_layer(self.drop(Z.flatten(1))), Z  # (B, prod(d_m + 1)) -> (B, post_hidden)

    def forward(self, batch: dict) -> BaselineOutput:
        """batch: m -> (B, T_m, D_m), m + "_mask" -> (B, T_m). Returns pred (B,), unimodal z^m (B, d_m),
        fused Z (B, d_l + 1, d_v + 1, d_a + 1) (None for LMF, which never builds it)."""
        z = {m: self.subnet[m](batch[m], batch.get(m + "_mask")) for m in self.order}  # m -> (B, d_m)
        h, Z = self.fuse([z[m] for m in self.order])
        pred = self.inference(h).squeeze(-1)  # (B, 1) -> (B,)
        return BaselineOutput(pred=pred, unimodal=z, fused=Z)
