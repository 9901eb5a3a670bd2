"""Does MCIHN actually learn? Trained on synthetic data, it must beat the mean predictor
by far, and beat a ridge regression on pooled features fitted here on the same split
(the planted label has a cross-modal product term that no linear model of pooled
features can represent; see mcihn/data/synthetic.py)."""
import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from mcihn.model.config import MCIHNConfig
from mcihn.data import normalize
from mcihn.training.runner import run_seed
from mcihn.data import synthetic_data

SPLITS = {"train": 600, "valid": 150, "test": 300}


def pooled(split, modalities=("text", "audio", "vision")):
    """Masked mean over time of each modality, concatenated: (N, D_t + D_a + D_v)."""
    feats = []
    for m in modalities:
        mask = split.mask(m)[..., None]
        feats.append((split.features[m] * mask).sum(1) / np.maximum(mask.sum(1), 1))
    return np.concatenate(feats, axis=1)


@pytest.fixture(scope="module")
def data():
    return synthetic_data("mosi", splits=SPLITS, seed=3)


def test_synthetic_data_is_announced(data):
    assert data.synthetic
    assert "SYNTHETIC" in data.source


def test_mcihn_beats_mean_and_ridge(data, torch_single_thread):
    normed, _ = normalize(data, ("text", "audio", "vision"))
    ytr, yte = normed["train"].labels, normed["test"].labels
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(pooled(normed["train"]), ytr)
    ridge_mae = float(np.abs(ridge.predict(pooled(normed["test"])) - yte).mean())
    mean_mae = float(np.abs(ytr.mean() - yte).mean())

    cfg = MCIHNConfig.tiny(epochs=30, patience=8)
    res = run_seed(data, cfg, seed=1111, out_dir=None, device="cpu", progress=False, log=lambda *_: None)
    mae = res["test"]["MAE"]
    print(f"test MAE: MCIHN {mae:.3f}, ridge {ridge_mae:.3f}, mean predictor {mean_mae:.3f}")
    assert mae < 0.7 * mean_mae, (mae, mean_mae)
    assert mae < ridge_mae, (mae, ridge_mae)
    assert res["test"]["Corr"] > 0.7
    # early stopping chose the epoch by validation loss
    valid = [h["valid"]["loss_mul"] for h in res["history"]]
    assert res["best_epoch"] == int(np.argmin(valid)) + 1
