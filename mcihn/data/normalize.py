"""Per-feature z-scoring of the features, with statistics from the train split's real time steps only.

Real feature files (OpenFace, FACET, COVAREP, openSMILE) have dead dimensions: constant on the
training split. Dividing by a floored standard deviation turns a slightly different validation value
into a z-score of 1e5 (a TFN's outer product multiplies such values; every model sees those clips as
outliers). So a feature whose train std is below ``DEAD_TOL`` times its scale is *dead*: its z-score is
0 in every split (stored as std = inf). And every z-score is clipped to +-``Z_CLIP``: a value ten
standard deviations from the training mean carries no more information than one at ten, and an
unclipped one can dominate a whole layer. ``Normalizer.report()`` says what was done, per modality.

What is z-scored is a rule (``ZSCORE_RULES``; ``MCIHNConfig.zscore`` / ``train --zscore``):

* ``"auto"`` (default): the text of real data is only *centred*, not divided by its standard deviations,
  because in every format this package reads it is the state of a pretrained encoder (BERT, MiniLM,
  GloVe: MMSA's pickles, ``extract``, the MOSI development files), whose dimensions share one scale
  and whose geometry is what the encoder learned; dividing each dimension by its own spread puts the
  weak ones on a par with the strong ones. Acoustic and visual descriptors (COVAREP, openSMILE,
  FACET, OpenFace: pitch in Hz next to 0/1 flags) and every feature of synthetic data (drawn by a
  generator, not an encoder: ``data.synthetic``) are z-scored. Chosen on the validation splits of the
  development suite (``docs/results.md``, "What is z-scored"): no model got worse beyond the spread.
* ``"all"``: every modality z-scored (this package's pipeline before 2026-12-05).

MMSA itself scales nothing; centring keeps 0 as the training mean, which padding, the robustness
protocol and ``missing_aug`` take to mean "no information".
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..modalities import parse_modalities
from .mmsa import MultimodalData, SplitData

#: A feature is dead (constant on the train split) when std <= DEAD_TOL * max(1, |mean|).
DEAD_TOL = 1e-6
#: z-scores are clipped to [-Z_CLIP, Z_CLIP] (a modality only centred is not clipped).
Z_CLIP = 10.0
#: What ``zscore`` may say: see the module docstring.
ZSCORE_RULES = ("auto", "all")


def centred_only(data: MultimodalData, modalities, rule: str = "auto") -> tuple[str, ...]:
    """The modalities of ``modalities`` that ``rule`` centres without scaling: under ``"auto"`` the text
    of real (not synthetic) data, a pretrained encoder's states; under ``"all"`` none."""
    if rule not in ZSCORE_RULES:
        raise ValueError(f"zscore must be one of {ZSCORE_RULES}, not {rule!r}")
    mods = parse_modalities(modalities) if len(modalities) else ()
    return ("text",) if rule == "auto" and not data.synthetic and "text" in mods else ()


