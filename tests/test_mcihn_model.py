"""The MCIHN model as a whole (mcihn.model.mcihn): how the AAE, the CGMM, the MMD and the FFM are wired
together. Output fields and shapes for every modality subset and switch, padding and batch invariances, where
the main and joint losses' gradients reach, which outputs see which codes, and the ablations MCIHN-1 (no AAE)
and MCIHN-2 (no CGMM, no MMD). Each part on its own: test_aae.py, test_cgmm.py, test_mmd.py, test_ffm.py; the
config: test_config.py.
"""
from __future__ import annotations

import pytest
import torch

from _helpers import build
from conftest import AWKWARD_DIMS, make_batch
from mcihn.modalities import parse_modalities
from mcihn.model.mcihn import MCIHN, main_loss

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SUBSETS = ["tav", "ta", "tv", "av", "t", "a", "v"]
#: Pair features in the paper's naming (order v, t, a).
PAIRS = {"tav": {"vt", "va", "ta"}, "ta": {"ta"}, "tv": {"vt"}, "av": {"va"}, "t": set(), "a": set(), "v": set()}
#: FFM outputs: core modality - its others.
FUSED = {"tav": {"v-ta", "t-va", "a-vt"}, "ta": {"t-a", "a-t"}, "tv": {"v-t", "t-v"}, "av": {"v-a", "a-v"},
         "t": {"t"}, "a": {"a"}, "v": {"v"}}
#: MMD terms with the gate: Eq. 12 per core modality for three, one term for two.
MMD_TERMS = {"tav": {"v-ta", "t-va", "a-vt"}, "ta": {"t-a"}, "tv": {"v-t"}, "av": {"v-a"}, "t": set(), "a": set(),
             "v": set()}


def rows_sum_to_one(p: torch.Tensor):
    torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)), atol=1e-5, rtol=0)
    assert (p >= 0).all()


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("use_cgmm", [True, False], ids=["cgmm", "no-cgmm"])
@pytest.mark.parametrize("use_aae", [True, False], ids=["aae", "no-aae"])
@pytest.mark.parametrize("subset", SUBSETS)
def test_output_shapes_every_subset_and_switch(subset, use_aae, use_cgmm, awkward_cfg, batch):
    cfg = awkward_cfg(modalities=subset, use_aae=use_aae, use_cgmm=use_cgmm)
    mods = parse_modalities(subset)
    model = build(cfg)
    model.eval()
    B, L, d, h = 3, cfg.latent_len, cfg.latent_dim, cfg.heads
    out = model(batch, reconstruct=True)

    assert out.pred.shape == (B,) and torch.isfinite(out.pred).all()
    assert set(out.S) == set(mods)
    for m in mods:
        assert out.S[m].shape == (B, L, d)
    if use_aae:
        assert set(out.X_hat) == set(mods)
        for m in mods:
            assert out.X_hat[m].shape == (B, *AWKWARD_DIMS[m])
    else:
        assert out.X_hat == {}
    assert model(batch, reconstruct=False).X_hat == {}

    gated = use_cgmm and len(mods) >= 2
    assert set(out.F) == PAIRS[subset]
    for f in out.F.values():
        assert f.shape == (B, L, d)
    if gated:
        assert set(out.alpha) == set(mods) and set(out.A) == set(mods)
        for m in mods:
            assert out.alpha[m].shape == (B, L, L)
            rows_sum_to_one(out.alpha[m])
            assert out.A[m].shape == (B, L, d)
        assert set(out.G) == PAIRS[subset]
        for g in out.G.values():
            assert g.shape == (B, L, d) and (g >= 0).all()
        assert any((g == 0).any() for g in out.G.values())  # a ReLU output, not a sigmoid/identity
    else:
        assert out.alpha == {} and out.A == {} and out.G == {}

    assert set(out.fused) == FUSED[subset] and set(out.ffm_attention) == FUSED[subset]
    for name in FUSED[subset]:
        assert out.fused[name].shape == (B, L, d)
        assert out.ffm_attention[name].shape == (B, h, L, L)
        rows_sum_to_one(out.ffm_attention[name])

    assert set(out.mmd_terms) == (MMD_TERMS[subset] if gated else set())
    assert out.loss_adp.shape == ()
    if gated:
        torch.testing.assert_close(out.loss_adp, sum(out.mmd_terms.values()))
        assert all(t.item() >= -1e-6 for t in out.mmd_terms.values())
    else:
        assert out.loss_adp.item() == 0.0


