"""What every baseline shares, checked kind by kind over TFN, LMF, MulT and late fusion (mcihn.baselines),
and their place in the shared pipeline (mcihn.training.registry, trainer, runner, checkpoints): the
registry of model kinds, presets and refused configs, shapes with conftest's awkward sizes (B=3; text 5x7,
audio 9x3, vision 4x11), padding that must not leak, empty sequences, gradients to every parameter, training
through run_seed to below the mean predictor, checkpoints that reload the right class, and one optimiser over
every parameter. The same checks for Self-MM, EMT and CMHFM, which train on their own multi-term task loss,
are in test_baselines_common_multitask.py (a separate module because the parametrised checks share their
names); each model's own mechanism is in test_baseline_<kind>.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _helpers import tiny
from conftest import AWKWARD_DIMS, AWKWARD_LENGTHS, make_batch, train_each
from mcihn.baselines.common import TINY_TRAINING, BaselineOutput
from mcihn.model.config import MCIHNConfig
from mcihn.data import normalize
from mcihn.training.registry import MODEL_KINDS, build_model, config_from_dict, make_config, model_kind
from mcihn.training.runner import load_model, run_seed
from mcihn.training.trainer import Trainer, load_checkpoint_file, predict

pytestmark = pytest.mark.usefixtures("torch_single_thread")

KINDS = ["tfn", "lmf", "mult", "late"]


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
