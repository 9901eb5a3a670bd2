"""The planted generator: MMSA layout, reproducible, unaligned padding, and a Bayes floor that is a true lower bound."""

import math

import numpy as np
import pytest

from mcihn.data import PLANTED_KINDS, from_mmsa_dict, make_planted, planted_data
from mcihn.data.planted import _norm_cdf, bayes_floor
from mcihn.experiments.reference import mean_reference, ridge_reference

SMALL = dict(n_train=40, n_valid=12, n_test=15, dims={"text": (10, 8), "audio": (14, 9), "vision": (9, 10)})
MODS = ("text", "audio", "vision")


@pytest.fixture(scope="module")
def large():
    """kind -> (data, n_train 1000) for the ridge checks, built once."""
    return {k: planted_data(k, n_train=1000, n_valid=200, n_test=600, seed=3)
            for k in ("linear", "interaction", "window")}


@pytest.mark.parametrize("kind", sorted(PLANTED_KINDS))
def test_layout_loads_through_from_mmsa_dict(kind):
    obj = make_planted(kind, seed=1, **SMALL)
    data = from_mmsa_dict(obj, source="test")
    assert data.synthetic and data.dataset == "mosi" and data.meta["planted_kind"] == kind
    for split, n in (("train", 40), ("valid", 12), ("test", 15)):
        s = obj[split]
        assert s["text"].shape == (n, 10, 8) and s["audio"].shape == (n, 14, 9) and s["vision"].shape == (n, 9, 10)
        assert s["text_bert"].shape == (n, 3, 10) and s["regression_labels"].shape == (n,)
        assert len(s["id"]) == len(s["raw_text"]) == len(s["annotations"]) == len(s["audio_lengths"]) == n
        y = s["regression_labels"]
        assert y.min() >= -3 and y.max() <= 3 and np.allclose(y * 5, np.round(y * 5), atol=1e-4)
        assert np.array_equal(data[split].lengths["text"], s["text_bert"][:, 1].sum(1))
    assert set(obj["meta"]["bayes_floor"]) == {"valid", "test"}
    via = planted_data(kind, seed=1, **SMALL)
    assert via.synthetic and via.meta["bayes_floor"] == obj["meta"]["bayes_floor"]
    assert bayes_floor(via, "test") == bayes_floor(obj, "test") == obj["meta"]["bayes_floor"]["test"]
    assert np.array_equal(via["test"].features["audio"], obj["test"]["audio"])


def test_default_sizes_and_bad_arguments():
    obj = make_planted("linear", n_train=300, dims=SMALL["dims"])
    assert [len(obj[s]["id"]) for s in ("train", "valid", "test")] == [300, 200, 400]
    with pytest.raises(ValueError, match="kind"):
        make_planted("quadratic")
    with pytest.raises(ValueError, match="dims"):
        make_planted("linear", dims={"text": (4, 8), "audio": (14, 9), "vision": (9, 10)})


def test_same_seed_same_data_other_seed_different():
    a, b, c = (make_planted("window", seed=s, **SMALL) for s in (5, 5, 6))
    for split in ("train", "valid", "test"):
        for key in ("text", "audio", "vision", "text_bert", "regression_labels", "audio_lengths"):
            assert np.array_equal(a[split][key], b[split][key])
    assert a["meta"]["bayes_floor"] == b["meta"]["bayes_floor"]
    assert not np.array_equal(a["train"]["audio"], c["train"]["audio"])
    assert not np.array_equal(a["test"]["regression_labels"], c["test"]["regression_labels"])


def test_unaligned_lengths_zero_padding_dead_dims_speakers():
    obj = make_planted("interaction", n_train=200, n_valid=20, n_test=20, seed=2, dims=SMALL["dims"])
    s = obj["train"]
    lengths = {"text": s["text_bert"][:, 1].sum(1).astype(int), "audio": np.asarray(s["audio_lengths"]),
               "vision": np.asarray(s["vision_lengths"])}
    for m in MODS:
        T = s[m].shape[1]
        beyond = np.arange(T)[None, :] >= lengths[m][:, None]  # (N, T)
        assert np.all(s[m][beyond] == 0) and lengths[m].min() >= 8 and lengths[m].max() <= T
        assert len(np.unique(lengths[m])) > 1  # a random length per clip
        real = s[m][~beyond]  # (steps, D)
        dead = real.max(0) == real.min(0)  # (D,) constant dimensions
        assert dead.sum() == {"text": 0, "audio": 3, "vision": 2}[m]
        if dead.any():
            assert np.all(real[:, np.argmax(dead)] == 0)  # the first dead dimension is exactly 0
        std = real[:, ~dead].std(0)  # un-normalised: offsets and per-feature scales
        assert np.abs(real[:, ~dead].mean(0)).max() > 1 and std.max() > 3 * std.min()
    assert (lengths["audio"] != lengths["vision"]).mean() > 0.5 and (lengths["text"] != lengths["audio"]).mean() > 0.5
    speakers = [i.split("$_$")[0] for i in s["id"]]
    assert 5 < len(set(speakers)) < 50 and len(set(s["id"])) == 200
    assert not set(speakers) & {i.split("$_$")[0] for i in obj["test"]["id"]}  # speaker-independent splits


