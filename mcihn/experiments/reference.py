"""Reference points any model must beat, on the same data, splits and metrics: the mean predictor and a
ridge regression on time-pooled features.

A deep model that loses to a ridge regression on pooled features has not used the time structure or
the cross-modal interactions it was built for; the README and the benchmarks report both next to every
result. The ridge's alpha is chosen on the validation split only.
"""
from __future__ import annotations

import numpy as np

from ..data import MultimodalData
from ..metrics import evaluate
from ..modalities import parse_modalities

#: Ridge penalties tried (chosen on the validation MAE).
ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))


def pooled_features(split, modalities) -> np.ndarray:
    """(N, sum of D_m): each modality's mean over its real time steps, concatenated."""
    parts = []
    for m in parse_modalities(modalities):
        x, mask = split.features[m], split.mask(m)  # (N, T, D), (N, T)
        n = np.maximum(mask.sum(axis=1, keepdims=True), 1)  # (N, 1)
        parts.append((x * mask[..., None]).sum(axis=1) / n)  # (N, D)
    return np.concatenate(parts, axis=1)


def modality_subsets(modalities) -> list[tuple]:
    """Every non-empty subset of ``modalities``, in order: "ta" -> [("t",), ("a",), ("t", "a")]. The ridge
    reference tries each (the suite's row, ``linear_init="ridge_frozen"``) and keeps the best on validation."""
    from itertools import combinations

    items = tuple(modalities)
    return [c for k in range(1, len(items) + 1) for c in combinations(items, k)]


def ridge_reference(data: MultimodalData, modalities="tav", alphas=ALPHAS) -> dict:
    """Ridge regression on z-scored pooled features; alpha chosen on the validation MAE.

    Returns {"alpha", "valid": metrics, "test": metrics}.
    """
    xs = {s: pooled_features(data[s], modalities) for s in ("train", "valid", "test")}
    ys = {s: data[s].labels for s in xs}
    fit, alpha, _ = best_ridge(xs["train"], ys["train"], xs["valid"], ys["valid"], alphas)
    return {"alpha": alpha, **{s: evaluate(fit.predict(xs[s]), ys[s], data.dataset) for s in ("valid", "test")}}


def best_ridge(x_train, y_train, x_valid, y_valid, alphas=ALPHAS, standardize: bool = True):
    """The ridge regression (with an intercept) of the alpha with the lowest validation MAE: (fit, alpha, MAE).
    x: (N, D); ``standardize`` z-scores the columns with the training statistics first (a pipeline)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for alpha in alphas:
        fit = make_pipeline(StandardScaler(), Ridge(alpha=alpha)) if standardize else Ridge(alpha=alpha)
        fit.fit(x_train, y_train)
        mae = float(np.abs(fit.predict(x_valid) - y_valid).mean())
        if best is None or mae < best[2]:
            best = (fit, alpha, mae)
    return best


def mean_reference(data: MultimodalData) -> dict:
    """The constant prediction of the training labels' mean: {"valid": metrics, "test": metrics}."""
    mu = float(data["train"].labels.mean())
    return {s: evaluate(np.full(len(data[s]), mu, np.float32), data[s].labels, data.dataset) for s in ("valid", "test")}
