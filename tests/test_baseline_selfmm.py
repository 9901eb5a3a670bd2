"""Self-MM (mcihn.baselines.selfmm) and its unimodal label generation (ULGM): the label-shift formula and
the momentum update, a constructed case whose generated labels are known, the labels staying multimodal
until the update epoch when trained through the Trainer (its per-epoch hook and the per-sample index of the
batches), and the refusal of a batch without that index. What every baseline shares is in
test_baselines_common.py and test_baselines_common_multitask.py.
"""
from __future__ import annotations

import pytest
import torch

from _helpers import small, tiny  # noqa: F401 (small: a fixture)
from conftest import AWKWARD_DIMS
from mcihn.baselines import SelfMM
from mcihn.baselines.selfmm import momentum_update, shifted_label
from mcihn.data import normalize
from mcihn.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("torch_single_thread")


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
