"""Tests for Algorithm 1's two schedules (``MCIHNConfig.schedule``) and the loss weights (issue 10).

1. A loss weight of 0 trains exactly like no such term (bit for bit, with dropout on).
2. Under "joint" a larger weight moves the encoders more; under "phases" Adam hides the weight.
3. The discriminator learns: it is not at chance for the whole run.
4. L_Adp cannot fall by collapsing an orthogonal xi (a free linear one can, and does).
5. A resumed run continues exactly, the discriminator's prior stream included.

Every property comes with the contrast that shows its test can fail.
"""
from __future__ import annotations

import pytest
import torch

import mcihn.model.mcihn as model_mod
import mcihn.training.checkpoint as checkpoint_mod
import mcihn.training.trainer as train_mod
from conftest import SMALL_MODEL
from mcihn.data import normalize
from mcihn.model.config import MCIHNConfig
from mcihn.model.mmd import FeatureAdaptiveMMD, effective_rank
from mcihn.training.runner import run_seed
from mcihn.training.trainer import Trainer, iterate_batches

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: L=4, d=16, 2 heads, with every weight set here (not left to the defaults, which were tuned and may move again)
MODEL = {**{k: v for k, v in SMALL_MODEL.items() if k not in ("batch_size", "epochs")},
         "adv_weight": 0.1, "rec_weight": 0.1, "mmd_weight": 1.0}
MODS = ("text", "audio", "vision")


def strip_times(history):
    return [{k: v for k, v in rec.items() if k != "time_s"} for rec in history]


@pytest.fixture(scope="module")
def train_tensors(small_data):
    normed, _ = normalize(small_data, MODS)
    return normed["train"].to_tensors(MODS)


def batch_list(tensors, n, batch_size=8, seed=0):
    """The first n batches of a shuffled pass (more passes when one is not enough)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        out += list(iterate_batches(tensors, batch_size, g))
    return out[:n]


def cfg_with(**kw) -> MCIHNConfig:
    return MCIHNConfig.tiny(**{**MODEL, **kw})


def make_trainer(cfg, dims, seed=0, keep_zero_terms=False, monkeypatch=None):
    """A Trainer from a fixed global seed; ``keep_zero_terms`` is set on the model before its phases are made.
    Train it at once (:func:`run`): the global stream (dropout) goes on from where building it left it."""
    torch.manual_seed(seed)
    if not keep_zero_terms:
        return Trainer(cfg, dims, seed=seed)
    real = train_mod.build_model

    def build(*a, **k):
        model = real(*a, **k)
        model.keep_zero_terms = True
        return model

    with monkeypatch.context() as m:
        m.setattr(train_mod, "build_model", build)
        trainer = Trainer(cfg, dims, seed=seed)
    assert trainer.model.keep_zero_terms
    return trainer


def train(trainer, batches):
    """train_batch on each batch; returns the per-batch logs."""
    return [trainer.train_batch(b) for b in batches]


def run(cfg, dims, batches, **kw):
    """(trainer, per-batch logs): built from seed 0 and trained on ``batches`` straight away."""
    trainer = make_trainer(cfg, dims, **kw)
    return trainer, train(trainer, batches)


def non_disc_params(trainer):
    return {n: p.detach() for n, p in trainer.model.named_parameters() if ".discriminator." not in n}


def identical(run_a, run_b) -> bool:
    """Every parameter but the discriminators', and every per-batch L_Mul, bit for bit."""
    (ta, la), (tb, lb) = run_a, run_b
    pa, pb = non_disc_params(ta), non_disc_params(tb)
    assert pa.keys() == pb.keys() and len(la) == len(lb)
    return all(torch.equal(pa[k], pb[k]) for k in pa) and all(torch.equal(x["mul"], y["mul"]) for x, y in zip(la, lb))


def encoder_vector(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.encoder_parameters()])


# ----------------------------------------------------------------------------- 1. weight 0 = no term
@pytest.mark.parametrize("name", ["adv_weight", "rec_weight"])
def test_a_zero_weight_trains_exactly_like_no_term(name, small_data, train_tensors, monkeypatch):
    """Weight 0 (the term skipped) against the term computed with weight 0 (``keep_zero_terms``; for the
    adversary the discriminator phase runs too): with dropout 0.3 any use of the global random stream, or
    any gradient leaking from the 0-weighted term, would show. Gradient clipping is off: with the term kept, its
    parameters hold zero gradients, and the clipping norm summed over more tensors rounds differently in the last
    bit (seen once missing_aug's larger gradients made the clipping act), which is not what this test is about."""
    cfg = cfg_with(dropout=0.3, grad_clip=None, **{name: 0.0})
    assert cfg.schedule == "joint"
    batches = batch_list(train_tensors, 10)
    runs = [run(cfg, small_data.dims, batches),
            run(cfg, small_data.dims, batches, keep_zero_terms=True, monkeypatch=monkeypatch)]
    (skipped, _), (kept, _) = runs
    log = {"adv_weight": "gen", "rec_weight": "rec"}[name]
    assert log not in runs[0][1][0] and log in runs[1][1][0]  # the term really was left out / computed
    if name == "adv_weight":
        assert [p.key for p in skipped.phases] == ["main"]  # no discriminator phase at all
        assert [p.key for p in kept.phases] == ["disc", "main"]
        assert "disc" not in skipped.opt and "disc_acc" in runs[1][1][0]
    else:
        assert [p.key for p in skipped.phases] == [p.key for p in kept.phases] == ["disc", "main"]
    assert identical(*runs)

    # the contrast: a small non-zero weight does change the run
    assert not identical(runs[0], run(cfg_with(dropout=0.3, grad_clip=None, **{name: 1e-3}), small_data.dims, batches))


