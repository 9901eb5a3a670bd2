"""Tests for Algorithm 1 (mcihn.training.trainer.Trainer) and the multi-seed runner (mcihn.training.runner).

Which parameters each phase updates, determinism, checkpoint / resume, non-finite losses,
every ablation switch, results.json, and early stopping on the validation MAE.
"""
from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest
import torch

import mcihn.model.mcihn as model_mod
import mcihn.training.trainer as train_mod
from conftest import AWKWARD_DIMS, make_batch
from mcihn.model.config import MCIHNConfig
from mcihn.data import Normalizer, normalize
from mcihn.metrics import METRIC_KEYS
from mcihn.metrics import evaluate as evaluate_metrics
from mcihn.training.runner import load_model, run_experiment, run_seed
from mcihn.training.trainer import CHECKPOINT_FORMAT, NonFiniteLossError, Trainer, load_checkpoint_file

pytestmark = pytest.mark.usefixtures("torch_single_thread")

MOSI_KEYS = set(METRIC_KEYS["mosi"])


def strip_times(history):
    """History records without the wall-clock field (the only one allowed to differ between runs)."""
    return [{k: v for k, v in rec.items() if k != "time_s"} for rec in history]


def metrics_only(valid_record):
    return {k: v for k, v in valid_record.items() if k not in ("loss_mul", "loss_adp")}


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- phases of Algorithm 1
def _changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def _names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("kw", [{}, {"modalities": "va"}, {"mmd_samples": "tokens"}, {"adv_weight": 0.0},
                                {"schedule": "phases"}, {"schedule": "phases", "modalities": "va"}],
                         ids=["joint", "joint-va", "joint-tokens", "joint-no-adv", "phases", "phases-va"])
def test_each_phase_updates_exactly_its_parameters(kw, awkward_cfg):
    torch.manual_seed(0)
    cfg = awkward_cfg(lr=1e-2, **{"adv_weight": 0.1, **kw})  # every phase on (the default adv_weight is 0)
    trainer = Trainer(cfg, AWKWARD_DIMS, seed=0)
    model = trainer.model
    model.train()
    batch = make_batch(B=5, seed=1)  # odd: an L1 gradient on a bias is a mean of signs, 0 for a tie
    enc, dec = _names(model, model.encoder_parameters()), _names(model, model.decoder_parameters())
    disc, main = _names(model, model.discriminator_parameters()), _names(model, model.main_parameters())
    all_names = {n for n, _ in model.named_parameters()}
    # the groups partition the model as the paper says: main = encoders + CGMM + xi + FFM
    assert main | dec | disc == all_names and enc < main and not disc & (main | dec)
    assert {n for n in main if n.startswith(("cgmm.", "mmd.", "ffm."))} == {
        n for n in all_names if n.startswith(("cgmm.", "mmd.", "ffm."))}
    if cfg.schedule == "phases":
        groups = {"rec": enc | dec, "disc": disc, "gen": enc, "main": main}
    elif cfg.adv_weight:  # one optimiser over everything the joint objective reaches; the discriminator has its own
        groups = {"disc": disc, "main": main | dec}
    else:  # no adversarial term: no discriminator phase
        groups = {"main": main | dec}
    assert [phase.key for phase in trainer.phases] == list(groups)
    for phase in trainer.phases:
        name = phase.key
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        result = trainer.run_phase(phase, batch)
        changed = _changed(model, before)
        # d L_Adp / d xi is 0 up to round-off (the MMD is invariant to an orthogonal xi and to shifts), so
        # whether Adam moves xi depends on round-off: do not require it.
        expected = {n for n in groups[name] if not n.startswith("mmd.xi.")}
        assert expected <= changed <= groups[name], (name, sorted(changed ^ groups[name]))
        assert all(math.isfinite(float(v)) for v in result.values())


@pytest.mark.parametrize("schedule, adv_weight, order", [
    ("joint", 0.1, ["disc", "main"]), ("joint", 0.0, ["main"]), ("phases", 0.1, ["rec", "disc", "gen", "main"])])
