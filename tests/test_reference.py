"""The reference points (mean predictor, ridge on pooled features): alpha chosen on validation only."""
import numpy as np

from conftest import SMALL_DIMS
from mcihn.data import from_mmsa_dict, make_synthetic
from mcihn.experiments.reference import mean_reference, pooled_features, ridge_reference


def test_ridge_chooses_alpha_on_validation_and_beats_the_mean():
    obj = make_synthetic("mosi", splits={"train": 200, "valid": 60, "test": 60}, dims=dict(SMALL_DIMS), seed=3)
    data = from_mmsa_dict(obj, source="ref")
    r = ridge_reference(data, "tav")
    assert r["test"]["MAE"] < mean_reference(data)["test"]["MAE"]
    obj["test"]["regression_labels"] = np.random.default_rng(0).permutation(obj["test"]["regression_labels"])
    assert ridge_reference(from_mmsa_dict(obj, source="ref"), "tav")["alpha"] == r["alpha"]  # test labels unused
    x = pooled_features(data["train"], "ta")
    assert x.shape == (200, SMALL_DIMS["text"][1] + SMALL_DIMS["audio"][1])
    m = data["train"].mask("text")[0]
    assert np.allclose(x[0, :SMALL_DIMS["text"][1]], data["train"].features["text"][0][m].mean(axis=0), atol=1e-5)
