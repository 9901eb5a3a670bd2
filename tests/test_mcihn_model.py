"""Tests for the MCIHN model (mcihn.model.mcihn, aae, cgmm, ffm) and its config (mcihn.model.config).

Shapes, padding and batch invariances, the equations recomputed by hand (Eq. 6-11, 15-17),
where the main loss's gradients reach, and the ablations MCIHN-1 / MCIHN-2.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import AWKWARD_DIMS, make_batch
from mcihn.model.config import MCIHNConfig
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


def build(cfg, seed=0, dims=AWKWARD_DIMS):
    torch.manual_seed(seed)
    return MCIHN(cfg, dims)


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


# ----------------------------------------------------------------------------- equations by hand
@pytest.fixture
def full_out(awkward_cfg, batch):
    model = build(awkward_cfg(), seed=5)
    model.eval()
    with torch.no_grad():
        return model, model(batch)


@pytest.mark.parametrize("core,others", [("vision", ("text", "audio")), ("text", ("vision", "audio")),
                                         ("audio", ("vision", "text"))])
def test_eq6_to_8_attention_transfer_by_hand(core, others, full_out):
    model, out = full_out
    d = model.cfg.latent_dim
    ctx = out.S[others[0]] + out.S[others[1]]  # (B, L, d)
    W = model.cgmm.W[core].detach()
    B, L, _ = ctx.shape
    alpha = torch.empty(B, L, L)
    A = torch.empty(B, L, d)
    for b in range(B):
        M = out.S[core][b] @ W @ ctx[b].T / math.sqrt(d)  # Eq. 6, (L, L)
        alpha[b] = torch.softmax(M, dim=1)  # Eq. 7
        A[b] = alpha[b] @ ctx[b]  # Eq. 8 (attention transfer)
    torch.testing.assert_close(out.alpha[core], alpha, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.A[core], A, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key,m,n", [("vt", "vision", "text"), ("va", "vision", "audio"), ("ta", "text", "audio")])
def test_eq9_to_11_gate_by_hand(key, m, n, full_out):
    model, out = full_out
    gate, proj = model.cgmm.gate[key], model.cgmm.proj[key]
    Sm, Sn = out.S[m], out.S[n]
    z = torch.cat([Sm, Sn, Sm - Sn, Sm * Sn], dim=-1) @ gate.weight.T + gate.bias  # Eq. 9, (B, L, 4d) -> (B, L, d)
    G = torch.clamp(z, min=0.0)  # Eq. 10
    side = lambda A, S: torch.cat([A, S], dim=-1) @ proj.weight.T + proj.bias  # noqa: E731
    F = G * side(out.A[m], Sm) + G * side(out.A[n], Sn)  # Eq. 11
    assert gate.weight.shape == (model.cfg.latent_dim, 4 * model.cfg.latent_dim)
    torch.testing.assert_close(out.G[key], G, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.F[key], F, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("core,name,q_pair,k_pair", [("text", "t-va", "vt", "ta"), ("vision", "v-ta", "vt", "va"),
                                                     ("audio", "a-vt", "va", "ta")])
def test_eq15_16_heads_by_explicit_loop(core, name, q_pair, k_pair, full_out):
    model, out = full_out
    att = model.ffm.attn[core]
    h, d = model.cfg.heads, model.cfg.latent_dim
    dk = d // h
    Q = out.F[q_pair] @ att.q.weight.T + att.q.bias  # Q from F^{m o1}
    K = out.F[k_pair] @ att.k.weight.T + att.k.bias  # K from F^{m o2}
    V = out.S[core] @ att.v.weight.T + att.v.bias  # V from S^m
    heads, weights = [], []
    for i in range(h):
        sl = slice(i * dk, (i + 1) * dk)
        w = torch.softmax(Q[..., sl] @ K[..., sl].transpose(1, 2) / math.sqrt(d / h), dim=-1)  # Eq. 15
        weights.append(w)
        heads.append(w @ V[..., sl])
    fused = torch.cat(heads, dim=-1) @ att.o.weight.T + att.o.bias  # Eq. 16
    torch.testing.assert_close(out.ffm_attention[name], torch.stack(weights, dim=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.fused[name], fused, atol=1e-5, rtol=1e-5)


def test_eq17_prediction_from_the_pooled_sum(full_out):
    model, out = full_out
    total = out.fused["v-ta"] + out.fused["t-va"] + out.fused["a-vt"]
    pred = total.mean(dim=1) @ model.ffm.head.weight.T.squeeze(-1) + model.ffm.head.bias
    torch.testing.assert_close(out.pred, pred, atol=1e-5, rtol=1e-5)


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


def test_eq4_reconstruction_loss_is_masked(batch):
    from mcihn.model.aae import reconstruction_loss
    x, mask = batch["audio"], batch["audio_mask"]  # (3, 9, 3), lengths 9, 4, 2
    g = torch.Generator().manual_seed(3)
    x_hat = torch.randn(x.shape, generator=g)
    by_hand = sum(((x[b, t] - x_hat[b, t]) ** 2).sum() for b in range(3) for t in range(9) if mask[b, t])
    by_hand = by_hand / (int(mask.sum()) * x.shape[-1])
    torch.testing.assert_close(reconstruction_loss(x, x_hat, mask), by_hand)
    junk = torch.where(mask[..., None], x_hat, 1e3 * torch.randn(x.shape, generator=g))
    torch.testing.assert_close(reconstruction_loss(x, junk, mask), by_hand)  # padding is ignored
    torch.testing.assert_close(reconstruction_loss(x, x_hat, None), ((x - x_hat) ** 2).mean())


def test_eq5_adversarial_losses(awkward_cfg):
    from mcihn.model.aae import discriminator_loss, generator_loss
    torch.manual_seed(0)
    disc = build(awkward_cfg()).aae["text"].discriminator
    s = torch.randn(2, 6, 12, requires_grad=True)
    loss, acc = discriminator_loss(disc, s)
    loss.backward()
    assert s.grad is None  # codes are detached: only the discriminator learns here
    assert all(p.grad is not None for p in disc.parameters())
    assert acc.requires_grad is False and 0 <= acc.item() <= 1
    with torch.no_grad():  # a constant discriminator (logit 0) scores log 2 on each side
        for p in disc.parameters():
            p.zero_()
        loss, _ = discriminator_loss(disc, s)
        assert loss.item() == pytest.approx(2 * math.log(2), rel=1e-6)
        assert generator_loss(disc, s).item() == pytest.approx(math.log(2), rel=1e-6)
        disc.net[-1].bias.fill_(1.0)  # says "prior" to everything: right on the prior half, wrong on the codes
        assert discriminator_loss(disc, s)[1].item() == 0.5


def test_eq5_discriminator_accuracy_by_hand_and_its_own_random_stream(awkward_cfg):
    """The accuracy is the mean of the accuracies on the prior and on the code samples; the prior samples
    come from the generator passed in, so the global stream is left where it was."""
    from mcihn.model.aae import discriminator_loss
    torch.manual_seed(0)
    disc = build(awkward_cfg()).aae["text"].discriminator
    s = 3.0 * torch.randn(4, 6, 12) + 1.0  # codes far from N(0, I)
    state = torch.get_rng_state()
    loss, acc = discriminator_loss(disc, s, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is untouched
    again, acc2 = discriminator_loss(disc, s, generator=torch.Generator().manual_seed(5))
    assert torch.equal(loss, again) and torch.equal(acc, acc2)
    real = torch.randn(24, 12, generator=torch.Generator().manual_seed(5))  # (B*L, d) prior samples, as drawn
    by_hand = 0.5 * ((disc(real) > 0).float().mean() + (disc(s.reshape(-1, 12)) < 0).float().mean())
    torch.testing.assert_close(acc, by_hand)
    other = discriminator_loss(disc, s, generator=torch.Generator().manual_seed(6))[0]
    assert not torch.equal(loss, other)


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


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("spec", ["", "x", "tq", "T", "tt", "tat", [], ["text", "text"], ["sound"]])
def test_parse_modalities_errors(spec):
    with pytest.raises(ValueError, match="modalities"):
        parse_modalities(spec)


@pytest.mark.parametrize("spec,expected", [("tav", ("text", "audio", "vision")), ("vat", ("text", "audio", "vision")),
                                           ("vt", ("text", "vision")), ("a", ("audio",)),
                                           (["vision", "text"], ("text", "vision"))])
def test_parse_modalities_canonical_order(spec, expected):
    assert parse_modalities(spec) == expected
    assert MCIHNConfig.tiny(modalities=spec).modalities == expected


@pytest.mark.parametrize("kw,name", [
    ({}, "MCIHN"), ({"use_aae": False}, "MCIHN-1"), ({"use_cgmm": False}, "MCIHN-2"),
    ({"modalities": "vt"}, "-VT"), ({"modalities": "tv"}, "-VT"), ({"modalities": "va"}, "-VA"),
    ({"modalities": "ta"}, "-TA"), ({"modalities": "at"}, "-TA"), ({"modalities": "t"}, "-T"),
    ({"use_aae": False, "use_cgmm": False}, "MCIHN (no AAE, no CGMM)"),
    ({"modalities": "vt", "use_aae": False}, "-VT (no AAE)"),
])
def test_variant_names(kw, name):
    assert MCIHNConfig.tiny(**kw).variant == name


def test_config_dict_round_trip():
    cfg = MCIHNConfig.paper(modalities="va", use_aae=False, mmd_multipliers=[0.5, 2], grad_clip=None,
                            mmd_samples="tokens", notes={"why": "test"})
    d = cfg.to_dict()
    assert d["modalities"] == ["audio", "vision"] and d["mmd_multipliers"] == [0.5, 2.0]
    assert MCIHNConfig.from_dict(d) == cfg
    assert MCIHNConfig.from_dict(json.loads(json.dumps(d))) == cfg  # plain JSON types only
    assert MCIHNConfig.from_dict({**d, "not_a_field": 1}) == cfg  # unknown keys are ignored
    assert MCIHNConfig.tiny().to_dict() != MCIHNConfig.paper().to_dict()


def test_presets():
    assert (MCIHNConfig.paper().latent_len, MCIHNConfig.paper().latent_dim) == (32, 256)
    assert MCIHNConfig.from_preset("tiny", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="preset"):
        MCIHNConfig.from_preset("huge")


@pytest.mark.parametrize("kw", [dict(latent_dim=12, heads=5), dict(latent_dim=10, heads=4),
                                dict(latent_len=0), dict(batch_size=0), dict(mmd_samples="frames")])
def test_config_validation(kw):
    with pytest.raises(ValueError):
        MCIHNConfig.tiny(**kw)


def test_config_heads_zero_is_a_value_error():
    with pytest.raises(ValueError):
        MCIHNConfig.tiny(heads=0)


@pytest.mark.parametrize("kernel", [2, 4])
def test_even_encoder_kernel_is_rejected(kernel, awkward_cfg):
    with pytest.raises(ValueError, match="odd"):
        awkward_cfg(enc_kernel=kernel)


def test_ffm_values_switch_takes_values_from_the_pair_features(batch, awkward_dims):
    """``ffm_values="pairs"`` has no parameters of its own: with the same weights it changes only where the
    fusion attention reads its values, so the prediction changes; an unknown value is refused."""
    torch.manual_seed(0)
    core = MCIHN(MCIHNConfig.tiny(), awkward_dims).eval()
    pairs = MCIHN(MCIHNConfig.tiny(ffm_values="pairs"), awkward_dims).eval()
    pairs.load_state_dict(core.state_dict())  # same parameter names and shapes
    a, b = core(batch), pairs(batch)
    assert a.pred.shape == b.pred.shape and not torch.allclose(a.pred, b.pred)
    for k in a.F:  # everything before the fusion is the same
        torch.testing.assert_close(a.F[k], b.F[k])
    with pytest.raises(ValueError, match="ffm_values"):
        MCIHNConfig.tiny(ffm_values="pair")
