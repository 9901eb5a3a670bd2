"""Does MCIHN actually learn? Trained on the embedded synthetic data, it must beat the mean predictor by
far and a ridge regression on pooled *text* features (so it uses the weak modalities and the cross-modal
term), and come close to a ridge regression on all pooled features fitted here on the same split.

The data are shaped like real sentiment data (see mcihn/data/synthetic.py): the label is mostly linear in
text's evidence, so on 600 training clips the all-modality ridge is hard to beat; at the full 1284 clips the
tiny MCIHN trained as the paper trains it edges ahead of it (docs/results.md). The test asks for what holds with
margin here. The fusion claims are made for MCIHN trained on complete data (``missing_aug=0``, the paper's
training); the default also trains with missing inputs (``missing_aug=0.5``), which costs some accuracy on complete
data of this kind (seed 1111 here: test MAE 0.661 without, 0.698 with; docs/results.md, Tables 2 and 3), so for
the default the test asks only that it learns: far ahead of the mean predictor, correlated, stopped by validation.
"""
import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from mcihn.model.config import MCIHNConfig
from mcihn.data import normalize
from mcihn.training.runner import run_seed
from mcihn.data import synthetic_data
from mcihn.experiments.reference import pooled_features

SPLITS = {"train": 600, "valid": 150, "test": 300}


@pytest.fixture(scope="module")
def data():
    return synthetic_data("mosi", splits=SPLITS, seed=3)


def test_synthetic_data_is_announced(data):
    assert data.synthetic
    assert "SYNTHETIC" in data.source


def test_mcihn_beats_mean_and_text_ridge_and_nears_ridge(data, torch_single_thread):
    normed, _ = normalize(data, ("text", "audio", "vision"))
    ytr, yte = normed["train"].labels, normed["test"].labels
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(pooled_features(normed["train"], "tav"), ytr)
    ridge_mae = float(np.abs(ridge.predict(pooled_features(normed["test"], "tav")) - yte).mean())
    text = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(pooled_features(normed["train"], "t"), ytr)
    text_mae = float(np.abs(text.predict(pooled_features(normed["test"], "t")) - yte).mean())
    mean_mae = float(np.abs(ytr.mean() - yte).mean())

    cfg = MCIHNConfig.tiny(epochs=30, patience=8, missing_aug=0.0)
    res = run_seed(data, cfg, seed=1111, out_dir=None, device="cpu", progress=False, log=lambda *_: None)
    mae = res["test"]["MAE"]
    print(f"test MAE: MCIHN {mae:.3f}, ridge {ridge_mae:.3f}, ridge on text {text_mae:.3f}, mean predictor "
          f"{mean_mae:.3f}")  # seed 1111: 0.661, 0.643, 0.71, 1.11
    assert mae < 0.7 * mean_mae, (mae, mean_mae)
    assert mae < text_mae - 0.02, (mae, text_mae)
    assert mae < 1.05 * ridge_mae, (mae, ridge_mae)
    assert res["test"]["Corr"] > 0.7
    # early stopping chose the epoch by validation loss
    valid = [h["valid"]["loss_mul"] for h in res["history"]]
    assert res["best_epoch"] == int(np.argmin(valid)) + 1


def test_mcihn_with_its_defaults_learns(data, torch_single_thread):
    """The default (missing inputs in training) on the same data: it learns, and stopping follows validation."""
    normed, _ = normalize(data, ("text", "audio", "vision"))
    mean_mae = float(np.abs(normed["train"].labels.mean() - normed["test"].labels).mean())
    cfg = MCIHNConfig.tiny(epochs=30, patience=8)
    assert cfg.missing_aug > 0
    res = run_seed(data, cfg, seed=1111, out_dir=None, device="cpu", progress=False, log=lambda *_: None)
    print(f"test MAE: MCIHN {res['test']['MAE']:.3f}, mean predictor {mean_mae:.3f}")  # seed 1111: 0.698, 1.11
    assert res["test"]["MAE"] < 0.7 * mean_mae, (res["test"]["MAE"], mean_mae)
    assert res["test"]["Corr"] > 0.7
    valid = [h["valid"]["loss_mul"] for h in res["history"]]
    assert res["best_epoch"] == int(np.argmin(valid)) + 1 > 1
