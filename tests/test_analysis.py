"""mcihn.notebook.analysis: what the notebooks measure (the fixed-kernel MMD helpers it uses are tested in
test_mmd.py)."""
import sys
import types

import numpy as np
import pytest
import torch

from mcihn.notebook import analysis
from mcihn.model.aae import reconstruction_loss
from mcihn.model.config import MCIHNConfig
from mcihn.data import normalize
from mcihn.metrics import evaluate
from mcihn.model.mcihn import MCIHN
from mcihn.training.trainer import Trainer

from conftest import AWKWARD_MODEL


@pytest.fixture
def tiny_model(small_data):
    """An untrained three-modality model with awkward sizes (L=6, d=12, 3 heads) on the small data."""
    torch.manual_seed(0)
    return MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL), small_data.dims).eval()


# ----------------------------------------------------------------------------- inputs and outputs
def test_model_inputs_normalise_with_training_statistics(small_data):
    t = analysis.model_inputs(small_data, "valid", "tav", max_samples=5)
    normed, _ = normalize(small_data, "tav")
    ref = normed["valid"].to_tensors("tav")
    assert t["text"].shape == (5, *small_data.dims["text"])
    torch.testing.assert_close(t["audio"], ref["audio"][:5])
    torch.testing.assert_close(t["label"], ref["label"][:5])


def test_collect_shapes_and_batches_agree_with_one_forward(small_data, tiny_model):
    t = analysis.model_inputs(small_data, "test", "tav", max_samples=7)
    out = analysis.collect(tiny_model, t, ("S", "alpha", "G", "ffm_attention", "pred", "X_hat"), batch_size=3)
    L, d, h = AWKWARD_MODEL["latent_len"], AWKWARD_MODEL["latent_dim"], AWKWARD_MODEL["heads"]
    assert out["S"]["audio"].shape == (7, L, d)
    assert out["alpha"]["vision"].shape == (7, L, L)
    assert out["G"]["ta"].shape == (7, L, d)
    assert out["ffm_attention"]["t-va"].shape == (7, h, L, L)
    assert out["X_hat"]["text"].shape == (7, *small_data.dims["text"])
    assert out["pred"].shape == (7,) and out["label"].shape == (7,)
    with torch.no_grad():
        full = tiny_model(t)
    np.testing.assert_allclose(out["pred"], full.pred.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["alpha"]["text"], full.alpha["text"].numpy(), rtol=1e-5, atol=1e-6)