def test_a_discriminator_on_the_global_stream_would_change_the_run(small_data, train_tensors, monkeypatch):
    """The contrast for adv_weight=0: prior samples drawn from the global stream (generator=None, as before the
    discriminator had a stream of its own) shift every later dropout mask, and the comparison above sees it."""
    cfg = cfg_with(dropout=0.3, adv_weight=0.0)
    batches = batch_list(train_tensors, 10)
    real = model_mod.discriminator_loss
    monkeypatch.setattr(model_mod, "discriminator_loss",
                        lambda disc, s, how="tokens", generator=None: real(disc, s, how, None))
    assert not identical(run(cfg, small_data.dims, batches),
                         run(cfg, small_data.dims, batches, keep_zero_terms=True, monkeypatch=monkeypatch))


@pytest.mark.parametrize("schedule", ["joint", "phases"])
def test_a_zero_mmd_weight_trains_exactly_like_no_mmd(schedule, small_data, train_tensors):
    """L_Adp is always computed (it is logged); with mmd_weight 0 the run equals one whose MMD module returns a
    constant 0 with no graph at all, and a weight of 1e-3 does not."""
    batches = batch_list(train_tensors, 10)
    cfg = cfg_with(dropout=0.3, mmd_weight=0.0, schedule=schedule)
    weighted = run(cfg, small_data.dims, batches)
    assert all(float(lg["adp"]) > 0 for lg in weighted[1])
    removed = make_trainer(cfg, small_data.dims)
    removed.model.mmd.forward = lambda S, F: (next(iter(S.values())).new_zeros(()), {})
    removed = (removed, train(removed, batches))
    assert all(float(lg["adp"]) == 0 for lg in removed[1])
    assert identical(weighted, removed)
    assert not identical(weighted, run(cfg_with(dropout=0.3, mmd_weight=1e-3, schedule=schedule), small_data.dims,
                                       batches))


# ----------------------------------------------------------------------------- 2. weights set the pull
WEIGHTS = (0.01, 0.1, 1.0)
N_BATCHES = 30


def _encoder_distances(name, weights, small_data, batches, **kw):
    """L2 distance of the encoder parameters after the batches from the run with ``name`` = 0."""
    def encoders_after(w):
        return encoder_vector(run(cfg_with(**kw, **{name: w}), small_data.dims, batches)[0])
    base = encoders_after(0.0)
    return [float((encoders_after(w) - base).norm()) for w in weights]


@pytest.mark.parametrize("name", ["adv_weight", "rec_weight"])
def test_joint_a_larger_weight_moves_the_encoders_more(name, small_data, train_tensors):
    batches = batch_list(train_tensors, N_BATCHES)
    dist = _encoder_distances(name, WEIGHTS, small_data, batches, schedule="joint")
    assert 0 < dist[0] < dist[1] < dist[2], dist
    # roughly in proportion (about x3 and x8 measured): the weight sets the share of the one Adam step
    assert dist[2] > 3 * dist[1], dist


def test_phases_adam_hides_the_adversarial_weight(small_data, train_tensors):
    """The contrast the reviewer measured: with a generator phase of its own, Adam normalises its step, so
    adv_weight 0.1 and 1.0 move the encoders (nearly) the same distance from the adv_weight 0 run."""
    batches = batch_list(train_tensors, N_BATCHES)
    d01, d1 = _encoder_distances("adv_weight", (0.1, 1.0), small_data, batches, schedule="phases")
    assert d01 > 0 and abs(d1 - d01) <= 0.1 * d01, (d01, d1)


# ----------------------------------------------------------------------------- 3. the discriminator learns
DISC_RUN = dict(batch_size=32, epochs=8, adv_weight=0.1)
DISC_SEED = 0


def _disc_accuracy(small_data, **kw):
    cfg = cfg_with(**DISC_RUN, **kw)
    assert cfg.schedule == "joint"
    res = run_seed(small_data, cfg, DISC_SEED, device="cpu", progress=False, log=lambda *a, **k: None)
    return [rec["train"]["disc_acc"] for rec in res["history"]]


