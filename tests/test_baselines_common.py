"""Tests for the baselines (mcihn.baselines: TFN, LMF, MulT, late fusion) and their place in the
shared pipeline (registry, trainer, checkpoints).

Shapes with the awkward sizes of conftest (B=3; text 5x7, audio 9x3, vision 4x11), padding that
must not leak, gradients, TFN's fusion tensor against a loop, LMF's low-rank product against the
full tensor fusion it stands for (both directions), MulT's masking and pairs, late fusion's lack of
interaction, and training through run_seed to below the mean predictor.
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import AWKWARD_DIMS, AWKWARD_LENGTHS, make_batch, train_each
from mcihn.baselines import LMF, TFN, LateFusion, LMFConfig, LowRankFusion, MulT, TFNConfig, tensor_fusion
from mcihn.baselines.common import TINY_TRAINING, BaselineOutput
from mcihn.model.config import MCIHNConfig
from mcihn.data import normalize
from mcihn.training.registry import MODEL_KINDS, build_model, config_from_dict, make_config, model_kind
from mcihn.training.runner import load_model, run_seed
from mcihn.training.trainer import Trainer, load_checkpoint_file, predict

pytestmark = pytest.mark.usefixtures("torch_single_thread")

KINDS = ["tfn", "lmf", "mult", "late"]


def tiny(kind, **kw):
    return make_config(kind, "tiny", **kw)


# ----------------------------------------------------------------------------- configs and registry
def test_the_registry_holds_every_model():
    assert MODEL_KINDS == ("mcihn", "tfn", "lmf", "mult", "late", "selfmm", "emt", "cmhfm")


@pytest.mark.parametrize("kind", KINDS)
def test_presets_round_trip_and_share_the_tiny_training_budget(kind):
    for preset in ("paper", "tiny"):
        cfg = make_config(kind, preset)
        assert cfg.preset == preset and model_kind(cfg) == kind
        assert config_from_dict(json.loads(json.dumps(cfg.to_dict())), kind) == cfg
    t, m = tiny(kind), MCIHNConfig.tiny()
    fields = ("lr", "epochs", "patience", "dropout", "batch_size")
    assert [getattr(t, f) for f in fields] == [getattr(m, f) for f in fields]
    assert {k: getattr(t, k) for k in TINY_TRAINING} == TINY_TRAINING


def test_paper_preset_sizes_follow_the_papers():
    tfn = make_config("tfn", "paper")
    assert (tfn.text_dim, tfn.audio_dim, tfn.vision_dim, tfn.post_hidden) == (128, 32, 32, 128)
    assert make_config("lmf", "paper").rank == 4
    mult = make_config("mult", "paper")
    assert (mult.d_model, mult.heads, mult.layers, mult.conv_kernel) == (30, 5, 5, 1)


@pytest.mark.parametrize("kind, kw, message", [
    ("mult", {"d_model": 10, "heads": 3}, "divisible"),
    ("mult", {"modalities": "t"}, "at least 2 modalities"),
    ("mult", {"conv_kernel": 2}, "odd"),
    ("tfn", {"dropout": 1.0}, "dropout"),
    ("lmf", {"rank": 0}, "rank must be >= 1"),
    ("late", {"modalities": "tx"}, "unknown letter"),
])
def test_bad_configs_are_refused(kind, kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(kind, **kw)


def test_model_missing_from_the_data_is_refused():
    with pytest.raises(ValueError, match="no \\['vision'\\] features"):
        build_model(tiny("tfn"), {m: AWKWARD_DIMS[m] for m in ("text", "audio")})


# ----------------------------------------------------------------------------- shapes, masking, gradients
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_with_awkward_sizes(kind, batch):
    torch.manual_seed(0)
    cfg = tiny(kind)
    model = build_model(cfg, AWKWARD_DIMS).eval()
    out = model(batch)
    assert isinstance(out, BaselineOutput) and out.loss_adp is None
    assert out.pred.shape == (3,) and torch.isfinite(out.pred).all()
    if kind in ("tfn", "lmf"):
        dims = {"text": cfg.text_dim, "audio": cfg.audio_dim, "vision": cfg.vision_dim}
        assert {m: tuple(z.shape) for m, z in out.unimodal.items()} == {m: (3, d) for m, d in dims.items()}
        if kind == "tfn":  # language (x) visual (x) acoustic, each with its 1 appended
            assert out.fused.shape == (3, cfg.text_dim + 1, cfg.vision_dim + 1, cfg.audio_dim + 1)
        else:
            assert out.fused is None  # LMF never builds the tensor
    elif kind == "mult":
        d, h = cfg.d_model, cfg.heads
        assert {m: tuple(z.shape) for m, z in out.unimodal.items()} == {m: (3, 2 * d) for m in AWKWARD_DIMS}
        assert out.fused.shape == (3, 6 * d)
        T = {m: AWKWARD_DIMS[m][0] for m in AWKWARD_DIMS}
        assert out.attention["t<-a"].shape == (3, h, T["text"], T["audio"])
        assert out.attention["v<-t"].shape == (3, h, T["vision"], T["text"])
        assert out.attention["a"].shape == (3, h, T["audio"], T["audio"])
    else:
        assert {m: tuple(y.shape) for m, y in out.unimodal.items()} == {m: (3,) for m in AWKWARD_DIMS}
        assert out.fused.shape == (3, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_values_do_not_change_the_prediction(kind):
    torch.manual_seed(0)
    overrides = {"conv_kernel": 3} if kind == "mult" else {}  # a wider kernel is where padding could leak in
    model = build_model(tiny(kind, **overrides), AWKWARD_DIMS).eval()
    a = model(make_batch(seed=4, pad_value=0.0)).pred
    b = model(make_batch(seed=4, pad_value=7.5)).pred
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_sequence_gives_a_finite_prediction(kind):
    torch.manual_seed(0)
    model = build_model(tiny(kind), AWKWARD_DIMS).eval()
    lengths = {m: list(v) for m, v in AWKWARD_LENGTHS.items()}
    lengths["audio"][0] = 0
    lengths["text"][2] = 0
    assert torch.isfinite(model(make_batch(lengths=lengths)).pred).all()


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_gets_a_gradient(kind):
    torch.manual_seed(0)
    model = build_model(tiny(kind), AWKWARD_DIMS).train()
    batch = make_batch(B=5, seed=2)
    F.l1_loss(model(batch).pred, batch["label"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- TFN: the fusion tensor
def test_tensor_fusion_against_a_loop_and_its_blocks():
    g = torch.Generator().manual_seed(0)
    zl, zv, za = (torch.randn(2, d, generator=g, dtype=torch.float64) for d in (3, 2, 4))
    Z = tensor_fusion([zl, zv, za])
    assert Z.shape == (2, 4, 3, 5)
    one = torch.ones(2, 1, dtype=torch.float64)
    l1, v1, a1 = torch.cat([zl, one], 1), torch.cat([zv, one], 1), torch.cat([za, one], 1)
    for b, i, j, k in itertools.product(range(2), range(4), range(3), range(5)):
        assert Z[b, i, j, k] == l1[b, i] * v1[b, j] * a1[b, k]
    # the appended 1 keeps the unimodal, bimodal and trimodal terms side by side
    torch.testing.assert_close(Z[:, :3, 2, 4], zl)
    torch.testing.assert_close(Z[:, 3, :2, 4], zv)
    torch.testing.assert_close(Z[:, 3, 2, :4], za)
    torch.testing.assert_close(Z[:, :3, :2, 4], zl[:, :, None] * zv[:, None, :])
    torch.testing.assert_close(Z[:, :3, :2, :4], torch.einsum("bi,bj,bk->bijk", zl, zv, za))
    assert (Z[:, 3, 2, 4] == 1).all()
    # two modalities: the plain outer product of the augmented vectors
    torch.testing.assert_close(tensor_fusion([zl, za]), l1[:, :, None] * a1[:, None, :])


def test_tfn_feeds_its_own_unimodal_vectors_to_the_fusion(batch):
    model = TFN(tiny("tfn"), AWKWARD_DIMS).eval()
    out = model(batch)
    torch.testing.assert_close(out.fused, tensor_fusion([out.unimodal[m] for m in ("text", "vision", "audio")]))


# ----------------------------------------------------------------------------- LMF: the low-rank product
def _random_zs(dims, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, d, generator=g, dtype=torch.float64) for d in dims]


def test_low_rank_fusion_is_a_linear_map_of_the_tfn_tensor():
    """For any factors: h = W . Z + b with Z TFN's fusion tensor and W = sum_i w_1^(i) (x) w_2^(i) (x) w_3^(i)."""
    torch.manual_seed(0)
    dims = (3, 2, 4)
    fusion = LowRankFusion(list(dims), out_dim=5, rank=3).double()
    with torch.no_grad():
        fusion.bias.normal_()
    zs = _random_zs(dims)
    W = fusion.full_weight()
    assert W.shape == (5, 4 * 3 * 5)
    torch.testing.assert_close(fusion(zs), F.linear(tensor_fusion(zs).flatten(1), W, fusion.bias))
    # W[k] is the sum of r outer products, entry by entry
    w1, w2, w3 = fusion.factors
    i, j, k, o = 2, 1, 3, 4
    expected = sum(w1[r, i, o] * w2[r, j, o] * w3[r, k, o] for r in range(3))
    torch.testing.assert_close(W[o].reshape(4, 3, 5)[i, j, k], expected)