def test_initial_model_is_the_network_training_starts_from(small_data):
    cfg = MCIHNConfig.tiny(**AWKWARD_MODEL)
    a, b = analysis.initial_model(cfg, small_data.dims, 5), analysis.initial_model(cfg, small_data.dims, 6)
    from mcihn.utils import set_seed
    set_seed(5)
    start = Trainer(cfg, small_data.dims).model  # what run_seed builds after set_seed(seed)
    for (k, v), (_, w), (_, u) in zip(a.state_dict().items(), start.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(v, w, msg=k)
    assert any(not torch.equal(v, u) for v, u in zip(a.state_dict().values(), b.state_dict().values()))


def test_mean_predictor_mae_by_hand(small_data):
    y, m = small_data["valid"].labels, small_data["train"].labels.mean()
    assert analysis.mean_predictor_mae(small_data) == pytest.approx(float(np.mean(np.abs(y - m))))


# ----------------------------------------------------------------------------- the prior
def test_normal_qq_and_prior_report_on_a_true_normal_sample():
    z = np.random.default_rng(0).normal(size=(4000, 16))
    theo, emp = analysis.normal_qq(z, 51)
    assert theo.shape == emp.shape == (51,)
    np.testing.assert_allclose(emp, theo, atol=0.06)
    rep = analysis.prior_report(z)
    assert abs(rep["mean"]) < 0.02 and abs(rep["std"] - 1) < 0.02
    assert rep["ks"] < 0.02 and abs(rep["norm2_over_d"] - 1) < 0.03 and rep["mean_abs_corr"] < 0.03


def test_prior_report_sees_scale_shift_and_correlation():
    rng = np.random.default_rng(1)
    wide = analysis.prior_report(3 * rng.normal(size=(2000, 8)) + 1)
    assert wide["std"] == pytest.approx(3, rel=0.05) and wide["mean"] == pytest.approx(1, abs=0.1)
    assert wide["ks"] > 0.2 and wide["norm2_over_d"] > 5
    shared = rng.normal(size=(2000, 1))
    corr = analysis.prior_report(np.repeat(shared, 8, axis=1))  # every coordinate the same
    assert corr["ks"] < 0.05 and corr["mean_abs_corr"] == pytest.approx(1.0)  # normal marginals, one direction


def test_aae_report_matches_the_losses(small_data, tiny_model):
    t = analysis.model_inputs(small_data, "valid", "tav", max_samples=6)
    rep = analysis.aae_report(tiny_model, t)
    with torch.no_grad():
        S = tiny_model.encode(t)
        rec = reconstruction_loss(t["vision"], tiny_model.aae["vision"].decoder(S["vision"]), t["vision_mask"])
    assert rep["vision"]["reconstruction"] == pytest.approx(rec.item(), rel=1e-5)
    assert all(0 <= r["disc_accuracy"] <= 1 for r in rep.values())
    summary = analysis.latent_summary(tiny_model, t)
    assert set(summary["text"]) >= {"ks", "std", "reconstruction", "disc_accuracy"}
    no_aae = MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL, use_aae=False), small_data.dims)
    with pytest.raises(ValueError, match="adversarial"):
        analysis.aae_report(no_aae, t)


def test_linear_probe_perfect_and_useless():
    rng = np.random.default_rng(2)
    x, x2 = rng.normal(size=(200, 5)), rng.normal(size=(100, 5))
    w = np.arange(1.0, 6.0)
    assert analysis.linear_probe(x, x @ w, x2, x2 @ w) > 0.99
    assert analysis.linear_probe(x, rng.normal(size=200), x2, rng.normal(size=100)) < 0.1


# ----------------------------------------------------------------------------- attention and gates
def test_position_similarity_extremes():
    same = np.repeat(np.random.default_rng(3).normal(size=(4, 1, 10)), 5, axis=1)  # (N, L, d), equal positions
    assert analysis.position_similarity(same) == pytest.approx(1.0)
    rand = np.random.default_rng(4).normal(size=(50, 6, 400))
    assert abs(analysis.position_similarity(rand)) < 0.02


def test_attention_report_uniform_onehot_and_gates():
    L = 4
    uniform = np.full((2, L, L), 1 / L)
    onehot = np.tile(np.eye(L), (2, 1, 1))
    gates = np.array([[[0.0, 2.0], [0.0, 0.5]]])
    rep = analysis.attention_report({"alpha": {"text": uniform, "audio": onehot},
                                     "ffm_attention": {"t-a": onehot[:, None]}, "G": {"ta": gates}})
    assert rep["alpha"]["text"]["entropy_ratio"] == pytest.approx(1.0)
    assert rep["alpha"]["audio"]["entropy_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert rep["alpha"]["text"]["row_sum_error"] < 1e-12 and rep["ffm"]["t-a"]["row_sum_error"] < 1e-12
    assert rep["gate"]["ta"] == pytest.approx({"zero_share": 0.5, "mean": 0.625, "min": 0.0})


# ----------------------------------------------------------------------------- MMD


def test_mmd_toy_estimates_bracket_the_exact_value():
    toy = analysis.mmd_toy([0.0, 1.0, 2.0], n=150, dim=2, gammas=(1.0, 4.0), repeats=10, seed=0)
    assert toy["exact"][0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(toy["exact"]) > 0)
    assert np.all(np.abs(toy["u_mean"] - toy["exact"]) < 4 * toy["u_std"] / np.sqrt(10) + 1e-3)
    assert np.all(toy["exact_biased"] > toy["exact"])
    assert np.all(np.abs(toy["v_mean"] - toy["exact_biased"]) < 4 * toy["v_std"] / np.sqrt(10) + 1e-3)


def test_alignment_samples_reproduce_the_models_own_mmd_terms(small_data, tiny_model):
    t = analysis.model_inputs(small_data, "valid", "tav", max_samples=10)
    with torch.no_grad():
        own = {k: v.item() for k, v in tiny_model(t).mmd_terms.items()}
    samples = analysis.alignment_samples(tiny_model, t, "xi")
    assert set(samples) == {"v-ta", "t-va", "a-vt"}
    core, pair = samples["v-ta"]
    assert core.shape == pair.shape == (10, AWKWARD_MODEL["latent_dim"])  # pooled: one vector per clip
    ours = analysis.mmd_report(samples, tiny_model.cfg.mmd_multipliers)
    assert ours == pytest.approx(own, rel=1e-4, abs=1e-6)
    raw = analysis.alignment_samples(tiny_model, t, "raw")
    xi = tiny_model.mmd.xi
    with torch.no_grad():
        np.testing.assert_allclose(xi(torch.as_tensor(raw["t-va"][0])).numpy(), samples["t-va"][0], rtol=1e-5, atol=1e-6)
    bimodal = MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL, modalities="ta"), small_data.dims)
    with pytest.raises(ValueError):
        analysis.alignment_samples(bimodal, t)