def test_model_rejects_missing_modality(awkward_cfg):
    with pytest.raises(ValueError, match="vision"):
        MCIHN(awkward_cfg(), {"text": (5, 7), "audio": (9, 3)})


def test_predict_matches_forward_and_has_no_grad(awkward_cfg, batch):
    model = build(awkward_cfg())
    model.eval()
    p = model.predict(batch)
    assert not p.requires_grad
    torch.testing.assert_close(p, model(batch).pred)


# ----------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("kw", [{}, {"use_cgmm": False}, {"mmd_samples": "tokens"}, {"modalities": "va"}],
                         ids=["full", "no-cgmm", "tokens", "va"])
def test_padding_values_do_not_matter(kw, awkward_cfg):
    model = build(awkward_cfg(**kw))
    model.eval()
    clean = make_batch(seed=1, pad_value=0.0)
    noisy = make_batch(seed=1, pad_value=0.0)
    g = torch.Generator().manual_seed(99)
    for m in ("text", "audio", "vision"):
        junk = 100.0 * torch.randn(noisy[m].shape, generator=g)
        noisy[m] = torch.where(noisy[m + "_mask"][..., None], noisy[m], junk)
        assert not torch.equal(noisy[m], clean[m])  # there is padding to change in every modality
    a, b = model(clean), model(noisy)
    for m in a.S:
        torch.testing.assert_close(a.S[m], b.S[m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.pred, b.pred, atol=1e-5, rtol=1e-5)
    # ... while the valid steps do matter (the test above is not vacuous):
    moved = make_batch(seed=1, pad_value=0.0)
    m0 = model.modalities[0]
    moved[m0][0, 0] += 3.0
    assert not torch.allclose(model(moved).S[m0][0], a.S[m0][0], atol=1e-4)


def test_zero_length_sequence_gives_finite_output(awkward_cfg):
    lengths = {"text": [0, 2, 5], "audio": [9, 0, 1], "vision": [4, 1, 0]}
    model = build(awkward_cfg())
    model.eval()
    out = model(make_batch(lengths=lengths, seed=2), reconstruct=True)
    assert torch.isfinite(out.pred).all()
    for m in out.S:
        assert torch.isfinite(out.S[m]).all() and torch.isfinite(out.X_hat[m]).all()


@pytest.mark.parametrize("kw", [{}, {"use_aae": False}, {"modalities": "t"}], ids=["full", "no-aae", "t"])
def test_prediction_of_a_sample_does_not_depend_on_the_batch(kw, awkward_cfg):
    model = build(awkward_cfg(**kw))
    model.eval()
    batch = make_batch(B=5, seed=4)
    full = model(batch).pred
    for i in range(5):
        single = {k: v[i:i + 1] for k, v in batch.items()}
        torch.testing.assert_close(model(single).pred, full[i:i + 1], atol=1e-5, rtol=1e-5)
    perm = torch.tensor([3, 0, 4, 2, 1])
    torch.testing.assert_close(model({k: v[perm] for k, v in batch.items()}).pred, full[perm], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kw", [{}, {"use_aae": False}, {"use_cgmm": False}, {"modalities": "ta"},
                                {"modalities": "v"}, {"mmd_samples": "tokens"}, {"xi": "linear"}, {"xi": "none"}],
                         ids=["full", "no-aae", "no-cgmm", "ta", "v", "tokens", "xi-linear", "xi-none"])
