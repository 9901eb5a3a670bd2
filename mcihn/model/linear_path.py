"""An addition, not in the paper: a linear path beside the network ("wide and deep").

On real sentiment data a ridge regression on the time-averaged features is a strong baseline: text carries
most of the label, and it carries it nearly linearly. The deep path of MCIHN (encoders, gate, fusion, Eq.
6-17) can represent that linear function, but has to find it through several non-linear layers and dropout
on a few hundred clips. The linear path hands it over directly:

    m-bar_m   = mean over the real time steps of X_m                  (B, D_m)   (masked; 0 for an empty clip)
    y_lin     = w^T [m-bar_t ; m-bar_a ; m-bar_v] (+ no bias)         (B,)
    y^p       = y_deep (Eq. 17) + y_lin

It reads the same (normalised, and in training possibly ``missing_aug``-ed) inputs as the encoders. Its
weights start at zero, so an untrained model predicts exactly what Eq. 17 does, and are trained by the
same task loss (Eq. 18) and the same optimiser (AdamW's weight decay is its ridge penalty). With a
fine-tuned text encoder the text input is the encoder's token states, so the path reads those.

``linear_init="ridge"`` starts w instead at the ridge regression of the training labels on the same pooled
inputs (:func:`init_from_ridge`; the penalty chosen on the validation MAE, as the suite's ridge reference), so
that training begins where the strongest simple baseline ends and the network learns what is left.
``linear_init="ridge_frozen"`` goes one step further (residual learning, as in boosting): w stays at the ridge
fit (it is not trained), Eq. 17's head starts at zero weights and the ridge intercept as its bias, so the
untrained model *is* the ridge regression and the network is trained on what the ridge leaves.
``linear_init="auto"`` (the ``auto`` preset's) trains a seed from both "zero" and "ridge_frozen" and keeps the run
with the lower validation MAE (``mcihn/training/starts.py``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

#: How the linear path's weights start (``MCIHNConfig.linear_init``).
LINEAR_INITS = ("zero", "ridge", "ridge_frozen", "auto")  # auto: training/starts.py


class LinearPath(nn.Module):
    """y_lin = w^T concat_m(masked time-mean of X_m): dims m -> (T_m, D_m) -> a (B,) prediction."""

    def __init__(self, dims: dict, trainable: bool = True):
        super().__init__()
        self.modalities = list(dims)
        self.dims = {m: D for m, (_, D) in dims.items()}  # m -> D_m, the width of its pooled columns
        self.linear = nn.Linear(sum(D for _, D in dims.values()), 1, bias=False)  # w, (sum_m D_m) -> 1
        nn.init.zeros_(self.linear.weight)  # start as the paper's model
        self.linear.weight.requires_grad_(trainable)  # linear_init="ridge_frozen": w is the ridge fit, kept

    def forward(self, batch: dict) -> torch.Tensor:
        """batch: m -> (B, T_m, D_m), m + "_mask" -> (B, T_m) bool. Returns (B,)."""
        return self.linear(self.pooled(batch)).squeeze(-1)  # (B, sum_m D_m) -> (B,)

    def pooled(self, batch: dict) -> torch.Tensor:
        """What the linear layer reads: each modality's masked time mean, concatenated, (B, sum_m D_m)."""
        return torch.cat([masked_mean(batch[m], batch.get(m + "_mask")) for m in self.modalities], dim=-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the real time steps: x (B, T, D), mask (B, T) bool -> (B, D); a clip with no real step gives 0.
    (The baselines pool with it too.)"""
    if mask is None:
        return x.mean(dim=1)
    m = mask[..., None].to(x.dtype)  # (B, T, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


@torch.no_grad()
def init_from_ridge(path: LinearPath, train: dict, valid: dict, alphas=None, reference: bool = False) -> dict:
    """Set w to the ridge regression of the training labels on the path's own pooled inputs.

    train / valid: model tensors (m -> (N, T_m, D_m), m + "_mask", "label" -> (N,)). The ridge has an
    intercept, which the path does not keep (the network's head learns the label mean, or takes it:
    :func:`start_at_ridge`); alpha is the one with the lowest validation MAE, from the grid of the suite's ridge
    reference (``experiments.reference.ALPHAS``) unless ``alphas`` is given.

    ``reference=False`` (``linear_init="ridge"``): one ridge on the raw pooled inputs of every modality.
    ``reference=True`` (``linear_init="ridge_frozen"``): the suite's ridge reference itself: columns z-scored
    with the training statistics, every non-empty subset of the modalities tried, the best (alpha, subset) on
    validation kept; the scaler is folded into w and the intercept (w = coef / scale, b = b_ridge - coef . mean /
    scale) and the modalities left out get zero weights. Returns {"alpha", "valid_mae", "intercept", "modalities"}.
    """
    import numpy as np

    from ..experiments.reference import ALPHAS, best_ridge, modality_subsets

    def numpy(x):
        return x.cpu().double().numpy()

    x_tr, x_va = numpy(path.pooled(train)), numpy(path.pooled(valid))  # (N, sum_m D_m)
    y_tr, y_va = numpy(train["label"]), numpy(valid["label"])
    edges = np.cumsum([0] + [path.dims[m] for m in path.modalities])  # column offsets of each modality
    columns = {m: np.arange(edges[i], edges[i + 1]) for i, m in enumerate(path.modalities)}
    subsets = modality_subsets(path.modalities) if reference else [tuple(path.modalities)]
    best = None
    for subset in subsets:
        cols = np.concatenate([columns[m] for m in subset])
        fit, alpha, mae = best_ridge(x_tr[:, cols], y_tr, x_va[:, cols], y_va, alphas or ALPHAS,
                                     standardize=reference)
        if best is None or mae < best[3]:
            best = (subset, cols, fit, mae, alpha)
    subset, cols, fit, mae, alpha = best
    if reference:  # fold StandardScaler into the linear map
        scaler, ridge = fit[0], fit[-1]
        coef = ridge.coef_ / scaler.scale_
        intercept = float(ridge.intercept_ - (ridge.coef_ * scaler.mean_ / scaler.scale_).sum())
    else:
        coef, intercept = fit.coef_, float(fit.intercept_)
    full = np.zeros(x_tr.shape[1])
    full[cols] = coef
    w = path.linear.weight
    w.copy_(torch.as_tensor(full, dtype=w.dtype, device=w.device).view_as(w))  # (1, sum_m D_m)
    return {"alpha": alpha, "valid_mae": mae, "intercept": intercept, "modalities": list(subset)}


@torch.no_grad()
def start_at_ridge(head: nn.Linear, intercept: float) -> None:
    """linear_init="ridge_frozen": Eq. 17's head (d -> 1) starts at zero weights and the ridge intercept as its
    bias, so that y_deep = intercept and y^p = the ridge regression before the first step."""
    head.weight.zero_()
    head.bias.fill_(intercept)
