"""Tests for the baselines of issue 13 (Self-MM, EMT-DLFR, CMHFM), the per-sample index of the batches,
the trainer's epoch hook, and CMU-MOSEI as a dataset.

Shapes with conftest's awkward sizes (B=3; text 5x7, audio 9x3, vision 4x11), padding that must not
leak, Self-MM's label generation on a constructed case whose answer is known and its banks through the
trainer, EMT's incomplete view and masked reconstruction, CMHFM's decision fusion, training through
run_seed to below the mean predictor, and checkpoint round trips and resumption.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import AWKWARD_DIMS, make_batch, train_each
from mcihn.baselines import EMT, SelfMM
from mcihn.baselines.common import BaselineOutput
from mcihn.baselines.emt import incomplete_view, masked_reconstruction_loss
from mcihn.baselines.selfmm import momentum_update, shifted_label
from mcihn.data import LABEL_RANGE, normalize, synthetic_data
from mcihn.training.registry import build_model, config_from_dict, make_config, model_kind
from mcihn.training.runner import load_model, run_seed
from mcihn.training.trainer import Trainer, load_checkpoint_file, predict

pytestmark = pytest.mark.usefixtures("torch_single_thread")

NEW = ["selfmm", "emt", "cmhfm"]
QUIET = dict(progress=False, log=lambda *a, **k: None)


def tiny(kind, **kw):
    return make_config(kind, "tiny", **kw)


def indexed(batch: dict) -> dict:
    return {**batch, "index": torch.arange(len(batch["label"]))}


# ----------------------------------------------------------------------------- registry, configs, CLI
def test_new_kinds_are_registered_listed_and_in_table2():
    from mcihn.paper import PUBLISHED, TABLE_ROWS
    from mcihn.training.registry import MODEL_KINDS

    assert set(NEW) <= set(MODEL_KINDS)
    rows = {label: kind for label, kind, *_ in TABLE_ROWS["table2"]}
    assert {rows["Self-MM"], rows["EMT"], rows["CMHFM"]} == set(NEW)
    assert {"Self-MM", "EMT", "CMHFM"} <= set(PUBLISHED["table2"]["mosi"]) & set(PUBLISHED["table2"]["sims"])


@pytest.mark.parametrize("kind", NEW)
def test_presets_round_trip(kind):
    for preset in ("paper", "tiny"):
        cfg = make_config(kind, preset)
        assert model_kind(cfg) == kind and cfg.preset == preset
        assert config_from_dict(json.loads(json.dumps(cfg.to_dict())), kind) == cfg
    assert (tiny(kind).lr, tiny(kind).epochs, tiny(kind).dropout) == (3e-3, 30, 0.0)  # common.TINY_TRAINING


def test_paper_presets_follow_the_reference_configs():
    s = make_config("selfmm", "paper")  # MMSA config_regression.json, self_mm, mosi
    assert (s.text_out, s.audio_hidden, s.audio_out, s.vision_hidden, s.vision_out) == (768, 16, 16, 32, 32)
    assert (s.post_fusion_dim, s.post_text_dim, s.post_audio_dim, s.post_vision_dim) == (128, 32, 16, 32)
    assert s.update_start_epoch == 2
    e = make_config("emt", "paper")  # EMT-DLFR config_regression.py, mosi
    assert (e.d_model, e.layers, e.heads, e.post_fusion_dim, e.share, e.dlfr) == (128, 3, 4, 256, True, True)
    assert e.variant == "EMT" and make_config("emt", "tiny", dlfr=False).variant == "EMT (no DLFR)"


@pytest.mark.parametrize("kind, kw, message", [
    ("emt", {"d_model": 10, "heads": 3}, "divisible"),
    ("emt", {"mask_rate": 1.0}, "mask_rate"),
    ("cmhfm", {"modalities": "t"}, "at least 2 modalities"),
    ("selfmm", {"label_bound": -1.0}, "label_bound"),
])
def test_bad_configs_are_refused(kind, kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(kind, **kw)


# ----------------------------------------------------------------------------- shapes and padding
@pytest.mark.parametrize("kind", NEW)
def test_shapes_with_awkward_sizes(kind, batch):
    torch.manual_seed(0)
    cfg = tiny(kind)
    model = build_model(cfg, AWKWARD_DIMS).eval()
    out = model(batch)
    assert isinstance(out, BaselineOutput) and out.pred.shape == (3,) and torch.isfinite(out.pred).all()
    if kind == "selfmm":
        assert {m: tuple(y.shape) for m, y in out.unimodal.items()} == {m: (3,) for m in AWKWARD_DIMS}
        assert out.fused.shape == (3, cfg.post_fusion_dim)
    elif kind == "emt":
        assert {m: tuple(z.shape) for m, z in out.unimodal.items()} == {m: (3, cfg.out_dim(m)) for m in AWKWARD_DIMS}
        assert out.fused.shape == (3, 3 * cfg.d_model)
        local = model.encode(batch)["local"]
        assert {m: tuple(x.shape) for m, x in local.items()} == {m: (3, T, cfg.d_model) for m, (T, _) in AWKWARD_DIMS.items()}
    else:
        assert model.tasks == ["text", "audio", "vision", "ta", "tv", "av", "tri"]
        assert out.fused.shape == (3, 7)
        torch.testing.assert_close(out.pred, out.fused @ model.fuse_weight + model.fuse_bias)


@pytest.mark.parametrize("kind", NEW)
def test_padding_values_do_not_change_the_prediction(kind):
    torch.manual_seed(0)
    model = build_model(tiny(kind), AWKWARD_DIMS).eval()
    a = model(make_batch(seed=4, pad_value=0.0)).pred
    b = model(make_batch(seed=4, pad_value=7.5)).pred
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["emt", "cmhfm"])
def test_two_modalities(kind):
    model = build_model(tiny(kind, modalities="ta"), AWKWARD_DIMS).eval()
    assert model(make_batch(modalities=("text", "audio"))).pred.shape == (3,)


@pytest.mark.parametrize("kind", ["emt", "cmhfm"])
def test_every_parameter_gets_a_gradient_from_the_task_loss(kind):
    torch.manual_seed(0)
    model = build_model(tiny(kind), AWKWARD_DIMS).train()
    loss, logs = model.task_loss(make_batch(B=5, seed=2))
    loss.backward()
    assert torch.equal(logs["total"], loss.detach())
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- Self-MM: the ULGM
def test_label_shift_formula_and_momentum():
    y_m = torch.tensor([1.0, 1.0, -2.0])
    alpha_m = torch.tensor([1.0, 1.0, 0.5])
    alpha_s = torch.tensor([4.0, 1.0, 0.5])
    # 1/2 y_m alpha_s / alpha_m + 1/2 (y_m + alpha_s - alpha_m), clipped to [-3, 3]
    torch.testing.assert_close(shifted_label(y_m, alpha_s, alpha_m, 3.0), torch.tensor([3.0, 1.0, -2.0]))
    # epoch n: (n-1)/(n+1) old + 2/(n+1) new; epoch 1 would take the new label as it is
    torch.testing.assert_close(momentum_update(torch.tensor(1.0), torch.tensor(4.0), 2), torch.tensor(3.0))
    torch.testing.assert_close(momentum_update(torch.tensor(1.0), torch.tensor(4.0), 1), torch.tensor(4.0))


def test_generated_labels_move_towards_each_modalitys_evidence():
    """A constructed case. Every bank holds two positive samples (label +1) at +1.5 e_1 and two negative
    ones (-1) at -1.5 e_1, so each bank's centres are +-1.5 e_1. Sample 4 (y_m = +1) has its fusion
    representation at 0.5 e_1 (D_p = 1, D_n = 2: alpha_m = 1), its text one at 1.0 e_1 (alpha_t = 4,
    more positive than the fusion), its audio one at -0.5 e_1 (alpha_a = -0.5, on the negative side) and
    its vision one where the fusion is (alpha_v = 1). Epoch 2:
        text   new = 1/2 * 4 + 1/2 * (1 + 4 - 1) = 4 -> clipped to 3;   1/3 * 1 + 2/3 * 3    = 7/3
        audio  new = 1/2 * -0.5 + 1/2 * (1 - 0.5 - 1) = -0.5;            1/3 * 1 + 2/3 * -0.5 = 0
        vision new = 1/2 * 1 + 1/2 * 1 = 1                                unchanged
    """
    model = SelfMM(tiny("selfmm", label_bound=3.0), AWKWARD_DIMS)
    labels = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0])
    model.start_epoch(1, {"label": labels, "index": torch.arange(5)})
    assert model.epoch == 1 and float(model.label_bound) == 3.0
    for t in model.tasks:
        torch.testing.assert_close(model.bank("label", t), labels)  # every label starts as y_m
        bank = model.bank("feat", t)
        bank.zero_()
        bank[:, 0] = torch.tensor([1.5, 1.5, -1.5, -1.5, 1.5])

    def at(t, x):
        f = torch.zeros(1, model.bank("feat", t).shape[1])
        f[0, 0] = x
        return f

    feats = {"fusion": at("fusion", 0.5), "text": at("text", 1.0), "audio": at("audio", -0.5), "vision": at("vision", 0.5)}
    model.update_labels(feats, torch.tensor([4]), epoch=2)
    got = {m: float(model.bank("label", m)[4]) for m in ("fusion", "text", "audio", "vision")}
    assert got["fusion"] == 1.0  # y_m is never changed
    assert got["text"] == pytest.approx(7 / 3, abs=1e-5) and got["text"] > 1.0
    assert got["audio"] == pytest.approx(0.0, abs=1e-5) and got["audio"] < 1.0
    assert got["vision"] == pytest.approx(1.0, abs=1e-5)
    for m in ("text", "audio", "vision"):  # the other samples were not in the batch
        torch.testing.assert_close(model.bank("label", m)[:4], labels[:4])


@pytest.fixture(scope="module")
def small():
    return synthetic_data("mosi", splits={"train": 96, "valid": 32, "test": 32},
                          dims={"text": (6, 8), "audio": (7, 5), "vision": (5, 6)}, seed=3)


def test_selfmm_labels_stay_multimodal_until_the_update_epoch(small):
    normed, _ = normalize(small, "tav")
    train = normed["train"].to_tensors("tav")
    torch.manual_seed(0)
    trainer = Trainer(tiny("selfmm", update_start_epoch=3), small.dims, seed=1)
    model = trainer.model
    y = train["label"]
    for epoch in (1, 2):
        logs = trainer.train_epoch(train, epoch, progress=False)
        assert model.epoch == epoch and set(logs) == {"total", "mul", "text", "audio", "vision"}
        assert logs["text"] == 0.0  # tanh(|y_s - y_m|) = 0 while y_s = y_m
        for t in model.tasks:
            assert torch.equal(model.bank("label", t), y), (epoch, t)
        assert (model.bank("feat", "fusion").abs().sum(dim=1) > 0).all()  # every sample's features stored
    trainer.train_epoch(train, 3, progress=False)
    assert torch.equal(model.bank("label", "fusion"), y)
    for m in ("text", "audio", "vision"):
        moved = model.bank("label", m) - y
        assert moved.abs().max() > 1e-3, m
        assert (model.bank("label", m).abs() <= float(model.label_bound) + 1e-6).all()


def test_selfmm_refuses_batches_without_an_index(small):
    model = SelfMM(tiny("selfmm"), small.dims)
    batch = normalize(small, "tav")[0]["train"].to_tensors("tav")
    model.start_epoch(1, batch)
    batch.pop("index")
    with pytest.raises(ValueError, match="index"):
        model.task_loss(batch)


# ----------------------------------------------------------------------------- EMT: incomplete view, restoration
def test_masking_one_modality_changes_only_that_view(batch):
    b = indexed(batch)
    before = {k: v.clone() for k, v in b.items()}
    g = torch.Generator().manual_seed(0)
    view, missing = incomplete_view(b, ["text"], 0.5, g)
    assert set(missing) == {"text"} and missing["text"].any()
    for k in b:
        assert torch.equal(b[k], before[k]), k  # the complete view is untouched
        if k != "text":
            assert view[k] is b[k], k  # other modalities, masks, labels, index: the same tensors
    assert not (missing["text"] & ~b["text_mask"]).any()  # only real steps are masked
    assert (view["text"][missing["text"]] == 0).all()
    keep = ~missing["text"]
    assert torch.equal(view["text"][keep], b["text"][keep])
    model = EMT(tiny("emt"), AWKWARD_DIMS).eval()  # and the model's complete view does not see the mask
    torch.testing.assert_close(model.encode(b)["pred"], model.encode(before)["pred"], rtol=0, atol=0)
    assert not torch.allclose(model.encode(view)["pred"], model.encode(b)["pred"])


def test_reconstruction_loss_counts_masked_positions_only():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(3, 6, 4, generator=g)
    where = torch.zeros(3, 6, dtype=torch.bool)
    where[0, 1] = where[2, 4] = True
    wrong_elsewhere = target + 10.0 * (~where)[..., None]
    assert masked_reconstruction_loss(wrong_elsewhere, target, where) == 0
    wrong_there = target + 1.0 * where[..., None]  # SmoothL1 of 1 is 0.5 per feature
    assert masked_reconstruction_loss(wrong_there, target, where) == pytest.approx(0.5, rel=1e-5)


def test_emt_losses_with_and_without_dlfr(batch):
    torch.manual_seed(0)
    b = make_batch(B=5, seed=3)
    model = EMT(tiny("emt", mask_rate=0.0), AWKWARD_DIMS).train()
    _, logs = model.task_loss(b)
    assert set(logs) == {"total", "mul", "attra", "recon"}
    assert logs["recon"] == 0  # nothing masked: nothing to reconstruct
    plain = EMT(tiny("emt", dlfr=False), AWKWARD_DIMS).train()
    loss, logs = plain.task_loss(b)
    assert set(logs) == {"total", "mul"} and not hasattr(plain, "decoder")
    torch.testing.assert_close(loss, (plain(b).pred - b["label"]).abs().mean())


# ----------------------------------------------------------------------------- the shared pipeline
@pytest.fixture(scope="module")
def trained(learn_data, tmp_path_factory):
    """Each new baseline trained for 12 epochs (seed 1111) through run_seed, with checkpoints."""
    return train_each({kind: tiny(kind, epochs=12) for kind in NEW}, learn_data, tmp_path_factory)


@pytest.mark.parametrize("kind", NEW)
def test_each_new_baseline_learns_below_the_mean_predictor(kind, trained, learn_data):
    _, res = trained[kind]
    mean_mae = float(np.abs(learn_data["train"].labels.mean() - learn_data["valid"].labels).mean())
    # the embedded data are shaped like real data: a ridge on pooled features reaches 0.84 x the mean predictor
    # on this small set's validation split, so "learns" asks for 0.9 x in 12 epochs (as test_baselines.py)
    assert res["valid"]["MAE"] < 0.9 * mean_mae, (res["valid"]["MAE"], mean_mae)
    assert res["test"]["Corr"] > 0.4


@pytest.mark.parametrize("kind", NEW)
def test_checkpoint_round_trip_gives_identical_predictions(kind, trained, learn_data):
    out, res = trained[kind]
    best = load_checkpoint_file(out / "best.pt")
    assert best["model_kind"] == kind
    model, cfg, norm, _ = load_model(out / "best.pt")
    assert type(model) is type(res["model"])
    tensors = norm.transform(learn_data["test"]).to_tensors(cfg.modalities)
    a, _ = predict(model, tensors)
    b, _ = predict(res["model"], tensors)
    assert torch.equal(a, b)
    if kind == "selfmm":  # the banks travel with the weights
        assert model.bank("label", "text").shape == (400,)
        assert torch.equal(model.bank("label", "text"), res["model"].bank("label", "text"))


@pytest.mark.parametrize("kind", NEW)
def test_resume_continues_exactly(kind, small, tmp_path):
    """3 epochs at once == 2 epochs, stop, resume to 3: same history and same test metrics."""
    straight = run_seed(small, tiny(kind, epochs=3, patience=10), 7, out_dir=tmp_path / "a", device="cpu", **QUIET)
    run_seed(small, tiny(kind, epochs=2, patience=10), 7, out_dir=tmp_path / "b", device="cpu", **QUIET)
    resumed = run_seed(small, tiny(kind, epochs=3, patience=10), 7, out_dir=tmp_path / "b", device="cpu", resume=True,
                       **QUIET)
    assert resumed["epochs_run"] == 3
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in straight["history"]]
    assert [{k: v for k, v in h.items() if k != "time_s"} for h in resumed["history"]] == strip
    assert resumed["test"] == straight["test"]
    if kind == "selfmm":
        for t in resumed["model"].tasks:
            assert torch.equal(resumed["model"].bank("label", t), straight["model"].bank("label", t))


# ----------------------------------------------------------------------------- data: the index key, MOSEI
def test_to_tensors_carries_each_samples_index(small):
    t = small["valid"].to_tensors("tav")
    assert t["index"].dtype == torch.long and torch.equal(t["index"], torch.arange(len(small["valid"])))


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