def test_main_loss_reaches_exactly_the_main_parameters(kw, awkward_cfg):
    cfg = awkward_cfg(**kw)
    model = build(cfg, seed=6)
    model.train()
    batch = make_batch(B=5, seed=7)  # odd: the L1 gradient of the head bias is a mean of signs
    total, l_mul, l_adp = main_loss(model(batch), batch["label"], cfg.mmd_weight)
    torch.testing.assert_close(total, l_mul + cfg.mmd_weight * l_adp)
    total.backward()

    main = {id(p) for p in model.main_parameters()}
    assert len(main) == len(model.main_parameters())  # no parameter listed twice
    with_grad = {id(p) for p in model.parameters() if p.grad is not None}
    assert with_grad == main
    for p in model.decoder_parameters() + model.discriminator_parameters():
        assert p.grad is None
    names = {id(p): n for n, p in model.named_parameters()}
    # The MMD is translation invariant, so d L_Adp / d bias(xi) is 0 up to round-off; with an orthogonal xi
    # it is invariant to xi's weight as well (checked below).
    invariant = {"mmd.xi.bias"} if cfg.xi == "linear" else {n for n in names.values() if n.startswith("mmd.xi.")}
    for p in model.main_parameters():
        assert torch.isfinite(p.grad).all(), names[id(p)]
        if names[id(p)] not in invariant:
            assert p.grad.abs().max() > 0, f"{names[id(p)]} gets an all-zero gradient"
    if model.mmd is None or cfg.xi == "none":
        assert not any(n.startswith("mmd.") for n in names.values())
    elif cfg.xi == "linear":
        xi = model.mmd.xi
        assert xi.bias.grad.abs().max() <= 1e-3 * xi.weight.grad.abs().max()
    else:
        assert invariant == {"mmd.xi.bias", "mmd.xi.parametrizations.weight.original"}
        largest = max(p.grad.abs().max() for p in model.main_parameters() if names[id(p)] not in invariant)
        for n, p in model.named_parameters():
            if n in invariant:
                assert p.grad.abs().max() <= 1e-4 * largest, n


@pytest.mark.parametrize("kw", [{}, {"use_cgmm": False}, {"modalities": "ta"}, {"modalities": "v"},
                                {"adv_weight": 0.0}, {"rec_weight": 0.0}, {"disc_samples": "flat"}],
                         ids=["full", "no-cgmm", "ta", "v", "no-adv", "no-rec", "disc-flat"])
def test_joint_loss_reaches_the_main_parameters_and_the_decoders(kw, awkward_cfg):
    """Under schedule="joint" one optimiser takes L_Mul + lambda L_Adp + w_rec L_AE + w_adv L_gen over the
    main parameters and the decoders; L_gen also leaves gradients on the discriminators, which that
    optimiser does not hold (their own phase clears them before its step)."""
    cfg = awkward_cfg(**{"mmd_weight": 0.7, "rec_weight": 0.3, "adv_weight": 0.2, **kw})
    assert cfg.schedule == "joint"
    model = build(cfg, seed=6)
    model.train()
    batch = make_batch(B=5, seed=7)
    joint = model.training_phases()[-1]
    assert joint.key == "main" and [p.key for p in model.training_phases()] == (["disc", "main"] if cfg.adv_weight
                                                                                else ["main"])
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    main, dec = ids(model.main_parameters()), ids(model.decoder_parameters())
    disc = ids(model.discriminator_parameters())
    assert ids(joint.params) == main | dec and len(joint.params) == len(main | dec)

    torch.manual_seed(1)
    total, logs = joint.loss(batch)
    expected = logs["mul"] + cfg.mmd_weight * logs["adp"]
    if cfg.rec_weight:
        expected = expected + cfg.rec_weight * logs["rec"]
    if cfg.adv_weight:
        expected = expected + cfg.adv_weight * logs["gen"]
    assert set(logs) == {"total", "mul", "adp"} | ({"rec"} if cfg.rec_weight else set()) | (
        {"gen"} if cfg.adv_weight else set())
    torch.testing.assert_close(total.detach(), expected)
    torch.testing.assert_close(logs["total"], total.detach())
    total.backward()
    with_grad = {id(p) for p in model.parameters() if p.grad is not None}
    # a term of weight 0 is not computed, so its modules get no gradient at all
    assert with_grad == main | (dec if cfg.rec_weight else set()) | (disc if cfg.adv_weight else set())
    names = {id(p): n for n, p in model.named_parameters()}
    for p in model.decoder_parameters() if cfg.rec_weight else []:
        assert p.grad.abs().max() > 0, names[id(p)]

    # main_loss alone, on the same model, still reaches exactly the main parameters
    model.zero_grad(set_to_none=True)
    main_loss(model(batch), batch["label"], cfg.mmd_weight)[0].backward()
    assert {id(p) for p in model.parameters() if p.grad is not None} == main


