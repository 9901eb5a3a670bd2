"""Per-feature z-scoring of the features, with statistics from the train split's real time steps only."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..modalities import parse_modalities
from .mmsa import MultimodalData, SplitData

STD_FLOOR = 1e-6


class Normalizer:
    """Per-modality, per-feature z-scoring with statistics from real (unpadded) train steps.

    ``mean[m]`` and ``std[m]`` are (D_m,) float32; std is the population std
    (ddof=0) floored at ``STD_FLOOR`` so constant features map to 0.
    """

    def __init__(self, mean: dict[str, np.ndarray], std: dict[str, np.ndarray]):
        self.mean = {m: np.asarray(v, dtype=np.float32) for m, v in mean.items()}
        self.std = {m: np.asarray(v, dtype=np.float32) for m, v in std.items()}

    @classmethod
    def fit(cls, split: SplitData, modalities) -> "Normalizer":
        mean, std = {}, {}
        for m in (parse_modalities(modalities) if len(modalities) else ()):  # none: a text encoder reads raw ids
            steps = split.features[m][split.mask(m)]  # (number of real steps, D_m)
            if len(steps) == 0:
                raise ValueError(f"Normalizer.fit: split '{split.name}' has no real time steps for '{m}'")
            mean[m] = steps.mean(axis=0, dtype=np.float64)
            std[m] = np.maximum(steps.std(axis=0, dtype=np.float64), STD_FLOOR)
        return cls(mean, std)

    def transform(self, split: SplitData) -> SplitData:
        """New SplitData with (x - mean) / std on fitted modalities; padding stays exactly 0."""
        features = dict(split.features)
        for m in self.mean:
            x = split.features[m]  # (N, T, D)
            if x.shape[-1] != self.mean[m].shape[0]:
                raise ValueError(f"Normalizer: '{m}' has width {x.shape[-1]}, fitted on {self.mean[m].shape[0]}")
            y = (x - self.mean[m]) / self.std[m]
            y[~split.mask(m)] = 0.0
            features[m] = y.astype(np.float32, copy=False)
        return dataclasses.replace(split, features=features)

    def state_dict(self) -> dict:
        """{m: {"mean": (D,) tensor, "std": (D,) tensor}}; safe for torch.load(weights_only=True)."""
        return {m: {"mean": torch.from_numpy(self.mean[m].copy()), "std": torch.from_numpy(self.std[m].copy())}
                for m in self.mean}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Normalizer":
        as_np = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)  # noqa: E731
        return cls({m: as_np(s["mean"]) for m, s in d.items()}, {m: as_np(s["std"]) for m, s in d.items()})


def normalize(data: MultimodalData, modalities) -> tuple[MultimodalData, Normalizer]:
    """Fit a :class:`Normalizer` on ``data["train"]`` and apply it to every split."""
    norm = Normalizer.fit(data["train"], modalities)
    splits = {s: norm.transform(sd) for s, sd in data.splits.items()}
    return dataclasses.replace(data, splits=splits), norm