def test_train_batch_runs_the_phases_in_algorithm_1_order(schedule, adv_weight, order, awkward_cfg):
    trainer = Trainer(awkward_cfg(schedule=schedule, adv_weight=adv_weight), AWKWARD_DIMS)
    calls = []
    real = trainer.run_phase
    trainer.run_phase = lambda phase, *a, **k: calls.append(phase.key) or real(phase, *a, **k)
    logs = trainer.train_batch(make_batch(B=4, seed=2))
    assert calls == order
    adversarial = {"disc", "disc_acc", "gen"} if adv_weight else set()
    assert set(logs) == {"rec", "total", "mul", "adp"} | adversarial


def test_mcihn1_trains_with_the_main_phase_only(awkward_cfg):
    trainer = Trainer(awkward_cfg(use_aae=False, lr=1e-2), AWKWARD_DIMS)
    assert set(trainer.opt) == {"main"}
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    logs = trainer.train_batch(make_batch(B=5, seed=3))
    assert set(logs) == {"total", "mul", "adp"} and logs["adp"] > 0
    assert _changed(model, before) == {n for n, _ in model.named_parameters()}  # every parameter is a main one


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_results_different_seed_different(small_data, small_cfg, quiet):
    cfg = small_cfg()
    a = run_seed(small_data, cfg, 5, device="cpu", **quiet)
    b = run_seed(small_data, cfg, 5, device="cpu", **quiet)
    c = run_seed(small_data, cfg, 6, device="cpu", **quiet)
    assert len(a["history"]) == 2
    assert strip_times(a["history"]) == strip_times(b["history"])
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    assert state_equal(a["model"].state_dict(), b["model"].state_dict())
    assert strip_times(a["history"]) != strip_times(c["history"])
    assert a["history"][0]["train"]["total"] != c["history"][0]["train"]["total"]
    assert a["test"] != c["test"]


# ----------------------------------------------------------------------------- checkpoints and resume
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, small_data):
    """An uninterrupted 4-epoch run of seed 7 into dir A."""
    cfg = MCIHNConfig.tiny(latent_len=4, latent_dim=16, heads=2, disc_hidden=16, batch_size=32, epochs=4,
                           patience=10, adv_weight=0.1)  # the adversary on: its prior stream must resume too
    out = tmp_path_factory.mktemp("A")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_seed(small_data, cfg, 7, out_dir=out, device="cpu", progress=False, log=lambda *a: None)
    finally:
        torch.set_num_threads(old)
    return cfg, out, res


def _assert_same_run(A, B, resA, resB):
    assert len(resA["history"]) == 4
    assert strip_times(resB["history"]) == strip_times(resA["history"])
    assert resB["test"] == resA["test"] and resB["valid"] == resA["valid"]
    assert resB["best_epoch"] == resA["best_epoch"]
    for name in ("best.pt", "last.pt"):
        ckA, ckB = torch.load(A / name, weights_only=True), torch.load(B / name, weights_only=True)
        assert ckA["epoch"] == ckB["epoch"]
        assert state_equal(ckA["model"], ckB["model"]), name
    assert strip_times(json.loads((B / "history.json").read_text())) == strip_times(
        json.loads((A / "history.json").read_text()))


def test_resume_after_a_shorter_run_equals_one_long_run(reference_run, small_data, tmp_path, quiet):
    cfg4, A, resA = reference_run
    B = tmp_path / "B"
    cfg2 = MCIHNConfig.from_dict({**cfg4.to_dict(), "epochs": 2})
    first = run_seed(small_data, cfg2, 7, out_dir=B, device="cpu", **quiet)
    assert first["epochs_run"] == 2
    assert (B / "result.json").exists()
    # A larger epoch budget makes the finished run unfinished again: resume trains epochs 3 and 4.
    resB = run_seed(small_data, cfg4, 7, out_dir=B, device="cpu", resume=True, **quiet)
    assert resB["epochs_run"] == 4
    _assert_same_run(A, B, resA, resB)