def _factors_of(W: torch.Tensor, dims) -> list:
    """An exact rank-(d_1+1)(d_2+1) decomposition of a TFN weight W (out, prod(d_m + 1)): term (p, q) is
    e_p (x) e_q (x) W[:, p, q, :] for every output unit."""
    n1, n2, n3 = (d + 1 for d in dims)
    out = W.shape[0]
    Wt = W.reshape(out, n1, n2, n3)
    rank = n1 * n2
    f1, f2, f3 = (torch.zeros(rank, n, out, dtype=W.dtype) for n in (n1, n2, n3))
    for r, (p, q) in enumerate(itertools.product(range(n1), range(n2))):
        f1[r, p, :] = 1.0
        f2[r, q, :] = 1.0
        f3[r, :, :] = Wt[:, p, q, :].T  # (n3, out)
    return [f1, f2, f3]


def test_full_rank_lmf_equals_any_tfn_fusion_layer():
    """The converse: every TFN fusion layer is an LMF one of rank (d_1+1)(d_2+1), so LMF at that rank
    represents exactly the maps TFN does (the two differ by a reparametrisation of W)."""
    torch.manual_seed(1)
    dims = (3, 2, 4)
    tfn_layer = torch.nn.Linear(4 * 3 * 5, 6).double()
    fusion = LowRankFusion(list(dims), out_dim=6, rank=4 * 3).double()
    with torch.no_grad():
        for param, value in zip(fusion.factors, _factors_of(tfn_layer.weight, dims)):
            param.copy_(value)
        fusion.bias.copy_(tfn_layer.bias)
    torch.testing.assert_close(fusion.full_weight(), tfn_layer.weight)
    zs = _random_zs(dims, seed=3)
    torch.testing.assert_close(fusion(zs), tfn_layer(tensor_fusion(zs).flatten(1)))