def test_window_evidence_sits_in_a_short_window_of_real_steps():
    _, hidden = make_planted("window", seed=0, **SMALL, return_hidden=True)
    for m in MODS:
        env, lengths = hidden["train"]["envelope"][m], hidden["train"]["lengths"][m]  # (N, T), (N,)
        width = env.sum(1)
        assert width.min() >= 3 and width.max() <= 6
        assert np.all(env[np.arange(env.shape[1])[None, :] >= lengths[:, None]] == 0)
        assert np.all(np.diff(env, axis=1).clip(0).sum(1) <= 1)  # one contiguous window


def test_normal_cdf_matches_math_erf():
    x = np.linspace(-8, 8, 4001)
    ref = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.abs(_norm_cdf(x) - ref).max() < 2e-7


@pytest.mark.parametrize("kind", sorted(PLANTED_KINDS))
def test_floor_is_reached_by_an_oracle_written_here(kind):
    """Rebuild the oracle from the generator's parameters: its posterior must match the generator's, be
    calibrated against the true evidence, and its median predictions must score the floor (within sampling
    error). Knowing the evidence itself, not just the features, must beat the floor."""
    obj, hidden = make_planted(kind, n_train=30, n_valid=30, n_test=2000, seed=4, return_hidden=True)
    h, spec, y = hidden["test"], hidden["spec"], obj["test"]["regression_labels"]
    floor = obj["meta"]["bayes_floor"]["test"]
    rng = np.random.default_rng(0)
    samples = {}
    for m in MODS:
        par, env = hidden["params"][m], h["envelope"][m]  # env (N, T)
        live = par["live"]
        z = (obj["test"][m][:, :, live] - par["offset"][live]) / par["scale"][live]  # (N, T, D_live)
        p = par["p"][live]
        step = z @ p / (p @ p)  # (N, T): a per-step estimate of s * env[t], noise sd 1 / |p|
        precision = 1 + (p @ p) * (env ** 2).sum(1)  # prior N(0, 1) + one Gaussian observation per step
        mean = (p @ p) * (env * step).sum(1) / precision
        assert np.allclose(mean, h["posterior_mean"][m], atol=1e-4)
        assert np.allclose(precision ** -0.5, h["posterior_sd"][m])
        zscore = (h["evidence"][m] - mean) * np.sqrt(precision)  # N(0, 1) if the posterior is right
        assert abs(zscore.mean()) < 0.1 and abs(zscore.std() - 1) < 0.06, (m, zscore.mean(), zscore.std())
        samples[m] = mean[:, None] + rng.normal(size=(len(y), 400)) / np.sqrt(precision)[:, None]  # (N, K)
    f = sum(spec["weights"][m] * samples[m] for m in MODS) + spec["interaction"] * samples["text"] * samples["vision"]
    y_samples = np.round(np.clip(f + spec["label_noise"] * rng.normal(size=f.shape), -3, 3) * 5) / 5
    pred = np.median(y_samples, axis=1)
    err = np.abs(pred - y)
    se = err.std() / np.sqrt(len(y))
    assert abs(err.mean() - floor) < 4 * se + 0.005, (err.mean(), floor, se)
    truth = np.round(np.clip(sum(spec["weights"][m] * h["evidence"][m] for m in MODS)
                             + spec["interaction"] * h["evidence"]["text"] * h["evidence"]["vision"], -3, 3) * 5) / 5
    assert np.abs(truth - y).mean() < floor - 4 * se  # more than the features know: below the floor
    mean_mae = np.abs(obj["train"]["regression_labels"].mean() - y).mean()
    assert 0.3 < floor < 0.65 and floor < 0.6 * mean_mae


@pytest.mark.parametrize("kind, lo, hi", [("linear", 1.0, 1.2), ("interaction", 1.4, 3.0), ("window", 1.35, 3.0)])
def test_ridge_does_not_beat_the_floor(large, kind, lo, hi):
    """Ridge on pooled features: near the floor on "linear", far above it where the label needs an
    interaction or the time structure; never below it beyond sampling error; the mean predictor far above."""
    data = large[kind]
    floor = bayes_floor(data, "test")
    ridge = ridge_reference(data, "tav")["test"]["MAE"]
    mean = mean_reference(data)["test"]["MAE"]
    se = 0.7 / np.sqrt(len(data["test"]))  # a generous sampling error of a test MAE
    assert ridge > floor * lo - 3 * se, (ridge, floor)
    assert ridge < floor * hi, (ridge, floor)
    assert floor < 0.6 * mean, (floor, mean)