def test_every_output_is_connected_to_the_codes_it_should_see(awkward_cfg, batch):
    """Gradient paths in the graph: F^mn sees S^m and S^n (and, through A^m = alpha (S^o1 + S^o2), the third
    code too); L_Adp and the prediction see every code; the decoder sees only its own modality."""
    model = build(awkward_cfg(), seed=8)
    out = model(batch, reconstruct=True)
    S = [out.S[m] for m in ("text", "audio", "vision")]

    def reaches(y):
        grads = torch.autograd.grad(y.sum(), S, retain_graph=True, allow_unused=True)
        return {m for m, g in zip(("text", "audio", "vision"), grads) if g is not None and g.abs().max() > 0}

    for key in ("vt", "va", "ta"):
        assert reaches(out.F[key]) == {"text", "audio", "vision"}, key
    assert reaches(out.loss_adp) == {"text", "audio", "vision"}
    for term, t in out.mmd_terms.items():
        assert reaches(t) == {"text", "audio", "vision"}, term
    assert reaches(out.pred) == {"text", "audio", "vision"}
    for m in ("text", "audio", "vision"):
        assert reaches(out.X_hat[m]) == {m}


# ----------------------------------------------------------------------------- ablations
def test_mcihn1_has_no_decoder_or_discriminator(awkward_cfg, batch):
    model = build(awkward_cfg(use_aae=False))
    assert model.decoder_parameters() == [] and model.discriminator_parameters() == []
    for m in model.modalities:
        assert model.aae[m].decoder is None and model.aae[m].discriminator is None
    assert not any(".decoder." in n or ".discriminator." in n for n, _ in model.named_parameters())
    full = build(awkward_cfg())
    n_params = lambda mdl: sum(p.numel() for p in mdl.parameters())  # noqa: E731
    assert n_params(full) - n_params(model) == sum(
        p.numel() for p in full.decoder_parameters() + full.discriminator_parameters())
    assert model(batch, reconstruct=True).X_hat == {}


def test_mcihn2_plain_pair_means_and_no_mmd(awkward_cfg, batch):
    model = build(awkward_cfg(use_cgmm=False))
    assert model.cgmm is None and model.mmd is None
    assert not any(n.startswith(("cgmm.", "mmd.")) for n, _ in model.named_parameters())
    out = model(batch)
    assert set(out.F) == {"vt", "va", "ta"}
    S = out.S
    for key, (m, n) in {"vt": ("vision", "text"), "va": ("vision", "audio"), "ta": ("text", "audio")}.items():
        torch.testing.assert_close(out.F[key], (S[m] + S[n]) / 2)
    assert out.loss_adp.item() == 0.0 and out.mmd_terms == {} and out.alpha == {} and out.G == {}
    _, _, l_adp = main_loss(out, batch["label"], 0.5)
    assert l_adp.item() == 0.0
