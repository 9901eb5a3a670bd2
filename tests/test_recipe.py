"""The training recipe of the auto presets: learning-rate warm-up and schedule, AdamW's weight decay, sizes
that follow the training-set size, and which preset each command uses by default."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from mcihn.data import synthetic_data
from mcihn.data.planted import planted_data
from mcihn.model.config import AUTO_LARGE_FROM, TRAINING_RECIPE, MCIHNConfig
from mcihn.training.registry import MODEL_KINDS, default_config, default_preset, make_config
from mcihn.training.trainer import Trainer, lr_factor


def test_lr_factor_warmup_then_cosine():
    cfg = SimpleNamespace(warmup_epochs=1.0, lr_schedule="cosine", epochs=10)
    f = [lr_factor(s, 4, cfg) for s in range(40)]
    assert f[:4] == pytest.approx([1 / 5, 2 / 5, 3 / 5, 4 / 5])  # linear warm-up over the first epoch
    assert f[4] == pytest.approx(1.0) and all(a >= b for a, b in zip(f[4:], f[5:]))  # then non-increasing
    assert f[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 35 / 36)))
    assert lr_factor(10_000, 4, cfg) == pytest.approx(0.1)  # floor after the budget
    flat = SimpleNamespace(warmup_epochs=0.0, lr_schedule="constant", epochs=10)
    assert {lr_factor(s, 4, flat) for s in range(40)} == {1.0}


def _train_steps(cfg, data, steps=3, plain_adam=False):
    """A few training steps from one seed; ``plain_adam`` swaps the trainer's AdamW for ``torch.optim.Adam``
    over the same parameters (one group), as the trainer built it before the recipe existed."""
    from mcihn.training.runner import model_tensors, prepare

    torch.manual_seed(0)
    normed, _ = prepare(data, cfg)
    tr = Trainer(cfg, dict(data.dims))
    if plain_adam:
        tr.opt = {p.key: torch.optim.Adam(p.params, lr=cfg.lr * p.lr_scale, foreach=True) for p in tr.phases}
        for o in tr.opt.values():
            o.param_groups[0]["base_lr"] = o.param_groups[0]["lr"]
    batch = {k: v[:16] for k, v in model_tensors(normed["train"], cfg).items()}
    for _ in range(steps):
        tr.train_batch(batch)
    return tr


def test_weight_decay_zero_is_adam_and_positive_decay_shrinks_weights():
    data = synthetic_data(splits={"train": 32, "valid": 8, "test": 8}, dims={"text": (5, 7), "audio": (4, 3), "vision": (3, 6)})
    ours = _train_steps(MCIHNConfig.tiny(), data)  # AdamW, weight decay 0, two parameter groups
    adam = _train_steps(MCIHNConfig.tiny(), data, plain_adam=True)
    for a, b in zip(ours.model.parameters(), adam.model.parameters()):
        assert torch.equal(a, b)  # bit for bit: the paper preset's results do not move
    decayed = _train_steps(MCIHNConfig.tiny(weight_decay=0.5), data)
    w = [p for p in ours.model.parameters() if p.ndim > 1]
    wd = [p for p in decayed.model.parameters() if p.ndim > 1]
    assert sum(p.norm() for p in wd) < sum(p.norm() for p in w)  # decoupled decay pulls matrices towards 0
    groups = decayed.opt["main"].param_groups
    assert groups[0]["weight_decay"] == 0.5 and groups[1]["weight_decay"] == 0.0  # biases, norms: no decay
    bias = [p for p in decayed.model.parameters() if p.ndim <= 1]
    assert any(not torch.equal(a, b) for a, b in zip(bias, [p for p in ours.model.parameters() if p.ndim <= 1]))


def test_warmup_sets_the_step_learning_rate():
    data = synthetic_data(splits={"train": 64, "valid": 8, "test": 8}, dims={"text": (5, 7), "audio": (4, 3), "vision": (3, 6)})
    cfg = MCIHNConfig.tiny(batch_size=16, warmup_epochs=1.0, lr_schedule="cosine", epochs=4)
    from mcihn.training.runner import model_tensors, prepare

    normed, _ = prepare(data, cfg)
    tr = Trainer(cfg, dict(data.dims))
    seen = []
    original = tr.run_phase
    tr.run_phase = lambda phase, batch, where="?", watch=None: (
        seen.append(tr.opt[phase.key].param_groups[0]["base_lr"] * tr.lr_scale), original(phase, batch, where, watch))[1]
    tr.train_epoch(model_tensors(normed["train"], cfg), 1, progress=False)
    assert seen == pytest.approx([cfg.lr * k / 5 for k in (1, 2, 3, 4)])
    assert tr.opt["main"].param_groups[0]["lr"] == pytest.approx(cfg.lr * 4 / 5)


def test_auto_preset_sizes_follow_the_training_set():
    small, large = MCIHNConfig.auto(n_train=900), MCIHNConfig.auto(n_train=AUTO_LARGE_FROM)
    assert small.latent_dim < large.latent_dim == MCIHNConfig.paper().latent_dim
    assert large.latent_len == MCIHNConfig.paper().latent_len
    for cfg in (small, large):
        assert {k: getattr(cfg, k) for k in TRAINING_RECIPE} == TRAINING_RECIPE and cfg.preset == "auto"
    tfn = make_config("tfn", "auto")  # the baselines keep the paper's plain Adam (the recipe did not help TFN)
    assert tfn.to_dict() == {**make_config("tfn", "paper").to_dict(), "preset": "auto"}
    assert MCIHNConfig.paper().weight_decay == 0 and MCIHNConfig.paper().lr_schedule == "constant"  # the paper's Adam
    assert small.ffm_values == large.ffm_values == "pairs" and MCIHNConfig.paper().ffm_values == "core"
    for kind in MODEL_KINDS:
        assert make_config(kind, "auto").preset == "auto"


def test_default_preset_by_data():
    assert default_preset(None) == "tiny" and default_preset(synthetic_data(splits={"train": 20, "valid": 8, "test": 8})) == "tiny"
    planted = planted_data("linear", n_train=300)
    assert default_preset(planted) == "auto"
    cfg = default_config("mcihn", planted)
    assert cfg.preset == "auto" and cfg.latent_dim == MCIHNConfig.auto(n_train=300).latent_dim
