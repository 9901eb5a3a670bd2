"""Late fusion - the floor of the tables.

Decision-level fusion (the MCIHN paper's Sec. 2 describes it): each modality gets its own small
regressor on its time-averaged features, and the multimodal score is a learned weighted sum of
the unimodal scores,

    y_m = MLP_m(mean_t X_m[t])            (B,)      one per modality
    y   = sum_m w_m y_m + b               (B,)      w initialised to 1/M

Everything is trained end to end on the MAE of y. No term of y depends on two modalities at
once, so the model cannot represent any cross-modal interaction: whatever a fusion model gains
over this row is what it learned from the modalities *together*. The unimodal scores y_m are
returned, so a reader can also see how much each modality alone explains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from .common import BaselineConfig, BaselineModel, BaselineOutput, masked_mean, mlp


@dataclass
class LateFusionConfig(BaselineConfig):
    """Hidden width and depth of each modality's regressor."""

    hidden: int = 64
    layers: int = 2

    kind: ClassVar[str] = "late"
    title: ClassVar[str] = "Late fusion"
    TINY: ClassVar[dict] = dict(hidden=16, layers=2)


class LateFusion(BaselineModel):
    def __init__(self, cfg: LateFusionConfig, dims: dict):
        """cfg: sizes; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__(cfg, dims)
        self.regressor = nn.ModuleDict({
            m: nn.Sequential(mlp([self.dims[m][1]] + [cfg.hidden] * cfg.layers, cfg.dropout), nn.Linear(cfg.hidden, 1))
            for m in self.modalities
        })
        self.weight = nn.Parameter(torch.full((len(self.modalities),), 1.0 / len(self.modalities)))  # w_m
        self.bias = nn.Parameter(torch.zeros(()))  # b

    def forward(self, batch: dict) -> BaselineOutput:
        """batch: m -> (B, T_m, D_m), m + "_mask" -> (B, T_m). Returns pred (B,) and unimodal y_m (B,)."""
        y = {m: self.regressor[m](masked_mean(batch[m], batch.get(m + "_mask"))).squeeze(-1)  # (B, D_m) -> (B,)
             for m in self.modalities}
        stacked = torch.stack([y[m] for m in self.modalities], dim=-1)  # (B, M)
        pred = stacked @ self.weight + self.bias  # (B,)
        return BaselineOutput(pred=pred, unimodal=y, fused=stacked)