def test_resume_with_another_config_is_refused(reference_run, small_data):
    cfg4, A, _ = reference_run
    other = MCIHNConfig.from_dict({**cfg4.to_dict(), "latent_dim": cfg4.latent_dim * 2})
    with pytest.raises(ValueError, match="latent_dim"):
        run_seed(small_data, other, 7, out_dir=A, device="cpu", resume=True, progress=False, log=lambda *_: None)


def test_resume_after_an_interruption_equals_one_long_run(reference_run, small_data, tmp_path):
    cfg4, A, resA = reference_run
    B = tmp_path / "B"

    class Interrupt(Exception):
        pass

    def log_then_die(msg, *a, **k):
        if re.match(r"epoch\s+3\b", msg):  # logged after epoch 3 trained, before its checkpoint is written
            raise Interrupt

    with pytest.raises(Interrupt):
        run_seed(small_data, cfg4, 7, out_dir=B, device="cpu", progress=False, log=log_then_die)
    assert load_checkpoint_file(B / "last.pt")["epoch"] == 2 and not (B / "result.json").exists()
    messages = []
    resB = run_seed(small_data, cfg4, 7, out_dir=B, device="cpu", resume=True, progress=False, log=messages.append)
    assert any("resuming after epoch 2" in m for m in messages)
    assert sum(bool(re.match(r"epoch\s+\d", m)) for m in messages) == 2  # only epochs 3 and 4 were trained
    _assert_same_run(A, B, resA, resB)


@pytest.mark.parametrize("schedule", ["joint", "phases"])
def test_resume_keeps_the_early_stopping_state(schedule, small_data, small_cfg, tmp_path, quiet):
    """Interrupted after an epoch without progress: the resumed run must stop where the uninterrupted one did."""
    cfg = small_cfg(**EARLY, schedule=schedule)
    ref = run_seed(small_data, cfg, 1, out_dir=tmp_path / "A", device="cpu", **quiet)
    stop, best = ref["epochs_run"], ref["best_epoch"]
    assert stop < cfg.epochs and stop - best == cfg.patience == 2  # it stops early, `patience` epochs after its best

    def die_at_the_last_epoch(msg, *a, **k):
        if re.match(rf"epoch\s+{stop}\b", msg):  # trained, not yet checkpointed: last.pt is epoch stop - 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_seed(small_data, cfg, 1, out_dir=tmp_path / "B", device="cpu", progress=False, log=die_at_the_last_epoch)
    ck = load_checkpoint_file(tmp_path / "B" / "last.pt")
    assert (ck["epoch"], ck["bad_epochs"]) == (stop - 1, 1)
    res = run_seed(small_data, cfg, 1, out_dir=tmp_path / "B", device="cpu", resume=True, **quiet)
    assert res["epochs_run"] == stop and res["best_epoch"] == best
    assert strip_times(res["history"]) == strip_times(ref["history"]) and res["test"] == ref["test"]


def test_finished_seed_is_not_retrained_on_resume(reference_run, small_data, monkeypatch, quiet):
    cfg4, A, resA = reference_run
    last = (A / "last.pt").read_bytes()

    def no_training(*a, **k):
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(train_mod.Trainer, "fit", no_training)
    res = run_seed(small_data, cfg4, 7, out_dir=A, device="cpu", resume=True, **quiet)
    assert res["test"] == resA["test"] and res["best_epoch"] == resA["best_epoch"]
    assert strip_times(res["history"]) == strip_times(resA["history"])
    assert (A / "last.pt").read_bytes() == last