def test_mmd_probe_records_every_epoch_through_fit(small_data, small_cfg, torch_single_thread):
    normed, _ = normalize(small_data, "tav")
    train, valid = (normed[s].to_tensors("tav") for s in ("train", "valid"))
    calls = []
    probe = analysis.mmd_probe(valid)

    def on_epoch(trainer, record):
        calls.append(record["epoch"])
        probe(trainer, record)

    trainer = Trainer(small_cfg(epochs=2, latent_dim=12, heads=3), small_data.dims)
    hist = trainer.fit(train, valid, "mosi", progress=False, log=lambda *a: None, on_epoch=on_epoch)
    assert calls == [1, 2]
    for rec in hist:
        assert set(rec["mmd"]) == {"xi", "raw", "xi_singular_values"}
        assert set(rec["mmd"]["xi"]) == {"v-ta", "t-va", "a-vt"}
        assert len(rec["mmd"]["xi_singular_values"]) == 12
        assert all(np.isfinite(v) and v >= -1e-9 for v in rec["mmd"]["raw"].values())


# ----------------------------------------------------------------------------- predictions and projections
def test_class_confusion_mosi_and_sims():
    pred, label = np.array([-2.6, 0.4, 0.6, 3.4, -0.4]), np.array([-3.0, 0.0, 1.0, 3.0, 0.2])
    counts, names = analysis.class_confusion(pred, label, "mosi")
    assert names == ["-3", "-2", "-1", "0", "1", "2", "3"] and counts.sum() == 5
    assert np.trace(counts) / 5 == pytest.approx(evaluate(pred, label, "mosi", round_digits=None)["Mult_acc_7"])
    assert counts[0, 0] == 1 and counts[4, 4] == 1 and counts[3, 4] == 0 and counts[3, 3] == 2
    sp, sy = np.array([-0.9, 0.05, 0.1, 0.8, -0.3]), np.array([-1.0, 0.0, 0.3, 0.71, -0.1])
    counts, names = analysis.class_confusion(sp, sy, "sims")
    assert len(names) == 5
    assert np.trace(counts) / 5 == pytest.approx(evaluate(sp, sy, "sims")["Mult_acc_5"])


def test_umap_2d_restores_torchs_thread_count(monkeypatch):
    """numba's OpenMP layer resets the shared OpenMP thread count; umap_2d must put torch's back."""
    class FakeUMAP:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def fit_transform(self, x):
            torch.set_num_threads(2)  # what numba's OpenMP pool does to the process
            return np.zeros((len(x), 2))

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        xy = analysis.umap_2d(np.ones((10, 3)))
        assert xy.shape == (10, 2) and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
