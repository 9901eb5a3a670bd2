"""MCIHNConfig.missing_aug: training with missing inputs (issue 20, an addition to the paper).

On by default (0.5, chosen on the suite's validation splits); at 0 exactly the training before it existed; on, it
changes the batches the task loss sees
in training mode only, draws from a stream of the model's own (the global stream untouched), trains with finite
losses, and a resumed run continues it exactly.
"""
from __future__ import annotations

import re

import pytest
import torch

from conftest import AWKWARD_DIMS, AWKWARD_MODEL, make_batch
from mcihn.model.config import MCIHNConfig
from mcihn.model.mcihn import MCIHN
from mcihn.training.runner import run_seed
from mcihn.training.trainer import load_checkpoint_file

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def strip_times(history):
    return [{k: v for k, v in rec.items() if k != "time_s"} for rec in history]


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _model(p: float, **kw) -> MCIHN:
    torch.manual_seed(0)
    return MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL, missing_aug=p, **kw), AWKWARD_DIMS)


def test_on_by_default_in_every_preset():
    assert MCIHNConfig().missing_aug == 0.5
    for make in (MCIHNConfig.paper, MCIHNConfig.tiny, MCIHNConfig.auto):
        assert make().missing_aug == 0.5


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_missing_aug_must_be_a_probability(bad):
    with pytest.raises(ValueError, match="missing_aug"):
        MCIHNConfig.tiny(missing_aug=bad)


def test_off_draws_nothing_and_changes_nothing():
    model = _model(0.0)
    model.train()
    batch = make_batch(B=6, seed=1)
    assert model.missing_augment(batch) is batch
    assert "missing" not in model.generators()
    # the same weights as a model made before the switch existed: no draw from the global stream at build time
    torch.manual_seed(0)
    ref = MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL), AWKWARD_DIMS)
    assert state_equal(model.state_dict(), ref.state_dict())
    assert state_equal(_model(0.7).state_dict(), ref.state_dict())  # on: the same initial weights too


def test_on_changes_the_batch_in_training_mode_only():
    model = _model(0.9)
    batch = make_batch(B=64, seed=2)
    model.eval()
    assert model.missing_augment(batch) is batch
    model.train()
    rng = torch.get_rng_state()
    aug = model.missing_augment(batch)
    assert torch.equal(torch.get_rng_state(), rng)  # the global stream (dropout, shuffling) is untouched
    assert torch.equal(aug["label"], batch["label"])
    for m in model.modalities:
        assert torch.equal(aug[m + "_mask"], batch[m + "_mask"])
        x, y = batch[m], aug[m]
        zeroed = (y == 0).all(dim=-1) & (x != 0).any(dim=-1)  # (B, T) steps made missing
        assert zeroed.any(), m
        assert torch.equal(y[~zeroed], x[~zeroed])  # the other steps are untouched, whole steps are set to 0
        real = batch[m + "_mask"]
        whole = (zeroed | ~real).all(dim=1) & real.any(dim=1)
        partial = zeroed.any(dim=1) & ~whole
        assert whole.any() and partial.any(), m  # both kinds: whole sequences and shares of steps
    assert model.missing_augment(batch)["text"].ne(aug["text"]).any()  # a fresh draw per call


def test_with_a_text_encoder_text_is_left_complete():
    model = _model(1.0, text_encoder="some-encoder")  # only the config's field is read here
    model.train()
    batch = make_batch(B=16, seed=3)
    aug = model.missing_augment(batch)
    assert torch.equal(aug["text"], batch["text"])
    assert not torch.equal(aug["audio"], batch["audio"])


def test_eval_predictions_do_not_depend_on_the_switch():
    a, b = _model(0.0), _model(1.0)
    batch = make_batch(B=5, seed=4)
    assert torch.equal(a.predict(batch), b.predict(batch))


def test_at_zero_the_training_is_the_training_without_the_code(small_data, small_cfg, quiet, monkeypatch):
    """Bit-identical history and weights with missing_aug = 0 and with missing_augment removed from the path."""
    cfg = small_cfg(missing_aug=0.0)
    a = run_seed(small_data, cfg, 5, device="cpu", **quiet)
    monkeypatch.setattr(MCIHN, "missing_augment", lambda self, batch: batch)
    b = run_seed(small_data, cfg, 5, device="cpu", **quiet)
    assert strip_times(a["history"]) == strip_times(b["history"])
    assert state_equal(a["model"].state_dict(), b["model"].state_dict())