def test_checkpoints_load_with_weights_only(reference_run, small_data):
    cfg, A, res = reference_run
    for name in ("best.pt", "last.pt"):
        ck = torch.load(A / name, map_location="cpu", weights_only=True)
        assert ck["format"] == CHECKPOINT_FORMAT == "mcihn-checkpoint-v1"
        assert MCIHNConfig.from_dict(ck["config"]) == cfg
        assert ck["dims"] == {m: list(v) for m, v in small_data.dims.items()}
        assert ck["seed"] == 7 and ck["dataset"] == "mosi"
        assert set(ck["normalizer"]) == set(cfg.modalities)
        for m, st in ck["normalizer"].items():
            assert st["mean"].shape == st["std"].shape == (small_data.dims[m][1],)
            assert (st["std"] > 0).all()
        assert set(ck["model"]) == set(res["model"].state_dict())
    best, last = load_checkpoint_file(A / "best.pt"), load_checkpoint_file(A / "last.pt")
    assert best["epoch"] == res["best_epoch"] and last["epoch"] == res["epochs_run"] == 4
    assert cfg.schedule == "joint" and set(last["optimizers"]) == {"main", "disc"} and "optimizers" not in best
    assert len(last["history"]) == 4
    # the model's own random streams (the discriminator's prior samples, missing_aug's draws), saved for an exact
    # resume
    assert set(last["rng"]["model"]) == {"prior", "missing"}
    assert all(state.dtype == torch.uint8 for state in last["rng"]["model"].values())
    assert "rng" not in best
    # the normaliser is the training split's: reloading it reproduces the test metrics
    model, cfg2, norm, _ = load_model(A / "best.pt")
    _, fitted = normalize(small_data, cfg.modalities)
    for m in cfg.modalities:
        np.testing.assert_array_equal(norm.mean[m], fitted.mean[m])
    tensors = norm.transform(small_data["test"]).to_tensors(cfg2.modalities)
    pred, _ = train_mod.predict(model, tensors)
    assert evaluate_metrics(pred.numpy(), tensors["label"].numpy(), "mosi") == res["test"]
    assert isinstance(Normalizer.from_state_dict(best["normalizer"]), Normalizer)