def test_the_discriminator_is_not_at_chance_for_the_whole_run(small_data):
    acc = _disc_accuracy(small_data)
    assert len(acc) == DISC_RUN["epochs"] and all(0 <= a <= 1 for a in acc)
    assert max(acc) > 0.6, acc


def test_a_frozen_discriminator_stays_near_chance(small_data):
    """The contrast: with learning rate 0 (adv_lr_scale=0) the same run's discriminator never gets there."""
    acc = _disc_accuracy(small_data, adv_lr_scale=0.0)
    assert max(acc) < 0.6 and max(acc) - min(acc) < 0.05, acc


# ----------------------------------------------------------------------------- 4. xi cannot collapse
def _fixed_codes(B=16, L=4, d=8, seed=0):
    """Random codes, the pair features shifted in two of the d directions (so a projection can hide it)."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.zeros(d)
    shift[:2] = 1.0
    S = {m: torch.randn(B, L, d, generator=g) for m in MODS}
    F = {k: torch.randn(B, L, d, generator=g) + shift for k in ("vt", "va", "ta")}
    return S, F


def _optimise_xi_only(xi: str, steps=200, d=8):
    torch.manual_seed(0)
    loss = FeatureAdaptiveMMD(MODS, d, xi=xi)
    S, F = _fixed_codes(d=d)
    opt = torch.optim.Adam(loss.xi.parameters(), lr=1e-2)
    with torch.no_grad():
        before, rank_before, w_before = float(loss(S, F)[0]), effective_rank(loss.xi.weight), loss.xi.weight.clone()
    for _ in range(steps):
        opt.zero_grad()
        loss(S, F)[0].backward()
        opt.step()
    with torch.no_grad():
        after, rank_after, w_after = float(loss(S, F)[0]), effective_rank(loss.xi.weight), loss.xi.weight.clone()
    return before, after, rank_before, rank_after, float((w_after - w_before).norm())


def test_adp_cannot_fall_by_collapsing_an_orthogonal_xi():
    before, after, rank_before, rank_after, moved = _optimise_xi_only("orthogonal")
    assert moved > 0.1  # Adam did turn xi (it normalises even a round-off gradient) ...
    assert after == pytest.approx(before, rel=1e-5)  # ... and L_Adp did not notice
    assert rank_before == pytest.approx(8, rel=1e-4) and rank_after == pytest.approx(8, rel=1e-4)


def test_adp_falls_by_collapsing_a_free_linear_xi():
    """The contrast: the same optimisation on a free xi halves L_Adp (and more) by dropping directions."""
    before, after, rank_before, rank_after, _ = _optimise_xi_only("linear")
    assert after < 0.5 * before, (before, after)
    assert rank_after < rank_before - 1, (rank_before, rank_after)


# ----------------------------------------------------------------------------- 5. resume is exact
RESUME = dict(batch_size=32, patience=10)


def _resume_runs(small_data, tmp_path, schedule):
    cfg4 = cfg_with(**RESUME, epochs=4, schedule=schedule)
    assert cfg4.adv_weight > 0  # a discriminator phase, so a prior stream to continue
    cfg2 = MCIHNConfig.from_dict({**cfg4.to_dict(), "epochs": 2})
    quiet = dict(device="cpu", progress=False, log=lambda *a, **k: None)
    ref = run_seed(small_data, cfg4, 3, out_dir=tmp_path / "A", **quiet)
    first = run_seed(small_data, cfg2, 3, out_dir=tmp_path / "B", **quiet)
    assert first["epochs_run"] == 2
    assert "prior" in torch.load(tmp_path / "B" / "last.pt", weights_only=True)["rng"]["model"]
    resumed = run_seed(small_data, cfg4, 3, out_dir=tmp_path / "B", resume=True, **quiet)
    assert resumed["epochs_run"] == ref["epochs_run"] == 4
    return ref, resumed


@pytest.mark.parametrize("schedule", ["joint", "phases"])
def test_resume_continues_exactly_with_the_prior_stream(schedule, small_data, tmp_path):
    ref, resumed = _resume_runs(small_data, tmp_path, schedule)
    assert strip_times(resumed["history"]) == strip_times(ref["history"])
    assert resumed["test"] == ref["test"] and resumed["best_epoch"] == ref["best_epoch"]
    a = torch.load(tmp_path / "A" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "B" / "last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["rng"]["model"]["prior"], b["rng"]["model"]["prior"])


def test_resume_without_the_prior_stream_would_differ(small_data, tmp_path, monkeypatch):
    """The contrast: a resume that restarts the prior stream instead of continuing it gives another run."""
    monkeypatch.setattr(checkpoint_mod, "restore_model_generators", lambda model, states, device: None)
    ref, resumed = _resume_runs(small_data, tmp_path, "joint")
    assert strip_times(resumed["history"][:2]) == strip_times(ref["history"][:2])
    assert resumed["history"][2]["train"]["disc"] != ref["history"][2]["train"]["disc"]