def test_full_rank_lmf_model_reproduces_a_tfn_model(batch):
    """Whole models: an LMF with TFN's subnetworks and inference layers, and factors decomposing TFN's
    fusion weight, predicts what the TFN predicts."""
    torch.manual_seed(2)
    sizes = dict(text_dim=3, audio_dim=2, vision_dim=2, post_hidden=5)
    tfn = TFN(TFNConfig.tiny(**sizes), AWKWARD_DIMS).double().eval()
    dims = [sizes["text_dim"], sizes["vision_dim"], sizes["audio_dim"]]  # TFN_ORDER: text, vision, audio
    lmf = LMF(LMFConfig.tiny(**sizes, rank=(dims[0] + 1) * (dims[1] + 1)), AWKWARD_DIMS).double().eval()
    state = {k: v for k, v in tfn.state_dict().items() if not k.startswith("fusion_layer.")}
    missing, unexpected = lmf.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("fusion_layer.") for k in missing)
    with torch.no_grad():
        for param, value in zip(lmf.fusion_layer.factors, _factors_of(tfn.fusion_layer.weight, dims)):
            param.copy_(value)
        lmf.fusion_layer.bias.copy_(tfn.fusion_layer.bias)
    b = {k: (v.double() if v.is_floating_point() else v) for k, v in batch.items()}
    torch.testing.assert_close(lmf(b).pred, tfn(b).pred)


def test_lmf_parameter_count_is_linear_in_the_modality_sizes():
    fusion = LowRankFusion([128, 32, 32], out_dim=128, rank=4)
    assert sum(p.numel() for p in fusion.parameters()) == 4 * 128 * (129 + 33 + 33) + 128
    assert 129 * 33 * 33 * 128 > 80 * sum(p.numel() for p in fusion.parameters())  # TFN's layer at paper sizes


# ----------------------------------------------------------------------------- MulT
def test_mult_has_one_crossmodal_transformer_per_ordered_pair():
    full = MulT(tiny("mult"), AWKWARD_DIMS)
    assert set(full.cross) == {"t<-a", "t<-v", "a<-t", "a<-v", "v<-t", "v<-a"}
    assert set(full.memory) == {"text", "audio", "vision"}
    pair = MulT(tiny("mult", modalities="ta"), AWKWARD_DIMS)
    assert set(pair.cross) == {"t<-a", "a<-t"}
    out = pair.eval()(make_batch(modalities=("text", "audio")))
    assert out.fused.shape == (3, 2 * pair.cfg.d_model)


