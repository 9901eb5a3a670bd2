"""The synthetic generator: MMSA structure, reproducible, planted structure, SIMS shape, MOSEI's sizes and label
range."""

import numpy as np
import pytest

from mcihn.data import LABEL_RANGE, load_mmsa
from mcihn.data import make_synthetic, synthetic_data, write_synthetic

SMALL = dict(splits={"train": 40, "valid": 10, "test": 12}, dims={"text": (6, 5), "audio": (9, 4), "vision": (4, 7)})


def test_mmsa_structure_and_sizes():
    d = make_synthetic("mosi", **SMALL)
    for split, n in SMALL["splits"].items():
        s = d[split]
        assert s["text"].shape == (n, 6, 5) and s["audio"].shape == (n, 9, 4) and s["vision"].shape == (n, 4, 7)
        assert s["text_bert"].shape == (n, 3, 6)
        assert len(s["id"]) == n and len(s["audio_lengths"]) == n and s["regression_labels"].shape == (n,)
        # padding beyond each length is exactly zero, as in MMSA
        for m in ("audio", "vision"):
            lengths = np.asarray(s[f"{m}_lengths"])
            beyond = np.arange(s[m].shape[1])[None, :] >= lengths[:, None]
            assert np.all(s[m][beyond] == 0) and np.all(lengths >= 1)
    assert d["meta"]["synthetic"] is True


def test_same_seed_same_data_different_seed_different():
    a, b, c = make_synthetic(seed=5, **SMALL), make_synthetic(seed=5, **SMALL), make_synthetic(seed=6, **SMALL)
    assert np.array_equal(a["train"]["audio"], b["train"]["audio"])
    assert np.array_equal(a["test"]["regression_labels"], b["test"]["regression_labels"])
    assert not np.array_equal(a["train"]["audio"], c["train"]["audio"])


def test_labels_in_range_and_on_grid():
    y = make_synthetic("mosi", splits={"train": 2000}, dims=SMALL["dims"])["train"]["regression_labels"]
    assert y.min() >= -3 and y.max() <= 3
    assert np.allclose(y * 5, np.round(y * 5), atol=1e-4)
    assert (y == 0).any() and (y > 0).any() and (y < 0).any()  # ties at 0 occur (Non0 metrics need them)


def test_sims_shape_has_unimodal_labels_and_range():
    d = synthetic_data("sims", **SMALL)
    assert d.dataset == "sims" and d.synthetic
    tr = d["train"]
    assert set(tr.unimodal_labels) == {"T", "A", "V"}
    assert tr.labels.min() >= -1 and tr.labels.max() <= 1


def test_shaped_like_real_sentiment_data():
    """In the generated data itself (default sizes, 1500 training clips): text carries most of the label
    linearly; audio and vision alone carry almost nothing a linear model can use, but each adds to text; and
    text x vision product features add more (the planted interaction no modality carries alone)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    from mcihn.data import normalize
    data, _ = normalize(synthetic_data("mosi", splits={"train": 1500, "valid": 10, "test": 1500}, seed=2),
                        ("text", "audio", "vision"))

    def pooled(split, m):
        mask = split.mask(m)[..., None]
        return (split.features[m] * mask).sum(1) / mask.sum(1)

    def r2(feats):
        Xtr, Xte = (np.concatenate([f(data[s]) for f in feats], 1) for s in ("train", "test"))
        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Xtr, data["train"].labels)
        return r2_score(data["test"].labels, model.predict(Xte))

    t, a, v = (lambda s, m=m: pooled(s, m) for m in ("text", "audio", "vision"))
    tv = lambda s: (pooled(s, "text")[:, :, None] * pooled(s, "vision")[:, None, :]).reshape(len(s), -1)  # noqa: E731
    r_t, r_a, r_v = r2([t]), r2([a]), r2([v])
    r_tv, r_tav, r_prod = r2([t, v]), r2([t, a, v]), r2([t, a, v, tv])
    print(f"R2: text {r_t:.3f}, audio {r_a:.3f}, vision {r_v:.3f}, text+vision {r_tv:.3f}, all {r_tav:.3f}, "
          f"+text x vision {r_prod:.3f}")  # seed 2: 0.605, 0.018, 0.038, 0.645, 0.668, 0.715
    assert r_t > 0.45 and r_t > 0.8 * r_tav, "text carries most of the label, linearly"
    assert r_a < 0.1 and r_v < 0.15, "audio and vision alone are weak"
    assert r_tv > r_t + 0.02 and r_tav > r_tv, "each weak modality still adds to text"
    assert r_prod > r_tav + 0.025, "the text x vision interaction is there, beyond any linear model"


def test_speakers_are_disjoint_across_splits_and_dead_dims_constant():
    d = make_synthetic("mosi", splits={"train": 120, "valid": 40, "test": 40}, seed=1)
    speakers = {s: {i.split("$_$")[0] for i in d[s]["id"]} for s in ("train", "valid", "test")}
    assert len(speakers["train"]) > 5 and all(len(v) >= 2 for v in speakers.values())
    assert not (speakers["train"] & speakers["valid"]) and not (speakers["train"] & speakers["test"])
    for m in ("audio", "vision"):
        x, lengths = d["train"][m], np.asarray(d["train"][f"{m}_lengths"])
        real = np.arange(x.shape[1])[None, :] < lengths[:, None]  # (N, T)
        spread = np.ptp(x[real], axis=0)  # (D,) max - min over every real step of every clip
        n_dead = int((spread == 0).sum())
        assert n_dead >= 2 and np.all(spread[-n_dead:] == 0) and np.all(spread[:-n_dead] > 0), (m, spread)


def test_write_then_load_roundtrip(tmp_path):
    path = write_synthetic(tmp_path / "s.pkl", kind="mosi", seed=1, **SMALL)
    data = load_mmsa(path)
    ref = make_synthetic("mosi", seed=1, **SMALL)
    assert data.synthetic and data.dataset == "mosi"
    assert np.array_equal(data["valid"].labels, ref["valid"]["regression_labels"])
    np.testing.assert_array_equal(data["train"].lengths["text"], ref["train"]["text_bert"][:, 1].sum(1))
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temporary file


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        make_synthetic("mosey")


def test_mosei_synthetic_data_and_label_range():
    from mcihn.data.synthetic import MMSA_DIMS, SPLIT_SIZES, make_synthetic
    from mcihn.metrics import evaluate

    assert SPLIT_SIZES["mosei"] == {"train": 16326, "valid": 1871, "test": 4659}
    assert MMSA_DIMS["mosei"] == {"text": (50, 768), "audio": (500, 74), "vision": (375, 35)}
    assert LABEL_RANGE["mosei"] == LABEL_RANGE["mosi"] == (-3.0, 3.0)
    data = synthetic_data("mosei", splits={"train": 6, "valid": 3, "test": 3}, dims="mmsa", seed=0)
    assert data.dataset == "mosei" and data.dims == MMSA_DIMS["mosei"]
    assert not data["train"].unimodal_labels and np.abs(data["train"].labels).max() <= 3.0
    with pytest.raises(ValueError, match="kind must be"):
        make_synthetic(kind="iemocap")
    p, y = np.array([0.5, -1.0, 2.0, -2.5]), np.array([1.0, -0.5, 2.5, 0.0])
    assert evaluate(p, y, "mosei") == evaluate(p, y, "mosi")