@pytest.mark.parametrize("schedule", ["joint", "phases"])
def test_on_trains_with_finite_losses_and_another_history(schedule, small_data, small_cfg, quiet):
    off = run_seed(small_data, small_cfg(schedule=schedule, missing_aug=0.0), 5, device="cpu", **quiet)
    on = run_seed(small_data, small_cfg(schedule=schedule, missing_aug=0.5), 5, device="cpu", **quiet)
    again = run_seed(small_data, small_cfg(schedule=schedule, missing_aug=0.5), 5, device="cpu", **quiet)
    for rec in on["history"]:
        assert all(torch.isfinite(torch.tensor(v)) for v in rec["train"].values())
    assert strip_times(on["history"]) != strip_times(off["history"])
    assert strip_times(on["history"]) == strip_times(again["history"])  # seeded: the same run twice


@pytest.fixture(scope="module")
def aug_run(tmp_path_factory, small_data):
    """An uninterrupted 4-epoch run with missing_aug on (and the adversary: both streams must resume)."""
    cfg = MCIHNConfig.tiny(latent_len=4, latent_dim=16, heads=2, disc_hidden=16, batch_size=32, epochs=4,
                           patience=10, adv_weight=0.1, missing_aug=0.5)
    out = tmp_path_factory.mktemp("A")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_seed(small_data, cfg, 7, out_dir=out, device="cpu", progress=False, log=lambda *a: None)
    finally:
        torch.set_num_threads(old)
    return cfg, out, res


def _assert_same_run(A, B, resA, resB):
    assert strip_times(resB["history"]) == strip_times(resA["history"])
    assert resB["test"] == resA["test"] and resB["valid"] == resA["valid"]
    for name in ("best.pt", "last.pt"):
        assert state_equal(torch.load(A / name, weights_only=True)["model"],
                           torch.load(B / name, weights_only=True)["model"]), name


def test_resume_after_an_interruption_is_exact_with_missing_aug(aug_run, small_data, tmp_path):
    cfg, A, resA = aug_run
    assert "missing" in load_checkpoint_file(A / "last.pt")["rng"]["model"]
    B = tmp_path / "B"

    class Interrupt(Exception):
        pass

    def log_then_die(msg, *a, **k):
        if re.match(r"epoch\s+3\b", msg):
            raise Interrupt

    with pytest.raises(Interrupt):
        run_seed(small_data, cfg, 7, out_dir=B, device="cpu", progress=False, log=log_then_die)
    assert load_checkpoint_file(B / "last.pt")["epoch"] == 2
    resB = run_seed(small_data, cfg, 7, out_dir=B, device="cpu", resume=True, progress=False, log=lambda *a: None)
    _assert_same_run(A, B, resA, resB)


def test_a_run_saved_before_the_switch_existed_resumes(small_data, small_cfg, tmp_path, quiet):
    """Such a run trained without it: it resumes under missing_aug = 0, and the new default is refused by name."""
    cfg2, cfg3 = small_cfg(epochs=2, missing_aug=0.0), small_cfg(epochs=3, missing_aug=0.0)
    run_seed(small_data, cfg2, 5, out_dir=tmp_path, device="cpu", **quiet)
    last = tmp_path / "last.pt"
    ck = torch.load(last, weights_only=True)
    del ck["config"]["missing_aug"]  # as written by the code before
    torch.save(ck, last)
    res = run_seed(small_data, cfg3, 5, out_dir=tmp_path, device="cpu", resume=True, **quiet)
    assert res["epochs_run"] == 3
    with pytest.raises(ValueError, match="missing_aug"):  # but not under another value
        run_seed(small_data, small_cfg(epochs=4), 5, out_dir=tmp_path, device="cpu", resume=True,
                 **quiet)


# ----------------------------------------------------------------------------- the train command's flag
@pytest.fixture(scope="module")
def small_pickle(tmp_path_factory):
    from conftest import SMALL_DIMS, SMALL_SPLITS
    from mcihn.data import write_synthetic
    path = tmp_path_factory.mktemp("pkl") / "x.pkl"
    write_synthetic(path, splits=dict(SMALL_SPLITS), dims=dict(SMALL_DIMS), seed=1)
    return path


def _train(args):
    from mcihn.cli import main
    try:
        return main(["train", "--preset", "tiny", "--seeds", "1", "--quiet", *args])
    except SystemExit as e:
        return e.code


def test_train_flag_sets_the_switch(small_pickle, tmp_path):
    assert _train(["--data", str(small_pickle), "--epochs", "1", "--missing-aug", "0.3", "--out", str(tmp_path)]) == 0
    assert load_checkpoint_file(tmp_path / "seed_1" / "best.pt")["config"]["missing_aug"] == 0.3


@pytest.mark.parametrize("extra, message", [
    (["--missing-aug", "1.5"], "argument --missing-aug"),
    (["--model", "late", "--missing-aug", "0.5"], "--missing-aug: option(s) of MCIHN"),
])
def test_train_flag_is_checked_before_training(extra, message, small_pickle, tmp_path, capsys):
    assert _train(["--data", str(small_pickle), "--out", str(tmp_path / "r"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