def test_mult_attention_never_looks_at_padding(batch):
    model = MulT(tiny("mult"), AWKWARD_DIMS).eval()
    out = model(batch)
    for name, w in out.attention.items():  # "t<-a": keys are audio steps; "t": keys are text steps
        source = {"t": "text", "a": "audio", "v": "vision"}[name[-1]]
        lengths = AWKWARD_LENGTHS[source]
        for b, n in enumerate(lengths):
            assert (w[b, :, :, n:] == 0).all(), (name, b)
            torch.testing.assert_close(w[b].sum(-1), torch.ones_like(w[b].sum(-1)))


# ----------------------------------------------------------------------------- late fusion
def test_late_fusion_has_no_cross_modal_interaction():
    """f(a, t) - f(a, t') - f(a', t) + f(a', t') = 0: the score is a sum of one-modality terms."""
    torch.manual_seed(0)
    model = LateFusion(tiny("late", hidden=8), AWKWARD_DIMS).eval()
    b1, b2 = make_batch(seed=5), make_batch(seed=6)

    def f(text_from, audio_from):
        b = dict(b1)
        b["text"], b["audio"] = text_from["text"], audio_from["audio"]
        return model(b).pred

    mixed = f(b1, b1) - f(b1, b2) - f(b2, b1) + f(b2, b2)
    torch.testing.assert_close(mixed, torch.zeros_like(mixed), rtol=0, atol=1e-6)
    out = model(b1)
    torch.testing.assert_close(out.pred, out.fused @ model.weight + model.bias)


# ----------------------------------------------------------------------------- the shared pipeline
@pytest.fixture(scope="module")
def trained(learn_data, tmp_path_factory):
    """Each baseline trained for 15 epochs (seed 1111) through run_seed, with checkpoints."""
    return train_each({kind: tiny(kind, epochs=15) for kind in KINDS}, learn_data, tmp_path_factory)


@pytest.mark.parametrize("kind", KINDS)
def test_each_baseline_learns_below_the_mean_predictor(kind, trained, learn_data):
    _, res = trained[kind]
    y_train, y_test = learn_data["train"].labels, learn_data["test"].labels
    mean_mae = float(np.abs(y_train.mean() - y_test).mean())
    assert res["test"]["MAE"] < 0.9 * mean_mae, (res["test"]["MAE"], mean_mae)
    assert res["test"]["Corr"] > 0.4
    assert all(set(h["train"]) == {"total", "mul"} for h in res["history"])  # the main phase only
    assert all("loss_adp" not in h["valid"] for h in res["history"])


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoints_record_the_kind_and_reload_the_right_class(kind, trained, learn_data):
    out, res = trained[kind]
    last, best = load_checkpoint_file(out / "last.pt"), load_checkpoint_file(out / "best.pt")
    assert last["model_kind"] == best["model_kind"] == kind
    assert set(last["optimizers"]) == {"main"}
    model, cfg, norm, _ = load_model(out / "best.pt")
    assert type(model) is type(res["model"]) and model_kind(cfg) == kind
    tensors = norm.transform(learn_data["test"]).to_tensors(cfg.modalities)
    pred, adp = predict(model, tensors)
    assert adp is None
    from mcihn.metrics import evaluate
    assert evaluate(pred.numpy(), tensors["label"].numpy(), "mosi") == res["test"]


def test_resuming_a_run_as_another_model_is_refused(trained, learn_data):
    out, _ = trained["tfn"]
    with pytest.raises(ValueError, match="trained model 'tfn', now 'lmf'"):
        run_seed(learn_data, tiny("lmf", epochs=15), 1111, out_dir=out, device="cpu", resume=True,
                 progress=False, log=lambda *a: None)


def test_a_baseline_trainer_has_one_optimizer_over_every_parameter(learn_data):
    trainer = Trainer(tiny("mult"), learn_data.dims)
    assert set(trainer.opt) == {"main"} and [phase.key for phase in trainer.phases] == ["main"]
    opt_params = {id(p) for g in trainer.opt["main"].param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in trainer.model.parameters()}
    normed, _ = normalize(learn_data, "tav")
    logs = trainer.train_batch(normed["train"].to_tensors("tav"))
    assert set(logs) == {"total", "mul"} and torch.equal(logs["total"], logs["mul"])


def test_every_subpackage_is_listed_for_installation():
    """pyproject lists packages by name: a subpackage left out would be missing from an installed wheel."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(re.sub(r"[\s\"]", "", re.search(r"packages = \[(.*?)\]", (root / "pyproject.toml").read_text(), re.S)
                        .group(1)).split(","))
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "mcihn").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