class Normalizer:
    """Per-modality, per-feature z-scoring with statistics from real (unpadded) train steps.

    ``mean[m]`` and ``std[m]`` are (D_m,) float32; std is the population std (ddof=0), and inf for a
    dead feature (its z-score is 0). A modality in ``centred`` has std = 1 everywhere (only its mean
    is removed, nothing is clipped). ``clipped`` counts, per split and modality, the values that
    :meth:`transform` clipped to +-Z_CLIP (filled as splits are transformed).
    """

    def __init__(self, mean: dict[str, np.ndarray], std: dict[str, np.ndarray], centred=()):
        self.mean = {m: np.asarray(v, dtype=np.float32) for m, v in mean.items()}
        self.std = {m: np.asarray(v, dtype=np.float32) for m, v in std.items()}
        self.centred = tuple(m for m in self.mean if m in tuple(centred))
        self.clipped: dict = {}

    @classmethod
    def fit(cls, split: SplitData, modalities, centred=()) -> "Normalizer":
        mean, std = {}, {}
        for m in (parse_modalities(modalities) if len(modalities) else ()):  # none: a text encoder reads raw ids
            steps = split.features[m][split.mask(m)]  # (number of real steps, D_m)
            if len(steps) == 0:
                raise ValueError(f"Normalizer.fit: split '{split.name}' has no real time steps for '{m}'")
            mean[m] = steps.mean(axis=0, dtype=np.float64)
            if m in centred:  # a pretrained encoder's states: keep their scale
                std[m] = np.ones_like(mean[m])
                continue
            sd = steps.std(axis=0, dtype=np.float64)
            std[m] = np.where(sd <= DEAD_TOL * np.maximum(1.0, np.abs(mean[m])), np.inf, sd)  # dead -> inf
        return cls(mean, std, centred)

    def transform(self, split: SplitData) -> SplitData:
        """New SplitData with (x - mean) / std on fitted modalities; padding stays exactly 0."""
        features = dict(split.features)
        for m in self.mean:
            x = split.features[m]  # (N, T, D)
            if x.shape[-1] != self.mean[m].shape[0]:
                raise ValueError(f"Normalizer: '{m}' has width {x.shape[-1]}, fitted on {self.mean[m].shape[0]}")
            y = (x - self.mean[m]) / self.std[m]  # a dead feature: finite / inf = 0
            mask = split.mask(m)
            y[~mask] = 0.0
            if m in self.centred:
                features[m] = y.astype(np.float32, copy=False)
                continue
            over = np.abs(y) > Z_CLIP
            self.clipped[(split.name, m)] = (int(over.sum()), int(mask.sum()) * y.shape[-1])
            np.clip(y, -Z_CLIP, Z_CLIP, out=y)
            features[m] = y.astype(np.float32, copy=False)
        return dataclasses.replace(split, features=features)

    def dead(self, m: str) -> np.ndarray:
        """(D_m,) bool: features constant on the train split (z-score 0 everywhere)."""
        return ~np.isfinite(self.std[m])

    def report(self) -> list[str]:
        """One line per modality with dead features or clipped values, for the run's log."""
        lines = [f"normaliser, {m}: centred, not scaled (a pretrained encoder's states keep their scale; "
                 "--zscore all scales them too)" for m in self.centred]
        for m in self.mean:
            if m in self.centred:
                continue
            dead = int(self.dead(m).sum())
            clipped = {s: c for (s, mm), c in self.clipped.items() if mm == m and c[0]}
            if dead or clipped:
                parts = [f"{dead} of {len(self.std[m])} features constant on the train split, set to 0"] if dead else []
                parts += [f"{n} {s} values ({100 * n / max(tot, 1):.2g} %) beyond +-{Z_CLIP:g} std clipped"
                          for s, (n, tot) in clipped.items()]
                lines.append(f"normaliser, {m}: " + "; ".join(parts))
        return lines

    def state_dict(self) -> dict:
        """{m: {"mean": (D,) tensor, "std": (D,) tensor, "centred": bool}}; safe for torch.load(weights_only=True)."""
        return {m: {"mean": torch.from_numpy(self.mean[m].copy()), "std": torch.from_numpy(self.std[m].copy()),
                    "centred": m in self.centred} for m in self.mean}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Normalizer":
        as_np = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)  # noqa: E731
        return cls({m: as_np(s["mean"]) for m, s in d.items()}, {m: as_np(s["std"]) for m, s in d.items()},
                   [m for m, s in d.items() if bool(s.get("centred", False))])  # older checkpoints: z-scored


def fit_normalizer(data: MultimodalData, modalities, rule: str = "auto") -> Normalizer:
    """A :class:`Normalizer` of ``data["train"]`` under ``rule`` (:func:`centred_only`)."""
    return Normalizer.fit(data["train"], modalities, centred_only(data, modalities, rule))


def normalize(data: MultimodalData, modalities, rule: str = "auto") -> tuple[MultimodalData, Normalizer]:
    """Fit a :class:`Normalizer` on ``data["train"]`` under ``rule`` and apply it to every split."""
    norm = fit_normalizer(data, modalities, rule)
    splits = {s: norm.transform(sd) for s, sd in data.splits.items()}
    return dataclasses.replace(data, splits=splits), norm