def test_load_checkpoint_file_rejects_other_files(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an MCIHN checkpoint"):
        load_checkpoint_file(tmp_path / "other.pt")


# ----------------------------------------------------------------------------- non-finite losses
def _tensors(data, modalities):
    normed, _ = normalize(data, modalities)
    return {s: normed[s].to_tensors(modalities) for s in ("train", "valid")}


#: How the phase that carries the task loss is named in NonFiniteLossError messages, per schedule.
MAIN_PHASE = {"joint": r"joint \(L_Mul \+ lambda L_Adp \+ w_rec L_AE \+ w_adv L_gen\)",
              "phases": r"main \(L_Mul \+ lambda L_Adp\)"}


@pytest.mark.parametrize("schedule", ["joint", "phases"])
def test_nan_label_raises_naming_main_phase_and_epoch(schedule, small_data, small_cfg, quiet):
    cfg = small_cfg(schedule=schedule, adv_weight=0.1)
    t = _tensors(small_data, cfg.modalities)
    t["train"]["label"] = t["train"]["label"].clone()
    t["train"]["label"][:] = float("nan")
    trainer = Trainer(cfg, small_data.dims)
    with pytest.raises(NonFiniteLossError, match=rf"in the {MAIN_PHASE[schedule]} phase at epoch 1, batch 1/2"):
        trainer.fit(t["train"], t["valid"], "mosi", **quiet)


@pytest.mark.parametrize("schedule,attr,phase,calls_per_batch", [
    ("phases", "reconstruction_loss", "reconstruction", 3), ("phases", "discriminator_loss", "discriminator", 3),
    ("phases", "generator_loss", "generator", 3), ("phases", "main_loss", MAIN_PHASE["phases"], 1),
    # joint: L_AE and L_gen are terms of the one joint loss; the discriminator keeps its own phase
    ("joint", "reconstruction_loss", MAIN_PHASE["joint"], 3), ("joint", "discriminator_loss", "discriminator", 3),
    ("joint", "generator_loss", MAIN_PHASE["joint"], 3), ("joint", "main_loss", MAIN_PHASE["joint"], 1)])
def test_nan_loss_in_epoch_2_names_phase_and_epoch(schedule, attr, phase, calls_per_batch, small_data, small_cfg,
                                                   quiet, monkeypatch):
    cfg = small_cfg(epochs=3, schedule=schedule, adv_weight=0.1)  # every phase and term on
    t = _tensors(small_data, cfg.modalities)
    trainer = Trainer(cfg, small_data.dims)
    real, count = getattr(model_mod, attr), [0]

    def poisoned(*a, **k):
        count[0] += 1
        out = real(*a, **k)
        if count[0] <= 2 * calls_per_batch:  # the 2 batches of epoch 1 are fine
            return out
        if attr == "main_loss":
            return (out[0] * float("nan"), out[1], out[2])
        if attr == "discriminator_loss":  # (loss, accuracy)
            return (out[0] * float("nan"), out[1])
        return out * float("inf") if attr == "generator_loss" else out * float("nan")

    monkeypatch.setattr(model_mod, attr, poisoned)
    with pytest.raises(NonFiniteLossError, match=rf"in the {phase} phase at epoch 2, batch 1/2") as exc:
        trainer.fit(t["train"], t["valid"], "mosi", **quiet)
    assert re.search(r"non-finite loss \((nan|inf)\)", str(exc.value))
    assert len(trainer.history) == 1 and trainer.epoch == 1
    assert count[0] == 3 * calls_per_batch  # nothing ran after the poisoned batch's phase


@pytest.mark.parametrize("schedule,attr,phase", [
    ("phases", "reconstruction_loss", "reconstruction"), ("joint", "reconstruction_loss", MAIN_PHASE["joint"]),
    ("joint", "discriminator_loss", "discriminator")])
def test_nonfinite_loss_does_not_update_the_model(schedule, attr, phase, small_data, small_cfg, monkeypatch, quiet):
    """The bad step is not applied: the model is what the phases before it on batch 1 made it (nothing, or,
    under "joint" with a bad L_AE, one discriminator step), bit for bit."""
    cfg = small_cfg(schedule=schedule, adv_weight=0.1)
    t = _tensors(small_data, cfg.modalities)
    torch.manual_seed(0)
    trainer = Trainer(cfg, small_data.dims)
    torch.manual_seed(0)
    ref = Trainer(cfg, small_data.dims)  # the same model, to replay the good phases of batch 1
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert state_equal(before, ref.model.state_dict())
    first = next(train_mod.iterate_batches(t["train"], cfg.batch_size, ref.shuffle))
    ref.model.train()
    good = list(itertools.takewhile(lambda p: not re.fullmatch(phase, p.name), ref.phases))
    for p in good:
        ref.run_phase(p, first)
    assert [p.key for p in good] == (["disc"] if (schedule, attr) == ("joint", "reconstruction_loss") else [])
    if attr == "reconstruction_loss":
        monkeypatch.setattr(model_mod, attr, lambda x, x_hat, mask: (x_hat * float("nan")).mean())
    else:
        real = model_mod.discriminator_loss

        def nan_disc(*a, **k):
            loss, acc = real(*a, **k)
            return loss * float("nan"), acc
        monkeypatch.setattr(model_mod, attr, nan_disc)
    with pytest.raises(NonFiniteLossError, match=rf"in the {phase} phase at epoch 1, batch 1/2"):
        trainer.fit(t["train"], t["valid"], "mosi", **quiet)
    assert state_equal(ref.model.state_dict(), trainer.model.state_dict())
    if good:  # and the good step really was taken: the discriminators moved, nothing else did
        changed = {k for k in before if not torch.equal(before[k], trainer.model.state_dict()[k])}
        assert changed and all(".discriminator." in k for k in changed)
    else:
        assert state_equal(before, trainer.model.state_dict())


# ----------------------------------------------------------------------------- every ablation trains
@pytest.mark.parametrize("kw", [
    {}, {"modalities": "t"}, {"modalities": "a"}, {"modalities": "v"}, {"modalities": "vt"}, {"modalities": "va"},
    {"modalities": "ta"}, {"use_aae": False}, {"use_cgmm": False}, {"use_aae": False, "use_cgmm": False},
    {"mmd_samples": "tokens"}, {"grad_clip": None}, {"schedule": "phases"}, {"schedule": "phases", "use_aae": False},
    {"xi": "linear"}, {"xi": "none"}, {"adv_weight": 0.1}, {"adv_weight": 0.1, "modalities": "v"},
    {"adv_weight": 0.1, "disc_samples": "pooled"}, {"adv_weight": 0.1, "disc_samples": "flat"},
    {"rec_weight": 0.0}, {"mmd_weight": 0.0},
], ids=["full", "t", "a", "v", "vt", "va", "ta", "no-aae", "no-cgmm", "no-aae-no-cgmm", "tokens", "no-clip",
        "phases", "phases-no-aae", "xi-linear", "xi-none", "adv", "adv-v", "adv-disc-pooled", "adv-disc-flat",
        "no-rec", "no-mmd"])
def test_every_ablation_switch_trains(kw, small_data, small_cfg, tmp_path, quiet):
    cfg = small_cfg(**kw)
    res = run_seed(small_data, cfg, 11, out_dir=tmp_path, device="cpu", **quiet)
    hist = res["history"]
    assert len(hist) == 2 and res["epochs_run"] == 2 and res["best_epoch"] in (1, 2)
    expected_logs = {"total", "mul", "adp"}
    if cfg.use_aae:  # under "joint" a term of weight 0 is not computed, so not logged
        joint = cfg.schedule == "joint"
        if not joint or cfg.rec_weight:
            expected_logs |= {"rec"}
        if not joint or cfg.adv_weight:
            expected_logs |= {"gen", "disc", "disc_acc"}
    gated = cfg.use_cgmm and len(cfg.modalities) >= 2
    for rec in hist:
        assert set(rec["train"]) == expected_logs
        assert all(math.isfinite(v) for v in rec["train"].values())
        assert 0 <= rec["train"].get("disc_acc", 0) <= 1
        assert math.isfinite(rec["valid"]["loss_mul"])
        assert (rec["train"]["adp"] > 0) == gated and (rec["valid"]["loss_adp"] > 0) == gated
    for split in ("valid", "test"):
        assert set(res[split]) == MOSI_KEYS
        assert all(v is not None and math.isfinite(v) for v in res[split].values())
    assert res["model"].modalities == list(cfg.modalities)
    assert (tmp_path / "result.json").exists() and (tmp_path / "best.pt").exists()


# ----------------------------------------------------------------------------- run_experiment
def test_run_experiment_writes_results_json(small_data, small_cfg, tmp_path, quiet):
    cfg = small_cfg()
    res = run_experiment(small_data, cfg, seeds=[1, 2], out_dir=tmp_path, device="cpu", **quiet)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for key in ("dataset", "config", "per_seed", "mean", "std"):
        assert key in on_disk
    assert on_disk["dataset"] == "mosi" and MCIHNConfig.from_dict(on_disk["config"]) == cfg
    assert [r["seed"] for r in on_disk["per_seed"]] == [1, 2]
    for r in on_disk["per_seed"]:
        assert {"seed", "best_epoch", "valid", "test"} <= set(r)
        assert set(r["test"]) == set(r["valid"]) == MOSI_KEYS
        seed_dir = tmp_path / f"seed_{r['seed']}"
        for f in ("best.pt", "last.pt", "history.json", "result.json"):
            assert (seed_dir / f).exists(), f
        assert json.loads((seed_dir / "result.json").read_text())["test"] == r["test"]
    assert set(on_disk["mean"]) == set(on_disk["std"]) == MOSI_KEYS
    for k in MOSI_KEYS:
        vals = [r["test"][k] for r in on_disk["per_seed"]]
        assert on_disk["mean"][k] == pytest.approx(sum(vals) / 2, rel=1e-12, abs=1e-12)
        assert on_disk["std"][k] == pytest.approx(abs(vals[0] - vals[1]) / 2, rel=1e-9, abs=1e-12)  # population
    assert any(on_disk["std"][k] > 0 for k in MOSI_KEYS)  # two seeds really differ
    assert {k: v for k, v in res.items() if k != "histories"} == on_disk
    assert set(res["histories"]) == {1, 2}


# ----------------------------------------------------------------------------- early stopping
EARLY = dict(epochs=8, patience=2, lr=1e-2)  # with seed 1 this stops early, under both schedules (checked below)


def test_early_stopping_keeps_the_epoch_with_the_lowest_valid_mae(small_data, small_cfg, tmp_path, quiet):
    cfg = small_cfg(**EARLY)
    res = run_seed(small_data, cfg, 1, out_dir=tmp_path, device="cpu", **quiet)
    hist = res["history"]
    losses = [rec["valid"]["loss_mul"] for rec in hist]
    assert res["best_epoch"] == int(np.argmin(losses)) + 1
    assert res["epochs_run"] == len(hist) < cfg.epochs  # it did stop early ...
    assert res["epochs_run"] - res["best_epoch"] == cfg.patience  # ... after `patience` epochs without progress
    assert res["best_epoch"] < res["epochs_run"]  # so "best" and "last" are different weights
    # the reported metrics are those of the best epoch's weights (best.pt reloaded), not the last
    assert res["valid"] == metrics_only(hist[res["best_epoch"] - 1]["valid"])
    assert load_checkpoint_file(tmp_path / "best.pt")["epoch"] == res["best_epoch"]


def test_early_stopping_without_out_dir_reports_the_best_epoch(small_data, small_cfg, quiet):
    cfg = small_cfg(**EARLY)
    res = run_seed(small_data, cfg, 1, out_dir=None, device="cpu", **quiet)
    assert res["best_epoch"] < res["epochs_run"]
    assert res["valid"] == metrics_only(res["history"][res["best_epoch"] - 1]["valid"])


@pytest.mark.parametrize("schedule", ["joint", "phases"])
def test_adv_lr_scale_sets_only_the_adversarial_learning_rates(schedule):
    from mcihn.data import DEFAULT_DIMS
    cfg = MCIHNConfig.tiny(adv_lr_scale=0.1, schedule=schedule, adv_weight=0.1)
    tr = Trainer(cfg, DEFAULT_DIMS)
    lrs = {k: o.param_groups[0]["lr"] for k, o in tr.opt.items()}
    if schedule == "phases":
        assert lrs == pytest.approx({"main": cfg.lr, "rec": cfg.lr, "disc": 0.1 * cfg.lr, "gen": 0.1 * cfg.lr})
    else:  # the generator term is part of the joint step, at the joint learning rate
        assert lrs == pytest.approx({"main": cfg.lr, "disc": 0.1 * cfg.lr})
        # without the adversarial term there is no discriminator step to scale
        off = Trainer(MCIHNConfig.tiny(adv_lr_scale=0.1, schedule=schedule, adv_weight=0.0), DEFAULT_DIMS)
        assert {k: o.param_groups[0]["lr"] for k, o in off.opt.items()} == pytest.approx({"main": cfg.lr})


def test_run_says_what_its_progress_names_mean_and_why_it_stopped(small_data, small_cfg):
    """The legend comes once, above the first epoch line, and names every log of that line; each seed says why
    it stopped (here early stopping: patience 1 ends a 6-epoch budget sooner, or the epoch limit)."""
    from mcihn.training.runner import run_experiment

    lines = []
    cfg = small_cfg(epochs=6, patience=1)
    run_experiment(small_data, cfg, seeds=[3, 4], progress=False, log=lines.append, legend=True)
    legends = [i for i, line in enumerate(lines) if line.startswith("legend: ")]
    first_epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch "))
    assert legends == [first_epoch - 1]
    for name in ("total", "mul", "adp"):
        assert f"{name} = " in lines[legends[0]] and f"  {name} " in lines[first_epoch]
    assert "* = best validation MAE so far" in lines[legends[0]]
    stops = [line for line in lines if line.startswith(("seed 3: ", "seed 4: "))]
    assert len(stops) == 2 and all(re.search(r"(early stopping at epoch \d+: no better validation MAE for 1 "
                                             r"epochs \(patience\)|epoch limit reached \(6 epochs\)); best epoch \d+",
                                             s) for s in stops)
